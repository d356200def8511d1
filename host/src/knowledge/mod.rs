//! `/api/knowledge/*`: the knowledge hub — documents of a workspace, optionally attached to
//! agents, their versions, and full-text search over the chunks of each current version.
//! Workspace members read and add documents; owners, admins and a document's author change
//! and delete it.

pub mod analytics;
pub mod answer;
mod auto_tag;
mod documents;
mod index;
pub mod indexing;
pub mod search;
pub mod upload;
mod versions;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::access::Role;
use crate::args;
use crate::db::{Exec, Tx};
use crate::error::{AppError, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(documents::router())
        .merge(versions::router())
        .merge(search::router())
        .merge(analytics::router())
        .merge(upload::router())
        .merge(auto_tag::router())
}

/// The formats whose text Nova reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Txt,
    Md,
    Html,
    Csv,
    Json,
    /// Uploaded only: the stored content is the text extracted from the PDF.
    Pdf,
    /// Uploaded only: the stored content is the text extracted from the document.
    Docx,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Txt => "txt",
            FileType::Md => "md",
            FileType::Html => "html",
            FileType::Csv => "csv",
            FileType::Json => "json",
            FileType::Pdf => "pdf",
            FileType::Docx => "docx",
        }
    }
}

/// A document as stored, with the caller's role in its workspace.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Document {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub title: String,
    #[schema(value_type = FileType)]
    pub file_type: String,
    pub category: String,
    #[schema(value_type = Vec<String>)]
    pub tags: SqlJson<Vec<String>>,
    /// The content version the search index and agents use.
    pub current_version: i64,
    /// Increases with every change (title, category, tags, agents or content): the `ETag`,
    /// and what `PUT` takes as `version` or `If-Match` to refuse lost updates.
    pub version: i64,
    /// SHA-256 of the current version's content.
    pub sha256: String,
    pub size_bytes: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in the document's workspace.
    #[schema(value_type = Role)]
    pub role: String,
}

pub const DOCUMENT_COLUMNS: &str = "d.id, d.workspace_id, d.title, d.file_type, d.category,
    d.tags, d.current_version, d.version, d.sha256, d.size_bytes, d.created_by, d.created_at, d.updated_at,
    m.role";

/// A document the caller may read (a member of its workspace); 404 otherwise.
pub async fn load<'a>(ex: impl Into<Exec<'a>>, caller: Uuid, id: Uuid) -> AppResult<Document> {
    ex.into()
        .fetch_optional(
            &format!(
                "SELECT {DOCUMENT_COLUMNS} FROM documents d
                 JOIN workspace_members m ON m.workspace_id = d.workspace_id AND m.user_id = $2
                 WHERE d.id = $1"
            ),
            args![id, caller],
        )
        .await?
        .ok_or(AppError::NotFound("document"))
}

impl Document {
    /// Owners, admins and the author may change or delete it.
    pub fn require_editor(&self, caller: Uuid) -> AppResult<()> {
        let admin = Role::parse(&self.role).is_some_and(|r| r >= Role::Admin);
        if admin || self.created_by == Some(caller) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "only the author or a workspace admin may change this document",
            ))
        }
    }
}

/// The hex SHA-256 of text.
pub fn sha256(text: &str) -> String {
    crate::infra::hashing::hash_bytes(text.as_bytes())
}

/// Records a `knowledge.document.*` event about a document, inside the transaction making the
/// change; `extra` adds to its data.
pub async fn record_event(
    tx: &mut Tx,
    actor: Uuid,
    kind: &'static str,
    (workspace_id, document_id, title): (Uuid, Uuid, &str),
    extra: serde_json::Value,
) -> AppResult<()> {
    eventlog::record(
        tx,
        &Cause::user(actor),
        NewEvent {
            workspace_id,
            project_id: None,
            kind,
            subject: Subject::new("document", document_id, Some(title.to_owned())),
            data: eventlog::merged(
                serde_json::json!({"document_id": document_id, "title": title}),
                extra,
            ),
        },
    )
    .await?;
    Ok(())
}
