//! Large documents are indexed in the background, a batch of chunks a transaction, so that no
//! write holds SQLite's lock for long and logins, chat and other uploads go on meanwhile. The
//! job is queued in the transaction that stores the document's version; it replaces the
//! document's chunks (old ones first, a batch at a time) and stops as soon as a newer version
//! has taken over. Re-run after a crash, it starts again from the beginning.

use serde_json::json;
use uuid::Uuid;

use super::index::{chunks, insert_chunks, text_of};
use super::{FileType, upload};
use crate::args;
use crate::db::Tx;
use crate::error::AppResult;
use crate::infra::jobs::{JobFuture, JobHandler};
use crate::state::AppState;

pub const JOB_KIND: &str = "knowledge.index";

/// Chunks written (or deleted) per transaction.
const BATCH_CHUNKS: usize = 100;

/// Queues the indexing of `version` of a document, inside the transaction that stores it.
pub async fn queue(tx: &mut Tx, document_id: Uuid, version: i64, owner: Uuid) -> AppResult<()> {
    crate::infra::jobs::enqueue(
        tx,
        JOB_KIND,
        owner,
        json!({"document_id": document_id, "version": version}),
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Target {
    workspace_id: Uuid,
    file_type: String,
    content: String,
}

/// Indexes `version` of the document, if it is still the current one.
async fn index(state: &AppState, document_id: Uuid, version: i64) -> AppResult<()> {
    let target: Option<Target> = state
        .db
        .fetch_optional(
            "SELECT d.workspace_id, d.file_type, v.content FROM documents d
             JOIN document_versions v ON v.document_id = d.id AND v.version = d.current_version
             WHERE d.id = $1 AND d.current_version = $2",
            args![document_id, version],
        )
        .await?;
    let Some(target) = target else {
        // Deleted, or a newer version was stored: its own indexing takes over.
        return Ok(());
    };
    let file_type = serde_json::from_value(json!(target.file_type)).unwrap_or(FileType::Txt);
    let pieces = tokio::task::spawn_blocking(move || chunks(&text_of(file_type, &target.content)))
        .await
        .map_err(anyhow::Error::from)?;
    loop {
        let started = std::time::Instant::now();
        if remove_old_chunks(state, document_id).await? == 0 {
            break;
        }
        make_way(state, started.elapsed()).await;
    }
    for (batch, piece) in pieces.chunks(BATCH_CHUNKS).enumerate() {
        let started = std::time::Instant::now();
        let mut tx = state.db.begin().await?;
        if !still_current(&mut tx, document_id, version).await? {
            return Ok(());
        }
        insert_chunks(
            &mut tx,
            document_id,
            target.workspace_id,
            version,
            batch * BATCH_CHUNKS,
            piece,
        )
        .await?;
        tx.commit().await?;
        make_way(state, started.elapsed()).await;
    }
    upload::document_indexed(state, document_id, Ok(())).await
}

/// On SQLite, pauses as long as the batch took (at least 100 ms) before writing the next one: other writers
/// waiting on the one write lock retry on a timer (SQLite's busy handler), and a writer that
/// took the lock again at once would starve them.
async fn make_way(state: &AppState, batch_took: std::time::Duration) {
    if !state.db.is_postgres() {
        tokio::time::sleep(batch_took.max(std::time::Duration::from_millis(100))).await;
    }
}

/// Deletes up to a batch of the document's chunks; how many went.
async fn remove_old_chunks(state: &AppState, document_id: Uuid) -> AppResult<u64> {
    Ok(state
        .db
        .execute(
            &format!(
                "DELETE FROM document_chunks WHERE id IN
                    (SELECT id FROM document_chunks WHERE document_id = $1 LIMIT {BATCH_CHUNKS})"
            ),
            args![document_id],
        )
        .await?)
}

/// Whether `version` is still the document's current one; on PostgreSQL the row stays locked
/// until the batch commits, so a new version cannot slip in between the check and the write.
async fn still_current(tx: &mut Tx, document_id: Uuid, version: i64) -> AppResult<bool> {
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let current: Option<(i64,)> = tx
        .fetch_optional(
            &format!("SELECT current_version FROM documents WHERE id = $1{lock}"),
            args![document_id],
        )
        .await?;
    Ok(current.is_some_and(|(v,)| v == version))
}

fn target_of(payload: &serde_json::Value) -> Result<(Uuid, i64), String> {
    let document_id = payload["document_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or("the job names no document")?;
    let version = payload["version"]
        .as_i64()
        .ok_or("the job names no version")?;
    Ok((document_id, version))
}

/// Runs the indexing jobs.
pub struct IndexJobs(pub AppState);

impl JobHandler for IndexJobs {
    fn run(&self, payload: serde_json::Value) -> JobFuture {
        let state = self.0.clone();
        Box::pin(async move {
            let (document_id, version) = target_of(&payload)?;
            index(&state, document_id, version)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn give_up(&self, payload: serde_json::Value, error: String) -> JobFuture {
        let state = self.0.clone();
        Box::pin(async move {
            let (document_id, _) = target_of(&payload)?;
            upload::document_indexed(&state, document_id, Err(error))
                .await
                .map_err(|e| e.to_string())
        })
    }
}
