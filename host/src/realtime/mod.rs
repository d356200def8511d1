//! Real time: the event bus, single-use WebSocket tickets, and the sockets
//! `WS /ws/chat/{session_id}` and `WS /ws/notifications/{user_id}`.
//!
//! Browsers cannot set headers on WebSockets, so a socket authenticates with `?ticket=` (from
//! `POST /api/chat/sessions/{id}/join` or `POST /api/realtime/tickets`, single use, 60 s) or,
//! for other clients, `Authorization: Bearer`. Refusals happen before the upgrade.

mod socket;

pub use socket::{
    CLOSE_GOING_AWAY, CLOSE_IDLE, CLOSE_REVOKED, CLOSE_SLOW_CONSUMER, IDLE_LIMIT, Outcome,
    PING_EVERY, Sink, say_goodbye, send,
};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::auth::{AuthUser, generate_token, hash_token};
use crate::db::now;
use crate::error::{AppError, AppJson, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_ticket))
        .routes(routes!(socket::chat))
        .routes(routes!(socket::notifications))
}

const TICKET_SECONDS: i64 = 60;

/// Sends a `notification` event of `kind` to one user's notification socket(s).
pub async fn notify(state: &AppState, user_id: Uuid, kind: &str, data: serde_json::Value) {
    let mut event = serde_json::json!({"type": "notification", "kind": kind, "at": now()});
    if let (Some(obj), serde_json::Value::Object(extra)) = (event.as_object_mut(), data) {
        obj.extend(extra);
    }
    state.bus.publish(&format!("user:{user_id}"), &event).await;
}

/// How to open a socket.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocketTicket {
    /// Open this URL (it carries the ticket); add `&last_seq=N` to a chat socket to receive
    /// what happened after sequence number N.
    pub websocket_url: String,
    /// Single use, valid until `expires_at`.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

/// Tells `user_id`'s open sockets, on every replica, to check their access again: a token
/// was revoked, or a share or membership removed. A socket that lost its access closes.
pub async fn access_changed(state: &AppState, user_id: Uuid) {
    state
        .bus
        .publish(
            &access_channel(user_id),
            &serde_json::json!({"type": "access"}),
        )
        .await;
}

pub fn access_channel(user_id: Uuid) -> String {
    format!("access:{user_id}")
}

/// The socket a ticket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketTarget {
    /// `WS /ws/chat/{session_id}`.
    Chat(Uuid),
    /// `WS /ws/notifications/{user_id}`, the caller's own.
    Notifications,
    /// `WS /ws/projects/{project_id}/collaborate`.
    Collaboration(Uuid),
}

impl SocketTarget {
    fn ids(self) -> (Option<Uuid>, Option<Uuid>) {
        match self {
            SocketTarget::Chat(session) => (Some(session), None),
            SocketTarget::Notifications => (None, None),
            SocketTarget::Collaboration(project) => (None, Some(project)),
        }
    }
}

/// Issues a ticket for the caller to open one socket; it is valid while the token it was
/// issued under is.
pub async fn issue_ticket(
    state: &AppState,
    headers: &HeaderMap,
    caller: &AuthUser,
    target: SocketTarget,
) -> AppResult<SocketTicket> {
    let (session_id, project_id) = target.ids();
    let user_id = caller.id;
    let ticket = generate_token();
    let expires_at = now() + Duration::seconds(TICKET_SECONDS);
    // Expired tickets are swept as new ones are made.
    state
        .db
        .execute("DELETE FROM ws_tickets WHERE expires_at < $1", args![now()])
        .await?;
    state
        .db
        .execute(
            "INSERT INTO ws_tickets (ticket_hash, user_id, session_id, project_id, expires_at,
                token_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                hash_token(&ticket),
                user_id,
                session_id,
                project_id,
                expires_at,
                caller.token_id
            ],
        )
        .await?;
    let path = match target {
        SocketTarget::Chat(id) => format!("/ws/chat/{id}"),
        SocketTarget::Notifications => format!("/ws/notifications/{user_id}"),
        SocketTarget::Collaboration(id) => format!("/ws/projects/{id}/collaborate"),
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "wss",
        _ => "ws",
    };
    Ok(SocketTicket {
        websocket_url: format!("{scheme}://{host}{path}?ticket={ticket}"),
        ticket,
        expires_at,
    })
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    user_id: Uuid,
    session_id: Option<Uuid>,
    project_id: Option<Uuid>,
    token_id: Option<Uuid>,
}

/// Who a socket speaks for: the user and the token their access rests on.
#[derive(Debug, Clone, Copy)]
pub struct SocketCaller {
    pub user_id: Uuid,
    pub token_id: Option<Uuid>,
}

/// The caller a socket request speaks for: a ticket for exactly this socket (consumed), or a
/// bearer token. Anything else is refused before the upgrade.
pub async fn socket_user(
    state: &AppState,
    headers: &HeaderMap,
    ticket: Option<&str>,
    target: SocketTarget,
) -> AppResult<SocketCaller> {
    if let Some(ticket) = ticket {
        let mut tx = state.db.begin().await?;
        let row: Option<TicketRow> = tx
            .fetch_optional(
                "SELECT user_id, session_id, project_id, token_id FROM ws_tickets
                 WHERE ticket_hash = $1 AND expires_at > $2",
                args![hash_token(ticket), now()],
            )
            .await?;
        tx.execute(
            "DELETE FROM ws_tickets WHERE ticket_hash = $1",
            args![hash_token(ticket)],
        )
        .await?;
        tx.commit().await?;
        return match row {
            Some(r) if (r.session_id, r.project_id) == target.ids() => Ok(SocketCaller {
                user_id: r.user_id,
                token_id: r.token_id,
            }),
            Some(_) => Err(AppError::forbidden("this ticket is for another socket")),
            None => Err(AppError::Unauthorized(
                "the ticket is unknown, used or expired",
            )),
        };
    }
    let caller = crate::auth::authenticate(state, headers).await?;
    Ok(SocketCaller {
        user_id: caller.id,
        token_id: Some(caller.token_id),
    })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// A chat session the caller takes part in; omitted, the ticket opens the caller's
    /// notifications socket.
    pub session_id: Option<Uuid>,
}

/// A single-use ticket to open a WebSocket (notifications, or a chat the caller is in).
#[utoipa::path(post, path = "/api/realtime/tickets", tag = "realtime", security(("bearer" = [])),
    request_body(content = Option<TicketRequest>, description = "Optional"),
    responses((status = 201, body = SocketTicket), (status = 404, body = crate::error::Problem)))]
async fn create_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    body: Option<AppJson<TicketRequest>>,
) -> AppResult<(StatusCode, Json<SocketTicket>)> {
    let req = body.map(|AppJson(r)| r).unwrap_or_default();
    if let Some(session_id) = req.session_id {
        crate::chat::load_session(&state.db, session_id, auth.id).await?;
    }
    let target = req
        .session_id
        .map_or(SocketTarget::Notifications, SocketTarget::Chat);
    let ticket = issue_ticket(&state, &headers, &auth, target).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}
