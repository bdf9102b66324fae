//! Integration tests: the real `etl` binary on fixture pipelines, outputs read back.
//!
//! One test binary (faster to build); each module covers one area.

mod util;

mod cli;
mod errors;
mod examples;
mod fuzz;
mod object_store;
mod sinks;
mod sources;
