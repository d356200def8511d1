//! Durable background jobs: a `jobs` table, claimed one at a time under a lease (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, under SQLite's write lock otherwise). A job whose
//! worker died (a crash, a kill -9) is claimed again by any host once its lease
//! (`NOVA_JOB_LEASE_SECS`) runs out.

use std::time::Duration;

use uuid::Uuid;

use crate::args;
use crate::db::{Tx, new_id, now};
use crate::error::AppResult;
use crate::state::AppState;

const MAX_ATTEMPTS: i64 = 3;

/// Adds a job inside the caller's transaction: it runs only if that commits.
pub async fn enqueue(tx: &mut Tx, kind: &str, payload: serde_json::Value) -> AppResult<Uuid> {
    let id = new_id();
    tx.execute(
        "INSERT INTO jobs (id, kind, payload, status, attempts, created_at, updated_at)
         VALUES ($1, $2, $3, 'queued', 0, $4, $4)",
        args![id, kind, payload, now()],
    )
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct Job {
    id: Uuid,
    kind: String,
    payload: sqlx::types::Json<serde_json::Value>,
    attempts: i64,
}

async fn claim(state: &AppState) -> AppResult<Option<Job>> {
    let skip_locked = if state.db.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let mut tx = state.db.begin().await?;
    let job: Option<Job> = tx
        .fetch_optional(
            &format!(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $1, updated_at = $2
                 WHERE id = (SELECT id FROM jobs
                    WHERE status = 'queued' OR (status = 'running' AND locked_until < $3)
                    ORDER BY created_at LIMIT 1{skip_locked})
                 RETURNING id, kind, payload, attempts"
            ),
            args![
                now() + chrono::Duration::seconds(state.config.job_lease_secs),
                now(),
                now()
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(job)
}

async fn finish(state: &AppState, job: &Job, outcome: Result<(), String>) -> AppResult<()> {
    let (status, error) = match outcome {
        Ok(()) => ("done", None),
        Err(e) if job.attempts < MAX_ATTEMPTS => {
            tracing::warn!(job = %job.id, error = %e, "job failed; it will be retried");
            ("queued", Some(e))
        }
        Err(e) => {
            tracing::error!(job = %job.id, error = %e, "job failed for good");
            give_up(state, job, &e).await;
            ("failed", Some(e))
        }
    };
    state
        .db
        .execute(
            "UPDATE jobs SET status = $2, last_error = $3, locked_until = NULL, updated_at = $4 WHERE id = $1",
            args![job.id, status, error, now()],
        )
        .await?;
    Ok(())
}

/// Records a job's final failure where its user looks (the upload's file, the export), so
/// that nothing waits for it for ever.
async fn give_up(state: &AppState, job: &Job, error: &str) {
    let recorded = match job.kind.as_str() {
        crate::knowledge::upload::JOB_KIND => {
            crate::knowledge::upload::give_up(state, &job.payload.0, error).await
        }
        crate::analytics::export::JOB_KIND => {
            crate::analytics::export::give_up(state, &job.payload.0, error).await
        }
        _ => Ok(()),
    };
    if let Err(e) = recorded {
        tracing::error!(job = %job.id, error = %e, "could not record a job's failure");
    }
}

async fn run(state: &AppState, job: &Job) -> Result<(), String> {
    match job.kind.as_str() {
        crate::knowledge::upload::JOB_KIND => {
            crate::knowledge::upload::process(state, &job.payload.0).await
        }
        crate::analytics::export::JOB_KIND => {
            crate::analytics::export::process(state, &job.payload.0).await
        }
        other => Err(format!("unknown job kind `{other}`")),
    }
}

/// Runs jobs until the host shuts down.
pub fn spawn_worker(state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            match claim(&state).await {
                Ok(Some(job)) => {
                    let outcome = run(&state, &job).await;
                    if let Err(e) = finish(&state, &job, outcome).await {
                        tracing::error!(error = %e, "could not record a job's outcome");
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not claim a job"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}
