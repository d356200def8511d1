//! `WS /ws/projects/{id}/collaborate`: the Yjs sync and awareness protocol (binary frames, as
//! y-websocket speaks it) over the project's live document.
//!
//! On open the server sends sync step 1 and the awareness states it knows. A client's sync
//! step 1 is answered with step 2; its updates are applied and passed to every other client,
//! on every replica; awareness (who is here, cursors, the `field` being edited) likewise. A
//! viewer receives everything and may share awareness, but its updates are refused with an
//! auth message (`permission-denied: read-only`). Close codes as the chat socket's: 1001
//! shutdown, 4000 idle, 4008 too slow, 4403 access revoked.

use std::collections::HashSet;

use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;
use yrs::sync::protocol::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, ReadTxn, Transact, Update};

use super::super::{Permission, queries};
use super::room::{self, awareness_fields, bus_message, channel, read_bus_message};
use crate::args;
use crate::db::{new_id, now};
use crate::error::{AppPath, AppResult};
use crate::infra::livedocs::Holder;
use crate::realtime::{
    CLOSE_GOING_AWAY, CLOSE_IDLE, CLOSE_REVOKED, CLOSE_SLOW_CONSUMER, IDLE_LIMIT, Outcome,
    PING_EVERY, Sink, SocketCaller, SocketTarget, access_channel, say_goodbye, send, socket_user,
};
use crate::state::AppState;

/// The largest frame a client may send (an update pasting a long prompt fits).
const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Deserialize)]
pub struct CollaborateQuery {
    ticket: Option<String>,
}

/// The live co-editing socket of a project (view permission; edits need edit permission).
#[utoipa::path(get, path = "/ws/projects/{id}/collaborate", tag = "projects",
    params(("id" = Uuid, Path),
        ("ticket" = Option<String>, Query, description = "From POST /api/projects/{id}/collaborate; or send a bearer token")),
    responses((status = 101, description = "Switching to the WebSocket protocol (Yjs sync and awareness, binary frames)"),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn collaborate_socket(
    State(state): State<AppState>,
    AppPath(id): AppPath<Uuid>,
    Query(q): Query<CollaborateQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> AppResult<Response> {
    let target = SocketTarget::Collaboration(id);
    let caller = socket_user(&state, &headers, q.ticket.as_deref(), target).await?;
    let project = queries::load(&state.db, caller.user_id, id).await?;
    let can_edit = project.require(caller.user_id, Permission::View)? >= Permission::Edit;
    let holder = room::join(&state, &project).await?;
    // Subscribed before the upgrade is answered (and before the first state is read), so
    // nothing sent once the client sees the socket open falls between.
    let bus = state.bus.subscribe(&channel(id));
    let access = state.bus.subscribe(&access_channel(caller.user_id));
    // Small buffers (most sockets idle between edits); a frame may still carry a long paste.
    let ws = ws
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME);
    Ok(ws.on_upgrade(move |socket| {
        let connection = Connection {
            state,
            caller,
            can_edit,
            id: new_id(),
            holder,
            clients: HashSet::new(),
        };
        connection.run(socket, bus, access)
    }))
}

/// One open collaboration socket.
struct Connection {
    state: AppState,
    caller: SocketCaller,
    can_edit: bool,
    id: Uuid,
    holder: Holder,
    /// The awareness client ids this socket announced, removed for everyone when it closes.
    clients: HashSet<ClientID>,
}

type Feed = tokio::sync::broadcast::Receiver<std::sync::Arc<str>>;

impl Connection {
    fn project_id(&self) -> Uuid {
        self.holder.0.key
    }

    async fn run(mut self, socket: WebSocket, mut bus: Feed, mut access: Feed) {
        let _open = self.state.sockets.enter();
        let mut shutdown = self.state.shutdown.clone();
        let (mut sink, mut stream) = socket.split();
        self.present(None).await;
        let mut outcome = send_bytes(&mut sink, self.greeting()).await;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_heard = tokio::time::Instant::now();
        while let Outcome::Continue = outcome {
            outcome = tokio::select! {
                event = bus.recv() => match event {
                    Ok(payload) => match read_bus_message(&payload) {
                        Some((from, _, bytes)) if from != self.id => send_bytes(&mut sink, bytes).await,
                        _ => Outcome::Continue,
                    },
                    Err(RecvError::Lagged(_)) => Outcome::Close(CLOSE_SLOW_CONSUMER, "too slow: updates were dropped; reconnect"),
                    Err(RecvError::Closed) => Outcome::Close(CLOSE_GOING_AWAY, "event bus closed"),
                },
                frame = stream.next() => match frame {
                    Some(Ok(Frame::Binary(data))) => {
                        last_heard = tokio::time::Instant::now();
                        let replies = self.receive(&data).await;
                        let mut outcome = Outcome::Continue;
                        for reply in replies {
                            outcome = send_bytes(&mut sink, reply).await;
                        }
                        outcome
                    }
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {
                        last_heard = tokio::time::Instant::now();
                        Outcome::Continue
                    }
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > IDLE_LIMIT {
                        Outcome::Close(CLOSE_IDLE, "no pong")
                    } else {
                        self.present(None).await;
                        send(&mut sink, Frame::Ping(Vec::new().into())).await
                    }
                },
                change = access.recv() => match change {
                    Err(RecvError::Closed) => Outcome::Close(CLOSE_GOING_AWAY, "event bus closed"),
                    Ok(_) | Err(RecvError::Lagged(_)) => self.check_access().await,
                },
                _ = shutdown.changed() => Outcome::Close(CLOSE_GOING_AWAY, "server shutting down"),
            };
        }
        say_goodbye(&mut sink, outcome).await;
        self.leave().await;
    }

    /// Sync step 1 and the awareness states known here.
    fn greeting(&self) -> Vec<u8> {
        let awareness = self.holder.0.lock();
        let sv = awareness.doc().transact().state_vector();
        let mut out = Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1();
        if let Ok(update) = awareness.update() {
            out.extend(Message::Awareness(update).encode_v1());
        }
        out
    }

    /// Handles a client frame (one or more y-protocol messages): the replies to send back.
    async fn receive(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut decoder = DecoderV1::from(data);
        let messages: Vec<Message> = MessageReader::new(&mut decoder)
            .map_while(Result::ok)
            .collect();
        let mut replies = Vec::new();
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let update = self
                        .holder
                        .0
                        .lock()
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&sv);
                    replies.push(Message::Sync(SyncMessage::SyncStep2(update)).encode_v1());
                }
                Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                    if !self.can_edit {
                        let refusal =
                            Message::Auth(Some("read-only: you may view this agent".into()));
                        replies.push(refusal.encode_v1());
                        continue;
                    }
                    if self.apply_update(&update) {
                        let message = Message::Sync(SyncMessage::Update(update));
                        self.publish(&message).await;
                    }
                }
                Message::Awareness(update) => {
                    let fields = awareness_fields(&update);
                    let applied = self.holder.0.lock().apply_update(update.clone()).is_ok();
                    if applied {
                        self.clients
                            .extend(fields.iter().map(|(client, _)| *client));
                        if let Some((_, field)) = fields.into_iter().next() {
                            self.present(field).await;
                        }
                        self.publish(&Message::Awareness(update)).await;
                    }
                }
                Message::AwarenessQuery => {
                    if let Ok(update) = self.holder.0.lock().update() {
                        replies.push(Message::Awareness(update).encode_v1());
                    }
                }
                Message::Auth(_) | Message::Custom(..) => {}
            }
        }
        replies
    }

    fn apply_update(&self, update: &[u8]) -> bool {
        let Ok(update) = Update::decode_v1(update) else {
            return false;
        };
        let awareness = self.holder.0.lock();
        let mut txn = awareness.doc().transact_mut();
        txn.apply_update(update).is_ok()
    }

    async fn publish(&self, message: &Message) {
        let payload = bus_message(self.id, self.caller.user_id, message);
        self.state
            .bus
            .publish(&channel(self.project_id()), &payload)
            .await;
    }

    /// Records (or refreshes) this socket in the presence list, with the field it edits.
    async fn present(&self, field: Option<String>) {
        let at = now();
        let result = self
            .state
            .db
            .execute(
                "INSERT INTO collaboration_presence (connection_id, project_id, user_id, can_edit,
                    field, joined_at, seen_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (connection_id) DO UPDATE SET seen_at = excluded.seen_at,
                    field = COALESCE(excluded.field, collaboration_presence.field)",
                args![
                    self.id,
                    self.project_id(),
                    self.caller.user_id,
                    self.can_edit,
                    field,
                    at
                ],
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not record collaboration presence");
        }
    }

    /// 4403 once the caller may no longer see the project.
    async fn check_access(&mut self) -> Outcome {
        if let Some(token) = self.caller.token_id
            && let Ok(false) = crate::auth::token_is_live(&self.state.db, token).await
        {
            return Outcome::Close(CLOSE_REVOKED, "access revoked");
        }
        let project = queries::load(&self.state.db, self.caller.user_id, self.project_id()).await;
        match project.map(|p| p.permission(self.caller.user_id)) {
            Ok(Some(permission)) => {
                // A share turned to view only stops this socket's edits from now on.
                self.can_edit = permission >= Permission::Edit;
                Outcome::Continue
            }
            Ok(None) | Err(crate::error::AppError::NotFound(_)) => {
                Outcome::Close(CLOSE_REVOKED, "access revoked")
            }
            Err(_) => Outcome::Continue,
        }
    }

    /// Leaves: this socket's awareness states are removed for everyone, and its presence.
    async fn leave(self) {
        if !self.clients.is_empty() {
            let removal = {
                let mut awareness = self.holder.0.lock();
                for client in &self.clients {
                    awareness.remove_state(*client);
                }
                awareness.update_with_clients(self.clients.iter().copied())
            };
            if let Ok(update) = removal {
                self.publish(&Message::Awareness(update)).await;
            }
        }
        let _ = self
            .state
            .db
            .execute(
                "DELETE FROM collaboration_presence WHERE connection_id = $1",
                args![self.id],
            )
            .await;
    }
}

/// Sends y-protocol bytes as one binary frame.
async fn send_bytes(sink: &mut Sink, bytes: Vec<u8>) -> Outcome {
    send(sink, Frame::Binary(bytes.into())).await
}
