//! The columns of an HTTP source: the records' fields (declared in `schema:`, or inferred
//! from the first records fetched) followed by the `item_columns`, and how each is decoded.
//!
//! Timestamps are decoded leniently, since APIs write them in many ways: RFC 3339 with or
//! without an offset, with a space instead of `T`, to the minute only (`2024-06-01T13:00`,
//! as Open-Meteo does), or as Unix seconds.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::scalar::ScalarValue;

use super::config::{HttpSourceSpec, ResponseFormat};
use super::error::HttpError;
use super::fetch::Fetched;
use super::render::item_field;

/// The table's columns and how to make them.
#[derive(Debug)]
pub struct Columns {
    /// Every column: the records' fields, then the item columns.
    pub schema: SchemaRef,
    /// How each record field is decoded (timestamps as text, converted after).
    pub decode: Vec<Field>,
    /// The item columns' values, per item (in the order of the item columns).
    pub item_values: Vec<Vec<ScalarValue>>,
}

impl Columns {
    /// How many of the columns are record fields.
    pub fn data_len(&self) -> usize {
        self.decode.len()
    }
}

/// Works out the columns of a source.
pub fn columns(
    spec: &HttpSourceSpec,
    declared: Option<&SchemaRef>,
    fetched: &Fetched,
    items: &[serde_json::Value],
) -> Result<Columns, HttpError> {
    let item_names: Vec<&String> = spec.item_columns.keys().collect();
    let data: Vec<Field> = match declared {
        Some(s) => s
            .fields()
            .iter()
            .filter(|f| !item_names.contains(&f.name()))
            .map(|f| f.as_ref().clone())
            .collect(),
        None => {
            let inferred = infer(spec, fetched)?;
            if let Some(f) = inferred.iter().find(|f| item_names.contains(&f.name())) {
                return Err(HttpError::Schema(format!(
                    "`{}` is both a field of the records and an item column; rename it in `item_columns`",
                    f.name()
                )));
            }
            inferred
        }
    };
    let (item_fields, item_values) = item_columns(spec, declared, items)?;
    let decode = data
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(..) => Field::new(f.name(), DataType::Utf8, true),
            _ => f.clone(),
        })
        .collect();
    let all: Vec<Field> = data.into_iter().chain(item_fields).collect();
    Ok(Columns {
        schema: Arc::new(Schema::new(all)),
        decode,
        item_values,
    })
}

/// Infers the records' fields from the first `infer_rows` records.
fn infer(spec: &HttpSourceSpec, fetched: &Fetched) -> Result<Vec<Field>, HttpError> {
    let limit = spec.infer_rows.unwrap_or(1000).max(1);
    let Some(spool) = &fetched.spool else {
        return Ok(Vec::new());
    };
    if fetched.pages.is_empty() {
        return Err(HttpError::Schema(
            "the API returned no records, so the columns cannot be inferred; declare them in `schema:`"
                .into(),
        ));
    }
    if spec.format == ResponseFormat::Csv {
        let bytes = spool
            .read(fetched.pages[0].span)
            .map_err(HttpError::Spool)?;
        let (schema, _) = datafusion::arrow::csv::reader::Format::default()
            .with_header(true)
            .infer_schema(bytes.as_slice(), Some(limit))
            .map_err(|e| HttpError::Schema(format!("cannot infer the CSV columns: {e}")))?;
        return Ok(schema.fields().iter().map(|f| no_null(f)).collect());
    }
    let mut values = Vec::new();
    for page in &fetched.pages {
        let bytes = spool.read(page.span).map_err(HttpError::Spool)?;
        for v in serde_json::Deserializer::from_slice(&bytes).into_iter::<serde_json::Value>() {
            values.push(v.map_err(|e| HttpError::Decode {
                url: page.url.to_string(),
                reason: e.to_string(),
            })?);
            if values.len() >= limit {
                break;
            }
        }
        if values.len() >= limit {
            break;
        }
    }
    let schema = infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| HttpError::Schema(format!("cannot infer the columns: {e}")))?;
    Ok(schema.fields().iter().map(|f| no_null(f)).collect())
}

/// A field whose values were all null is typed as text (Parquet and SQL need a type).
fn no_null(f: &Field) -> Field {
    let dt = match f.data_type() {
        DataType::Null => DataType::Utf8,
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| Arc::new(no_null(c)))
                .collect::<Fields>(),
        ),
        DataType::List(child) => DataType::List(Arc::new(no_null(child))),
        other => other.clone(),
    };
    Field::new(f.name(), dt, true)
}

/// The item columns' fields and their values per item.
fn item_columns(
    spec: &HttpSourceSpec,
    declared: Option<&SchemaRef>,
    items: &[serde_json::Value],
) -> Result<(Vec<Field>, Vec<Vec<ScalarValue>>), HttpError> {
    if spec.item_columns.is_empty() {
        return Ok((Vec::new(), vec![Vec::new(); items.len()]));
    }
    let rows: Vec<serde_json::Value> = items
        .iter()
        .map(|it| {
            serde_json::Value::Object(
                spec.item_columns
                    .iter()
                    .map(|(col, field)| {
                        (
                            col.clone(),
                            item_field(it, field).cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let inferred = infer_json_schema_from_iterator(rows.iter().map(Ok))
        .map_err(|e| HttpError::Schema(format!("item columns: {e}")))?;
    let fields: Vec<Field> = spec
        .item_columns
        .keys()
        .map(|col| {
            declared
                .and_then(|d| d.field_with_name(col).ok().cloned())
                .or_else(|| inferred.field_with_name(col).ok().map(no_null))
                .unwrap_or_else(|| Field::new(col, DataType::Utf8, true))
        })
        .collect();
    // Decode the items like records: text for timestamps, then converted.
    let decode: Vec<Field> = fields
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(..) => Field::new(f.name(), DataType::Utf8, true),
            _ => f.clone(),
        })
        .collect();
    let mut decoder = ReaderBuilder::new(Arc::new(Schema::new(decode)))
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| HttpError::Schema(e.to_string()))?;
    decoder
        .serialize(&rows)
        .map_err(|e| HttpError::Schema(format!("item columns: {e}")))?;
    let batch = decoder
        .flush()
        .map_err(|e| HttpError::Schema(format!("item columns: {e}")))?;
    let mut values = vec![Vec::new(); items.len()];
    if let Some(b) = batch {
        for (c, f) in fields.iter().enumerate() {
            let col = finish_column(b.column(c), f.data_type())
                .map_err(|e| HttpError::Schema(format!("item column `{}`: {e}", f.name())))?;
            for (i, v) in values.iter_mut().enumerate() {
                v.push(
                    ScalarValue::try_from_array(&col, i)
                        .map_err(|e| HttpError::Schema(e.to_string()))?,
                );
            }
        }
    }
    Ok((fields, values))
}

/// Turns a decoded column into its final type (timestamps from text).
pub fn finish_column(col: &ArrayRef, target: &DataType) -> Result<ArrayRef, String> {
    match target {
        DataType::Timestamp(unit, tz) if col.data_type() == &DataType::Utf8 => {
            let nanos = parse_timestamps(col.as_string::<i32>())?;
            let mut arr: ArrayRef = Arc::new(nanos.with_timezone_opt(tz.clone()));
            if *unit != TimeUnit::Nanosecond {
                arr = cast(&arr, target).map_err(|e| e.to_string())?;
            }
            Ok(arr)
        }
        _ => Ok(col.clone()),
    }
}

/// Parses text timestamps leniently into nanoseconds since 1970 (UTC).
fn parse_timestamps(
    strings: &datafusion::arrow::array::StringArray,
) -> Result<TimestampNanosecondArray, String> {
    let parse = |s: &str| -> Result<i64, String> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            let secs: i64 = t.parse().map_err(|_| format!("`{s}` is not a timestamp"))?;
            return secs
                .checked_mul(1_000_000_000)
                .ok_or_else(|| format!("`{s}` is out of range for a timestamp"));
        }
        let with_seconds;
        let t = if t.len() == 16 && t.as_bytes()[13] == b':' {
            with_seconds = format!("{t}:00");
            with_seconds.as_str()
        } else {
            t
        };
        datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(t)
            .map_err(|_| format!("`{s}` is not a timestamp"))
    };
    strings
        .iter()
        .map(|v| v.map(parse).transpose())
        .collect::<Result<TimestampNanosecondArray, String>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    #[test]
    fn timestamps_in_the_forms_apis_use() {
        let s = StringArray::from(vec![
            Some("2024-06-01T13:00"),
            Some("2024-06-01 13:00:00"),
            Some("2024-06-01T13:00:00Z"),
            Some("2024-06-01T15:00:00+02:00"),
            Some("1717246800"),
            None,
        ]);
        let a = parse_timestamps(&s).unwrap();
        let want = 1_717_246_800_000_000_000i64;
        for i in 0..5 {
            assert_eq!(a.value(i), want, "row {i}");
        }
        assert!(a.is_null(5));
        assert!(parse_timestamps(&StringArray::from(vec!["yesterday"])).is_err());
    }
}
