//! Everything `etl` prints goes through here, with secrets masked.
//!
//! Standard output and standard error are written only by these functions (and by the
//! progress spinners, whose labels are masked when set): the crate denies `print!`-style
//! macros and direct use of `std::io::stdout`/`stderr` elsewhere (see `lib.rs` and
//! `clippy.toml`), so a new message cannot bypass [`crate::secrets::redact`] by accident.
//! Write errors (a closed pipe, as in `etl schema | head`) are ignored rather than fatal.

use std::io::{IsTerminal, Write};

use crate::secrets;

#[allow(clippy::disallowed_methods)]
fn stdout_write(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(secrets::redact(text).as_bytes());
    let _ = out.flush();
}

#[allow(clippy::disallowed_methods)]
fn stderr_write(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(secrets::redact(text).as_bytes());
    let _ = err.flush();
}

/// Prints text to standard output.
pub fn text(text: &str) {
    stdout_write(text);
}

/// Prints a line to standard output.
pub fn line(text: &str) {
    stdout_write(&format!("{text}\n"));
}

/// Prints text to standard error.
pub fn err_text(text: &str) {
    stderr_write(text);
}

/// Prints a line to standard error.
pub fn err_line(text: &str) {
    stderr_write(&format!("{text}\n"));
}

/// Prints a JSON value as one line to standard output.
pub fn json_line(value: serde_json::Value) {
    line(&secrets::json_line(value));
}

/// Prints a JSON value as one line to standard error.
pub fn err_json_line(value: serde_json::Value) {
    err_line(&secrets::json_line(value));
}

/// True when standard error is a terminal (colour and spinners).
#[allow(clippy::disallowed_methods)]
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A `tracing` writer: log lines go to standard error, masked.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        stderr_write(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Makes panic messages go through [`err_line`] too: a panic message may quote a value.
pub fn mask_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let mut msg = format!("thread '{name}' {info}");
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            msg.push_str(&format!("\nstack backtrace:\n{bt}"));
        } else {
            msg.push_str(
                "\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            );
        }
        err_line(&msg);
    }));
}
