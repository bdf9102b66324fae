//! Where watermarks are kept: the local state folder (default), a PostgreSQL schema, or an
//! object-store URL (`state: { url: ... }`), because CI runners lose their disks.
//!
//! Every backend saves a pipeline's watermarks as one unit (a file rename, one transaction,
//! one object PUT), so a reader sees the old set or the new one. The lock, the commit journal
//! and run records stay in the local state folder; with a Postgres backend the run also
//! holds an advisory lock there, so runs on different machines cannot overlap.

use std::path::PathBuf;

use datafusion::prelude::SessionContext;
use object_store::{ObjectStoreExt, PutPayload};

use super::watermark::{Mark, Watermarks};
use crate::db::pg::{PgSession, PgTarget};
use crate::db::{DbConnection, DbError};

/// The schema holding etl's tables in a Postgres state backend (and beside Postgres sinks).
pub const PG_STATE_SCHEMA: &str = "etl_state";

/// A state backend.
#[derive(Debug, Clone)]
pub enum StateStore {
    /// `<state dir>/pipelines/<key>/watermarks.json`.
    Local(PathBuf),
    /// Table `etl_state.watermarks` in a Postgres database.
    Postgres(Box<PgTarget>),
    /// `<url>/pipelines/<key>/watermarks.json` in an object store.
    Object(String),
}

/// Watermarks could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A local or object-store file.
    #[error("state at {place}: {reason}")]
    Io {
        /// The file or URL (secrets masked when printed).
        place: String,
        /// Why.
        reason: String,
    },
    /// The Postgres backend.
    #[error("state database: {0}")]
    Db(#[from] DbError),
    /// Another run holds the pipeline's advisory lock in the state database.
    #[error("another run of pipeline `{0}` holds its lock in the state database")]
    Locked(String),
}

impl StateStore {
    /// The backend a pipeline's `state:` names: a URL (postgres, or an object store), or the
    /// local folder.
    pub fn new(state_dir: &std::path::Path, url: Option<&str>) -> Result<Self, StateError> {
        match url {
            None => Ok(Self::Local(state_dir.to_path_buf())),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                let conn = DbConnection {
                    name: "state".into(),
                    url: u.to_string(),
                    retries: crate::db::DEFAULT_RETRIES,
                };
                Ok(Self::Postgres(Box::new(PgTarget::new(conn)?)))
            }
            Some(u) => Ok(Self::Object(u.trim_end_matches('/').to_string())),
        }
    }

    /// Where the watermarks are, for `etl state` (no credentials).
    pub fn describe(&self, key: &str) -> String {
        match self {
            Self::Local(dir) => local_file(dir, key).display().to_string(),
            Self::Postgres(t) => format!("{}.watermarks at {}", PG_STATE_SCHEMA, t.display()),
            Self::Object(url) => format!("{url}/pipelines/{key}/watermarks.json"),
        }
    }

    /// Reads a pipeline's watermarks (none yet: empty).
    pub async fn load(&self, ctx: &SessionContext, key: &str) -> Result<Watermarks, StateError> {
        match self {
            Self::Local(dir) => {
                let path = local_file(dir, key);
                match std::fs::read(&path) {
                    Ok(bytes) => parse(&bytes, &path.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Watermarks::default()),
                    Err(e) => Err(io(&path.display().to_string(), e)),
                }
            }
            Self::Postgres(t) => {
                let s = t.connect().await?;
                ensure_tables(t, &s).await?;
                let rows = s
                    .client
                    .query(
                        &format!("SELECT source, sink, mark::text, run_id, updated_at::text FROM {PG_STATE_SCHEMA}.watermarks WHERE pipeline = $1"),
                        &[&key],
                    )
                    .await
                    .map_err(|e| t.query_error(&e))?;
                let mut w = Watermarks::default();
                for r in rows {
                    let value =
                        serde_json::from_str(r.get::<_, &str>(2)).map_err(|e| StateError::Io {
                            place: self.describe(key),
                            reason: format!("a watermark that does not parse: {e}"),
                        })?;
                    w.set(
                        r.get(0),
                        r.get(1),
                        Mark {
                            value,
                            run_id: r.get(3),
                            updated_at: r.get(4),
                        },
                    );
                }
                Ok(w)
            }
            Self::Object(url) => {
                let file = object_file(url, key);
                crate::store::ensure_store(ctx, &file, None).map_err(|e| io(&file, e))?;
                let Some((store, path)) = crate::sink::objstore::store_of(ctx, &file) else {
                    return Err(io(&file, "no object store for this URL"));
                };
                match store.get(&path).await {
                    Ok(r) => parse(&r.bytes().await.map_err(|e| io(&file, e))?, &file),
                    Err(object_store::Error::NotFound { .. }) => Ok(Watermarks::default()),
                    Err(e) => Err(io(&file, e)),
                }
            }
        }
    }

    /// Saves a pipeline's watermarks, replacing the old set as one unit.
    pub async fn save(
        &self,
        ctx: &SessionContext,
        key: &str,
        w: &Watermarks,
    ) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(w).unwrap_or_default();
        match self {
            Self::Local(dir) => {
                let path = local_file(dir, key);
                crate::state::write_atomic(&path, &bytes)
                    .map_err(|e| io(&path.display().to_string(), e))
            }
            Self::Postgres(t) => {
                let mut s = t.connect().await?;
                ensure_tables(t, &s).await?;
                let tx = s
                    .client
                    .transaction()
                    .await
                    .map_err(|e| t.query_error(&e))?;
                tx.execute(
                    &format!("DELETE FROM {PG_STATE_SCHEMA}.watermarks WHERE pipeline = $1"),
                    &[&key],
                )
                .await
                .map_err(|e| t.query_error(&e))?;
                for (source, sinks) in &w.sources {
                    for (sink, m) in sinks {
                        let mark = serde_json::to_string(&m.value).unwrap_or_default();
                        tx.execute(
                            &format!("INSERT INTO {PG_STATE_SCHEMA}.watermarks (pipeline, source, sink, mark, run_id) VALUES ($1, $2, $3, $4::text::jsonb, $5)"),
                            &[&key, source, sink, &mark, &m.run_id],
                        )
                        .await
                        .map_err(|e| t.query_error(&e))?;
                    }
                }
                tx.commit().await.map_err(|e| t.query_error(&e))?;
                Ok(())
            }
            Self::Object(url) => {
                let file = object_file(url, key);
                crate::store::ensure_store(ctx, &file, None).map_err(|e| io(&file, e))?;
                let Some((store, path)) = crate::sink::objstore::store_of(ctx, &file) else {
                    return Err(io(&file, "no object store for this URL"));
                };
                store
                    .put(&path, PutPayload::from(bytes))
                    .await
                    .map(|_| ())
                    .map_err(|e| io(&file, e))
            }
        }
    }

    /// With a Postgres backend, takes the pipeline's advisory lock for the run (held by the
    /// returned session until it is dropped). Other backends: nothing to take.
    pub async fn lock(&self, key: &str) -> Result<Option<PgSession>, StateError> {
        let Self::Postgres(t) = self else {
            return Ok(None);
        };
        let s = t.connect().await?;
        let got: bool = s
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 7470))",
                &[&key],
            )
            .await
            .map_err(|e| t.query_error(&e))?
            .get(0);
        if got {
            Ok(Some(s))
        } else {
            Err(StateError::Locked(key.to_string()))
        }
    }
}

fn local_file(dir: &std::path::Path, key: &str) -> PathBuf {
    super::pipeline_dir_for_key(dir, key).join("watermarks.json")
}

fn object_file(url: &str, key: &str) -> String {
    format!("{url}/pipelines/{key}/watermarks.json")
}

fn io(place: &str, e: impl ToString) -> StateError {
    StateError::Io {
        place: place.to_string(),
        reason: e.to_string(),
    }
}

fn parse(bytes: &[u8], place: &str) -> Result<Watermarks, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Io {
        place: place.to_string(),
        reason: format!("the watermarks file does not parse ({e}); fix it or set the watermarks again with `etl state --set`"),
    })
}

async fn ensure_tables(t: &PgTarget, s: &PgSession) -> Result<(), StateError> {
    s.client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {PG_STATE_SCHEMA}; \
             CREATE TABLE IF NOT EXISTS {PG_STATE_SCHEMA}.watermarks ( \
               pipeline text NOT NULL, source text NOT NULL, sink text NOT NULL, \
               mark jsonb NOT NULL, run_id text NOT NULL, \
               updated_at timestamptz NOT NULL DEFAULT now(), \
               PRIMARY KEY (pipeline, source, sink))"
        ))
        .await
        .map_err(|e| StateError::Db(t.query_error(&e)))
}
