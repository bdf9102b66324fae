//! Rows of MySQL values decoded into Arrow builders, by the kind of each column.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, i256};
use datafusion::arrow::record_batch::RecordBatch;
use mysql_async::{Column, Value};

use super::{Kind, ZeroDates, schema_of};

/// Builds record batches from rows of values.
pub struct RowDecoder {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    names: Vec<String>,
    builders: Vec<Builder>,
    rows: usize,
    zero_dates: ZeroDates,
}

enum Builder {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    D128(Decimal128Builder),
    D256(Decimal256Builder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
}

fn builder_for(kind: Kind, dt: &DataType) -> Builder {
    match (kind, dt) {
        (Kind::Int { .. }, DataType::Int8) => Builder::I8(Int8Builder::new()),
        (Kind::Int { .. }, DataType::Int16) => Builder::I16(Int16Builder::new()),
        (Kind::Int { .. }, DataType::Int32) => Builder::I32(Int32Builder::new()),
        (Kind::Int { .. }, DataType::UInt8) => Builder::U8(UInt8Builder::new()),
        (Kind::Int { .. }, DataType::UInt16) => Builder::U16(UInt16Builder::new()),
        (Kind::Int { .. }, DataType::UInt32) => Builder::U32(UInt32Builder::new()),
        (Kind::Int { .. }, DataType::UInt64) | (Kind::Bit { .. }, DataType::UInt64) => {
            Builder::U64(UInt64Builder::new())
        }
        (Kind::Int { .. }, _) => Builder::I64(Int64Builder::new()),
        (Kind::Float32, _) => Builder::F32(Float32Builder::new()),
        (Kind::Float64, _) => Builder::F64(Float64Builder::new()),
        (Kind::Decimal { precision, scale }, _) if precision <= 38 => Builder::D128(
            Decimal128Builder::new()
                .with_precision_and_scale(precision, scale)
                .unwrap_or_default(),
        ),
        (Kind::Decimal { precision, scale }, _) => Builder::D256(
            Decimal256Builder::new()
                .with_precision_and_scale(precision, scale)
                .unwrap_or_default(),
        ),
        (Kind::Text, _) => Builder::Str(StringBuilder::new()),
        (Kind::Binary, _) => Builder::Bin(BinaryBuilder::new()),
        (Kind::Bit { .. }, _) => Builder::Bool(BooleanBuilder::new()),
        (Kind::Date, _) => Builder::Date(Date32Builder::new()),
        (Kind::DateTime { utc: true }, _) => {
            Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
        }
        (Kind::DateTime { .. }, _) => Builder::Ts(TimestampMicrosecondBuilder::new()),
        (Kind::Time, _) => Builder::Time(Time64MicrosecondBuilder::new()),
    }
}

impl RowDecoder {
    /// A decoder for a result's columns.
    pub fn new(columns: &[Column], zero_dates: ZeroDates) -> Result<Self, String> {
        let (schema, kinds) = schema_of(columns)?;
        let builders = kinds
            .iter()
            .zip(schema.fields())
            .map(|(k, f)| builder_for(*k, f.data_type()))
            .collect();
        Ok(Self {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            schema,
            kinds,
            builders,
            rows: 0,
            zero_dates,
        })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows added since the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds one row.
    pub fn push(&mut self, values: Vec<Option<Value>>) -> Result<(), String> {
        for (i, v) in values.into_iter().enumerate() {
            let Some(b) = self.builders.get_mut(i) else {
                return Err("a row has more values than columns".into());
            };
            let v = v.unwrap_or(Value::NULL);
            append(b, self.kinds[i], v, self.zero_dates)
                .map_err(|e| format!("column `{}`: {e}", self.names[i]))?;
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows added so far, as a batch.
    pub fn flush(&mut self) -> Result<RecordBatch, String> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(finish).collect();
        let opts =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &opts)
            .map_err(|e| e.to_string())
    }
}

fn int_of(v: &Value) -> Result<i128, String> {
    match v {
        Value::Int(i) => Ok(*i as i128),
        Value::UInt(u) => Ok(*u as i128),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse::<i128>().ok())
            .ok_or_else(|| "a value that is not an integer".to_string()),
        other => Err(format!("an unexpected value {other:?}")),
    }
}

macro_rules! put_int {
    ($b:expr, $v:expr, $t:ty) => {{
        let x = int_of(&$v)?;
        $b.append_value(<$t>::try_from(x).map_err(|_| format!("{x} does not fit the column"))?)
    }};
}

fn append(b: &mut Builder, kind: Kind, v: Value, zero_dates: ZeroDates) -> Result<(), String> {
    if v == Value::NULL {
        append_null(b);
        return Ok(());
    }
    match b {
        Builder::I8(b) => put_int!(b, v, i8),
        Builder::I16(b) => put_int!(b, v, i16),
        Builder::I32(b) => put_int!(b, v, i32),
        Builder::I64(b) => put_int!(b, v, i64),
        Builder::U8(b) => put_int!(b, v, u8),
        Builder::U16(b) => put_int!(b, v, u16),
        Builder::U32(b) => put_int!(b, v, u32),
        Builder::U64(b) => match (kind, v) {
            (Kind::Bit { .. }, Value::Bytes(bytes)) => b.append_value(bits(&bytes)?),
            (_, v) => put_int!(b, v, u64),
        },
        Builder::F32(b) => match v {
            Value::Float(f) => b.append_value(f),
            Value::Double(f) => b.append_value(f as f32),
            other => b.append_value(text(&other)?.trim().parse().map_err(|_| "not a number")?),
        },
        Builder::F64(b) => match v {
            Value::Double(f) => b.append_value(f),
            Value::Float(f) => b.append_value(f as f64),
            other => b.append_value(text(&other)?.trim().parse().map_err(|_| "not a number")?),
        },
        Builder::D128(b) => {
            let Kind::Decimal { scale, .. } = kind else {
                return Err("not a decimal".into());
            };
            let x = decimal(&text(&v)?, scale)?;
            b.append_value(x.to_i128().ok_or("a decimal too large for its column")?)
        }
        Builder::D256(b) => {
            let Kind::Decimal { scale, .. } = kind else {
                return Err("not a decimal".into());
            };
            b.append_value(decimal(&text(&v)?, scale)?)
        }
        Builder::Str(b) => b.append_value(text(&v)?),
        Builder::Bin(b) => match v {
            Value::Bytes(bytes) => b.append_value(bytes),
            other => b.append_value(text(&other)?.as_bytes()),
        },
        Builder::Bool(b) => match v {
            Value::Bytes(bytes) => b.append_value(bits(&bytes)? != 0),
            other => b.append_value(int_of(&other)? != 0),
        },
        Builder::Date(b) => match date_parts(&v)? {
            Some((d, _)) => b.append_value(d),
            None => zero(b, zero_dates)?,
        },
        Builder::Ts(b) => match date_parts(&v)? {
            Some((d, micros)) => b.append_value(d as i64 * 86_400_000_000 + micros),
            None => zero(b, zero_dates)?,
        },
        Builder::Time(b) => b.append_value(time_micros(&v)?),
    }
    Ok(())
}

trait AppendNull {
    fn null(&mut self);
}

impl AppendNull for Date32Builder {
    fn null(&mut self) {
        self.append_null()
    }
}

impl AppendNull for TimestampMicrosecondBuilder {
    fn null(&mut self) {
        self.append_null()
    }
}

fn zero(b: &mut dyn AppendNull, policy: ZeroDates) -> Result<(), String> {
    match policy {
        ZeroDates::Null => {
            b.null();
            Ok(())
        }
        ZeroDates::Error => Err(
            "a zero or partial date (such as 0000-00-00), which is not a date; set `zero_dates: \"null\"` on the source to read it as NULL".into(),
        ),
    }
}

fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::Bytes(b) => {
            String::from_utf8(b.clone()).map_err(|_| "text that is not UTF-8".to_string())
        }
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Double(f) => Ok(f.to_string()),
        other => Err(format!("an unexpected value {other:?}")),
    }
}

fn bits(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() > 8 {
        return Err("a BIT value wider than 64 bits".into());
    }
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Parses decimal text into an unscaled integer at `scale`.
pub fn decimal(s: &str, scale: i8) -> Result<i256, String> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let bad = || format!("`{s}` is not a decimal");
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let scale = scale.max(0) as usize;
    let (kept, dropped) = if frac.len() > scale {
        frac.split_at(scale)
    } else {
        (frac, "")
    };
    if dropped.chars().any(|c| c != '0') {
        return Err(format!("`{s}` has more than {scale} decimal places"));
    }
    let mut text = String::with_capacity(int.len() + scale);
    text.push_str(int);
    text.push_str(kept);
    text.extend(std::iter::repeat_n('0', scale - kept.len()));
    let v = i256::from_string(if text.is_empty() { "0" } else { &text }).ok_or_else(bad)?;
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// Days since 1970 and microseconds into the day; `None` for a zero or invalid date.
fn date_parts(v: &Value) -> Result<Option<(i32, i64)>, String> {
    let (y, m, d, h, i, s, us) = match v {
        Value::Date(y, m, d, h, i, s, us) => (*y as i32, *m as u32, *d as u32, *h, *i, *s, *us),
        Value::Bytes(b) => return parse_date_text(&String::from_utf8_lossy(b)),
        other => return Err(format!("an unexpected value {other:?}")),
    };
    let Some(date) = chrono::NaiveDate::from_ymd_opt(y, m, d) else {
        return Ok(None);
    };
    let days =
        (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32;
    Ok(Some((
        days,
        (h as i64 * 3600 + i as i64 * 60 + s as i64) * 1_000_000 + us as i64,
    )))
}

fn parse_date_text(s: &str) -> Result<Option<(i32, i64)>, String> {
    let s = s.trim();
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").or_else(|_| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
    });
    match t {
        Ok(t) => {
            let micros = t.and_utc().timestamp_micros();
            Ok(Some((
                micros.div_euclid(86_400_000_000) as i32,
                micros.rem_euclid(86_400_000_000),
            )))
        }
        Err(_) => Ok(None),
    }
}

fn time_micros(v: &Value) -> Result<i64, String> {
    match v {
        Value::Time(neg, days, h, m, s, us) => {
            let total = ((*days as i64 * 24 + *h as i64) * 3600 + *m as i64 * 60 + *s as i64)
                * 1_000_000
                + *us as i64;
            if *neg || total >= 86_400_000_000 {
                return Err("a TIME outside 00:00:00..24:00:00, which a time of day cannot hold; cast it in a `query:`".into());
            }
            Ok(total)
        }
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
                .map(|t| (t - chrono::NaiveTime::MIN).num_microseconds().unwrap_or(0))
                .map_err(|_| format!("`{s}` is not a time of day"))
        }
        other => Err(format!("an unexpected value {other:?}")),
    }
}

fn append_null(b: &mut Builder) {
    match b {
        Builder::I8(b) => b.append_null(),
        Builder::I16(b) => b.append_null(),
        Builder::I32(b) => b.append_null(),
        Builder::I64(b) => b.append_null(),
        Builder::U8(b) => b.append_null(),
        Builder::U16(b) => b.append_null(),
        Builder::U32(b) => b.append_null(),
        Builder::U64(b) => b.append_null(),
        Builder::F32(b) => b.append_null(),
        Builder::F64(b) => b.append_null(),
        Builder::D128(b) => b.append_null(),
        Builder::D256(b) => b.append_null(),
        Builder::Str(b) => b.append_null(),
        Builder::Bin(b) => b.append_null(),
        Builder::Bool(b) => b.append_null(),
        Builder::Date(b) => b.append_null(),
        Builder::Ts(b) => b.append_null(),
        Builder::Time(b) => b.append_null(),
    }
}

fn finish(b: &mut Builder) -> ArrayRef {
    match b {
        Builder::I8(b) => Arc::new(b.finish()),
        Builder::I16(b) => Arc::new(b.finish()),
        Builder::I32(b) => Arc::new(b.finish()),
        Builder::I64(b) => Arc::new(b.finish()),
        Builder::U8(b) => Arc::new(b.finish()),
        Builder::U16(b) => Arc::new(b.finish()),
        Builder::U32(b) => Arc::new(b.finish()),
        Builder::U64(b) => Arc::new(b.finish()),
        Builder::F32(b) => Arc::new(b.finish()),
        Builder::F64(b) => Arc::new(b.finish()),
        Builder::D128(b) => Arc::new(b.finish()),
        Builder::D256(b) => Arc::new(b.finish()),
        Builder::Str(b) => Arc::new(b.finish()),
        Builder::Bin(b) => Arc::new(b.finish()),
        Builder::Bool(b) => Arc::new(b.finish()),
        Builder::Date(b) => Arc::new(b.finish()),
        Builder::Ts(b) => Arc::new(b.finish()),
        Builder::Time(b) => Arc::new(b.finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_at_scale_and_refuse_to_round() {
        assert_eq!(decimal("12.5", 2).unwrap(), i256::from_i128(1250));
        assert_eq!(decimal("-0.01", 2).unwrap(), i256::from_i128(-1));
        assert_eq!(decimal("1.500000", 2).unwrap(), i256::from_i128(150));
        assert!(decimal("1.555", 2).is_err());
        assert!(decimal("abc", 2).is_err());
        assert_eq!(
            decimal("18446744073709551615", 0).unwrap(),
            i256::from_i128(18_446_744_073_709_551_615)
        );
    }

    #[test]
    fn dates_zero_dates_and_times() {
        assert_eq!(
            date_parts(&Value::Date(1970, 1, 2, 0, 0, 1, 5)).unwrap(),
            Some((1, 1_000_005))
        );
        assert_eq!(date_parts(&Value::Date(0, 0, 0, 0, 0, 0, 0)).unwrap(), None);
        assert_eq!(
            date_parts(&Value::Date(2024, 5, 0, 10, 0, 0, 0)).unwrap(),
            None
        );
        assert!(time_micros(&Value::Time(false, 1, 0, 0, 0, 0)).is_err());
        assert_eq!(
            time_micros(&Value::Time(false, 0, 1, 0, 0, 7)).unwrap(),
            3_600_000_007
        );
        assert_eq!(bits(&[1, 0]).unwrap(), 256);
        assert_eq!(super::super::quote_table("shop.sales"), "`shop`.`sales`");
    }
}
