//! Checks in a pipeline file: the native list of checks, and dbt's per-column test style.
//!
//! Under `checks:`, each source or transform has either a list of checks
//! (`orders: [ { not_null: [id] } ]`) or a mapping in dbt's style
//! (`orders: { columns: { id: { tests: [unique, not_null] } } }`), which `validate` turns
//! into the same checks.

use std::marker::PhantomData;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

/// How serious a failed check is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckSeverity {
    /// The run fails and no sink is written.
    #[default]
    Error,
    /// Reported in the summary; the run goes on.
    Warn,
}

/// One or several column names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Columns {
    /// A single column.
    One(String),
    /// Several columns.
    Many(Vec<String>),
}

impl Columns {
    /// The names as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Columns::One(c) => vec![c.clone()],
            Columns::Many(c) => c.clone(),
        }
    }
}

/// `accepted_values` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptedValuesSpec {
    /// The column to look at.
    pub column: String,
    /// The allowed values; NULL is always allowed (pair with `not_null` to forbid it).
    pub values: Vec<serde_json::Value>,
}

/// `row_count` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowCountSpec {
    /// The least number of rows allowed (0 or more).
    #[serde(default)]
    pub min: Option<u64>,
    /// The greatest number of rows allowed (0 or more, at least `min`).
    #[serde(default)]
    pub max: Option<u64>,
}

/// `relationships` arguments: every non-NULL value of `column` exists in `to.field`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationshipsSpec {
    /// The column holding the references.
    pub column: String,
    /// The source or transform referred to (`customers`, or dbt's `ref('customers')`).
    pub to: String,
    /// The column of `to` the values must exist in.
    pub field: String,
}

/// What `freshness` measures the age of the newest row against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RelativeTo {
    /// The time the check runs.
    #[default]
    Now,
    /// The end of the logical date `ds` (midnight UTC after it), or now if that is later.
    Ds,
}

/// `freshness` arguments: the newest row is no older than `max_age`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreshnessSpec {
    /// A timestamp, date or ISO 8601 text column (naive timestamps are taken as UTC).
    pub column: String,
    /// The greatest age allowed: `30m`, `2h`, `1d`, `1h 30m`.
    pub max_age: String,
    /// `now` (default) or `ds`: the end of the logical date.
    #[serde(default)]
    pub relative_to: RelativeTo,
}

/// One data-quality check. Exactly one of the check keys is given.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// These columns are never NULL.
    #[serde(default)]
    pub not_null: Option<Columns>,
    /// No two rows share these columns' values (rows with a NULL in them are not compared,
    /// as in dbt and SQL's UNIQUE).
    #[serde(default)]
    pub unique: Option<Columns>,
    /// A column only holds the listed values.
    #[serde(default)]
    pub accepted_values: Option<AcceptedValuesSpec>,
    /// Every non-NULL value of a column exists in a column of another source or transform.
    #[serde(default)]
    pub relationships: Option<RelationshipsSpec>,
    /// The number of rows is within bounds.
    #[serde(default)]
    pub row_count: Option<RowCountSpec>,
    /// An SQL boolean expression that must hold on every row (rows where it is NULL pass,
    /// as in dbt's `expression_is_true`). It may read other tables in subqueries.
    #[serde(default)]
    pub expect: Option<String>,
    /// An SQL boolean expression over aggregates (`count(*) > 0`, `sum(a) = sum(b)`) that
    /// must be true for the whole table; NULL fails.
    #[serde(default)]
    pub expect_table: Option<String>,
    /// The newest row is recent enough.
    #[serde(default)]
    pub freshness: Option<FreshnessSpec>,
    /// `error` (default) fails the run before any sink is written; `warn` only reports.
    #[serde(default)]
    pub severity: CheckSeverity,
    /// A name for the check in reports and for its `store_failures` folder; generated when
    /// absent.
    #[serde(default)]
    pub name: Option<String>,
    /// An SQL filter: the check looks only at the rows where it holds.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Keep the failing rows of a failed check as Parquet in
    /// `<state dir>/failures/<check>/<run id>.parquet`.
    #[serde(default)]
    pub store_failures: bool,
}

/// The checks on one source or transform: a list of checks, or a mapping in dbt's style.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum TableChecks {
    /// A list of checks.
    List(Vec<CheckSpec>),
    /// dbt's style: tests per column, plus checks on the whole table.
    Dbt(DbtTable),
}

impl<'de> Deserialize<'de> for TableChecks {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SeqOrMap {
            expecting: "a list of checks, or a mapping with `columns:` (dbt's style)",
            seq: TableChecks::List,
            map: TableChecks::Dbt,
            unit: Some(TableChecks::List(Vec::new())),
            _types: PhantomData,
        })
    }
}

/// The checks of one table in dbt's style.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbtTable {
    /// What the table holds (not checked).
    #[serde(default)]
    pub description: Option<String>,
    /// Tests per column: `{ id: { tests: [unique, not_null] } }`, or dbt's list of
    /// `{ name: id, tests: [...] }`.
    #[serde(default)]
    pub columns: DbtColumns,
    /// Tests on the table; the column tests say which column with `column_name:`.
    #[serde(default)]
    #[schemars(with = "Vec<DbtTestSchema>")]
    pub tests: Vec<DbtTest>,
    /// dbt 1.8's name for `tests`.
    #[serde(default)]
    #[schemars(with = "Vec<DbtTestSchema>")]
    pub data_tests: Vec<DbtTest>,
    /// Checks in etl's own style (`row_count`, `expect_table`, `freshness`, ...).
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// The columns of a dbt-style entry, as a mapping by name or as dbt's list.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum DbtColumns {
    /// `{ id: { tests: [...] } }`.
    Map(IndexMap<String, DbtColumn>),
    /// `[ { name: id, tests: [...] } ]`.
    List(Vec<DbtColumn>),
}

impl Default for DbtColumns {
    fn default() -> Self {
        DbtColumns::Map(IndexMap::new())
    }
}

impl<'de> Deserialize<'de> for DbtColumns {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SeqOrMap {
            expecting: "a mapping of column names to tests, or a list of `{ name, tests }`",
            seq: DbtColumns::List,
            map: DbtColumns::Map,
            unit: Some(DbtColumns::default()),
            _types: PhantomData,
        })
    }
}

/// One column in dbt's style.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbtColumn {
    /// The column (in dbt's list form; the key in the mapping form).
    #[serde(default)]
    pub name: Option<String>,
    /// What the column holds (not checked).
    #[serde(default)]
    pub description: Option<String>,
    /// Tests: `unique`, `not_null`, `accepted_values: { values: [...] }`,
    /// `relationships: { to: ref('x'), field: id }`.
    #[serde(default)]
    #[schemars(with = "Vec<DbtTestSchema>")]
    pub tests: Vec<DbtTest>,
    /// dbt 1.8's name for `tests`.
    #[serde(default)]
    #[schemars(with = "Vec<DbtTestSchema>")]
    pub data_tests: Vec<DbtTest>,
}

/// A dbt test: a name (`unique`), or a name with its arguments
/// (`accepted_values: { values: [a, b] }`).
#[derive(Debug, Clone)]
pub struct DbtTest {
    /// The test's name.
    pub name: String,
    /// Its arguments (all absent for a bare name).
    pub args: DbtTestArgs,
    /// True when written as a mapping (`unique: { ... }`), not a bare name.
    pub with_args: bool,
}

impl<'de> Deserialize<'de> for DbtTest {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DbtTestVisitor)
    }
}

struct DbtTestVisitor;

impl<'de> Visitor<'de> for DbtTestVisitor {
    type Value = DbtTest;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a test name (`unique`) or a test with arguments (`accepted_values: { values: [...] }`)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DbtTest, E> {
        Ok(DbtTest {
            name: v.to_string(),
            args: DbtTestArgs::default(),
            with_args: false,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DbtTest, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::custom("a test needs a name"));
        };
        let args: Option<DbtTestArgs> = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "a test is one name with its arguments below it; write each test as its own list item",
            ));
        }
        Ok(DbtTest {
            name,
            args: args.unwrap_or_default(),
            with_args: true,
        })
    }
}

/// The arguments of a dbt test. Which apply depends on the test.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbtTestArgs {
    /// `accepted_values`: the allowed values.
    #[serde(default)]
    pub values: Option<Vec<serde_json::Value>>,
    /// `accepted_values`: accepted for compatibility; values keep their YAML types.
    #[serde(default)]
    pub quote: Option<bool>,
    /// `relationships`: the table referred to (`ref('customers')` or `customers`).
    #[serde(default)]
    pub to: Option<String>,
    /// `relationships`: the column of `to`; `dbt_utils.recency`: the timestamp column.
    #[serde(default)]
    pub field: Option<String>,
    /// A table-level test: the column it looks at.
    #[serde(default)]
    pub column_name: Option<String>,
    /// `dbt_utils.expression_is_true`: the SQL expression.
    #[serde(default)]
    pub expression: Option<String>,
    /// `dbt_utils.unique_combination_of_columns`: the columns.
    #[serde(default)]
    pub combination_of_columns: Option<Vec<String>>,
    /// `dbt_utils.recency`: the unit of `interval` (`minute`, `hour`, `day`, `week`).
    #[serde(default)]
    pub datepart: Option<String>,
    /// `dbt_utils.recency`: how many `datepart`s old the newest row may be.
    #[serde(default)]
    pub interval: Option<u64>,
    /// The test's name in reports.
    #[serde(default)]
    pub name: Option<String>,
    /// `error` (default) or `warn`.
    #[serde(default)]
    pub severity: Option<CheckSeverity>,
    /// An SQL filter applied before the test.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Keep the failing rows (see the checks' `store_failures`).
    #[serde(default)]
    pub store_failures: Option<bool>,
    /// dbt's `config:` block: `severity`, `where`, `store_failures`.
    #[serde(default)]
    pub config: Option<DbtTestConfig>,
}

/// A dbt test's `config:`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbtTestConfig {
    /// `error` (default) or `warn`.
    #[serde(default)]
    pub severity: Option<CheckSeverity>,
    /// An SQL filter applied before the test.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Keep the failing rows.
    #[serde(default)]
    pub store_failures: Option<bool>,
}

/// The JSON Schema of a dbt test (its deserializer is hand-written).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum DbtTestSchema {
    /// A test without arguments: `unique`, `not_null`.
    Name(String),
    /// A test with arguments: `{ accepted_values: { values: [a, b] } }`.
    WithArgs(IndexMap<String, DbtTestArgs>),
}

/// Deserializes a list into one variant and a mapping into another, keeping the place of
/// every error inside either.
struct SeqOrMap<S, M, T> {
    expecting: &'static str,
    seq: fn(S) -> T,
    map: fn(M) -> T,
    unit: Option<T>,
    _types: PhantomData<(S, M)>,
}

impl<'de, S, M, T> Visitor<'de> for SeqOrMap<S, M, T>
where
    S: Deserialize<'de>,
    M: Deserialize<'de>,
{
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.unit
            .ok_or_else(|| de::Error::invalid_type(de::Unexpected::Unit, &self.expecting))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        S::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(self.seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        M::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.map)
    }
}
