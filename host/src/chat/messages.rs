//! `GET/POST /api/chat/sessions/{id}/messages` and
//! `POST /api/chat/sessions/{id}/messages/{message_id}/rating`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::agent;
use super::responder::{self, ReplyStatus, Turn};
use super::{
    MESSAGE_COLUMNS, Message, Session, SessionStatus, load_session, mark_read, message_event,
    messages_after,
};
use crate::analytics::rollup::{self, Day, Reading, Rollup};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Cursor, Page, Tx, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::knowledge::answer::{self, Citation};
use crate::projects::queries as projects;
use crate::realtime::notify;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, post_message))
        .routes(routes!(rate_message))
}

const MAX_CONTENT: usize = 20_000;
/// How much of the conversation the model sees.
const HISTORY_TURNS: i64 = 20;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Only messages after this sequence number (default 0: from the start).
    pub since: Option<i64>,
    /// 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A session's messages in order, from `since`; reading them moves the caller's read
/// position.
#[utoipa::path(get, path = "/api/chat/sessions/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), MessagesQuery),
    responses((status = 200, body = Page<Message>), (status = 404, body = crate::error::Problem)))]
async fn list_messages(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<MessagesQuery>,
) -> AppResult<Json<Page<Message>>> {
    let session = load_session(&state.db, id, auth.id).await?;
    let page = crate::db::PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let after = match page.integer_cursor("seq")? {
        Some(seq) => seq,
        None => q.since.unwrap_or(0).max(0),
    };
    let rows = messages_after(&state.db, session.id, after, i64::MAX, limit + 1).await?;
    let page = Page::from_rows(rows, limit, |m| Cursor {
        sort: "seq".into(),
        value: Some(m.seq.to_string()),
        id: m.id,
    });
    if let Some(last) = page.items.last() {
        mark_read(&state.db, session.id, auth.id, last.seq).await?;
    }
    Ok(Json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// 1–20,000 characters.
    #[schema(min_length = 1, max_length = 20000)]
    pub content: String,
}

/// A user message and the agent's reply to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Exchange {
    pub message: Message,
    /// The agent's reply; `null` when a workflow answers the agent's sessions (202): its
    /// reply comes on the session's socket and in `GET …/messages` once the run ends.
    pub reply: Option<Message>,
    /// The workflow that answers this agent's sessions (`reply: true` on its trigger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
}

/// Sends a message; the agent answers (streamed live to the session's sockets) and both are
/// returned. A provider failure is stored as an agent message with status `error`, notified
/// to the project's owner, and answered 502 with both messages in `results`. When an active
/// workflow answers the agent's sessions, the message is stored and answered 202: the
/// workflow's run posts the reply.
#[utoipa::path(post, path = "/api/chat/sessions/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewMessage,
    responses((status = 201, body = Exchange), (status = 202, body = Exchange,
            description = "A workflow answers: `reply` is null until its run posts it"),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 502, body = crate::error::Problem)))]
async fn post_message(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<NewMessage>,
) -> AppResult<(StatusCode, Json<Exchange>)> {
    let session = load_session(&state.db, id, auth.id).await?;
    let exchange = converse(&state, &session, auth.id, req.content).await?;
    let status = match exchange.reply {
        Some(_) => StatusCode::CREATED,
        None => StatusCode::ACCEPTED,
    };
    Ok((status, Json(exchange)))
}

/// A message sent over the chat socket: the same as `POST …/messages`.
pub async fn post_from_socket(
    state: &AppState,
    session_id: Uuid,
    user_id: Uuid,
    content: String,
) -> AppResult<Exchange> {
    let session = load_session(&state.db, session_id, user_id).await?;
    converse(state, &session, user_id, content).await
}

/// What is being stored: a user's message, or the agent's reply and how it went.
pub(super) enum Entry<'a> {
    User {
        author: Uuid,
        content: &'a str,
    },
    Agent {
        reply: &'a responder::Reply,
        status: &'static str,
        latency_ms: i64,
        model: &'a str,
        citations: &'a [Citation],
        /// Why the provider failed, for a reply with status `error`.
        error: Option<&'a str>,
    },
}

/// Stores a message with the session's next sequence number, adds it to the rollups and the
/// event log in the same transaction, and publishes it.
async fn append(state: &AppState, session: &Session, entry: Entry<'_>) -> AppResult<Message> {
    append_as(state, session, new_id(), entry).await
}

/// [`append`] with the message's id chosen by the caller (a reply keyed by what it answers).
pub(super) async fn append_as(
    state: &AppState,
    session: &Session,
    id: Uuid,
    entry: Entry<'_>,
) -> AppResult<Message> {
    let at = now();
    let day = Day::of(session.agent_id, session.workspace_id, at);
    let variant = session.variant.clone().unwrap_or_default();
    let mut rollup = Rollup::default();
    let topics = match entry {
        Entry::User { .. } => {
            Some(rollup::workspace_topics(&state.db, session.workspace_id).await?)
        }
        Entry::Agent { .. } => None,
    };
    let mut tx = state.db.begin().await?;
    // The row update serialises writers of one session, so numbers follow commit order.
    let (seq,): (i64,) = tx
        .fetch_one(
            "UPDATE chat_sessions SET last_seq = last_seq + 1, last_message_at = $2, updated_at = $2
             WHERE id = $1 RETURNING last_seq",
            args![session.id, at],
        )
        .await?;
    let insert = "INSERT INTO chat_messages (id, session_id, seq, role, author_id, content,
            prompt_tokens, completion_tokens, latency_ms, status, rating, rating_comment,
            sentiment, intent, model, created_at, citations)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, $11, $12, $13, $14, $15)";
    match entry {
        Entry::User { author, content } => {
            let reading = Reading::of(content);
            tx.execute(
                insert,
                args![
                    id,
                    session.id,
                    seq,
                    "user",
                    Some(author),
                    content,
                    0i64,
                    0i64,
                    None::<i64>,
                    "ok",
                    Some(reading.sentiment),
                    Some(reading.intent),
                    None::<String>,
                    at,
                    None::<serde_json::Value>
                ],
            )
            .await?;
            if let Some(topics) = &topics {
                rollup.user_message(
                    day,
                    &variant,
                    content,
                    reading.sentiment,
                    reading.intent,
                    topics,
                );
            }
        }
        Entry::Agent {
            reply,
            status,
            latency_ms,
            model,
            citations,
            ..
        } => {
            tx.execute(
                insert,
                args![
                    id,
                    session.id,
                    seq,
                    "agent",
                    None::<Uuid>,
                    reply.content.as_str(),
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    Some(latency_ms),
                    status,
                    None::<f64>,
                    None::<String>,
                    Some(model),
                    at,
                    (!citations.is_empty()).then(|| serde_json::json!(citations))
                ],
            )
            .await?;
            answer::record_citations(&mut tx, session.workspace_id, citations).await?;
            rollup.agent_reply(
                day,
                &variant,
                status,
                None,
                latency_ms,
                reply.prompt_tokens,
                reply.completion_tokens,
                model,
            );
        }
    }
    rollup.apply(&mut tx).await?;
    let message: Message = tx
        .fetch_one(
            &format!("SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE id = $1"),
            args![id],
        )
        .await?;
    record_message_events(&mut tx, session, &message, &entry).await?;
    state.events.commit(tx).await?;
    crate::analytics::invalidate(state, session.workspace_id).await;
    state
        .bus
        .publish(&format!("chat:{}", session.id), &message_event(&message))
        .await;
    Ok(message)
}

/// `chat.message.created` for a stored message, and `agent.error` for a failed reply.
async fn record_message_events(
    tx: &mut Tx,
    session: &Session,
    message: &Message,
    entry: &Entry<'_>,
) -> AppResult<()> {
    let cause = match entry {
        Entry::User { author, .. } => Cause::user(*author),
        Entry::Agent { .. } => Cause::agent(session.agent_id),
    };
    let subject = Subject::new("chat_message", message.id, Some(session.title.clone()));
    let event = |kind, data| NewEvent {
        workspace_id: session.workspace_id,
        project_id: Some(session.agent_id),
        kind,
        subject: subject.clone(),
        data,
    };
    eventlog::record(
        tx,
        &cause,
        event(
            "chat.message.created",
            json!({
                "session_id": session.id, "project_id": session.agent_id, "message_id": message.id,
                "seq": message.seq, "role": message.role, "content": message.content,
                "status": message.status, "sentiment": message.sentiment, "intent": message.intent,
                "latency_ms": message.latency_ms,
                "latency_seconds": message.latency_ms.map(|ms| ms as f64 / 1000.0),
            }),
        ),
    )
    .await?;
    if let Entry::Agent {
        error: Some(error), ..
    } = entry
    {
        eventlog::record(
            tx,
            &cause,
            event(
                "agent.error",
                json!({"session_id": session.id, "project_id": session.agent_id,
                       "message_id": message.id, "error": error}),
            ),
        )
        .await?;
    }
    Ok(())
}

/// One turn: the user's message, then the agent's reply.
pub async fn converse(
    state: &AppState,
    session: &Session,
    author: Uuid,
    content: String,
) -> AppResult<Exchange> {
    let content = validate_content(&content)?;
    // Every message costs a model call: a user sends at most so many a minute, by HTTP or
    // socket alike.
    state
        .rate_limiter
        .per_minute(
            &format!("chat:{author}"),
            state.config.chat_rate_limit_per_minute,
        )
        .await?;
    if session.status == SessionStatus::Closed {
        return Err(AppError::Conflict(
            "the session is closed; reopen it (PATCH status=active) to continue".into(),
        ));
    }
    let project = projects::load(&state.db, author, session.agent_id).await?;
    let answering = crate::workflows::triggers::answering(&state.db, project.id).await?;
    let message = append(
        state,
        session,
        Entry::User {
            author,
            content: &content,
        },
    )
    .await?;
    state
        .bus
        .publish(
            &format!("chat:{}", session.id),
            &json!({"type": "typing", "session_id": session.id, "agent_id": session.agent_id}),
        )
        .await;
    if let Some(workflow_id) = answering {
        return Ok(Exchange {
            message,
            reply: None,
            workflow_id: Some(workflow_id),
        });
    }
    let turns = history(state, session.id).await?;
    let (tokens, relay) = relay_tokens(state, session.id, message.seq);
    let answered = agent::answer(
        state,
        &project,
        session.variant.as_deref(),
        &turns,
        &content,
        tokens,
    )
    .await?;
    let _ = relay.await;
    let latency_ms = answered.latency_ms;
    match answered.reply {
        Ok(reply) => {
            let status = match reply.status {
                ReplyStatus::Ok => "ok",
                ReplyStatus::Unanswered => "unanswered",
            };
            let stored = append(
                state,
                session,
                Entry::Agent {
                    reply: &reply,
                    status,
                    latency_ms,
                    model: &answered.model,
                    citations: &answered.citations,
                    error: None,
                },
            )
            .await?;
            Ok(Exchange {
                message,
                reply: Some(stored),
                workflow_id: None,
            })
        }
        Err(problem) => {
            let failure = Failure {
                project: &project,
                session,
                message,
                latency_ms,
                model: &answered.model,
            };
            Err(failure.record(state, problem).await?)
        }
    }
}

/// A message's content, trimmed and within bounds.
fn validate_content(content: &str) -> AppResult<String> {
    let content = content.trim();
    if content.is_empty() || content.chars().count() > MAX_CONTENT {
        return Err(AppError::invalid(
            "content",
            format!("must be 1 to {MAX_CONTENT} characters"),
        ));
    }
    Ok(content.to_owned())
}

/// The conversation so far, oldest first, as the model sees it (the latest turns only).
async fn history(state: &AppState, session_id: Uuid) -> AppResult<Vec<Turn>> {
    let latest: Vec<Message> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages
                 WHERE session_id = $1 AND role IN ('user', 'agent') AND status <> 'error'
                 ORDER BY seq DESC LIMIT {HISTORY_TURNS}"
            ),
            args![session_id],
        )
        .await?;
    Ok(latest
        .into_iter()
        .rev()
        .map(|m| Turn {
            role: if m.role == "agent" {
                "assistant"
            } else {
                "user"
            },
            content: m.content,
        })
        .collect())
}

/// A sender for the reply's streamed tokens, and the task that publishes them on the
/// session's channel as they come (it ends when the sender is dropped).
fn relay_tokens(
    state: &AppState,
    session_id: Uuid,
    reply_to: i64,
) -> (
    tokio::sync::mpsc::Sender<String>,
    tokio::task::JoinHandle<()>,
) {
    let (tokens, mut received) = tokio::sync::mpsc::channel::<String>(256);
    let bus = state.bus.clone();
    let relay = tokio::spawn(async move {
        while let Some(delta) = received.recv().await {
            bus.publish(
                &format!("chat:{session_id}"),
                &json!({"type": "token", "session_id": session_id, "reply_to": reply_to, "delta": delta}),
            )
            .await;
        }
    });
    (tokens, relay)
}

/// A provider that failed to answer a user's message.
struct Failure<'a> {
    project: &'a crate::projects::ProjectRow,
    session: &'a Session,
    message: Message,
    latency_ms: i64,
    model: &'a str,
}

impl Failure<'_> {
    /// Stores the failure as an agent message with status `error`, tells the project's owner,
    /// and returns the 502 that carries both messages.
    async fn record(self, state: &AppState, problem: String) -> AppResult<AppError> {
        tracing::warn!(project = %self.project.id, error = %problem, "agent reply failed");
        let failed = responder::Reply {
            content: format!("The agent could not answer: {problem}"),
            prompt_tokens: 0,
            completion_tokens: 0,
            status: ReplyStatus::Ok,
        };
        let stored = append(
            state,
            self.session,
            Entry::Agent {
                reply: &failed,
                status: "error",
                latency_ms: self.latency_ms,
                model: self.model,
                citations: &[],
                error: Some(&problem),
            },
        )
        .await?;
        notify(
            state,
            self.project.owner_id,
            "agent_error",
            json!({"project_id": self.project.id, "session_id": self.session.id, "message_id": stored.id, "error": problem}),
        )
        .await;
        let results = serde_json::to_value(Exchange {
            message: self.message,
            reply: Some(stored),
            workflow_id: None,
        })
        .map_err(anyhow::Error::from)?;
        Ok(AppError::Rejected {
            status: StatusCode::BAD_GATEWAY,
            detail: problem,
            results,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    /// 1 (bad) to 5 (excellent).
    pub rating: i64,
    pub comment: Option<String>,
}

/// Rates an agent reply (any participant; a new rating replaces the old one).
#[utoipa::path(post, path = "/api/chat/sessions/{id}/messages/{message_id}/rating", tag = "chat",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = Rating,
    responses((status = 200, body = Message), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn rate_message(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, message_id)): AppPath<(Uuid, Uuid)>,
    AppJson(req): AppJson<Rating>,
) -> AppResult<Json<Message>> {
    let session = load_session(&state.db, id, auth.id).await?;
    if !(1..=5).contains(&req.rating) {
        return Err(AppError::invalid("rating", "must be 1 to 5"));
    }
    let comment = req
        .comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2_000) {
        return Err(AppError::invalid(
            "comment",
            "must be at most 2000 characters",
        ));
    }
    let mut tx = state.db.begin().await?;
    let target: Option<Message> = tx
        .fetch_optional(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE id = $1 AND session_id = $2"
            ),
            args![message_id, session.id],
        )
        .await?;
    let target = match target {
        None => return Err(AppError::NotFound("message")),
        Some(m) if m.role != "agent" => {
            return Err(AppError::invalid(
                "message_id",
                "only agent replies are rated",
            ));
        }
        Some(m) => m,
    };
    tx.execute(
        "UPDATE chat_messages SET rating = $2, rating_comment = $3 WHERE id = $1",
        args![message_id, req.rating, comment],
    )
    .await?;
    // The reply counts toward the day it was given, with its rating.
    let mut rollup = Rollup::default();
    rollup.rating_changed(
        Day::of(session.agent_id, session.workspace_id, target.created_at),
        session.variant.as_deref().unwrap_or_default(),
        target.status.as_str(),
        target.rating,
        req.rating,
    );
    rollup.apply(&mut tx).await?;
    if let Some(cited) = &target.citations {
        answer::record_rating(&mut tx, &cited.0, target.rating, req.rating).await?;
    }
    let message: Message = tx
        .fetch_one(
            &format!("SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE id = $1"),
            args![message_id],
        )
        .await?;
    eventlog::record(
        &mut tx,
        &Cause::user(auth.id),
        NewEvent {
            workspace_id: session.workspace_id,
            project_id: Some(session.agent_id),
            kind: "chat.message.rated",
            subject: Subject::new("chat_message", message_id, Some(session.title.clone())),
            data: json!({"session_id": session.id, "project_id": session.agent_id,
                         "message_id": message_id, "rating": req.rating}),
        },
    )
    .await?;
    state.events.commit(tx).await?;
    crate::analytics::invalidate(&state, session.workspace_id).await;
    state
        .bus
        .publish(
            &format!("chat:{}", session.id),
            &json!({"type": "rating", "session_id": session.id, "message_id": message_id, "rating": req.rating}),
        )
        .await;
    Ok(Json(message))
}
