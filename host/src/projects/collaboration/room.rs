//! A project's live document on this host: opened from its stored state (made once from the
//! project's text when there is none, so every replica starts from the same document), kept
//! converged with the other replicas through the bus, stored and written back to the project
//! as a revision once edits pause, and closed when its last socket leaves.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use yrs::sync::AwarenessUpdate;
use yrs::sync::protocol::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, GetString, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

use super::super::crud::{self, Edit, MAX_DESCRIPTION, MAX_PROMPT, validate_text};
use super::super::{ProjectRow, queries};
use crate::args;
use crate::db::now;
use crate::error::{AppError, AppResult};
use crate::infra::livedocs::{Holder, LiveDoc};
use crate::precondition::IfMatch;
use crate::state::AppState;

/// The project's long text fields, each a shared text of the document.
pub const LIVE_FIELDS: [&str; 2] = ["system_prompt", "description"];
/// Edits are written back to the project once they pause this long.
pub const QUIET: Duration = Duration::from_secs(2);

/// The bus channel of a project's document.
pub fn channel(project_id: Uuid) -> String {
    format!("collab:{project_id}")
}

/// What goes over the bus: a y-protocol message from one connection, and who sent it.
pub fn bus_message(from: Uuid, user_id: Uuid, message: &Message) -> Value {
    json!({"from": from, "user_id": user_id, "message": STANDARD.encode(message.encode_v1())})
}

/// A bus message read back: (the sending connection, its user, the y-protocol message bytes).
pub fn read_bus_message(payload: &str) -> Option<(Uuid, Uuid, Vec<u8>)> {
    let value: Value = serde_json::from_str(payload).ok()?;
    let from = value["from"].as_str()?.parse().ok()?;
    let user = value["user_id"].as_str()?.parse().ok()?;
    let bytes = STANDARD.decode(value["message"].as_str()?).ok()?;
    Some((from, user, bytes))
}

/// A hold on the project's live document, opening it here if needed.
pub async fn join(state: &AppState, project: &ProjectRow) -> AppResult<Holder> {
    if let Some(holder) = state.live_docs.join(project.id) {
        return Ok(holder);
    }
    let stored = stored_or_initial(state, project).await?;
    let doc = LiveDoc::load(project.id, &stored)?;
    let (holder, new) = state.live_docs.open(doc);
    if new {
        tokio::spawn(keep(state.clone(), holder.0.clone()));
    }
    Ok(holder)
}

/// The stored document, made from the project's text on first use. Of two replicas making it
/// at once, one insert wins and both read the winner, so their documents are one.
async fn stored_or_initial(state: &AppState, project: &ProjectRow) -> AppResult<Vec<u8>> {
    if let Some(state) = stored(state, project.id).await? {
        return Ok(state);
    }
    let doc = Doc::new();
    {
        let mut txn = doc.transact_mut();
        for (field, value) in [
            ("system_prompt", &project.system_prompt),
            ("description", &project.description),
        ] {
            let text = txn.get_or_insert_text(field);
            text.insert(&mut txn, 0, value);
        }
    }
    let initial = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    state
        .db
        .execute(
            "INSERT INTO project_documents (project_id, state, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (project_id) DO NOTHING",
            args![project.id, initial, now()],
        )
        .await?;
    stored(state, project.id)
        .await?
        .ok_or(AppError::NotFound("project"))
}

async fn stored(state: &AppState, project_id: Uuid) -> AppResult<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> = state
        .db
        .fetch_optional(
            "SELECT state FROM project_documents WHERE project_id = $1",
            args![project_id],
        )
        .await?;
    Ok(row.map(|(s,)| s))
}

/// The stored document, locked until `tx` ends (PostgreSQL; SQLite has one writer at a
/// time), so a read-merge-write of it is never overwritten by another replica's.
async fn stored_locked(tx: &mut crate::db::Tx, project_id: Uuid) -> AppResult<Option<Vec<u8>>> {
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let row: Option<(Vec<u8>,)> = tx
        .fetch_optional(
            &format!("SELECT state FROM project_documents WHERE project_id = $1{lock}"),
            args![project_id],
        )
        .await?;
    Ok(row.map(|(s,)| s))
}

/// Applies a y-protocol message that came over the bus (an update or awareness change from
/// any replica; one of this host's own is applied again, which changes nothing). Whether it
/// changed the document's content.
pub fn apply(doc: &LiveDoc, bytes: &[u8]) -> bool {
    let Ok(message) = Message::decode_v1(bytes) else {
        return false;
    };
    let mut awareness = doc.lock();
    match message {
        Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update)) => {
            let Ok(update) = Update::decode_v1(&update) else {
                return false;
            };
            awareness.doc().transact_mut().apply_update(update).is_ok()
        }
        Message::Awareness(update) => {
            let _ = awareness.apply_update(update);
            false
        }
        _ => false,
    }
}

/// The texts of the live fields.
pub fn texts(doc: &LiveDoc) -> Map<String, Value> {
    let awareness = doc.lock();
    let txn = awareness.doc().transact();
    LIVE_FIELDS
        .iter()
        .map(|field| {
            let text = txn
                .get_text(*field)
                .map(|t| t.get_string(&txn))
                .unwrap_or_default();
            ((*field).to_owned(), json!(text))
        })
        .collect()
}

/// Keeps this host's copy of the document: applies what the bus carries, writes edits back
/// once they pause, and closes the document when its last socket has left.
async fn keep(state: AppState, doc: Arc<LiveDoc>) {
    let mut bus = state.bus.subscribe(&channel(doc.key));
    let mut shutdown = state.shutdown.clone();
    // The editor of the last change not yet written back.
    let mut pending: Option<Uuid> = None;
    loop {
        // Registered before the count is read, so a leave in between is not missed.
        let left = doc.left.notified();
        tokio::pin!(left);
        left.as_mut().enable();
        if doc.holders() == 0 {
            if let Some(author) = pending.take() {
                write_back(&state, &doc, author).await;
            }
            // A socket may have joined meanwhile: then the document stays, and so do we.
            if state.live_docs.close_if_idle(doc.key) {
                return;
            }
            continue;
        }
        tokio::select! {
            message = bus.recv() => match message {
                Ok(payload) => {
                    if let Some((_, user, bytes)) = read_bus_message(&payload)
                        && apply(&doc, &bytes)
                    {
                        pending = Some(user);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tokio::time::sleep(QUIET), if pending.is_some() => {
                if let Some(author) = pending.take() {
                    write_back(&state, &doc, author).await;
                }
            }
            _ = &mut left => {}
            _ = shutdown.changed() => break,
        }
    }
    if let Some(author) = pending.take() {
        write_back(&state, &doc, author).await;
    }
}

/// Stores the document (merged with what is stored, so no replica's edits are overwritten)
/// and writes its texts to the project as a revision by `author`, when they differ.
pub async fn write_back(state: &AppState, doc: &LiveDoc, author: Uuid) {
    if let Err(e) = try_write_back(state, doc, author).await {
        tracing::warn!(project = %doc.key, error = %e, "could not write the live document back");
    }
}

async fn try_write_back(state: &AppState, doc: &LiveDoc, author: Uuid) -> AppResult<()> {
    let ours = doc.state();
    let mut tx = state.db.begin().await?;
    let merged = match stored_locked(&mut tx, doc.key).await? {
        Some(theirs) => yrs::merge_updates_v1([theirs.as_slice(), ours.as_slice()])
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        None => ours,
    };
    tx.execute(
        "UPDATE project_documents SET state = $2, updated_at = $3 WHERE project_id = $1",
        args![doc.key, merged, now()],
    )
    .await?;
    let row = queries::load(&mut tx, author, doc.key).await?;
    let mut edits = Map::new();
    for (field, text) in texts(doc) {
        let text = text.as_str().unwrap_or_default();
        let (current, max) = match field.as_str() {
            "system_prompt" => (&row.system_prompt, MAX_PROMPT),
            _ => (&row.description, MAX_DESCRIPTION),
        };
        if text != current {
            edits.insert(field.clone(), json!(validate_text(&field, text, max)?));
        }
    }
    if edits.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    let edit = Edit {
        author,
        edits,
        restored_from: None,
        if_match: IfMatch::Absent,
        from_live_document: true,
    };
    crud::apply(state, tx, &row, edit).await?;
    Ok(())
}

/// The client ids and `field` of each awareness state in an update (what a person is editing).
pub fn awareness_fields(update: &AwarenessUpdate) -> Vec<(ClientID, Option<String>)> {
    update
        .clients
        .iter()
        .map(|(client, entry)| {
            let field = serde_json::from_str::<Value>(&entry.json)
                .ok()
                .and_then(|state| {
                    state
                        .get("field")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            (*client, field)
        })
        .collect()
}

/// Merges a change of live fields made outside the document (a `PUT`, a restore) into the
/// stored document, inside the transaction making the change, so a live session keeps it and
/// no later write-back undoes it: each text becomes the new value by the smallest edit, which
/// merges with concurrent live edits like any other. The update to pass to the open copies
/// (see [`publish_absorbed`]), if a document is stored.
pub async fn absorb(
    tx: &mut crate::db::Tx,
    project_id: Uuid,
    changed: &Map<String, Value>,
) -> AppResult<Option<Vec<u8>>> {
    let live: Vec<(&str, &str)> = LIVE_FIELDS
        .iter()
        .filter_map(|f| Some((*f, changed.get(*f)?.as_str()?)))
        .collect();
    if live.is_empty() {
        return Ok(None);
    }
    let Some(stored) = stored_locked(tx, project_id).await? else {
        return Ok(None);
    };
    let doc = LiveDoc::load(project_id, &stored)?;
    let update = {
        let awareness = doc.lock();
        let mut txn = awareness.doc().transact_mut();
        for (field, new) in live {
            let text = txn.get_or_insert_text(field);
            let old = text.get_string(&txn);
            let (at, removed, inserted) = smallest_edit(&old, new);
            if removed > 0 {
                text.remove_range(&mut txn, at, removed);
            }
            if !inserted.is_empty() {
                text.insert(&mut txn, at, inserted);
            }
        }
        txn.encode_update_v1()
    };
    let merged = yrs::merge_updates_v1([stored.as_slice(), update.as_slice()])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.execute(
        "UPDATE project_documents SET state = $2, updated_at = $3 WHERE project_id = $1",
        args![project_id, merged, now()],
    )
    .await?;
    Ok(Some(update))
}

/// Passes an absorbed change to the open copies of the document (after its commit).
pub async fn publish_absorbed(state: &AppState, project_id: Uuid, author: Uuid, update: Vec<u8>) {
    let message = Message::Sync(SyncMessage::Update(update));
    state
        .bus
        .publish(
            &channel(project_id),
            &bus_message(Uuid::nil(), author, &message),
        )
        .await;
}

/// The smallest edit turning `old` into `new`: (byte offset, bytes removed, text inserted),
/// found by their common prefix and suffix on character boundaries.
fn smallest_edit<'a>(old: &str, new: &'a str) -> (u32, u32, &'a str) {
    let prefix: usize = old
        .chars()
        .zip(new.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let suffix: usize = old[prefix..]
        .chars()
        .rev()
        .zip(new[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let removed = old.len() - prefix - suffix;
    let inserted = &new[prefix..new.len() - suffix];
    (prefix as u32, removed as u32, inserted)
}

#[cfg(test)]
mod tests {
    use super::smallest_edit;

    #[test]
    fn the_smallest_edit_keeps_the_common_ends() {
        assert_eq!(smallest_edit("Be brief.", "Be concise."), (3, 5, "concise"));
        assert_eq!(smallest_edit("abc", "abc"), (3, 0, ""));
        assert_eq!(smallest_edit("", "new"), (0, 0, "new"));
        assert_eq!(smallest_edit("aaa", "aa"), (2, 1, ""));
        assert_eq!(smallest_edit("héllo wörld", "héllo world"), (8, 2, "o"));
    }
}
