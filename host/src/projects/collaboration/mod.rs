//! `POST /api/projects/{id}/collaborate` and `WS /ws/projects/{id}/collaborate`: several people
//! edit one agent at once. Fields are guarded by versions (`If-Match`, field merges, see
//! `crud`); the long texts (system prompt, description) are co-edited live as a Yjs document
//! (`room`) over a socket (`socket`), and written back to the project as revisions.

pub mod room;
mod socket;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Permission, queries};
use crate::args;
use crate::auth::AuthUser;
use crate::db::now;
use crate::error::{AppPath, AppResult};
use crate::realtime::{SocketTarget, issue_ticket};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(collaborate))
        .routes(routes!(socket::collaborate_socket))
}

/// How long a presence row lasts without its socket's ping (a host that died).
const PRESENCE_SECONDS: i64 = 60;

/// Someone with the agent open for co-editing.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Participant {
    pub user_id: Uuid,
    pub name: String,
    /// The field they are editing, as their awareness state says (`field`).
    pub field: Option<String>,
    pub can_edit: bool,
}

/// How to co-edit an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Collaboration {
    /// The shared document's id: the project's.
    pub collaboration_id: Uuid,
    /// Open this URL (it carries a single-use ticket, valid 60 s) with a Yjs provider.
    pub websocket_url: String,
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
    /// The project's version now (send it as `If-Match: "v<version>"` with field edits).
    pub version: i64,
    /// Whether the caller may edit (viewers receive edits and share presence only).
    pub can_edit: bool,
    pub participants: Vec<Participant>,
    /// How conflicts are resolved: `optimistic_locking` (`If-Match`, 412), `field_merge` (a
    /// stale `version` merges non-overlapping fields, 409 lists the rest), `live_text` (the
    /// Yjs protocol and the shared text names).
    #[schema(value_type = Object)]
    pub mechanisms: serde_json::Value,
}

/// Opens co-editing of an agent for the caller (view permission; editing needs edit): a ticket
/// for the collaboration socket, who is there, and how conflicts are resolved.
#[utoipa::path(post, path = "/api/projects/{id}/collaborate", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Collaboration), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
async fn collaborate(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Collaboration>> {
    let project = queries::load(&state.db, auth.id, id).await?;
    let permission = project.require(auth.id, Permission::View)?;
    let participants = participants(&state, id).await?;
    let ticket = issue_ticket(&state, &headers, &auth, SocketTarget::Collaboration(id)).await?;
    Ok(Json(Collaboration {
        collaboration_id: id,
        websocket_url: ticket.websocket_url,
        ticket: ticket.ticket,
        expires_at: ticket.expires_at,
        version: project.version,
        can_edit: permission >= Permission::Edit,
        participants,
        mechanisms: json!({
            "optimistic_locking": {"header": "If-Match", "etag": format!("\"v{}\"", project.version),
                                    "status_on_conflict": 412},
            "field_merge": true,
            "live_text": {"protocol": "yjs", "fields": room::LIVE_FIELDS,
                          "write_back_after_idle_ms": room::QUIET.as_millis() as u64},
        }),
    }))
}

/// Who has the agent open, on any replica: one row a person (their latest field).
async fn participants(state: &AppState, project_id: Uuid) -> AppResult<Vec<Participant>> {
    let since = now() - Duration::seconds(PRESENCE_SECONDS);
    let mut rows: Vec<Participant> = state
        .db
        .fetch_all(
            "SELECT p.user_id, u.name, p.field, p.can_edit FROM collaboration_presence p
             JOIN users u ON u.id = p.user_id
             WHERE p.project_id = $1 AND p.seen_at > $2 ORDER BY p.joined_at LIMIT 200",
            args![project_id, since],
        )
        .await?;
    let mut seen = std::collections::HashSet::new();
    rows.retain(|p| seen.insert(p.user_id));
    Ok(rows)
}
