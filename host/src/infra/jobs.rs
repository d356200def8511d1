//! Durable background jobs: a `jobs` table, claimed one at a time under a lease (with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, under SQLite's write lock otherwise) that the
//! worker renews while the job runs. A job whose worker died (a crash, a kill -9) is claimed
//! again by any host once its lease (`NOVA_JOB_LEASE_SECS`) runs out; each claim counts as an
//! attempt, so a job that keeps killing its worker fails for good after three. A worker
//! records an outcome only while the job still carries its claim.
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

/// Adds a job that `owner` started, inside the caller's transaction: it runs only if that
/// commits.
pub async fn enqueue(
    tx: &mut Tx,
    kind: &str,
    owner: Uuid,
    payload: serde_json::Value,
) -> AppResult<Uuid> {
    let id = new_id();
    tx.execute(
        "INSERT INTO jobs (id, kind, payload, status, attempts, created_at, updated_at, owner_id, turn)
         VALUES ($1, $2, $3, 'queued', 0, $4, $4, $5,
            (SELECT COUNT(*) FROM jobs WHERE owner_id = $5 AND status IN ('queued', 'running')))",
        args![id, kind, payload, now(), owner],
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
    /// This worker's claim: the job is its own while the row still carries it.
    claim: Uuid,
}

/// Takes the job of the lowest turn, oldest first, that is waiting or whose worker's lease
/// ran out (it crashed or was killed) while it has attempts left.
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
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $1,
                    updated_at = $2, claim = $3
                 WHERE id = (SELECT id FROM jobs
                    WHERE status = 'queued'
                       OR (status = 'running' AND locked_until < $2 AND attempts < $4)
                    ORDER BY turn, created_at LIMIT 1{skip_locked})
                 RETURNING id, kind, payload, attempts, claim"
            ),
            args![now() + worker.lease, now(), new_id(), MAX_ATTEMPTS],
        )
        .await?;
    tx.commit().await?;
    Ok(job)
}

/// Fails for good the jobs whose worker died during each of their attempts: a job that
/// crashes its host must not loop across restarts and replicas.
async fn bury_crashed(worker: &Worker) -> AppResult<()> {
    let crashed: Vec<Job> = worker
        .db
        .fetch_all(
            "UPDATE jobs SET status = 'failed', locked_until = NULL, updated_at = $1,
                last_error = 'its worker stopped during every attempt (a crash or a kill)'
             WHERE status = 'running' AND locked_until < $1 AND attempts >= $2
             RETURNING id, kind, payload, attempts, claim",
            args![now(), MAX_ATTEMPTS],
        )
        .await?;
    for job in crashed {
        tracing::error!(job = %job.id, "job failed for good: its worker stopped during every attempt");
        give_up(worker, &job, "its worker stopped during every attempt").await;
    }
    Ok(())
}

async fn give_up(worker: &Worker, job: &Job, error: &str) {
    if let Some(handler) = worker.registry.handlers.get(job.kind.as_str())
        && let Err(recording) = handler
            .give_up(job.payload.0.clone(), error.to_owned())
            .await
    {
        tracing::error!(job = %job.id, error = %recording, "could not record a job's failure");
    }
}

/// Records the outcome, if the job is still this worker's (another may have taken it up
/// after this worker's lease ran out).
async fn finish(worker: &Worker, job: &Job, outcome: Result<(), String>) -> AppResult<()> {
    let (status, error) = match &outcome {
        Ok(()) => ("done", None),
        Err(e) if job.attempts < MAX_ATTEMPTS => ("queued", Some(e.clone())),
        Err(e) => ("failed", Some(e.clone())),
    };
    let recorded = worker
        .db
        .execute(
            "UPDATE jobs SET status = $2, last_error = $3, locked_until = NULL, updated_at = $4
             WHERE id = $1 AND claim = $5",
            args![job.id, status, error.clone(), now(), job.claim],
        )
        .await?;
    if recorded == 0 {
        tracing::warn!(job = %job.id, "a job's lease was lost before it finished: its outcome is left to the worker that took it");
        return Ok(());
    }
    match (status, error) {
        ("queued", Some(e)) => {
            tracing::warn!(job = %job.id, error = %e, "job failed; it will be retried");
        }
        ("failed", Some(e)) => {
            tracing::error!(job = %job.id, error = %e, "job failed for good");
            give_up(worker, job, &e).await;
        }
        _ => {}
    }
    Ok(())
}

/// Runs the job's handler, renewing the lease while it works.
async fn run(worker: &Worker, job: &Job) -> Result<(), String> {
    let Some(handler) = worker.registry.handlers.get(job.kind.as_str()) else {
        return Err(format!("unknown job kind `{}`", job.kind));
    };
    let every = (worker.lease / 3)
        .to_std()
        .unwrap_or(Duration::from_secs(10))
        .max(Duration::from_millis(100));
    let renew = async {
        loop {
            tokio::time::sleep(every).await;
            let renewed = worker
                .db
                .execute(
                    "UPDATE jobs SET locked_until = $3 WHERE id = $1 AND claim = $2",
                    args![job.id, job.claim, now() + worker.lease],
                )
                .await;
            if let Err(e) = renewed {
                tracing::warn!(job = %job.id, error = %e, "could not renew a job's lease");
            }
        }
    };
    tokio::select! {
        outcome = handler.run(job.payload.0.clone()) => outcome,
        never = renew => never,
    }
}

/// Runs `count` workers, each taking one job at a time, until the host shuts down.
pub fn spawn_workers(worker: Worker, count: u32) {
    let worker = Arc::new(worker);
    for _ in 0..count {
        spawn_worker(worker.clone());
    }
}

fn spawn_worker(worker: Arc<Worker>) {
    tokio::spawn(async move {
        let mut shutdown = worker.shutdown.clone();
        loop {
            if let Err(e) = bury_crashed(&worker).await {
                tracing::warn!(error = %e, "could not check for crashed jobs");
            }
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
