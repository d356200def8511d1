//! Durable background jobs: a `jobs` table, claimed one at a time under a lease (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, under SQLite's write lock otherwise). A job whose
//! worker died (a crash, a kill -9) is claimed again by any host once its lease
//! (`NOVA_JOB_LEASE_SECS`) runs out.
//!
//! The queue knows no section: each job kind registers its [`JobHandler`] at start-up.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::args;
use crate::db::{Db, Tx, new_id, now};
use crate::error::AppResult;

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

/// What a handler returns: an error is retried, and after the last attempt given up.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What runs the jobs of one kind.
pub trait JobHandler: Send + Sync + 'static {
    /// Does the job described by `payload`. It may run again after a crash, so it must be
    /// idempotent.
    fn run(&self, payload: serde_json::Value) -> JobFuture;
    /// Records a final failure where the job's user looks (an upload's file, an export), so
    /// that nothing waits for it for ever.
    fn give_up(&self, payload: serde_json::Value, error: String) -> JobFuture;
}

/// The job kinds this host runs, registered at start-up.
#[derive(Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
}

impl Registry {
    pub fn register(&mut self, kind: &'static str, handler: impl JobHandler) {
        self.handlers.insert(kind, Arc::new(handler));
    }
}

/// How the worker claims jobs.
pub struct Worker {
    pub db: Db,
    pub lease: chrono::Duration,
    pub registry: Registry,
    /// Turns true when the host shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

#[derive(sqlx::FromRow)]
struct Job {
    id: Uuid,
    kind: String,
    payload: sqlx::types::Json<serde_json::Value>,
    attempts: i64,
}

async fn claim(worker: &Worker) -> AppResult<Option<Job>> {
    let skip_locked = if worker.db.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let mut tx = worker.db.begin().await?;
    let job: Option<Job> = tx
        .fetch_optional(
            &format!(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $1, updated_at = $2
                 WHERE id = (SELECT id FROM jobs
                    WHERE status = 'queued' OR (status = 'running' AND locked_until < $3)
                    ORDER BY created_at LIMIT 1{skip_locked})
                 RETURNING id, kind, payload, attempts"
            ),
            args![now() + worker.lease, now(), now()],
        )
        .await?;
    tx.commit().await?;
    Ok(job)
}

async fn finish(worker: &Worker, job: &Job, outcome: Result<(), String>) -> AppResult<()> {
    let (status, error) = match outcome {
        Ok(()) => ("done", None),
        Err(e) if job.attempts < MAX_ATTEMPTS => {
            tracing::warn!(job = %job.id, error = %e, "job failed; it will be retried");
            ("queued", Some(e))
        }
        Err(e) => {
            tracing::error!(job = %job.id, error = %e, "job failed for good");
            if let Some(handler) = worker.registry.handlers.get(job.kind.as_str())
                && let Err(recording) = handler.give_up(job.payload.0.clone(), e.clone()).await
            {
                tracing::error!(job = %job.id, error = %recording, "could not record a job's failure");
            }
            ("failed", Some(e))
        }
    };
    worker
        .db
        .execute(
            "UPDATE jobs SET status = $2, last_error = $3, locked_until = NULL, updated_at = $4 WHERE id = $1",
            args![job.id, status, error, now()],
        )
        .await?;
    Ok(())
}

async fn run(worker: &Worker, job: &Job) -> Result<(), String> {
    match worker.registry.handlers.get(job.kind.as_str()) {
        Some(handler) => handler.run(job.payload.0.clone()).await,
        None => Err(format!("unknown job kind `{}`", job.kind)),
    }
}

/// Runs jobs until the host shuts down.
pub fn spawn_worker(worker: Worker) {
    tokio::spawn(async move {
        let mut shutdown = worker.shutdown.clone();
        loop {
            match claim(&worker).await {
                Ok(Some(job)) => {
                    let outcome = run(&worker, &job).await;
                    if let Err(e) = finish(&worker, &job, outcome).await {
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
