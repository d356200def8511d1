//! `/api/chat/*`: multi-tab chat sessions with agents, their messages and ratings,
//! conversation templates, and voice.
//!
//! A session is readable by its participants (its creator and those who joined) while they
//! can still see the agent's project; anyone who can see the project may join.

pub mod agent;
mod messages;
pub mod replies;
pub mod responder;
mod sessions;
mod templates;
mod voice;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

pub use messages::post_from_socket;
pub use sessions::{SessionChange, announce_change, change_in_workspace};

use crate::args;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::projects::queries as projects;
use crate::state::AppState;
use responder::Provider;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(sessions::router())
        .merge(messages::router())
        .merge(templates::router())
        .merge(voice::router())
}

crate::text_enum! {
    pub enum SessionStatus {
        Active = "active",
        Closed = "closed",
        Escalated = "escalated",
    }
}

crate::text_enum! {
    pub enum Priority {
        Low = "low",
        Normal = "normal",
        High = "high",
        Urgent = "urgent",
    }
}

crate::text_enum! {
    /// How an agent reply went; user and system messages are `ok`.
    pub enum MessageStatus {
        /// Answered (or not an agent reply).
        Ok = "ok",
        /// The agent had no answer and gave its fallback.
        Unanswered = "unanswered",
        /// The provider failed.
        Error = "error",
    }
}

/// A chat session as stored, with the caller's read position.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// Who started it.
    pub user_id: Uuid,
    /// The agent (project) that answers.
    pub agent_id: Uuid,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub status: SessionStatus,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    /// The project's `version` when the session started.
    pub config_version: i64,
    /// The A/B variant of the agent's configuration this session uses, if any.
    pub variant: Option<String>,
    pub template_id: Option<Uuid>,
    /// The sequence number of the latest message.
    pub last_seq: i64,
    pub last_message_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last sequence number the caller has read.
    pub last_read_seq: i64,
}

pub const SESSION_COLUMNS: &str = "s.id, s.workspace_id, s.user_id, s.agent_id, s.title, s.status,
    s.priority, s.config_version, s.variant, s.template_id, s.last_seq, s.last_message_at,
    s.created_at, s.updated_at, c.last_read_seq";

/// A chat message.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub session_id: Uuid,
    /// Position in the session, from 1, without gaps.
    pub seq: i64,
    /// user, agent or system.
    pub role: String,
    /// The user who wrote it (none for agent and system messages).
    pub author_id: Option<Uuid>,
    pub content: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// For agent replies: how long the answer took.
    pub latency_ms: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    /// 1–5, given by a participant to an agent reply.
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    /// User messages: sentiment from −1 (negative) to 1 (positive), scored when written.
    pub sentiment: Option<f64>,
    /// User messages: question, complaint, request, greeting, purchase, cancellation,
    /// feedback or statement.
    pub intent: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Agent replies: the knowledge passages the answer used.
    #[schema(value_type = Option<Vec<crate::knowledge::answer::Citation>>)]
    pub citations: Option<sqlx::types::Json<Vec<crate::knowledge::answer::Citation>>>,
}

pub const MESSAGE_COLUMNS: &str = "id, session_id, seq, role, author_id, content, prompt_tokens,
    completion_tokens, latency_ms, status, rating, rating_comment, sentiment, intent, created_at,
    citations";

/// A session the caller takes part in and whose agent they can still see; 404 otherwise.
pub async fn load_session(db: &Db, session_id: Uuid, user_id: Uuid) -> AppResult<Session> {
    let session: Session = db
        .fetch_optional(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM chat_sessions s
                 JOIN chat_participants c ON c.session_id = s.id AND c.user_id = $2
                 WHERE s.id = $1"
            ),
            args![session_id, user_id],
        )
        .await?
        .ok_or(AppError::NotFound("chat session"))?;
    projects::load(db, user_id, session.agent_id)
        .await
        .map_err(|_| AppError::NotFound("chat session"))?;
    Ok(session)
}

/// Messages with `after < seq <= until`, in order, at most `limit`.
pub async fn messages_after(
    db: &Db,
    session_id: Uuid,
    after: i64,
    until: i64,
    limit: i64,
) -> AppResult<Vec<Message>> {
    Ok(db
        .fetch_all(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages
                 WHERE session_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT {limit}"
            ),
            args![session_id, after, until],
        )
        .await?)
}

/// The socket event for a stored message.
pub fn message_event(message: &Message) -> Value {
    json!({"type": "message", "session_id": message.session_id, "seq": message.seq, "message": message})
}

/// Moves the caller's read position forward (never back).
pub async fn mark_read(db: &Db, session_id: Uuid, user_id: Uuid, seq: i64) -> AppResult<()> {
    db.execute(
        "UPDATE chat_participants SET last_read_seq = $3
         WHERE session_id = $1 AND user_id = $2 AND last_read_seq < $3",
        args![session_id, user_id, seq],
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    base_url: String,
    model: String,
    api_key_encrypted: Option<String>,
    stream: bool,
    timeout_ms: i64,
}

/// The provider that answers for `project_id`: the project's own, else the instance's,
/// else none (the fallback message).
pub async fn provider_for(state: &AppState, project_id: Uuid) -> AppResult<Provider> {
    let row: Option<ProviderRow> = state
        .db
        .fetch_optional(
            "SELECT base_url, model, api_key_encrypted, stream, timeout_ms
             FROM project_providers WHERE project_id = $1",
            args![project_id],
        )
        .await?;
    if let Some(r) = row {
        let api_key = match r.api_key_encrypted {
            Some(sealed) => Some(state.secrets.decrypt(&sealed)?),
            None => None,
        };
        return Ok(Provider::OpenAiCompatible {
            base_url: r.base_url,
            model: r.model,
            api_key,
            stream: r.stream,
            timeout: Duration::from_millis(r.timeout_ms.max(1) as u64),
        });
    }
    let c = &state.config;
    Ok(match &c.llm_base_url {
        Some(base_url) => Provider::OpenAiCompatible {
            base_url: base_url.clone(),
            model: c.llm_model.clone(),
            api_key: c.llm_api_key.as_ref().map(|k| k.0.clone()),
            stream: true,
            timeout: Duration::from_secs(c.llm_timeout_secs),
        },
        None => Provider::Fallback,
    })
}
