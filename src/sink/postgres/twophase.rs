//! Finishing a run's database transactions: the commit point's `COMMIT`, and two-phase
//! commit (`PREPARE TRANSACTION`, then `COMMIT PREPARED` or `ROLLBACK PREPARED`) for the
//! other connections. Recovery uses the same functions with no live session.

use std::sync::Arc;

use super::records::last_run;
use super::{PgGroup, db_err, target_of};
use crate::db::pg::{PgSession, PgTarget};
use crate::sink::SinkError;
use crate::sink::commit::CommitCx;

/// The id of a connection's prepared transaction in a run.
pub fn gid_for(cx: &CommitCx<'_>, connection: &str) -> String {
    let key = crate::state::key(&cx.pipeline.name);
    format!(
        "etl_{}_{}",
        crate::state::short_hash(&format!("{key}/{connection}")),
        cx.run_id
    )
}

/// `PREPARE TRANSACTION` of a connection's open transaction (two-phase commit).
pub async fn prepare(cx: &CommitCx<'_>, connection: &str, gid: &str) -> Result<(), SinkError> {
    let group: Arc<PgGroup> = cx
        .shared
        .get(&format!("postgres:{connection}"))
        .await
        .ok_or_else(|| SinkError::Db {
            name: connection.to_string(),
            reason: "no open transaction to prepare".into(),
        })?;
    let guard = group.session().lock().await;
    let Some(s) = guard.as_ref() else {
        return Err(SinkError::Db {
            name: connection.to_string(),
            reason: "the transaction is closed".into(),
        });
    };
    s.client
        .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
        .await
        .map_err(|e| {
            let mut reason = group.target().query_error(&e).to_string();
            if e.code().map(|c| c.code()) == Some("55000") {
                reason = format!(
                    "{reason}: sinks on more than one PostgreSQL connection commit together with two-phase commit, which this server has disabled (set max_prepared_transactions > 0), or write them from separate pipelines"
                );
            }
            SinkError::Db { name: connection.to_string(), reason }
        })?;
    Ok(())
}

async fn session_for(
    cx: &CommitCx<'_>,
    connection: &str,
) -> Result<(PgTarget, PgSession), SinkError> {
    let t = target_of(cx.pipeline, connection, connection)?;
    let s = t.connect().await.map_err(|e| db_err(connection, e))?;
    Ok((t, s))
}

async fn prepared_exists(t: &PgTarget, s: &PgSession, gid: &str) -> Result<bool, SinkError> {
    Ok(s.client
        .query_opt("SELECT 1 FROM pg_prepared_xacts WHERE gid = $1", &[&gid])
        .await
        .map_err(|e| db_err(gid, t.query_error(&e)))?
        .is_some())
}

/// Commits a connection's transaction: the open one (the commit point), or a prepared one.
pub async fn commit(
    cx: &CommitCx<'_>,
    connection: &str,
    gid: Option<&str>,
) -> Result<(), SinkError> {
    let live: Option<Arc<PgGroup>> = cx.shared.get(&format!("postgres:{connection}")).await;
    match gid {
        None => {
            let Some(group) = live else {
                return Err(SinkError::Db {
                    name: connection.to_string(),
                    reason: "the transaction of an interrupted run cannot be finished (it was not prepared); roll the run back".into(),
                });
            };
            let mut guard = group.session().lock().await;
            let s = guard.take().ok_or_else(|| SinkError::Db {
                name: connection.to_string(),
                reason: "the transaction is closed".into(),
            })?;
            s.client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| db_err(connection, group.target().query_error(&e)))
        }
        Some(gid) => {
            let (t, s) = session_for(cx, connection).await?;
            if prepared_exists(&t, &s, gid).await? {
                s.client
                    .batch_execute(&format!("COMMIT PREPARED '{gid}'"))
                    .await
                    .map_err(|e| db_err(connection, t.query_error(&e)))?;
            }
            Ok(())
        }
    }
}

/// Rolls a connection's transaction back.
pub async fn roll_back(
    cx: &CommitCx<'_>,
    connection: &str,
    gid: Option<&str>,
) -> Result<(), SinkError> {
    if let Some(group) = cx
        .shared
        .get::<PgGroup>(&format!("postgres:{connection}"))
        .await
    {
        let mut guard = group.session().lock().await;
        if let Some(s) = guard.take() {
            let _ = s.client.batch_execute("ROLLBACK").await;
        }
    }
    if let Some(gid) = gid {
        let (t, s) = session_for(cx, connection).await?;
        if prepared_exists(&t, &s, gid).await? {
            s.client
                .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
                .await
                .map_err(|e| db_err(connection, t.query_error(&e)))?;
        }
    }
    Ok(())
}

/// True when the run of `cx` committed `sink` on this connection.
pub async fn is_committed(
    cx: &CommitCx<'_>,
    connection: &str,
    sink: &str,
) -> Result<bool, SinkError> {
    let (t, s) = session_for(cx, connection).await?;
    Ok(
        last_run(&t, &s, &crate::state::key(&cx.pipeline.name), sink)
            .await?
            .as_deref()
            == Some(cx.run_id),
    )
}
