//! `POST /api/chat/sessions`, `GET/PATCH /api/chat/sessions/{id}`,
//! `GET /api/chat/sessions/active`, `POST /api/chat/sessions/{id}/join`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{
    MESSAGE_COLUMNS, Message, Priority, SESSION_COLUMNS, Session, SessionStatus, load_session,
    messages,
};
use crate::access::{Archived, visible_projects};
use crate::analytics::rollup::{Day, Rollup};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Cursor, Page, PageQuery, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::projects::queries as projects;
use crate::realtime::{SocketTarget, SocketTicket, issue_ticket, notify};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(active_sessions))
        .routes(routes!(get_session, update_session))
        .routes(routes!(join_session))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The agent (project) to talk to; the caller must be able to see it. `project_id` is
    /// accepted as an alias.
    #[serde(alias = "project_id")]
    pub agent_id: Uuid,
    /// A conversation template: its text is sent as the first message.
    pub template_id: Option<Uuid>,
    /// 1–200 characters; defaults to the template's title, or "New conversation".
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub priority: Option<Priority>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSession {
    #[serde(flatten)]
    pub session: Session,
    /// The template's opening message and the agent's reply, when a template was used.
    pub messages: Vec<Message>,
}

#[derive(sqlx::FromRow)]
struct TemplateText {
    title: String,
    content: String,
}

fn validate_title(title: &str) -> AppResult<String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::invalid("title", "must be 1 to 200 characters"));
    }
    Ok(title.to_owned())
}

/// Starts a chat with an agent.
#[utoipa::path(post, path = "/api/chat/sessions", tag = "chat", security(("bearer" = [])),
    request_body = NewSession,
    responses((status = 201, body = CreatedSession), (status = 422, body = crate::error::Problem)))]
async fn create_session(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewSession>,
) -> AppResult<(StatusCode, Json<CreatedSession>)> {
    let project = projects::load(&state.db, auth.id, req.agent_id)
        .await
        .map_err(|_| AppError::invalid("agent_id", "is not an agent you can see"))?;
    let template: Option<TemplateText> = match req.template_id {
        Some(id) => Some(
            state
                .db
                .fetch_optional(
                    "SELECT t.title, t.content FROM chat_templates t
                     WHERE t.id = $1 AND (t.workspace_id IS NULL OR t.workspace_id IN
                        (SELECT workspace_id FROM workspace_members WHERE user_id = $2))",
                    args![id, auth.id],
                )
                .await?
                .ok_or_else(|| AppError::invalid("template_id", "is not a chat template"))?,
        ),
        None => None,
    };
    let title = match (&req.title, &template) {
        (Some(t), _) => validate_title(t)?,
        (None, Some(t)) => t.title.clone(),
        (None, None) => "New conversation".to_owned(),
    };
    let variant = crate::projects::variants::assign(&state.db, project.id).await?;
    let id = new_id();
    let at = now();
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO chat_sessions (id, workspace_id, user_id, agent_id, title, status, priority,
            config_version, variant, template_id, last_seq, last_message_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $10, $8, 0, $9, $9, $9)",
        args![
            id,
            project.workspace_id,
            auth.id,
            project.id,
            title.clone(),
            req.priority.unwrap_or(Priority::Normal).as_str(),
            project.version,
            req.template_id,
            at,
            variant.clone()
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO chat_participants (session_id, user_id, last_read_seq, joined_at) VALUES ($1, $2, 0, $3)",
        args![id, auth.id, at],
    )
    .await?;
    let mut rollup = Rollup::default();
    rollup.session_started(
        Day::of(project.id, project.workspace_id, at),
        variant.as_deref().unwrap_or_default(),
    );
    rollup.apply(&mut tx).await?;
    eventlog::record(
        &mut tx,
        &Cause::user(auth.id),
        NewEvent {
            workspace_id: project.workspace_id,
            project_id: Some(project.id),
            kind: "chat.session.created",
            subject: Subject::new("chat_session", id, Some(title.clone())),
            data: json!({"session_id": id, "project_id": project.id, "title": title}),
        },
    )
    .await?;
    state.events.commit(tx).await?;
    crate::analytics::invalidate(&state, project.workspace_id).await;
    let mut opened = Vec::new();
    if let Some(t) = template {
        let session = load_session(&state.db, id, auth.id).await?;
        let exchange = messages::converse(&state, &session, auth.id, t.content).await?;
        opened.push(exchange.message);
        opened.extend(exchange.reply);
    }
    let session = load_session(&state.db, id, auth.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession {
            session,
            messages: opened,
        }),
    ))
}

/// One session the caller takes part in.
#[utoipa::path(get, path = "/api/chat/sessions/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Session), (status = 404, body = crate::error::Problem)))]
async fn get_session(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Session>> {
    Ok(Json(load_session(&state.db, id, auth.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdate {
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub status: Option<SessionStatus>,
    pub priority: Option<Priority>,
}

/// Renames a session, changes its status (active, closed, escalated) or priority.
#[utoipa::path(patch, path = "/api/chat/sessions/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SessionUpdate,
    responses((status = 200, body = Session), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_session(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<SessionUpdate>,
) -> AppResult<Json<Session>> {
    let current = load_session(&state.db, id, auth.id).await?;
    let title = req.title.as_deref().map(validate_title).transpose()?;
    let change = SessionChange {
        title,
        status: req.status,
        priority: req.priority,
        reason: None,
    };
    apply_change(&state, &Cause::user(auth.id), &current, change).await?;
    Ok(Json(load_session(&state.db, id, auth.id).await?))
}

/// A change to a session's title, status or priority (`None` leaves a field as it is).
#[derive(Debug, Default)]
pub struct SessionChange {
    pub title: Option<String>,
    pub status: Option<SessionStatus>,
    pub priority: Option<Priority>,
    /// Why, for an escalation by a rule or plugin.
    pub reason: Option<String>,
}

/// Changes a session of `workspace_id` (on behalf of a plugin installed there, or a rule of
/// it) and announces it; `false` when the workspace holds no such session.
pub async fn change_in_workspace(
    state: &AppState,
    cause: &Cause,
    workspace_id: Uuid,
    session_id: Uuid,
    change: SessionChange,
) -> AppResult<bool> {
    let session: Option<Session> = state
        .db
        .fetch_optional(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM chat_sessions s
                 JOIN (SELECT CAST(0 AS BIGINT) AS last_read_seq) c ON 1 = 1
                 WHERE s.id = $1 AND s.workspace_id = $2"
            ),
            args![session_id, workspace_id],
        )
        .await?;
    let Some(session) = session else {
        return Ok(false);
    };
    apply_change(state, cause, &session, change).await?;
    Ok(true)
}

/// Writes what `change` changes of `current` with its events (`chat.session.updated`, and
/// `chat.session.closed` or `…escalated` when the status became that), then announces it.
/// A change that changes nothing writes nothing.
async fn apply_change(
    state: &AppState,
    cause: &Cause,
    current: &Session,
    change: SessionChange,
) -> AppResult<()> {
    let title = change.title.unwrap_or_else(|| current.title.clone());
    let status = change.status.unwrap_or(current.status);
    let priority = change.priority.unwrap_or(current.priority);
    let changes: Vec<&str> = [
        (title != current.title, "title"),
        (status != current.status, "status"),
        (priority != current.priority, "priority"),
    ]
    .into_iter()
    .filter_map(|(changed, field)| changed.then_some(field))
    .collect();
    if changes.is_empty() {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    tx.execute(
        "UPDATE chat_sessions SET title = $2, status = $3, priority = $4, updated_at = $5 WHERE id = $1",
        args![current.id, title.clone(), status.as_str(), priority.as_str(), now()],
    )
    .await?;
    let base = json!({"session_id": current.id, "project_id": current.agent_id, "title": title});
    let mut events = vec![("chat.session.updated", {
        let mut data = base.clone();
        data["status"] = json!(status);
        data["priority"] = json!(priority);
        data["changes"] = json!(changes);
        data
    })];
    if status != current.status {
        match status {
            SessionStatus::Closed => events.push(("chat.session.closed", base.clone())),
            SessionStatus::Escalated => {
                let mut data = base.clone();
                data["reason"] = json!(change.reason);
                events.push(("chat.session.escalated", data));
            }
            SessionStatus::Active => {}
        }
    }
    for (kind, data) in events {
        eventlog::record(
            &mut tx,
            cause,
            NewEvent {
                workspace_id: current.workspace_id,
                project_id: Some(current.agent_id),
                kind,
                subject: Subject::new("chat_session", current.id, Some(title.clone())),
                data,
            },
        )
        .await?;
    }
    state.events.commit(tx).await?;
    announce_change(state, current.id).await
}

/// Tells a session's sockets that its title, status or priority changed (the `session`
/// event), whoever changed it: a participant or a plugin.
pub async fn announce_change(state: &AppState, id: Uuid) -> AppResult<()> {
    let (title, status, priority, updated_at): (String, String, String, DateTime<Utc>) = state
        .db
        .fetch_one(
            "SELECT title, status, priority, updated_at FROM chat_sessions WHERE id = $1",
            args![id],
        )
        .await?;
    state
        .bus
        .publish(
            &format!("chat:{id}"),
            &json!({"type": "session", "session_id": id, "session": {
                "title": title, "status": status, "priority": priority, "updated_at": updated_at}}),
        )
        .await;
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActiveQuery {
    /// Only sessions with this agent; `project_id` is accepted as an alias.
    #[serde(alias = "project_id")]
    pub agent_id: Option<Uuid>,
    /// active (default), closed, escalated or all.
    pub status: Option<String>,
    /// Text in the title.
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionTab {
    #[serde(flatten)]
    pub session: Session,
    pub last_message: Option<Message>,
    /// Messages by others after the caller's read position.
    pub unread_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionTabs {
    pub sessions: Vec<SessionTab>,
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TabRow {
    #[sqlx(flatten)]
    session: Session,
    unread_count: i64,
}

/// The caller's sessions for the chat tabs (owned or joined), latest activity first.
#[utoipa::path(get, path = "/api/chat/sessions/active", tag = "chat", security(("bearer" = [])),
    params(ActiveQuery),
    responses((status = 200, body = SessionTabs), (status = 400, body = crate::error::Problem)))]
async fn active_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ActiveQuery>,
) -> AppResult<Json<SessionTabs>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let mut binds = args![auth.id, now()];
    let mut filter = String::new();
    match q.status.as_deref().unwrap_or("active") {
        "all" => {}
        s @ ("active" | "closed" | "escalated") => {
            binds.push(s.into());
            filter += &format!(" AND s.status = ${}", binds.len());
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "`status` must be active, closed, escalated or all; got `{other}`"
            )));
        }
    }
    if let Some(agent) = q.agent_id {
        binds.push(agent.into());
        filter += &format!(" AND s.agent_id = ${}", binds.len());
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        binds.push(crate::db::contains_pattern(text).into());
        filter += &format!(" AND LOWER(s.title) LIKE ${} ESCAPE '\\'", binds.len());
    }
    if let Some(c) = page.cursor("activity")? {
        let at = c
            .value
            .as_deref()
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .ok_or_else(|| {
                AppError::BadRequest("`cursor` is not a cursor this API issued".into())
            })?;
        binds.push(Arg::from(at.with_timezone(&Utc)));
        let v = binds.len();
        binds.push(c.id.into());
        let i = binds.len();
        filter += &format!(
            " AND (s.last_message_at < ${v} OR (s.last_message_at = ${v} AND s.id < ${i}))"
        );
    }
    let rows: Vec<TabRow> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {SESSION_COLUMNS},
                    (SELECT COUNT(*) FROM chat_messages x WHERE x.session_id = s.id
                       AND x.seq > c.last_read_seq AND (x.author_id IS NULL OR x.author_id <> $1)) AS unread_count
                 FROM chat_sessions s
                 JOIN chat_participants c ON c.session_id = s.id AND c.user_id = $1
                 WHERE s.agent_id IN ({}){filter}
                 ORDER BY s.last_message_at DESC, s.id DESC LIMIT {}",
                visible_projects("$1", "$2", Archived::Included),
                limit + 1
            ),
            binds,
        )
        .await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        sort: "activity".into(),
        value: Some(r.session.last_message_at.to_rfc3339()),
        id: r.session.id,
    });
    let with_messages: Vec<&TabRow> = page
        .items
        .iter()
        .filter(|r| r.session.last_seq > 0)
        .collect();
    let mut last_messages: Vec<Message> = Vec::new();
    if !with_messages.is_empty() {
        let mut binds = Vec::new();
        let list = crate::db::placeholders(
            &mut binds,
            with_messages.iter().map(|r| Arg::from(r.session.id)),
        );
        last_messages = state
            .db
            .fetch_all(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM chat_messages m WHERE m.session_id IN ({list})
                     AND m.seq = (SELECT last_seq FROM chat_sessions WHERE id = m.session_id)"
                ),
                binds,
            )
            .await?;
    }
    Ok(Json(SessionTabs {
        sessions: page
            .items
            .into_iter()
            .map(|r| SessionTab {
                last_message: last_messages
                    .iter()
                    .find(|m| m.session_id == r.session.id)
                    .cloned(),
                session: r.session,
                unread_count: r.unread_count,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    pub session: Session,
    #[serde(flatten)]
    pub socket: SocketTicket,
}

/// Joins a session (anyone who can see its agent) and returns how to connect to it live.
#[utoipa::path(post, path = "/api/chat/sessions/{id}/join", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Joined), (status = 404, body = crate::error::Problem)))]
async fn join_session(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Joined>> {
    let owner: Option<(Uuid, Uuid)> = state
        .db
        .fetch_optional(
            "SELECT agent_id, user_id FROM chat_sessions WHERE id = $1",
            args![id],
        )
        .await?;
    let (agent_id, owner_id) = owner.ok_or(AppError::NotFound("chat session"))?;
    projects::load(&state.db, auth.id, agent_id)
        .await
        .map_err(|_| AppError::NotFound("chat session"))?;
    let added = state
        .db
        .execute(
            "INSERT INTO chat_participants (session_id, user_id, last_read_seq, joined_at)
             VALUES ($1, $2, 0, $3) ON CONFLICT (session_id, user_id) DO NOTHING",
            args![id, auth.id, now()],
        )
        .await?;
    let session = load_session(&state.db, id, auth.id).await?;
    if added > 0 && owner_id != auth.id {
        notify(
            &state,
            owner_id,
            "join",
            json!({"session_id": id, "user_id": auth.id, "title": session.title}),
        )
        .await;
    }
    let socket = issue_ticket(&state, &headers, &auth, SocketTarget::Chat(id)).await?;
    Ok(Json(Joined { session, socket }))
}
