//! The `expect:` part of a pipeline test: expected tables by name, and `checks:` outcomes.
//!
//! `checks` is the one reserved key: `expect: { checks: { fail: [name] } }` says a check must
//! fail on the test's fixtures. Every other key names a source or transform.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use super::ExpectSpec;

/// Check outcomes a test expects.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectChecks {
    /// Checks (by `name`, or the generated name such as `not_null(id)`) that must fail on the
    /// fixtures.
    #[serde(default)]
    pub fail: Vec<String>,
    /// Checks that must pass on the fixtures.
    #[serde(default)]
    pub pass: Vec<String>,
}

/// What a test expects: rows of sources and transforms, and check outcomes.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Expected rows, keyed by source or transform name.
    pub tables: IndexMap<String, ExpectSpec>,
    /// Expected check outcomes (`checks:`).
    pub checks: Option<ExpectChecks>,
}

impl Expectations {
    /// True when the test expects nothing.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.checks.is_none()
    }
}

impl<'de> Deserialize<'de> for Expectations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Expectations;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of source or transform names (and `checks`) to expectations")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Expectations, E> {
                Ok(Expectations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expectations, A::Error> {
                let mut out = Expectations::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "checks" {
                        out.checks = Some(map.next_value()?);
                    } else {
                        let value: ExpectSpec = map.next_value()?;
                        out.tables.insert(key, value);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

impl JsonSchema for Expectations {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expectations".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let checks = generator.subschema_for::<ExpectChecks>();
        let table = generator.subschema_for::<ExpectSpec>();
        schemars::json_schema!({
            "type": "object",
            "description": "Expected rows keyed by source or transform name; `checks` holds expected check outcomes.",
            "properties": { "checks": checks },
            "additionalProperties": table,
        })
    }
}
