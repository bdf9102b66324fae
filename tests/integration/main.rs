//! Integration tests: the real `etl` binary on fixture pipelines, outputs read back.
//!
//! One test binary (faster to build); each module covers one area. Helpers: `util` (run the
//! binary, fixtures, read outputs back) and `servers` (throwaway PostgreSQL and MariaDB).

mod http_server;
mod servers;
mod util;

mod after_commit;
mod badrows;
mod checks;
mod cli;
mod db_harness;
mod dbt;
mod engine_errors;
mod errors;
mod examples;
mod fuzz;
mod http;
mod incremental;
mod layouts;
mod mysql;
mod object_store;
mod pipeline_tests;
mod positions;
mod postgres;
mod safety;
mod secrets;
mod sinks;
mod sources;
mod summaries;
