//! Encoding Arrow batches into PostgreSQL's binary COPY format (`COPY ... FROM STDIN (FORMAT
//! binary)`), keyed by the type of each *target* column.
//!
//! The server parses each field with the receive function of the column's type (and checks
//! the element type of arrays), so every Arrow column is first cast to the Arrow type that
//! matches its target column, then written in that type's send format. A value the target
//! cannot hold (an integer overflow, a string that is not a UUID) is an error naming the
//! column, never a silent change.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, FixedSizeBinaryArray, GenericListArray,
    StringArray,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, Schema, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType, i256,
};
use datafusion::arrow::record_batch::RecordBatch;

use super::decode::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};
use super::types::{PgScalar, PgType, arrow_scalar, is_uuid_field};

/// A column that cannot be written to its target.
#[derive(Debug, Clone, thiserror::Error)]
#[error("column `{column}`: {reason}")]
pub struct EncodeError {
    /// The column.
    pub column: String,
    /// Why.
    pub reason: String,
}

/// Writes batches of one schema into COPY rows for one list of target columns.
#[derive(Debug)]
pub struct CopyEncoder {
    /// Per target column: its name, its type, and the input column it takes.
    cols: Vec<(String, PgType, usize)>,
}

/// The COPY header.
pub fn header(out: &mut BytesMut) {
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0);
    out.put_i32(0);
}

/// The COPY trailer.
pub fn trailer(out: &mut BytesMut) {
    out.put_i16(-1);
}

impl CopyEncoder {
    /// An encoder writing `targets` (name and type, in COPY column order) from `input`,
    /// matching columns by name.
    pub fn new(targets: &[(String, PgType)], input: &Schema) -> Result<Self, EncodeError> {
        let cols = targets
            .iter()
            .map(|(name, t)| {
                let idx = input.index_of(name).map_err(|_| EncodeError {
                    column: name.clone(),
                    reason: "is not in the output".into(),
                })?;
                check_castable(input.field(idx), t).map_err(|reason| EncodeError {
                    column: name.clone(),
                    reason,
                })?;
                Ok((name.clone(), t.clone(), idx))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { cols })
    }

    /// Appends one batch's rows.
    pub fn encode(&self, batch: &RecordBatch, out: &mut BytesMut) -> Result<(), EncodeError> {
        let typed: Vec<ArrayRef> = self
            .cols
            .iter()
            .map(|(name, t, idx)| {
                let field = batch.schema_ref().field(*idx).clone();
                to_target(batch.column(*idx), &field, t).map_err(|reason| EncodeError {
                    column: name.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        let writers: Vec<Writer> = typed
            .iter()
            .zip(&self.cols)
            .map(|(a, (_, t, _))| Writer::new(a.as_ref(), t))
            .collect();
        out.reserve(batch.num_rows() * (2 + writers.len() * 12));
        let n = self.cols.len() as i16;
        for row in 0..batch.num_rows() {
            out.put_i16(n);
            for (w, (name, _, _)) in writers.iter().zip(&self.cols) {
                w.write(row, out).map_err(|reason| EncodeError {
                    column: name.clone(),
                    reason,
                })?;
            }
        }
        Ok(())
    }
}

/// The Arrow type a column is cast to before it is encoded for a target type.
fn target_arrow(t: &PgType, input: &Field) -> DataType {
    let scalar = match (t.scalar, element_type(input.data_type())) {
        (
            PgScalar::Numeric { .. },
            Some(d @ (DataType::Decimal128(..) | DataType::Decimal256(..))),
        ) => d.clone(),
        (PgScalar::Numeric { scale, .. }, _) => DataType::Decimal128(38, scale.max(0)),
        (PgScalar::Timestamptz, _) => DataType::Timestamp(TimeUnit::Microsecond, None),
        (PgScalar::Uuid, Some(DataType::FixedSizeBinary(16))) => DataType::FixedSizeBinary(16),
        (PgScalar::Uuid, _) => DataType::Utf8,
        (PgScalar::Jsonb, _) => DataType::Utf8,
        (s, _) => arrow_scalar(s),
    };
    if t.array {
        DataType::List(Arc::new(Field::new("item", scalar, true)))
    } else {
        scalar
    }
}

fn element_type(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        DataType::Dictionary(_, v) => Some(v.as_ref()),
        other => Some(other),
    }
}

fn check_castable(input: &Field, t: &PgType) -> Result<(), String> {
    let is_list = matches!(
        input.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    );
    if is_list != t.array && !matches!(input.data_type(), DataType::Null) {
        return Err(if t.array {
            "the target column is an array but the output is not a list".into()
        } else {
            format!(
                "a list ({}) cannot go into a scalar column",
                input.data_type()
            )
        });
    }
    let from = input.data_type();
    let to = target_arrow(t, input);
    if datafusion::arrow::compute::can_cast_types(from, &to) || is_uuid_field(input) {
        Ok(())
    } else {
        Err(format!("{from} cannot be written to a column of this type"))
    }
}

/// Casts a column to what its target type's encoder reads. Strict: a value that does not
/// fit is an error, not a NULL.
fn to_target(a: &ArrayRef, input: &Field, t: &PgType) -> Result<ArrayRef, String> {
    let to = target_arrow(t, input);
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |a: &ArrayRef| -> Result<ArrayRef, String> {
        if a.data_type() == &to {
            Ok(a.clone())
        } else {
            cast_with_options(a, &to, &opts).map_err(|e| e.to_string())
        }
    };
    if t.scalar == PgScalar::Timestamptz {
        // Drop the zone after converting to UTC: the wire value is UTC microseconds.
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let wrap = |dt: DataType| {
            if t.array {
                DataType::List(Arc::new(Field::new("item", dt, true)))
            } else {
                dt
            }
        };
        let in_utc = match element_type(a.data_type()) {
            Some(DataType::Timestamp(_, Some(_))) => {
                cast_with_options(a, &wrap(utc), &opts).map_err(|e| e.to_string())?
            }
            _ => a.clone(),
        };
        return cast(&in_utc);
    }
    cast(a)
}

/// Reads one typed column row by row.
enum Writer<'a> {
    Null,
    Bool(&'a BooleanArray),
    I16(&'a datafusion::arrow::array::PrimitiveArray<Int16Type>),
    I32(&'a datafusion::arrow::array::PrimitiveArray<Int32Type>),
    I64(&'a datafusion::arrow::array::PrimitiveArray<Int64Type>),
    F32(&'a datafusion::arrow::array::PrimitiveArray<Float32Type>),
    F64(&'a datafusion::arrow::array::PrimitiveArray<Float64Type>),
    Dec128(
        &'a datafusion::arrow::array::PrimitiveArray<Decimal128Type>,
        i8,
    ),
    Dec256(
        &'a datafusion::arrow::array::PrimitiveArray<Decimal256Type>,
        i8,
    ),
    Str(&'a StringArray, bool),
    UuidText(&'a StringArray),
    UuidBin(&'a FixedSizeBinaryArray),
    Bin(&'a BinaryArray),
    Date(&'a datafusion::arrow::array::PrimitiveArray<Date32Type>),
    Time(&'a datafusion::arrow::array::PrimitiveArray<Time64MicrosecondType>),
    Ts(&'a datafusion::arrow::array::PrimitiveArray<TimestampMicrosecondType>),
    Interval(&'a datafusion::arrow::array::PrimitiveArray<IntervalMonthDayNanoType>),
    List(&'a GenericListArray<i32>, Box<Writer<'a>>, u32),
}

impl<'a> Writer<'a> {
    fn new(a: &'a dyn Array, t: &PgType) -> Self {
        if t.array {
            let list = a.as_list::<i32>();
            let scalar = PgType {
                scalar: t.scalar,
                array: false,
                elem_oid: t.elem_oid,
            };
            return Self::List(
                list,
                Box::new(Self::new(list.values().as_ref(), &scalar)),
                t.elem_oid,
            );
        }
        match (t.scalar, a.data_type()) {
            (_, DataType::Null) => Self::Null,
            (PgScalar::Bool, _) => Self::Bool(a.as_boolean()),
            (PgScalar::Int2, _) => Self::I16(a.as_primitive()),
            (PgScalar::Int4, _) => Self::I32(a.as_primitive()),
            (PgScalar::Int8, _) => Self::I64(a.as_primitive()),
            (PgScalar::Float4, _) => Self::F32(a.as_primitive()),
            (PgScalar::Float8, _) => Self::F64(a.as_primitive()),
            (PgScalar::Numeric { .. }, DataType::Decimal256(_, s)) => {
                Self::Dec256(a.as_primitive(), *s)
            }
            (PgScalar::Numeric { .. }, DataType::Decimal128(_, s)) => {
                Self::Dec128(a.as_primitive(), *s)
            }
            (PgScalar::Numeric { .. }, _) => Self::Null,
            (PgScalar::Text, _) => Self::Str(a.as_string(), false),
            (PgScalar::Jsonb, _) => Self::Str(a.as_string(), true),
            (PgScalar::Uuid, DataType::FixedSizeBinary(_)) => {
                Self::UuidBin(a.as_fixed_size_binary())
            }
            (PgScalar::Uuid, _) => Self::UuidText(a.as_string()),
            (PgScalar::Bytea, _) => Self::Bin(a.as_binary()),
            (PgScalar::Date, _) => Self::Date(a.as_primitive()),
            (PgScalar::Time, _) => Self::Time(a.as_primitive()),
            (PgScalar::Timestamp | PgScalar::Timestamptz, _) => Self::Ts(a.as_primitive()),
            (PgScalar::Interval, _) => Self::Interval(a.as_primitive()),
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Null => true,
            Self::Bool(a) => a.is_null(row),
            Self::I16(a) => a.is_null(row),
            Self::I32(a) => a.is_null(row),
            Self::I64(a) => a.is_null(row),
            Self::F32(a) => a.is_null(row),
            Self::F64(a) => a.is_null(row),
            Self::Dec128(a, _) => a.is_null(row),
            Self::Dec256(a, _) => a.is_null(row),
            Self::Str(a, _) | Self::UuidText(a) => a.is_null(row),
            Self::UuidBin(a) => a.is_null(row),
            Self::Bin(a) => a.is_null(row),
            Self::Date(a) => a.is_null(row),
            Self::Time(a) => a.is_null(row),
            Self::Ts(a) => a.is_null(row),
            Self::Interval(a) => a.is_null(row),
            Self::List(a, _, _) => a.is_null(row),
        }
    }

    /// Writes the field (length prefix included) for one row.
    fn write(&self, row: usize, out: &mut BytesMut) -> Result<(), String> {
        if self.is_null(row) {
            out.put_i32(-1);
            return Ok(());
        }
        match self {
            Self::Null => out.put_i32(-1),
            Self::Bool(a) => {
                out.put_i32(1);
                out.put_u8(a.value(row) as u8);
            }
            Self::I16(a) => {
                out.put_i32(2);
                out.put_i16(a.value(row));
            }
            Self::I32(a) => {
                out.put_i32(4);
                out.put_i32(a.value(row));
            }
            Self::I64(a) => {
                out.put_i32(8);
                out.put_i64(a.value(row));
            }
            Self::F32(a) => {
                out.put_i32(4);
                out.put_f32(a.value(row));
            }
            Self::F64(a) => {
                out.put_i32(8);
                out.put_f64(a.value(row));
            }
            Self::Dec128(a, s) => encode_numeric(i256::from_i128(a.value(row)), *s, out),
            Self::Dec256(a, s) => encode_numeric(a.value(row), *s, out),
            Self::Str(a, jsonb) => {
                let v = a.value(row).as_bytes();
                if *jsonb {
                    out.put_i32(v.len() as i32 + 1);
                    out.put_u8(1);
                } else {
                    if v.contains(&0) {
                        return Err("text with a NUL character, which Postgres cannot store".into());
                    }
                    out.put_i32(v.len() as i32);
                }
                out.put_slice(v);
            }
            Self::UuidText(a) => {
                let u = uuid::Uuid::parse_str(a.value(row).trim())
                    .map_err(|_| format!("`{}` is not a UUID", a.value(row)))?;
                out.put_i32(16);
                out.put_slice(u.as_bytes());
            }
            Self::UuidBin(a) => {
                out.put_i32(16);
                out.put_slice(a.value(row));
            }
            Self::Bin(a) => {
                let v = a.value(row);
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
            Self::Date(a) => {
                out.put_i32(4);
                out.put_i32(a.value(row) - PG_EPOCH_DAYS);
            }
            Self::Time(a) => {
                out.put_i32(8);
                out.put_i64(a.value(row));
            }
            Self::Ts(a) => {
                let v = a
                    .value(row)
                    .checked_sub(PG_EPOCH_MICROS)
                    .ok_or("a timestamp out of Postgres' range")?;
                out.put_i32(8);
                out.put_i64(v);
            }
            Self::Interval(a) => {
                let v = a.value(row);
                out.put_i32(16);
                out.put_i64(v.nanoseconds / 1000);
                out.put_i32(v.days);
                out.put_i32(v.months);
            }
            Self::List(a, values, elem_oid) => {
                let offsets = a.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                let len_at = out.len();
                out.put_i32(0);
                let n = end - start;
                if n == 0 {
                    out.put_i32(0);
                    out.put_i32(0);
                    out.put_u32(*elem_oid);
                } else {
                    let has_nulls = (start..end).any(|i| values.is_null(i));
                    out.put_i32(1);
                    out.put_i32(has_nulls as i32);
                    out.put_u32(*elem_oid);
                    out.put_i32(n as i32);
                    out.put_i32(1);
                    for i in start..end {
                        values.write(i, out)?;
                    }
                }
                let len = (out.len() - len_at - 4) as i32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(())
    }
}

/// Writes a decimal's unscaled value as a numeric field (length prefix included).
pub fn encode_numeric(v: i256, scale: i8, out: &mut BytesMut) {
    let s = scale as i32;
    let negative = v.is_negative();
    let mag = if negative { v.wrapping_neg() } else { v };
    // Bring the value to a scale that is a multiple of 4, so base-10000 groups line up.
    let (dscale, up) = if s < 0 { (0, (-s) as u32) } else { (s, 0) };
    let pad = ((4 - dscale.rem_euclid(4)) % 4) as u32;
    let frac_groups = (dscale + pad as i32) / 4;
    let mut groups: Vec<i16> = Vec::with_capacity(20);
    // Almost every Decimal128 value fits in 128 bits after scaling: take the native path.
    let narrow = mag.to_i128().and_then(|m| {
        10u128
            .checked_pow(up + pad)
            .and_then(|p| (m as u128).checked_mul(p))
    });
    match narrow {
        Some(m) => push_groups_u128(m, &mut groups),
        None => {
            let ten = i256::from_i128(10);
            let mut m = mag.wrapping_mul(ten.wrapping_pow(up + pad));
            let ten_k = i256::from_i128(10_000);
            while m != i256::ZERO {
                groups.push(m.wrapping_rem(ten_k).as_i128() as i16);
                m = m.wrapping_div(ten_k);
            }
        }
    }
    let weight_shift = groups.len() as i32;
    // groups are least significant first; strip trailing zero groups (they carry no value).
    let trailing = groups.iter().take_while(|g| **g == 0).count();
    let digits = &groups[trailing..];
    let weight = if digits.is_empty() {
        0
    } else {
        weight_shift - frac_groups - 1
    };
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(dscale as u16);
    for g in digits.iter().rev() {
        out.put_i16(*g);
    }
}

/// Base-10000 digits of `m`, least significant first; 64-bit division once the value fits.
fn push_groups_u128(mut m: u128, groups: &mut Vec<i16>) {
    while m > u64::MAX as u128 {
        groups.push((m % 10_000) as i16);
        m /= 10_000;
    }
    let mut m = m as u64;
    while m != 0 {
        groups.push((m % 10_000) as i16);
        m /= 10_000;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(v: i128, s: i8) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_numeric(i256::from_i128(v), s, &mut b);
        b[4..].to_vec()
    }

    #[test]
    fn numerics_match_the_server_bytes() {
        // 12345.6789 → digits 1, 2345, 6789; weight 1; dscale 4
        assert_eq!(
            numeric(123_456_789, 4),
            [0, 3, 0, 1, 0, 0, 0, 4, 0, 1, 9, 0x29, 0x1a, 0x85]
        );
        // -0.0001
        assert_eq!(numeric(-1, 4), [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1]);
        // 10.50 → digits 10, 5000; weight 0; dscale 2
        assert_eq!(
            numeric(1050, 2),
            [0, 2, 0, 0, 0, 0, 0, 2, 0, 10, 0x13, 0x88]
        );
        // 0
        assert_eq!(numeric(0, 2), [0, 0, 0, 0, 0, 0, 0, 2]);
        // 1e20 → digit 1, weight 5
        assert_eq!(
            numeric(100_000_000_000_000_000_000, 0),
            [0, 1, 0, 5, 0, 0, 0, 0, 0, 1]
        );
        // round trip through the decoder
        for (v, s) in [
            (123_456_789i128, 4i8),
            (-1, 4),
            (1050, 2),
            (7, 0),
            (-987_654_321_012, 6),
            (i128::MAX, 0),
            (i128::MIN + 1, 38),
            (99_999_999_999_999_999_999_999_999_999_999_999, 3),
        ] {
            let mut b = BytesMut::new();
            encode_numeric(i256::from_i128(v), s, &mut b);
            let back = super::super::decode::numeric_to_i256(&b[4..], s).unwrap();
            assert_eq!(back, i256::from_i128(v), "{v} / {s}");
        }
        // 12e3 written with a negative scale → digits 1, 2000; weight 1; dscale 0
        assert_eq!(numeric(12, -3), [0, 2, 0, 1, 0, 0, 0, 0, 0, 1, 0x07, 0xd0]);
        // a Decimal256 value wider than 128 bits takes the wide path and still round-trips
        let wide = i256::from_i128(i128::MAX).wrapping_mul(i256::from_i128(-1000));
        let mut b = BytesMut::new();
        encode_numeric(wide, 10, &mut b);
        let back = super::super::decode::numeric_to_i256(&b[4..], 10).unwrap();
        assert_eq!(back, wide);
    }
}
