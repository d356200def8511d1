//! `GET/POST /api/team/workspaces`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::Role;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery, Tx, new_id};
use crate::error::{AppError, AppJson, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_workspaces, create_workspace_handler))
}

/// Creates a workspace owned by `owner_id`, who becomes its first member.
pub async fn create_workspace(
    tx: &mut Tx,
    owner_id: Uuid,
    name: &str,
    personal: bool,
) -> AppResult<Uuid> {
    let id = new_id();
    let now = crate::db::now();
    tx.execute(
        "INSERT INTO team_workspaces (id, name, owner_id, is_personal, created_at) VALUES ($1, $2, $3, $4, $5)",
        args![id, name, owner_id, personal, now],
    )
    .await?;
    tx.execute(
        "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
        args![id, owner_id, now],
    )
    .await?;
    Ok(id)
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    /// Made at registration for its owner alone (others may still be invited).
    pub is_personal: bool,
    /// The caller's role here.
    #[schema(value_type = Role)]
    pub role: String,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// 1–255 characters.
    pub name: String,
}

const WORKSPACE_COLUMNS: &str = "w.id, w.name, w.owner_id, w.is_personal, m.role, w.created_at,
    (SELECT COUNT(*) FROM workspace_members c WHERE c.workspace_id = w.id) AS member_count";

/// The workspaces the caller belongs to, newest first.
#[utoipa::path(get, path = "/api/team/workspaces", tag = "team", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Page<Workspace>)))]
async fn list_workspaces(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<Workspace>>> {
    let workspaces = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {WORKSPACE_COLUMNS} FROM team_workspaces w
                 JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = $1
                 WHERE 1 = 1"
            ),
            "w.id",
            args![auth.id],
            &page,
            |w: &Workspace| w.id,
        )
        .await?;
    Ok(Json(workspaces))
}

/// Creates a team workspace; the caller becomes its owner.
#[utoipa::path(post, path = "/api/team/workspaces", tag = "team", security(("bearer" = [])),
    request_body = NewWorkspace,
    responses((status = 201, body = Workspace), (status = 422, body = crate::error::Problem)))]
async fn create_workspace_handler(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewWorkspace>,
) -> AppResult<(StatusCode, Json<Workspace>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(AppError::invalid("name", "must be 1 to 255 characters"));
    }
    let mut tx = state.db.begin().await?;
    let id = create_workspace(&mut tx, auth.id, name, false).await?;
    super::audit(
        &mut tx,
        id,
        auth.id,
        "workspace.create",
        "workspace",
        Some(id.to_string()),
        serde_json::json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    let workspace = state
        .db
        .fetch_one(
            &format!(
                "SELECT {WORKSPACE_COLUMNS} FROM team_workspaces w
                 JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = $2
                 WHERE w.id = $1"
            ),
            args![id, auth.id],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(workspace)))
}
