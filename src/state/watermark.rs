//! Incremental watermarks: typed values, never formatted text.
//!
//! A watermark is the largest cursor value a sink has committed for a source. It is stored
//! with its type and its exact value (integers as integers, timestamps as a count of units
//! since 1970 with their unit and zone, dates as dates, strings as strings), so comparing it
//! with the source's cursor column loses nothing: no rounding of sub-second precision, no
//! time-zone drift, no string ordering of numbers.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

/// A typed cursor value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Watermark {
    /// A signed integer.
    Int {
        /// The value.
        value: i64,
    },
    /// An unsigned integer.
    UInt {
        /// The value.
        value: u64,
    },
    /// A date.
    Date {
        /// Days since 1970-01-01.
        days: i32,
    },
    /// A timestamp.
    Timestamp {
        /// Units since 1970-01-01 00:00 UTC.
        value: i64,
        /// `s`, `ms`, `us` or `ns`.
        unit: String,
        /// The zone of a zoned timestamp.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
    },
    /// A string (compared byte-wise).
    String {
        /// The value.
        value: String,
    },
}

fn unit_name(u: &TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn unit_of(name: &str) -> Option<TimeUnit> {
    Some(match name {
        "s" => TimeUnit::Second,
        "ms" => TimeUnit::Millisecond,
        "us" => TimeUnit::Microsecond,
        "ns" => TimeUnit::Nanosecond,
        _ => return None,
    })
}

/// True when a cursor column of this type can carry a watermark.
pub fn cursor_type_supported(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

impl Watermark {
    /// The watermark of a cursor value (`None` for NULL or an unsupported type).
    pub fn from_scalar(v: &ScalarValue) -> Option<Self> {
        use ScalarValue as S;
        Some(match v {
            S::Int8(Some(x)) => Self::Int { value: *x as i64 },
            S::Int16(Some(x)) => Self::Int { value: *x as i64 },
            S::Int32(Some(x)) => Self::Int { value: *x as i64 },
            S::Int64(Some(x)) => Self::Int { value: *x },
            S::UInt8(Some(x)) => Self::UInt { value: *x as u64 },
            S::UInt16(Some(x)) => Self::UInt { value: *x as u64 },
            S::UInt32(Some(x)) => Self::UInt { value: *x as u64 },
            S::UInt64(Some(x)) => Self::UInt { value: *x },
            S::Date32(Some(d)) => Self::Date { days: *d },
            S::TimestampSecond(Some(t), tz) => ts(*t, TimeUnit::Second, tz),
            S::TimestampMillisecond(Some(t), tz) => ts(*t, TimeUnit::Millisecond, tz),
            S::TimestampMicrosecond(Some(t), tz) => ts(*t, TimeUnit::Microsecond, tz),
            S::TimestampNanosecond(Some(t), tz) => ts(*t, TimeUnit::Nanosecond, tz),
            S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => {
                Self::String { value: s.clone() }
            }
            _ => return None,
        })
    }

    /// The value as a literal of the cursor column's type, for a filter. `None` when the
    /// column's type cannot hold it exactly (a string watermark for an integer column).
    pub fn to_scalar(&self, column: &DataType) -> Option<ScalarValue> {
        let natural = match self {
            Self::Int { value } => ScalarValue::Int64(Some(*value)),
            Self::UInt { value } => ScalarValue::UInt64(Some(*value)),
            Self::Date { days } => ScalarValue::Date32(Some(*days)),
            Self::Timestamp { value, unit, tz } => {
                let tz: Option<Arc<str>> = tz.as_deref().map(Arc::from);
                match unit_of(unit)? {
                    TimeUnit::Second => ScalarValue::TimestampSecond(Some(*value), tz),
                    TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(*value), tz),
                    TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(*value), tz),
                    TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(*value), tz),
                }
            }
            Self::String { value } => ScalarValue::Utf8(Some(value.clone())),
        };
        if &natural.data_type() == column {
            return Some(natural);
        }
        // Same family, another width or unit: cast only when no information is lost.
        let cast = natural.cast_to(column).ok()?;
        let back = cast.cast_to(&natural.data_type()).ok()?;
        (back == natural).then_some(cast)
    }

    /// The value as a literal of its own type (for ordering watermarks of one cursor).
    pub fn to_scalar_natural(&self) -> ScalarValue {
        let natural = match self {
            Self::Int { .. } => DataType::Int64,
            Self::UInt { .. } => DataType::UInt64,
            Self::Date { .. } => DataType::Date32,
            Self::Timestamp { unit, tz, .. } => DataType::Timestamp(
                unit_of(unit).unwrap_or(TimeUnit::Microsecond),
                tz.as_deref().map(Arc::from),
            ),
            Self::String { .. } => DataType::Utf8,
        };
        self.to_scalar(&natural).unwrap_or(ScalarValue::Null)
    }

    /// A readable form for `etl state` and messages.
    pub fn display(&self) -> String {
        match self {
            Self::Int { value } => value.to_string(),
            Self::UInt { value } => value.to_string(),
            Self::String { value } => format!("{value:?}"),
            Self::Date { days } => chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .map(|d| d.to_string())
                .unwrap_or_else(|| format!("{days} days after 1970-01-01")),
            Self::Timestamp { value, unit, tz } => {
                let nanos = match unit_of(unit) {
                    Some(TimeUnit::Second) => value.checked_mul(1_000_000_000),
                    Some(TimeUnit::Millisecond) => value.checked_mul(1_000_000),
                    Some(TimeUnit::Microsecond) => value.checked_mul(1_000),
                    _ => Some(*value),
                };
                let text = nanos
                    .map(|n| {
                        chrono::DateTime::from_timestamp_nanos(n)
                            .naive_utc()
                            .format("%Y-%m-%d %H:%M:%S%.f")
                            .to_string()
                    })
                    .unwrap_or_else(|| format!("{value} {unit} after 1970"));
                match tz {
                    Some(z) => format!("{text} {z}"),
                    None => text,
                }
            }
        }
    }

    /// Parses a value given on the command line (`etl state --set s=VALUE`) as the type of
    /// the cursor column.
    pub fn parse_as(text: &str, column: &DataType) -> Result<Self, String> {
        let v = ScalarValue::Utf8(Some(text.to_string()));
        let typed = v.cast_to(column).map_err(|_| {
            format!(
                "`{text}` is not a {} (the cursor column's type)",
                crate::types::sql_name(column)
            )
        })?;
        if typed.is_null() {
            return Err(format!(
                "`{text}` is not a {}",
                crate::types::sql_name(column)
            ));
        }
        Self::from_scalar(&typed).ok_or_else(|| {
            format!(
                "a {} cursor cannot keep a watermark",
                crate::types::sql_name(column)
            )
        })
    }
}

/// Moves a cursor value back by `lookback`: a number for integer cursors, a duration
/// (`10m`, `2h`, `3d`) for timestamps and dates (whole days for dates).
pub fn step_back(value: &ScalarValue, lookback: &serde_json::Value) -> Result<ScalarValue, String> {
    let text = match lookback {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(format!(
                "`lookback` is a number or a duration, found {other}"
            ));
        }
    };
    let number = || {
        text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            format!("`lookback: {text}` is not a whole number (this cursor is an integer)")
        })
    };
    let duration = || {
        humantime::parse_duration(&text).map_err(|e| {
            format!("`lookback: {text}` is not a duration such as 10m, 2h or 3d ({e})")
        })
    };
    let cast_back = |v: i128| -> Result<ScalarValue, String> {
        let wide = ScalarValue::Decimal128(Some(v), 38, 0);
        wide.cast_to(&value.data_type())
            .map_err(|_| "the lookback goes past the cursor's range".to_string())
    };
    use ScalarValue as S;
    match value {
        S::Int8(Some(x)) => cast_back(*x as i128 - number()? as i128),
        S::Int16(Some(x)) => cast_back(*x as i128 - number()? as i128),
        S::Int32(Some(x)) => cast_back(*x as i128 - number()? as i128),
        S::Int64(Some(x)) => cast_back(*x as i128 - number()? as i128),
        S::UInt8(Some(x)) => cast_back((*x as i128 - number()? as i128).max(0)),
        S::UInt16(Some(x)) => cast_back((*x as i128 - number()? as i128).max(0)),
        S::UInt32(Some(x)) => cast_back((*x as i128 - number()? as i128).max(0)),
        S::UInt64(Some(x)) => cast_back((*x as i128 - number()? as i128).max(0)),
        S::Date32(Some(d)) => {
            let days = duration()?.as_secs().div_ceil(86_400) as i32;
            Ok(S::Date32(Some(d.saturating_sub(days))))
        }
        S::TimestampSecond(Some(t), tz) => Ok(S::TimestampSecond(
            Some(t.saturating_sub(duration()?.as_secs() as i64)),
            tz.clone(),
        )),
        S::TimestampMillisecond(Some(t), tz) => Ok(S::TimestampMillisecond(
            Some(t.saturating_sub(duration()?.as_millis() as i64)),
            tz.clone(),
        )),
        S::TimestampMicrosecond(Some(t), tz) => Ok(S::TimestampMicrosecond(
            Some(t.saturating_sub(duration()?.as_micros() as i64)),
            tz.clone(),
        )),
        S::TimestampNanosecond(Some(t), tz) => Ok(S::TimestampNanosecond(
            Some(t.saturating_sub(duration()?.as_nanos() as i64)),
            tz.clone(),
        )),
        _ => Err("`lookback` works with integer, date and timestamp cursors".into()),
    }
}

fn ts(v: i64, unit: TimeUnit, tz: &Option<Arc<str>>) -> Watermark {
    Watermark::Timestamp {
        value: v,
        unit: unit_name(&unit).to_string(),
        tz: tz.as_deref().map(str::to_string),
    }
}

/// One committed watermark of a (source, sink) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The value.
    pub value: Watermark,
    /// The run that committed it.
    pub run_id: String,
    /// When, UTC.
    pub updated_at: String,
}

/// Every watermark of a pipeline: source → sink → mark.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watermarks {
    /// By source, then by sink.
    #[serde(default)]
    pub sources: BTreeMap<String, BTreeMap<String, Mark>>,
}

impl Watermarks {
    /// The mark of a sink for a source.
    pub fn get(&self, source: &str, sink: &str) -> Option<&Mark> {
        self.sources.get(source).and_then(|s| s.get(sink))
    }

    /// Sets the mark of a sink for a source.
    pub fn set(&mut self, source: &str, sink: &str, mark: Mark) {
        self.sources
            .entry(source.to_string())
            .or_default()
            .insert(sink.to_string(), mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_exactly_through_json() {
        let cases = [
            ScalarValue::Int64(Some(i64::MAX)),
            ScalarValue::UInt64(Some(u64::MAX)),
            ScalarValue::TimestampNanosecond(Some(1_700_000_000_123_456_789), None),
            ScalarValue::TimestampMicrosecond(Some(-5), Some("UTC".into())),
            ScalarValue::Date32(Some(-1)),
            ScalarValue::Utf8(Some("2024-01-01T10:00:00.000000001Z".into())),
        ];
        for v in cases {
            let w = Watermark::from_scalar(&v).unwrap();
            let json = serde_json::to_string(&w).unwrap();
            let back: Watermark = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_scalar(&v.data_type()), Some(v.clone()), "{json}");
        }
    }

    #[test]
    fn widths_and_units_convert_only_without_loss() {
        let w = Watermark::Int { value: 7 };
        assert_eq!(
            w.to_scalar(&DataType::Int32),
            Some(ScalarValue::Int32(Some(7)))
        );
        let big = Watermark::Int { value: i64::MAX };
        assert_eq!(big.to_scalar(&DataType::Int32), None);
        let ns =
            Watermark::from_scalar(&ScalarValue::TimestampNanosecond(Some(1_500), None)).unwrap();
        assert_eq!(
            ns.to_scalar(&DataType::Timestamp(TimeUnit::Microsecond, None)),
            None
        );
        let parsed = Watermark::parse_as(
            "2024-03-01 10:00:00.5",
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .unwrap();
        assert_eq!(parsed.display(), "2024-03-01 10:00:00.500");
        assert!(Watermark::parse_as("x", &DataType::Int64).is_err());
    }
}
