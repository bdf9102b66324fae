//! MySQL and MariaDB: connecting (with retries), column metadata as an Arrow schema, and
//! rows decoded into Arrow builders.
//!
//! Every session runs in UTC (`time_zone = '+00:00'`, so `TIMESTAMP` columns read as UTC),
//! with `NO_BACKSLASH_ESCAPES` (so string literals mean what they say) and a long
//! `net_write_timeout` (a slow sink must not make the server drop the query). Rows stream:
//! the server is read as fast as batches are consumed. Unsigned `BIGINT` reads as `UInt64`,
//! `DECIMAL(p,s)` as a decimal of the same precision, `ENUM` and `SET` as text. Zero or
//! partial dates (`0000-00-00`, `2024-05-00`) are an error naming the column, or NULL when
//! the source says `zero_dates: "null"`.

mod decode;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts};

pub use decode::{RowDecoder, decimal};

use super::{DbConnection, DbError, backoff};

const SESSION_SETUP: &str = "SET SESSION time_zone = '+00:00', SESSION net_write_timeout = 3600, \
SESSION net_read_timeout = 3600, SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')";

/// The character set number MySQL uses for binary strings.
const BINARY_CHARSET: u16 = 63;

/// What to do with a zero or partial date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroDates {
    /// Stop with an error naming the column.
    #[default]
    Error,
    /// Read it as NULL.
    Null,
}

/// Connects to MySQL or MariaDB, retrying transient failures with backoff.
pub async fn connect(conn: &DbConnection) -> Result<Conn, DbError> {
    let opts = Opts::from_url(&conn.url).map_err(|e| DbError::Url {
        connection: conn.name.clone(),
        reason: e.to_string(),
    })?;
    let attempts = conn.retries + 1;
    let mut last = String::new();
    for attempt in 1..=attempts {
        match Conn::new(opts.clone()).await {
            Ok(mut c) => {
                c.query_drop(SESSION_SETUP)
                    .await
                    .map_err(|e| query_error(conn, &e))?;
                return Ok(c);
            }
            Err(e) => {
                last = error_text(&e);
                let transient = match &e {
                    mysql_async::Error::Server(s) => {
                        matches!(s.code, 1040 | 1053 | 1205 | 2002 | 2003 | 2013)
                    }
                    mysql_async::Error::Io(_) => true,
                    _ => false,
                };
                if !transient {
                    return Err(connect_error(conn, attempt, last));
                }
                if attempt < attempts {
                    tracing::warn!(connection = %conn.name, attempt, error = %last, "cannot connect; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }
    Err(connect_error(conn, attempts, last))
}

fn connect_error(conn: &DbConnection, attempts: u32, reason: String) -> DbError {
    DbError::Connect {
        connection: conn.name.clone(),
        host: conn.display(),
        attempts,
        reason,
    }
}

/// A statement's failure as a user-facing error.
pub fn query_error(conn: &DbConnection, e: &mysql_async::Error) -> DbError {
    DbError::Query {
        connection: conn.name.clone(),
        reason: error_text(e),
    }
}

/// The server's message, or the client's.
pub fn error_text(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("{} (error {})", s.message, s.code),
        other => {
            // The innermost cause says it best ("Connection refused").
            let mut inner: &dyn std::error::Error = other;
            while let Some(next) = inner.source() {
                inner = next;
            }
            inner.to_string()
        }
    }
}

/// A quoted identifier.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// `db.table` or `table`, quoted.
pub fn quote_table(name: &str) -> String {
    name.split('.')
        .map(|p| quote_ident(p.trim().trim_matches('`')))
        .collect::<Vec<_>>()
        .join(".")
}

/// How one column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int { bits: u8, unsigned: bool },
    Float32,
    Float64,
    Decimal { precision: u8, scale: i8 },
    Text,
    Binary,
    Bit { len: u32 },
    Date,
    DateTime { utc: bool },
    Time,
}

/// The Arrow schema of a result's columns, or the first column that has no faithful type.
pub(crate) fn schema_of(columns: &[Column]) -> Result<(SchemaRef, Vec<Kind>), String> {
    let mut fields = Vec::new();
    let mut kinds = Vec::new();
    for c in columns {
        let (kind, dt) = kind_of(c)?;
        fields.push(Field::new(c.name_str().as_ref(), dt, true));
        kinds.push(kind);
    }
    Ok((Arc::new(Schema::new(fields)), kinds))
}

fn kind_of(c: &Column) -> Result<(Kind, DataType), String> {
    use ColumnType::*;
    let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let int = |bits: u8| {
        let dt = match (bits, unsigned) {
            (8, false) => DataType::Int8,
            (8, true) => DataType::UInt8,
            (16, false) => DataType::Int16,
            (16, true) => DataType::UInt16,
            (32, false) => DataType::Int32,
            (32, true) => DataType::UInt32,
            (_, false) => DataType::Int64,
            (_, true) => DataType::UInt64,
        };
        (Kind::Int { bits, unsigned }, dt)
    };
    Ok(match c.column_type() {
        MYSQL_TYPE_TINY => int(8),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => int(16),
        MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => int(32),
        MYSQL_TYPE_LONGLONG => int(64),
        MYSQL_TYPE_FLOAT => (Kind::Float32, DataType::Float32),
        MYSQL_TYPE_DOUBLE => (Kind::Float64, DataType::Float64),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            let scale = c.decimals().min(76) as i8;
            let precision = (c.column_length() as i64 - i64::from(scale > 0) - i64::from(!unsigned))
                .clamp(1, 76) as u8;
            let precision = precision.max(scale as u8).max(1);
            let dt = if precision <= 38 {
                DataType::Decimal128(precision, scale)
            } else {
                DataType::Decimal256(precision, scale)
            };
            (Kind::Decimal { precision, scale }, dt)
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (Kind::Date, DataType::Date32),
        MYSQL_TYPE_DATETIME => (
            Kind::DateTime { utc: false },
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ),
        MYSQL_TYPE_TIMESTAMP => (
            Kind::DateTime { utc: true },
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        MYSQL_TYPE_TIME => (Kind::Time, DataType::Time64(TimeUnit::Microsecond)),
        MYSQL_TYPE_BIT if c.column_length() == 1 => (Kind::Bit { len: 1 }, DataType::Boolean),
        MYSQL_TYPE_BIT => (
            Kind::Bit {
                len: c.column_length(),
            },
            DataType::UInt64,
        ),
        MYSQL_TYPE_JSON | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => (Kind::Text, DataType::Utf8),
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB => {
            if c.character_set() == BINARY_CHARSET {
                (Kind::Binary, DataType::Binary)
            } else {
                (Kind::Text, DataType::Utf8)
            }
        }
        MYSQL_TYPE_NULL => (Kind::Text, DataType::Utf8),
        other => {
            return Err(format!(
                "column `{}` has type {other:?}, which etl cannot read; cast it in a `query:` (for example `CAST(col AS CHAR)`)",
                c.name_str()
            ));
        }
    })
}
