//! SQL type names, as written in `schema:` blocks, mapped to Arrow types, nested types
//! (`struct<a: int, b: string>`, `array<string>`, `map<string, int>`) included.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use indexmap::IndexMap;

/// The type names accepted in `schema:` (for messages).
pub const TYPE_NAMES: &str = "bigint, int, smallint, tinyint, double, float, real, \
decimal(p,s), string, text, varchar, boolean, date, timestamp, timestamptz, time, binary, \
struct<name: type, ...>, array<type>, map<key type, value type>";

/// Parses an SQL type name (case-insensitive, with the usual aliases).
pub fn parse_type(name: &str) -> Option<DataType> {
    let t = name.trim();
    if let Some(inner) = generic(t, "array").or_else(|| generic(t, "list")) {
        return Some(DataType::List(Arc::new(Field::new(
            "item",
            parse_type(inner)?,
            true,
        ))));
    }
    if let Some(inner) = generic(t, "map") {
        let [k, v] = split_top(inner)[..] else {
            return None;
        };
        let entries = Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("key", parse_type(k)?, false),
                    Field::new("value", parse_type(v)?, true),
                ]
                .into(),
            ),
            false,
        );
        return Some(DataType::Map(Arc::new(entries), false));
    }
    if let Some(inner) = generic(t, "struct") {
        let fields = split_top(inner)
            .into_iter()
            .map(|f| {
                let (name, ty) = f.split_once(':')?;
                let name = name.trim().trim_matches(|c| c == '`' || c == '"');
                (!name.is_empty()).then_some(())?;
                Some(Field::new(name, parse_type(ty)?, true))
            })
            .collect::<Option<Vec<_>>>()?;
        return (!fields.is_empty()).then(|| DataType::Struct(fields.into()));
    }
    scalar_type(t)
}

/// The part between `<` and `>` of `kw<...>` (keyword case-insensitive).
fn generic<'a>(t: &'a str, kw: &str) -> Option<&'a str> {
    let head = t.get(..kw.len())?;
    if !head.eq_ignore_ascii_case(kw) {
        return None;
    }
    t[kw.len()..]
        .trim_start()
        .strip_prefix('<')?
        .strip_suffix('>')
}

/// Splits on commas outside `<>` and `()`.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

fn scalar_type(name: &str) -> Option<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, args) = match lower.find('(') {
        Some(i) if lower.ends_with(')') => {
            (lower[..i].trim(), Some(&lower[i + 1..lower.len() - 1]))
        }
        Some(_) => return None,
        None => (lower.as_str(), None),
    };
    let dt = match (base, args) {
        ("bigint" | "int8" | "long" | "int64", None) => DataType::Int64,
        ("int" | "integer" | "int4" | "int32", None) => DataType::Int32,
        ("smallint" | "int2" | "int16", None) => DataType::Int16,
        ("tinyint" | "int1", None) => DataType::Int8,
        ("ubigint" | "uint64", None) => DataType::UInt64,
        ("uint" | "uinteger" | "uint32", None) => DataType::UInt32,
        ("double" | "double precision" | "float8" | "float" | "float64", None) => DataType::Float64,
        ("real" | "float4" | "float32", None) => DataType::Float32,
        ("decimal" | "numeric", Some(a)) => {
            let mut parts = a.split(',').map(str::trim);
            let p: u8 = parts.next()?.parse().ok()?;
            let s: i8 = parts.next().map(|s| s.parse().ok()).unwrap_or(Some(0))?;
            if p == 0 || p > 76 || s < 0 || s as u8 > p {
                return None;
            }
            if p <= 38 {
                DataType::Decimal128(p, s)
            } else {
                DataType::Decimal256(p, s)
            }
        }
        ("decimal" | "numeric", None) => DataType::Decimal128(38, 10),
        (
            "string" | "text" | "varchar" | "char" | "character varying" | "character" | "utf8"
            | "json",
            _,
        ) => DataType::Utf8,
        ("boolean" | "bool", None) => DataType::Boolean,
        ("date", None) => DataType::Date32,
        ("timestamp" | "datetime" | "timestamp without time zone", None) => {
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        }
        ("timestamptz" | "timestamp with time zone", None) => {
            DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("UTC")))
        }
        ("time", None) => DataType::Time64(TimeUnit::Nanosecond),
        ("binary" | "bytea" | "blob" | "varbinary", _) => DataType::Binary,
        _ => return None,
    };
    Some(dt)
}

/// Why a source of the given type (`csv`, `json`, ...) cannot produce a column of type `dt`,
/// or `None` when it can. CSV is text: the Arrow CSV reader has no binary columns (JSON and
/// inline rows read `binary` from hex strings). Columns a CSV source reads as text first
/// (`null_values`, `on_bad_row`) are cast, and every other declared type casts from text.
pub fn format_cannot_read(format: &str, dt: &DataType) -> Option<String> {
    let binary = matches!(
        dt,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    );
    (format == "csv" && binary).then(|| {
        "CSV is text: declare the column `string` and convert it in SQL (e.g. `decode(col, 'hex')`)"
            .to_string()
    })
}

/// How a sink can write a column it is partitioned by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionValue {
    /// The writer formats it itself (strings, booleans, integers, floats).
    Native,
    /// Written as its text (`CAST(col AS VARCHAR)`): dates, times, timestamps, decimals.
    AsText,
    /// No sensible folder name: binary, lists, structs, maps.
    Unsupported,
}

/// How a partition column of type `dt` is written into folder names.
pub fn partition_value(dt: &DataType) -> PartitionValue {
    use DataType as T;
    match dt {
        T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Boolean => PartitionValue::Native,
        T::Int8 | T::Int16 | T::Int32 | T::Int64 => PartitionValue::Native,
        T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64 => PartitionValue::Native,
        T::Float16 | T::Float32 | T::Float64 => PartitionValue::Native,
        T::Dictionary(_, v) if v.as_ref() == &T::Utf8 => PartitionValue::Native,
        T::Dictionary(_, v) => partition_value(v).max_text(),
        T::Null | T::Date32 | T::Date64 | T::Time32(_) | T::Time64(_) => PartitionValue::AsText,
        T::Timestamp(..) | T::Duration(_) | T::Interval(_) => PartitionValue::AsText,
        T::Decimal32(..) | T::Decimal64(..) | T::Decimal128(..) | T::Decimal256(..) => {
            PartitionValue::AsText
        }
        _ => PartitionValue::Unsupported,
    }
}

impl PartitionValue {
    fn max_text(self) -> Self {
        match self {
            PartitionValue::Unsupported => PartitionValue::Unsupported,
            _ => PartitionValue::AsText,
        }
    }
}

/// Builds an Arrow schema from a `schema:` block; all columns are nullable. Returns the
/// first column whose type does not parse as the error.
pub fn schema_from_spec(spec: &IndexMap<String, String>) -> Result<SchemaRef, (String, String)> {
    let fields = spec
        .iter()
        .map(|(name, ty)| {
            parse_type(ty)
                .map(|dt| Field::new(name, dt, true))
                .ok_or_else(|| (name.clone(), ty.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// A short SQL-ish name of an Arrow type, for messages and previews.
pub fn sql_name(dt: &DataType) -> String {
    match dt {
        DataType::Int64 => "bigint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "real".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("array<{}>", sql_name(f.data_type())),
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), sql_name(f.data_type())))
                .collect();
            format!("struct<{}>", parts.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                sql_name(kv[0].data_type()),
                sql_name(kv[1].data_type())
            ),
            other => other.to_string().to_lowercase(),
        },
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!(parse_type("BIGINT"), Some(DataType::Int64));
        assert_eq!(
            parse_type("decimal(10, 2)"),
            Some(DataType::Decimal128(10, 2))
        );
        assert_eq!(parse_type("varchar(20)"), Some(DataType::Utf8));
        assert_eq!(
            parse_type("timestamptz"),
            Some(DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some(Arc::from("UTC"))
            ))
        );
        assert_eq!(parse_type("decimal(2,5)"), None);
        assert_eq!(parse_type("integr"), None);
    }

    #[test]
    fn every_declared_type_is_readable_or_refused() {
        use datafusion::arrow::compute::can_cast_types;
        let names = [
            "bigint",
            "int",
            "smallint",
            "tinyint",
            "ubigint",
            "uint",
            "double",
            "real",
            "decimal(10,2)",
            "decimal(60,10)",
            "string",
            "boolean",
            "date",
            "timestamp",
            "timestamptz",
            "time",
            "binary",
        ];
        for name in names {
            let dt = parse_type(name).unwrap();
            // What CSV reads as text first (NULL markers, tolerant reads) is cast.
            if format_cannot_read("csv", &dt).is_none() {
                assert!(can_cast_types(&DataType::Utf8, &dt), "{name}");
            }
            assert!(format_cannot_read("json", &dt).is_none(), "{name}");
        }
        assert!(format_cannot_read("csv", &DataType::Binary).is_some());
    }

    #[test]
    fn partition_values() {
        assert_eq!(partition_value(&DataType::Utf8), PartitionValue::Native);
        assert_eq!(partition_value(&DataType::Date32), PartitionValue::AsText);
        assert_eq!(
            partition_value(&DataType::Decimal128(10, 2)),
            PartitionValue::AsText
        );
        assert_eq!(
            partition_value(&DataType::Binary),
            PartitionValue::Unsupported
        );
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(partition_value(&list), PartitionValue::Unsupported);
    }

    #[test]
    fn parses_nested_types_and_names_them_back() {
        for name in [
            "struct<a: int, b: string>",
            "array<string>",
            "map<string, int>",
            "array<struct<id: bigint, price: decimal(10,2), tags: array<string>>>",
        ] {
            let dt = parse_type(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(sql_name(&dt), name);
        }
        assert_eq!(
            sql_name(&parse_type("STRUCT< Name : TEXT >").unwrap()),
            "struct<Name: string>"
        );
        assert_eq!(parse_type("struct<>"), None);
        assert_eq!(parse_type("map<string>"), None);
        assert_eq!(parse_type("array<nope>"), None);
    }
}
