//! `schema_file:` — a source's schema given as JSON Schema (draft 7 or 2020-12).
//!
//! The top level is an object; each property becomes a column:
//!
//! | JSON Schema | column type |
//! |---|---|
//! | `string` | string (`format: date` → date, `format: date-time` → timestamptz) |
//! | `integer` / `number` / `boolean` | bigint / double / boolean |
//! | `object` with `properties` | struct (nested) |
//! | `object` with only `additionalProperties: {schema}` | map<string, ...> |
//! | `array` with `items` | array<...> |
//!
//! `"type": ["x", "null"]` and `anyOf`/`oneOf` of one type and `null` are that type.
//! Local `$ref`s (`#/definitions/...`, `#/$defs/...`) are followed. `required` makes a
//! column (or nested field) NOT NULL: a row without it is a bad row. `enum` on a top-level
//! property becomes an `accepted_values` check on the source.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

/// What a JSON Schema file gives a source.
#[derive(Debug, Clone)]
pub struct FromJsonSchema {
    /// The columns.
    pub schema: SchemaRef,
    /// Top-level properties with an `enum`: column and accepted values.
    pub enums: Vec<(String, Vec<Value>)>,
}

/// Why a JSON Schema file cannot give a schema.
#[derive(Debug, thiserror::Error)]
pub enum JsonSchemaError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: crate::load::ReadError,
    },
    /// The file is not JSON.
    #[error("{path} is not JSON: {error}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        error: serde_json::Error,
    },
    /// A part of the schema that has no column type.
    #[error("{path}: at `{pointer}`: {reason}")]
    Unsupported {
        /// The file.
        path: String,
        /// Where in the schema (a JSON pointer).
        pointer: String,
        /// Why.
        reason: String,
    },
}

/// Reads a JSON Schema file into columns and accepted values.
pub fn load(path: &Path) -> Result<FromJsonSchema, JsonSchemaError> {
    let shown = path.display().to_string();
    // A regular file of bounded size: a device or a FIFO would block or never end.
    let text = crate::load::read_text(path).map_err(|error| JsonSchemaError::Read {
        path: shown.clone(),
        error,
    })?;
    let root: Value = serde_json::from_str(&text).map_err(|error| JsonSchemaError::Parse {
        path: shown.clone(),
        error,
    })?;
    from_value(&root).map_err(|(pointer, reason)| JsonSchemaError::Unsupported {
        path: shown,
        pointer,
        reason,
    })
}

type Failure = (String, String);

/// Converts a parsed JSON Schema.
pub fn from_value(root: &Value) -> Result<FromJsonSchema, Failure> {
    let conv = Converter { root };
    let top = conv.resolve(root, "", 0)?;
    let fields = match conv.data_type(top, "", 0)? {
        DataType::Struct(fields) => fields,
        _ => {
            return Err((
                "".into(),
                "the top level must be an object with `properties`".into(),
            ));
        }
    };
    let mut enums = Vec::new();
    if let Some(props) = top.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let at = format!("/properties/{name}");
            let prop = conv.resolve(prop, &at, 0)?;
            if let Some(values) = prop.get("enum").and_then(Value::as_array) {
                let values: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
                enums.push((name.clone(), values));
            }
        }
    }
    Ok(FromJsonSchema {
        schema: Arc::new(Schema::new(fields)),
        enums,
    })
}

struct Converter<'a> {
    root: &'a Value,
}

const MAX_DEPTH: usize = 32;

impl<'a> Converter<'a> {
    /// Follows local `$ref`s and unwraps `anyOf`/`oneOf` of one type and `null`.
    fn resolve(&self, node: &'a Value, at: &str, depth: usize) -> Result<&'a Value, Failure> {
        let fail = |r: &str| Err((at.to_string(), r.to_string()));
        if depth > MAX_DEPTH {
            return fail("the schema refers to itself; recursive types have no column type");
        }
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let Some(pointer) = r.strip_prefix('#') else {
                return fail(&format!(
                    "`$ref: {r}` points outside the file; only local references (`#/...`) are followed"
                ));
            };
            return match self.root.pointer(pointer) {
                Some(target) => self.resolve(target, pointer, depth + 1),
                None => fail(&format!("`$ref: {r}` points at nothing")),
            };
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = node.get(key).and_then(Value::as_array) {
                let non_null: Vec<&Value> = options
                    .iter()
                    .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                    .collect();
                return match non_null[..] {
                    [one] => self.resolve(one, &format!("{at}/{key}"), depth + 1),
                    _ => fail(&format!(
                        "`{key}` of several types has no column type; use one type (and `null`)"
                    )),
                };
            }
        }
        Ok(node)
    }

    fn type_name(&self, node: &Value, at: &str) -> Result<String, Failure> {
        let names: Vec<&str> = match node.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let names: Vec<&str> = names.into_iter().filter(|n| *n != "null").collect();
        match names[..] {
            [one] => Ok(one.to_string()),
            [] => match node.get("enum").and_then(Value::as_array) {
                Some(values) if values.iter().all(|v| v.is_string() || v.is_null()) => {
                    Ok("string".into())
                }
                Some(values) if values.iter().all(|v| v.is_i64() || v.is_null()) => {
                    Ok("integer".into())
                }
                _ if node.get("properties").is_some() => Ok("object".into()),
                _ => Err((at.to_string(), "no `type`".into())),
            },
            _ => Err((
                at.to_string(),
                format!(
                    "several types ({}) have no one column type; use one type (and `null`)",
                    names.join(", ")
                ),
            )),
        }
    }

    fn data_type(&self, node: &'a Value, at: &str, depth: usize) -> Result<DataType, Failure> {
        let node = self.resolve(node, at, depth)?;
        let name = self.type_name(node, at)?;
        Ok(match name.as_str() {
            "string" => match node.get("format").and_then(Value::as_str) {
                Some("date") => DataType::Date32,
                Some("date-time") => {
                    DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("UTC")))
                }
                _ => DataType::Utf8,
            },
            "integer" => DataType::Int64,
            "number" => DataType::Float64,
            "boolean" => DataType::Boolean,
            "array" => {
                let items = node.get("items").ok_or_else(|| {
                    (
                        at.to_string(),
                        "an `array` without `items` has no column type".to_string(),
                    )
                })?;
                let item = self.data_type(items, &format!("{at}/items"), depth + 1)?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            "object" => self.object(node, at, depth)?,
            other => return Err((at.to_string(), format!("type `{other}` has no column type"))),
        })
    }

    fn object(&self, node: &'a Value, at: &str, depth: usize) -> Result<DataType, Failure> {
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            let fields = props
                .iter()
                .map(|(name, prop)| {
                    let ty = self.data_type(prop, &format!("{at}/properties/{name}"), depth + 1)?;
                    Ok(Field::new(name, ty, !required.contains(&name.as_str())))
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            return Ok(DataType::Struct(Fields::from(fields)));
        }
        match node.get("additionalProperties") {
            Some(values @ Value::Object(_)) => {
                let value = self.data_type(values, &format!("{at}/additionalProperties"), depth + 1)?;
                let entries = Field::new(
                    "entries",
                    DataType::Struct(
                        vec![Field::new("key", DataType::Utf8, false), Field::new("value", value, true)].into(),
                    ),
                    false,
                );
                Ok(DataType::Map(Arc::new(entries), false))
            }
            _ => Err((
                at.to_string(),
                "an `object` needs `properties` (a struct) or `additionalProperties: {schema}` (a map)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::sql_name;

    #[test]
    fn converts_types_required_and_enums() {
        let s = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": ["string", "null"]},
                "born": {"type": "string", "format": "date"},
                "seen": {"type": "string", "format": "date-time"},
                "status": {"enum": ["active", "gone", null]},
                "address": {"$ref": "#/$defs/address"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                "vip": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
            },
            "$defs": {"address": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}
        });
        let got = from_value(&s).unwrap();
        let cols: Vec<(String, String, bool)> = got
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), sql_name(f.data_type()), f.is_nullable()))
            .collect();
        assert_eq!(cols[0], ("id".into(), "bigint".into(), false));
        assert_eq!(cols[1], ("name".into(), "string".into(), true));
        assert_eq!(cols[2].1, "date");
        assert_eq!(cols[3].1, "timestamptz");
        assert_eq!(cols[4].1, "string");
        assert_eq!(cols[5].1, "struct<city: string>");
        assert_eq!(cols[6].1, "array<string>");
        assert_eq!(cols[7].1, "map<string, double>");
        assert_eq!(cols[8].1, "boolean");
        assert_eq!(
            got.enums,
            vec![(
                "status".to_string(),
                vec![serde_json::json!("active"), serde_json::json!("gone")]
            )]
        );
    }

    #[test]
    fn says_where_a_schema_has_no_column_type() {
        let s = serde_json::json!({"type": "object", "properties": {"a": {"type": "array"}}});
        assert_eq!(from_value(&s).unwrap_err().0, "/properties/a");
        let s = serde_json::json!({"type": "object", "properties": {"a": {"type": ["integer", "string"]}}});
        assert!(from_value(&s).unwrap_err().1.contains("several types"));
        let s = serde_json::json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"$ref": "#/$defs/a"}}});
        assert!(from_value(&s).unwrap_err().1.contains("refers to itself"));
    }
}
