//! One column's Arrow builder, fed with binary values of its Postgres type.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{Field, IntervalMonthDayNano};

use super::{PG_EPOCH_DAYS, PG_EPOCH_MICROS, be_i32, be_i64, need, numeric_to_i256};
use crate::db::pg::types::PgScalar;

/// One column's builder.
pub(super) enum Builder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec128(Decimal128Builder, i8),
    Dec256(Decimal256Builder, i8),
    Str(StringBuilder, bool),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

impl Builder {
    pub(super) fn new(s: PgScalar, field: &Field) -> Self {
        match s {
            PgScalar::Bool => Self::Bool(BooleanBuilder::new()),
            PgScalar::Int2 => Self::I16(Int16Builder::new()),
            PgScalar::Int4 => Self::I32(Int32Builder::new()),
            PgScalar::Int8 => Self::I64(Int64Builder::new()),
            PgScalar::Float4 => Self::F32(Float32Builder::new()),
            PgScalar::Float8 => Self::F64(Float64Builder::new()),
            PgScalar::Numeric { precision, scale } if precision <= 38 => Self::Dec128(
                Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_default(),
                scale,
            ),
            PgScalar::Numeric { precision, scale } => Self::Dec256(
                Decimal256Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_default(),
                scale,
            ),
            PgScalar::Text => Self::Str(StringBuilder::new(), false),
            PgScalar::Jsonb => Self::Str(StringBuilder::new(), true),
            PgScalar::Bytea => Self::Bin(BinaryBuilder::new()),
            PgScalar::Date => Self::Date(Date32Builder::new()),
            PgScalar::Time => Self::Time(Time64MicrosecondBuilder::new()),
            PgScalar::Timestamp => Self::Ts(TimestampMicrosecondBuilder::new()),
            PgScalar::Timestamptz => {
                Self::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            PgScalar::Interval => Self::Interval(IntervalMonthDayNanoBuilder::new()),
            PgScalar::Uuid => {
                let _ = field;
                Self::Uuid(FixedSizeBinaryBuilder::new(16))
            }
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::I16(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Dec128(b, _) => b.append_null(),
            Self::Dec256(b, _) => b.append_null(),
            Self::Str(b, _) => b.append_null(),
            Self::Bin(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Ts(b) => b.append_null(),
            Self::Interval(b) => b.append_null(),
            Self::Uuid(b) => b.append_null(),
        }
    }

    pub(super) fn append(&mut self, v: &[u8]) -> Result<(), String> {
        match self {
            Self::Bool(b) => {
                need(v, 1)?;
                b.append_value(v[0] != 0)
            }
            Self::I16(b) => {
                need(v, 2)?;
                b.append_value(i16::from_be_bytes([v[0], v[1]]))
            }
            Self::I32(b) => {
                need(v, 4)?;
                b.append_value(be_i32(v))
            }
            Self::I64(b) => {
                need(v, 8)?;
                b.append_value(be_i64(v))
            }
            Self::F32(b) => {
                need(v, 4)?;
                b.append_value(f32::from_bits(be_i32(v) as u32))
            }
            Self::F64(b) => {
                need(v, 8)?;
                b.append_value(f64::from_bits(be_i64(v) as u64))
            }
            Self::Dec128(b, scale) => {
                let x = numeric_to_i256(v, *scale)?;
                let small = x
                    .to_i128()
                    .ok_or_else(|| "a numeric value too large for its column".to_string())?;
                b.append_value(small)
            }
            Self::Dec256(b, scale) => b.append_value(numeric_to_i256(v, *scale)?),
            Self::Str(b, jsonb) => {
                let bytes = if *jsonb {
                    match v.split_first() {
                        Some((1, rest)) => rest,
                        _ => return Err("an unknown jsonb format version".into()),
                    }
                } else {
                    v
                };
                let s = std::str::from_utf8(bytes)
                    .map_err(|e| format!("text that is not UTF-8 ({e})"))?;
                b.append_value(s)
            }
            Self::Bin(b) => b.append_value(v),
            Self::Date(b) => {
                need(v, 4)?;
                let d = be_i32(v);
                if d == i32::MAX || d == i32::MIN {
                    return Err("an infinite date, which Arrow cannot hold".into());
                }
                b.append_value(d.checked_add(PG_EPOCH_DAYS).ok_or("a date out of range")?)
            }
            Self::Time(b) => {
                need(v, 8)?;
                b.append_value(be_i64(v))
            }
            Self::Ts(b) => {
                need(v, 8)?;
                let t = be_i64(v);
                if t == i64::MAX || t == i64::MIN {
                    return Err("an infinite timestamp, which Arrow cannot hold".into());
                }
                b.append_value(
                    t.checked_add(PG_EPOCH_MICROS)
                        .ok_or("a timestamp out of range")?,
                )
            }
            Self::Interval(b) => {
                need(v, 16)?;
                let micros = be_i64(v);
                let days = be_i32(&v[8..12]);
                let months = be_i32(&v[12..16]);
                let nanos = micros.checked_mul(1000).ok_or("an interval out of range")?;
                b.append_value(IntervalMonthDayNano::new(months, days, nanos))
            }
            Self::Uuid(b) => {
                need(v, 16)?;
                b.append_value(&v[..16]).map_err(|e| e.to_string())?
            }
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::I16(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::F32(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
            Self::Dec128(b, _) => Arc::new(b.finish()),
            Self::Dec256(b, _) => Arc::new(b.finish()),
            Self::Str(b, _) => Arc::new(b.finish()),
            Self::Bin(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Ts(b) => Arc::new(b.finish()),
            Self::Interval(b) => Arc::new(b.finish()),
            Self::Uuid(b) => Arc::new(b.finish()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Bool(b) => b.len(),
            Self::I16(b) => b.len(),
            Self::I32(b) => b.len(),
            Self::I64(b) => b.len(),
            Self::F32(b) => b.len(),
            Self::F64(b) => b.len(),
            Self::Dec128(b, _) => b.len(),
            Self::Dec256(b, _) => b.len(),
            Self::Str(b, _) => b.len(),
            Self::Bin(b) => b.len(),
            Self::Date(b) => b.len(),
            Self::Time(b) => b.len(),
            Self::Ts(b) => b.len(),
            Self::Interval(b) => b.len(),
            Self::Uuid(b) => b.len(),
        }
    }
}
