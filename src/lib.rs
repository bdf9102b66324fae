//! `etl`: declarative data pipelines over Apache DataFusion.
//!
//! A pipeline file (YAML) names sources, SQL transforms, checks and sinks. The library turns
//! it into DataFusion plans and runs them. Data flows one way through the modules:
//!
//! `load` (parse with positions, render templates, deserialize into `spec`) →
//! `validate` (names, references, cycles; every diagnostic at once, giving a `model`) →
//! `plan` (sources as tables, transforms as views, SQL planned) → `run` (checks, sinks, run
//! record) → `report` (terminal or JSON).
//!
//! Everything printed goes through [`out`], which masks secrets (see [`secrets`]); the lints
//! below keep it that way.

#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod check;
pub mod cli;
pub mod commands;
pub mod connector;
pub mod db;
pub mod diagnostic;
pub mod engine;
pub mod engine_error;
pub mod fault;
pub mod load;
pub mod model;
pub mod out;
pub mod plan;
pub mod run;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod spec;
pub mod state;
pub mod store;
pub mod template;
pub mod testing;
pub mod types;
pub mod validate;
pub mod yaml;
