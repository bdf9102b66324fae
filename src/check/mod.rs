//! Data-quality checks, compiled to DataFusion plans and run before any sink commits.
//!
//! [`compile`] plans a check against a session's tables without reading any data: that is
//! how `validate` and `run` reject a misspelt column or an expression that does not plan
//! before anything moves. [`Compiled::run`] executes the plan: it counts the rows (or
//! groups) that break the check, keeps a few as a sample for the report, and with
//! `store_failures` writes them to Parquet under the state folder.
//!
//! Values from the pipeline file (accepted values, column names) become literals and
//! identifiers in expressions, never SQL text. The user's own SQL (`expect`, `expect_table`,
//! `where`) is planned as part of a query, so it may read other tables in subqueries, as dbt
//! tests do; errors in it point at its place in the pipeline file.

mod compile;
mod exec;
mod store;

pub use compile::{Compiled, compile};
pub use exec::{CheckError, CheckOutcome, RunCx};
