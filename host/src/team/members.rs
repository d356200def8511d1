//! `GET/POST /api/team/workspaces/{id}/members`, `DELETE …/members/{user_id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::{Role, require_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult, ConflictOnDuplicate};
use crate::infra::eventlog::{Cause, NewEvent, Subject};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    #[schema(value_type = Role)]
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The email of a registered user.
    pub email: String,
    /// `admin` or `member` (a workspace has one owner).
    pub role: Role,
}

const MEMBER_COLUMNS: &str = "m.user_id, u.email, u.name, m.role, m.created_at AS joined_at";

/// The members of a workspace the caller belongs to.
#[utoipa::path(get, path = "/api/team/workspaces/{id}/members", tag = "team", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Page<Member>), (status = 404, body = crate::error::Problem)))]
async fn list_members(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(workspace_id): AppPath<Uuid>,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<Member>>> {
    require_role(&state.db, workspace_id, auth.id, Role::Member).await?;
    let members = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM workspace_members m JOIN users u ON u.id = m.user_id
                 WHERE m.workspace_id = $1"
            ),
            "m.user_id",
            args![workspace_id],
            &page,
            |m: &Member| m.user_id,
        )
        .await?;
    Ok(Json(members))
}

/// Adds a registered user to the workspace (owner or admin only).
#[utoipa::path(post, path = "/api/team/workspaces/{id}/members", tag = "team", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewMember,
    responses((status = 201, body = Member), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn add_member(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(workspace_id): AppPath<Uuid>,
    AppJson(req): AppJson<NewMember>,
) -> AppResult<(StatusCode, Json<Member>)> {
    require_role(&state.db, workspace_id, auth.id, Role::Admin).await?;
    if req.role == Role::Owner {
        return Err(AppError::invalid(
            "role",
            "a workspace has one owner; use admin or member",
        ));
    }
    let email = req.email.trim().to_lowercase();
    let user: Option<(Uuid,)> = state
        .db
        .fetch_optional("SELECT id FROM users WHERE email = $1", args![&email])
        .await?;
    let (user_id,) = user.ok_or(AppError::NotFound("user with this email"))?;
    let mut tx = state.db.begin().await?;
    tx
        .execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            args![workspace_id, user_id, req.role.as_str(), crate::db::now()],
        )
        .await
        .conflict_on_duplicate("this user is already a member")?;
    super::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "member.add",
        "user",
        Some(user_id.to_string()),
        serde_json::json!({"email": email, "role": req.role}),
    )
    .await?;
    crate::infra::eventlog::record(
        &mut tx,
        &Cause::user(auth.id),
        NewEvent {
            workspace_id,
            project_id: None,
            kind: "team.member.added",
            subject: Subject::new("member", user_id, Some(email.clone())),
            data: serde_json::json!({"user_id": user_id, "email": email, "role": req.role}),
        },
    )
    .await?;
    state.events.commit(tx).await?;
    let member = state
        .db
        .fetch_one(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM workspace_members m JOIN users u ON u.id = m.user_id
                 WHERE m.workspace_id = $1 AND m.user_id = $2"
            ),
            args![workspace_id, user_id],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// Removes a member. Admins remove members, the owner removes anyone, and everyone but the
/// owner may leave.
#[utoipa::path(delete, path = "/api/team/workspaces/{id}/members/{user_id}", tag = "team", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((workspace_id, user_id)): AppPath<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let my_role = require_role(&state.db, workspace_id, auth.id, Role::Member).await?;
    let their_role = crate::access::workspace_role(&state.db, workspace_id, user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    if their_role == Role::Owner {
        return Err(AppError::forbidden(
            "the owner cannot be removed from the workspace",
        ));
    }
    let leaving = user_id == auth.id;
    if !leaving && my_role <= their_role {
        return Err(AppError::forbidden(
            "only a higher role may remove this member",
        ));
    }
    let (email,): (String,) = state
        .db
        .fetch_one("SELECT email FROM users WHERE id = $1", args![user_id])
        .await?;
    let mut tx = state.db.begin().await?;
    tx.execute(
        "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        args![workspace_id, user_id],
    )
    .await?;
    super::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "member.remove",
        "user",
        Some(user_id.to_string()),
        serde_json::json!({"role": their_role}),
    )
    .await?;
    crate::infra::eventlog::record(
        &mut tx,
        &Cause::user(auth.id),
        NewEvent {
            workspace_id,
            project_id: None,
            kind: "team.member.removed",
            subject: Subject::new("member", user_id, Some(email.clone())),
            data: serde_json::json!({"user_id": user_id, "email": email}),
        },
    )
    .await?;
    state.events.commit(tx).await?;
    crate::realtime::access_changed(&state, user_id).await;
    Ok(StatusCode::NO_CONTENT)
}
