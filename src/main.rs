//! The `etl` binary: parse the command line, hand it to the library, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    etl::commands::execute(etl::cli::Cli::parse())
}
