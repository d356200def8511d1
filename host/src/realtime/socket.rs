//! The socket loop shared by chat and notification sockets: bus events out, client events
//! in, keep-alive pings, slow-consumer and shutdown handling.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{SocketCaller, SocketTarget, access_channel, socket_user};
use crate::chat;
use crate::error::{AppError, AppPath, AppResult};
use crate::state::AppState;

// Shared by every socket of the API (chat, notifications, collaboration).
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A client silent (no pong, no message) this long is gone.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A send the client does not take within this is a slow consumer.
pub const SEND_LIMIT: Duration = Duration::from_secs(5);

/// Close codes: 1001 going away (shutdown), 4008 too slow, 4000 idle, 4403 access revoked.
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_IDLE: u16 = 4000;
pub const CLOSE_REVOKED: u16 = 4403;

#[derive(Debug, Deserialize)]
pub struct SocketQuery {
    ticket: Option<String>,
    /// Chat only: the last sequence number the client saw; what follows it is replayed.
    last_seq: Option<i64>,
}

/// `WS /ws/chat/{session_id}`: the session's messages, streamed tokens, typing and presence.
///
/// Server events (JSON text frames): `message` {session_id, seq, message}, `token`
/// {session_id, reply_to, delta}, `typing` {session_id, user_id | agent_id}, `presence`
/// {session_id, user_id, state: online|offline}, `session` {session_id, session}, `rating`
/// {session_id, message_id, rating}. Client events: `message` {content}, `typing`,
/// `read` {seq}. Message events arrive in sequence order, without gaps or repeats. Close
/// codes: 1001 shutdown, 4000 idle (no pong for 60 s), 4008 too slow to read, 4403 the
/// caller's access ended (logout, a revoked token, share or membership).
#[utoipa::path(get, path = "/ws/chat/{session_id}", tag = "realtime",
    params(("session_id" = Uuid, Path),
        ("ticket" = Option<String>, Query, description = "From join or POST /api/realtime/tickets; or send a bearer token"),
        ("last_seq" = Option<i64>, Query, description = "Replay the messages after this sequence number")),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn chat(
    State(state): State<AppState>,
    AppPath(session_id): AppPath<Uuid>,
    Query(q): Query<SocketQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let caller = socket_user(
        &state,
        &headers,
        q.ticket.as_deref(),
        SocketTarget::Chat(session_id),
    )
    .await?;
    let session = chat::load_session(&state.db, session_id, caller.user_id).await?;
    let last_seq = q.last_seq.unwrap_or(session.last_seq).max(0);
    let kind = Kind::Chat {
        session_id,
        last_seq,
    };
    let feeds = Feeds::subscribe(&state, caller, &kind);
    Ok(sized(ws).on_upgrade(move |socket| run(state, socket, caller, kind, feeds)))
}

/// `WS /ws/notifications/{user_id}`: that user's notifications only — `notification`
/// events with `kind` agent_error, join, … and their details.
#[utoipa::path(get, path = "/ws/notifications/{user_id}", tag = "realtime",
    params(("user_id" = Uuid, Path),
        ("ticket" = Option<String>, Query, description = "From POST /api/realtime/tickets; or send a bearer token")),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub async fn notifications(
    State(state): State<AppState>,
    AppPath(user_id): AppPath<Uuid>,
    Query(q): Query<SocketQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let caller = socket_user(
        &state,
        &headers,
        q.ticket.as_deref(),
        SocketTarget::Notifications,
    )
    .await?;
    if caller.user_id != user_id {
        return Err(AppError::forbidden(
            "these are another user's notifications",
        ));
    }
    let feeds = Feeds::subscribe(&state, caller, &Kind::Notifications);
    Ok(sized(ws).on_upgrade(move |socket| run(state, socket, caller, Kind::Notifications, feeds)))
}

/// Small buffers: thousands of mostly idle sockets per host. Client events are small.
fn sized(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
}

enum Kind {
    Chat { session_id: Uuid, last_seq: i64 },
    Notifications,
}

/// What a socket loop does after a step: go on, or close with a code and reason.
pub enum Outcome {
    Continue,
    Close(u16, &'static str),
}

/// What a socket listens to, subscribed before the upgrade is answered: an event raised
/// once the client sees the socket open is never missed.
struct Feeds {
    channel: String,
    events: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>,
    access: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>,
}

impl Feeds {
    fn subscribe(state: &AppState, caller: SocketCaller, kind: &Kind) -> Feeds {
        let channel = match kind {
            Kind::Chat { session_id, .. } => format!("chat:{session_id}"),
            Kind::Notifications => format!("user:{}", caller.user_id),
        };
        Feeds {
            events: state.bus.subscribe(&channel),
            access: state.bus.subscribe(&access_channel(caller.user_id)),
            channel,
        }
    }
}

async fn run(state: AppState, socket: WebSocket, caller: SocketCaller, kind: Kind, feeds: Feeds) {
    let _open = state.sockets.enter();
    let user_id = caller.user_id;
    // Subscribed first, then replayed: an event raised in between is seen twice at worst, and
    // sequence numbers drop the second copy.
    let Feeds {
        channel,
        mut events,
        mut access,
    } = feeds;
    let (mut sink, mut stream) = socket.split();
    let (client_tx, mut client_rx) = tokio::sync::mpsc::channel::<Message>(32);
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if client_tx.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut shutdown = state.shutdown.clone();
    let mut last_seq = match &kind {
        Kind::Chat { last_seq, .. } => *last_seq,
        Kind::Notifications => 0,
    };
    let mut outcome = Outcome::Continue;
    if let Kind::Chat { session_id, .. } = &kind {
        outcome = catch_up(&state, &mut sink, *session_id, &mut last_seq, i64::MAX).await;
        state
            .bus
            .publish(
                &channel,
                &json!({"type": "presence", "session_id": session_id, "user_id": user_id, "state": "online"}),
            )
            .await;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    while let Outcome::Continue = outcome {
        outcome = tokio::select! {
            event = events.recv() => match event {
                Ok(payload) => forward(&state, &mut sink, &kind, &mut last_seq, payload).await,
                Err(RecvError::Lagged(_)) => Outcome::Close(CLOSE_SLOW_CONSUMER, "too slow: events were dropped; reconnect with last_seq"),
                Err(RecvError::Closed) => Outcome::Close(CLOSE_GOING_AWAY, "event bus closed"),
            },
            msg = client_rx.recv() => match msg {
                None | Some(Message::Close(_)) => break,
                Some(msg) => {
                    last_heard = tokio::time::Instant::now();
                    if let (Kind::Chat { session_id, .. }, Message::Text(text)) = (&kind, msg) {
                        client_event(&state, *session_id, user_id, &text).await;
                    }
                    Outcome::Continue
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_LIMIT {
                    Outcome::Close(CLOSE_IDLE, "no pong")
                } else {
                    send(&mut sink, Message::Ping(Vec::new().into())).await
                }
            },
            change = access.recv() => match change {
                Err(RecvError::Closed) => Outcome::Close(CLOSE_GOING_AWAY, "event bus closed"),
                Ok(_) | Err(RecvError::Lagged(_)) => match still_allowed(&state, caller, &kind).await {
                    true => Outcome::Continue,
                    false => Outcome::Close(CLOSE_REVOKED, "access revoked"),
                },
            },
            _ = shutdown.changed() => Outcome::Close(CLOSE_GOING_AWAY, "server shutting down"),
        };
    }
    say_goodbye(&mut sink, outcome).await;
    reader.abort();
    if let Kind::Chat { session_id, .. } = kind {
        state
            .bus
            .publish(
                &channel,
                &json!({"type": "presence", "session_id": session_id, "user_id": user_id, "state": "offline"}),
            )
            .await;
    }
}

/// Whether the caller may still hold this socket: their token is live and, for a chat, they
/// still see the session. A database error keeps the socket (the next change checks again).
async fn still_allowed(state: &AppState, caller: SocketCaller, kind: &Kind) -> bool {
    if let Some(token_id) = caller.token_id {
        match crate::auth::token_is_live(&state.db, token_id).await {
            Ok(false) => return false,
            Ok(true) => {}
            Err(e) => tracing::warn!(error = %e, "could not check a socket's token"),
        }
    }
    match kind {
        Kind::Chat { session_id, .. } => {
            match chat::load_session(&state.db, *session_id, caller.user_id).await {
                Err(AppError::NotFound(_)) => false,
                Ok(_) | Err(_) => true,
            }
        }
        Kind::Notifications => true,
    }
}

pub type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Sends the close frame an outcome asks for (briefly: the client may be gone).
pub async fn say_goodbye(sink: &mut Sink, outcome: Outcome) {
    if let Outcome::Close(code, reason) = outcome {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(SEND_LIMIT, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// Sends one frame; a client that does not take it within [`SEND_LIMIT`] is too slow.
pub async fn send(sink: &mut Sink, msg: Message) -> Outcome {
    match tokio::time::timeout(SEND_LIMIT, sink.send(msg)).await {
        Ok(Ok(())) => Outcome::Continue,
        Ok(Err(_)) => Outcome::Close(CLOSE_GOING_AWAY, "send failed"),
        Err(_) => Outcome::Close(CLOSE_SLOW_CONSUMER, "too slow to read"),
    }
}

/// Sends one bus event. Chat messages are kept in sequence order: an event ahead of the
/// next expected number first brings the gap from the database, and one already sent is
/// dropped — nothing lost, nothing twice.
async fn forward(
    state: &AppState,
    sink: &mut Sink,
    kind: &Kind,
    last_seq: &mut i64,
    payload: std::sync::Arc<str>,
) -> Outcome {
    if let Kind::Chat { session_id, .. } = kind
        && let Some(seq) = serde_json::from_str::<Value>(&payload)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_i64))
    {
        if seq <= *last_seq {
            return Outcome::Continue;
        }
        if seq > *last_seq + 1
            && let Outcome::Close(c, r) =
                catch_up(state, sink, *session_id, last_seq, seq - 1).await
        {
            return Outcome::Close(c, r);
        }
        *last_seq = seq;
    }
    send(sink, Message::Text(Utf8Bytes::from(&*payload))).await
}

/// Sends the stored messages after `last_seq` up to `until`, as message events.
async fn catch_up(
    state: &AppState,
    sink: &mut Sink,
    session_id: Uuid,
    last_seq: &mut i64,
    until: i64,
) -> Outcome {
    loop {
        let page = match chat::messages_after(&state.db, session_id, *last_seq, until, 200).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "replay failed");
                return Outcome::Close(CLOSE_GOING_AWAY, "replay failed; reconnect");
            }
        };
        let done = page.len() < 200;
        for message in page {
            let seq = message.seq;
            let event = chat::message_event(&message);
            if let Outcome::Close(c, r) = send(sink, Message::Text(event.to_string().into())).await
            {
                return Outcome::Close(c, r);
            }
            *last_seq = seq;
        }
        if done {
            return Outcome::Continue;
        }
    }
}

/// What a chat client may send: `{"type":"message","content":…}`, `{"type":"typing"}`,
/// `{"type":"read","seq":N}`.
async fn client_event(state: &AppState, session_id: Uuid, user_id: Uuid, text: &str) {
    let Ok(event) = serde_json::from_str::<Value>(text) else {
        return;
    };
    match event.get("type").and_then(Value::as_str) {
        Some("typing") => {
            state
                .bus
                .publish(
                    &format!("chat:{session_id}"),
                    &json!({"type": "typing", "session_id": session_id, "user_id": user_id}),
                )
                .await;
        }
        Some("read") => {
            if let Some(seq) = event.get("seq").and_then(Value::as_i64) {
                let _ = chat::mark_read(&state.db, session_id, user_id, seq).await;
            }
        }
        Some("message") => {
            let content = event
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let state = state.clone();
            // The reply streams back over the bus; the socket keeps serving meanwhile.
            tokio::spawn(async move {
                if let Err(e) = chat::post_from_socket(&state, session_id, user_id, content).await {
                    tracing::debug!(error = %e, "message from socket refused");
                }
            });
        }
        _ => {}
    }
}
