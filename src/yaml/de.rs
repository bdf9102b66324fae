//! A serde `Deserializer` over [`Node`]s that puts a place on every error.
//!
//! Typed spec structs derive `Deserialize` as usual; deserializing them from a node tree
//! instead of from text means any error (unknown key, wrong type, missing field) comes back
//! with the YAML path and line:col of the innermost node involved. Unknown keys carry the
//! list of accepted keys, which feeds the "did you mean" hint.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::node::{Kind, Node, Style, is_null_text};
use crate::diagnostic::Pos;

/// A deserialization error with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// The reason.
    pub message: String,
    /// Line and column of the offending node.
    pub pos: Option<Pos>,
    /// Dotted YAML path of the offending node.
    pub path: Option<String>,
    /// For an unknown key: the key and the accepted ones.
    pub unknown_field: Option<(String, Vec<String>)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            pos: None,
            path: None,
            unknown_field: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let list = expected
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            message: format!("unknown key `{field}` (expected one of {list})"),
            unknown_field: Some((
                field.to_string(),
                expected.iter().map(|s| s.to_string()).collect(),
            )),
            ..Self::custom("")
        }
    }
}

/// Joins a YAML path and a key.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Deserializes a `T` from a node found at `path`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node, path: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe::new(node, path))
}

/// Deserializes a `T` from a mapping node, ignoring one key (the `type` tag of a component).
pub fn from_node_skipping<'de, T: de::Deserialize<'de>>(
    node: &'de Node,
    path: &str,
    skip: &'static str,
) -> Result<T, DeError> {
    let mut de = NodeDe::new(node, path);
    de.skip = Some(skip);
    T::deserialize(de)
}

/// The deserializer for one node.
pub struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    skip: Option<&'static str>,
}

impl<'a> NodeDe<'a> {
    /// A deserializer for `node`, which sits at `path`.
    pub fn new(node: &'a Node, path: &str) -> Self {
        Self {
            node,
            path: path.to_string(),
            skip: None,
        }
    }

    /// Puts this node's place on an error that has none yet.
    fn locate(&self, mut err: DeError) -> DeError {
        if err.pos.is_some() {
            return err;
        }
        if let Some((field, _)) = &err.unknown_field {
            let key = self
                .node
                .key_node(field)
                .map(|k| (k, join(&self.path, field)))
                .or_else(|| self.node.find_key(field).map(|k| (k, self.path.clone())));
            if let Some((k, path)) = key {
                err.pos = Some(k.pos);
                err.path = Some(path);
                return err;
            }
        }
        err.pos = Some(self.node.pos);
        err.path = Some(self.path.clone());
        err
    }

    fn invalid(&self, expected: &str) -> DeError {
        let found = match &self.node.kind {
            Kind::Scalar(s, _) if self.node.is_null() => "null".to_string(),
            Kind::Scalar(s, _) => format!("`{}`", short(s)),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        };
        self.locate(<DeError as de::Error>::custom(format!(
            "expected {expected}, found {found}"
        )))
    }

    fn text(&self) -> Option<&'a str> {
        match &self.node.kind {
            Kind::Scalar(s, _) => Some(s.as_str()),
            _ => None,
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        self.text()
            .and_then(|s| s.trim().replace('_', "").parse::<T>().ok())
            .ok_or_else(|| self.invalid(what))
    }
}

fn short(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    if first.chars().count() > 40 || s.contains('\n') {
        format!("{}…", first.chars().take(40).collect::<String>())
    } else {
        first.to_string()
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if s.chars().any(|c| c.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty, $what:literal) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v: $ty = self.parse($what)?;
            visitor.$visit(v).map_err(|e| self.locate(e))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Scalar(s, Style::Plain) => {
                if is_null_text(s) {
                    visitor.visit_unit()
                } else if let Some(b) = parse_bool(s) {
                    visitor.visit_bool(b)
                } else if let Ok(i) = s.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(u) = s.parse::<u64>() {
                    visitor.visit_u64(u)
                } else if let Some(f) = parse_float(s) {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(s)
                }
            }
            Kind::Scalar(s, _) => visitor.visit_str(s),
            Kind::Seq(items) => visitor.visit_seq(Seq::new(items, &self.path)),
            Kind::Map(entries) => visitor.visit_map(Map::new(entries, &self.path, self.skip)),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let b = self
            .text()
            .and_then(|s| parse_bool(s.trim()))
            .ok_or_else(|| self.invalid("true or false"))?;
        visitor.visit_bool(b).map_err(|e| self.locate(e))
    }

    int_method!(deserialize_i8, visit_i8, i8, "a whole number");
    int_method!(deserialize_i16, visit_i16, i16, "a whole number");
    int_method!(deserialize_i32, visit_i32, i32, "a whole number");
    int_method!(deserialize_i64, visit_i64, i64, "a whole number");
    int_method!(deserialize_u8, visit_u8, u8, "a whole number ≥ 0");
    int_method!(deserialize_u16, visit_u16, u16, "a whole number ≥ 0");
    int_method!(deserialize_u32, visit_u32, u32, "a whole number ≥ 0");
    int_method!(deserialize_u64, visit_u64, u64, "a whole number ≥ 0");

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self
            .text()
            .and_then(|s| parse_float(s.trim()))
            .ok_or_else(|| self.invalid("a number"))?;
        visitor.visit_f64(f).map_err(|e| self.locate(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(s) if !self.node.is_null() || !s.is_empty() => {
                visitor.visit_str(s).map_err(|e| self.locate(e))
            }
            _ => Err(self.invalid("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none().map_err(|e| self.locate(e))
        } else {
            let path = self.path.clone();
            let node = self.node;
            visitor
                .visit_some(self)
                .map_err(|e| NodeDe::new(node, &path).locate(e))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit().map_err(|e| self.locate(e))
        } else {
            Err(self.invalid("nothing (null)"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Seq(items) => visitor
                .visit_seq(Seq::new(items, &self.path))
                .map_err(|e| self.locate(e)),
            _ => Err(self.invalid("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Map(entries) => visitor
                .visit_map(Map::new(entries, &self.path, self.skip))
                .map_err(|e| self.locate(e)),
            _ => Err(self.invalid("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar(s, _) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| self.locate(e)),
            Kind::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                let access = Enum {
                    key: k,
                    value: v,
                    path: self.path.clone(),
                };
                visitor.visit_enum(access).map_err(|e| self.locate(e))
            }
            _ => Err(self.invalid("one of the allowed values")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: String,
}

impl<'a> Seq<'a> {
    fn new(items: &'a [Node], path: &str) -> Self {
        Self {
            items: items.iter(),
            index: 0,
            path: path.to_string(),
        }
    }
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        let de = NodeDe::new(item, &path);
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| NodeDe::new(item, &path).locate(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    current: Option<&'a (Node, Node)>,
    path: String,
    skip: Option<&'static str>,
}

impl<'a> Map<'a> {
    fn new(entries: &'a [(Node, Node)], path: &str, skip: Option<&'static str>) -> Self {
        Self {
            entries: entries.iter(),
            current: None,
            path: path.to_string(),
            skip,
        }
    }
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let entry = loop {
            match self.entries.next() {
                None => return Ok(None),
                Some(e) if self.skip.is_some() && e.0.as_str() == self.skip => continue,
                Some(e) => break e,
            }
        };
        self.current = Some(entry);
        let key_name = entry.0.as_str().unwrap_or("?");
        let path = join(&self.path, key_name);
        seed.deserialize(NodeDe::new(&entry.0, &path))
            .map(Some)
            .map_err(|mut e| {
                if e.pos.is_none() {
                    e.pos = Some(entry.0.pos);
                    e.path = Some(path.clone());
                }
                e
            })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = self
            .current
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value without a key"))?;
        let path = join(&self.path, entry.0.as_str().unwrap_or("?"));
        seed.deserialize(NodeDe::new(&entry.1, &path))
            .map_err(|e| NodeDe::new(&entry.1, &path).locate(e))
    }
}

struct Enum<'a> {
    key: &'a Node,
    value: &'a Node,
    path: String,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = DeError;
    type Variant = NodeDe<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'de>), DeError> {
        let name = self.key.as_str().unwrap_or("?");
        let path = join(&self.path, name);
        let v = seed
            .deserialize(NodeDe::new(self.key, &path))
            .map_err(|e| NodeDe::new(self.key, &path).locate(e))?;
        Ok((v, NodeDe::new(self.value, &path)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.node.is_null() {
            Ok(())
        } else {
            Err(self.invalid("nothing after this option"))
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::node::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        path: String,
        #[serde(default)]
        partition_by: Vec<String>,
        limit: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        sinks: indexmap::IndexMap<String, Inner>,
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let doc = "sinks:\n  out:\n    path: x\n    partiton_by: [a]\n";
        let root = parse(doc).unwrap();
        let err = from_node::<Outer>(&root, "").unwrap_err();
        assert_eq!(err.pos, Some(Pos::new(4, 5)));
        assert_eq!(err.path.as_deref(), Some("sinks.out.partiton_by"));
        let (field, expected) = err.unknown_field.unwrap();
        assert_eq!(field, "partiton_by");
        assert!(expected.contains(&"partition_by".to_string()));
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let doc = "sinks:\n  out:\n    path: x\n    limit: lots\n";
        let root = parse(doc).unwrap();
        let err = from_node::<Outer>(&root, "").unwrap_err();
        assert_eq!(err.pos, Some(Pos::new(4, 12)));
        assert_eq!(err.path.as_deref(), Some("sinks.out.limit"));
        assert!(err.message.contains("whole number"), "{}", err.message);
    }

    #[test]
    fn missing_field_points_at_the_mapping() {
        let doc = "sinks:\n  out:\n    limit: 3\n";
        let root = parse(doc).unwrap();
        let err = from_node::<Outer>(&root, "").unwrap_err();
        assert_eq!(err.pos, Some(Pos::new(3, 5)));
        assert!(
            err.message.contains("missing field `path`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn reads_values_with_core_schema_typing() {
        let doc = "sinks:\n  out: { path: 12, limit: '7' }\n";
        let root = parse(doc).unwrap();
        let v = from_node::<Outer>(&root, "").unwrap();
        assert_eq!(v.sinks["out"].path, "12");
        assert_eq!(v.sinks["out"].limit, Some(7));
        let any: serde_json::Value =
            from_node(&parse("a: [1, 2.5, true, ~, x]").unwrap(), "").unwrap();
        assert_eq!(any, serde_json::json!({"a": [1, 2.5, true, null, "x"]}));
    }
}
