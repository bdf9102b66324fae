//! Database access shared by the PostgreSQL and MySQL connectors: connection settings,
//! retries, and the errors users see (which never carry a password).

pub mod mysql;
pub mod pg;
pub mod sql;

use std::time::Duration;

/// How many times a failed connection attempt is retried by default.
pub const DEFAULT_RETRIES: u32 = 3;

/// A named database connection of a pipeline.
#[derive(Clone)]
pub struct DbConnection {
    /// The connection's name in the pipeline (`connections.<name>`).
    pub name: String,
    /// The URL, with credentials. Never printed: see [`DbConnection::display`].
    pub url: String,
    /// Retries of a failed connection attempt, with backoff.
    pub retries: u32,
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbConnection({}, {})", self.name, self.display())
    }
}

impl DbConnection {
    /// `host:port/database`, for messages: no user, no password, no options.
    pub fn display(&self) -> String {
        display_url(&self.url)
    }
}

/// The host, port and database of a connection URL, without credentials or options.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("localhost");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{host}{port}{}", u.path())
        }
        Err(_) => "(an unreadable URL)".into(),
    }
}

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse or names an unknown setting.
    #[error("connection `{connection}`: the URL is not valid: {reason}")]
    Url {
        /// The connection.
        connection: String,
        /// Why.
        reason: String,
    },
    /// Connecting failed (after the retries, when the failure looked transient).
    #[error("connection `{connection}` to {host}: cannot connect{}: {reason}", attempts_text(*.attempts))]
    Connect {
        /// The connection.
        connection: String,
        /// Host, port and database.
        host: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("connection `{connection}`: {reason}")]
    Query {
        /// The connection.
        connection: String,
        /// The server's message (and where, when known).
        reason: String,
    },
}

/// The named database connection of a pipeline, with its URL rendered.
pub fn connection(pipeline: &crate::model::Pipeline, name: &str) -> Result<DbConnection, DbError> {
    let spec = pipeline.connections.get(name).ok_or_else(|| DbError::Url {
        connection: name.to_string(),
        reason: "no such connection".into(),
    })?;
    let url = spec.url.clone().ok_or_else(|| DbError::Url {
        connection: name.to_string(),
        reason: "the connection has no `url`".into(),
    })?;
    Ok(DbConnection {
        name: name.to_string(),
        url,
        retries: spec.retries.unwrap_or(DEFAULT_RETRIES),
    })
}

/// Batches received from a reading task, as a stream that stops the task (and closes its
/// connection) when the consumer drops it early.
pub fn abort_on_drop<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
    task: tokio::task::JoinHandle<()>,
) -> impl futures::Stream<Item = T> + Send {
    struct Guard(tokio::task::JoinHandle<()>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    futures::stream::unfold((rx, Guard(task)), |(mut rx, guard)| async move {
        rx.recv().await.map(|item| (item, (rx, guard)))
    })
}

fn attempts_text(n: u32) -> String {
    if n > 1 {
        format!(" (tried {n} times)")
    } else {
        String::new()
    }
}

/// The wait before retry `attempt` (1-based): 250 ms doubling, at most 4 s, with jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.saturating_sub(1).min(4));
    let base = base.min(4_000);
    // Spread retries of concurrent runs a little (no RNG needed for that).
    let jitter = u64::from(std::process::id() % 97) + u64::from(attempt * 13 % 50);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hides_credentials_and_options() {
        assert_eq!(
            display_url("postgres://etl:s3cret@db.example:5433/warehouse?sslmode=require"),
            "db.example:5433/warehouse"
        );
        let c = DbConnection {
            name: "w".into(),
            url: "mysql://u:pw@h/db".into(),
            retries: 0,
        };
        assert!(!format!("{c:?}").contains("pw"));
        assert!(backoff(1) < backoff(3));
        assert!(backoff(30) <= Duration::from_millis(4_200));
    }
}
