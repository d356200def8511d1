//! `POST /api/projects/{id}/share` (seed §6), `GET /api/projects/{id}/shares` and
//! `DELETE /api/projects/{id}/shares/{user_id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Permission, queries};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share_project))
        .routes(routes!(list_shares))
        .routes(routes!(revoke_share))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// A registered user's email.
    pub user_email: String,
    pub permission: Permission,
    /// The last day (`2024-12-31`, through the end of that day UTC) or the instant
    /// (RFC 3339) the share lasts; omitted, it does not expire.
    pub expiry_date: Option<String>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Share {
    pub id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub user_email: String,
    #[schema(value_type = Permission)]
    pub permission: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

const SHARE_SELECT: &str = "SELECT s.id, s.project_id, s.user_id, u.email AS user_email, s.permission,
    s.expires_at, s.created_by, s.created_at FROM project_shares s JOIN users u ON u.id = s.user_id";

fn parse_expiry(raw: &str) -> AppResult<DateTime<Utc>> {
    let raw = raw.trim();
    let at = if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        day.succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| AppError::invalid("expiry_date", "is out of range"))?
    } else {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                AppError::invalid(
                    "expiry_date",
                    "must be a date (2024-12-31) or an RFC 3339 time",
                )
            })?
    };
    if at <= now() {
        return Err(AppError::invalid("expiry_date", "is in the past"));
    }
    Ok(at)
}

/// Shares a project with a user (admin permission). Sharing again with the same user
/// replaces the permission and expiry.
#[utoipa::path(post, path = "/api/projects/{id}/share", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ShareRequest,
    responses((status = 201, body = Share), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn share_project(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<ShareRequest>,
) -> AppResult<(StatusCode, Json<Share>)> {
    let expires_at = req.expiry_date.as_deref().map(parse_expiry).transpose()?;
    let mut tx = state.db.begin().await?;
    let project = queries::load(&mut tx, auth.id, id).await?;
    project.require(auth.id, Permission::Admin)?;
    let email = req.user_email.trim().to_lowercase();
    let user: Option<(Uuid,)> = tx
        .fetch_optional("SELECT id FROM users WHERE email = $1", args![&email])
        .await?;
    let (user_id,) =
        user.ok_or_else(|| AppError::invalid("user_email", "is not a registered user"))?;
    if user_id == auth.id {
        return Err(AppError::invalid(
            "user_email",
            "is you; a project is not shared with its sharer",
        ));
    }
    tx.execute(
        "INSERT INTO project_shares (id, project_id, user_id, permission, expires_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (project_id, user_id) DO UPDATE SET permission = excluded.permission,
            expires_at = excluded.expires_at, created_by = excluded.created_by,
            created_at = excluded.created_at",
        args![new_id(), id, user_id, req.permission.as_str(), expires_at, auth.id, now()],
    )
    .await?;
    crate::team::audit(
        &mut tx,
        project.workspace_id,
        auth.id,
        "project.share",
        "project",
        Some(id.to_string()),
        serde_json::json!({ "user_email": email, "permission": req.permission, "expires_at": expires_at }),
    )
    .await?;
    let share = tx
        .fetch_one(
            &format!("{SHARE_SELECT} WHERE s.project_id = $1 AND s.user_id = $2"),
            args![id, user_id],
        )
        .await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.shared",
        (project.workspace_id, id, &project.name),
        serde_json::json!({"user_id": user_id, "user_email": email, "permission": req.permission, "expires_at": expires_at}),
    )
    .await?;
    state.events.commit(tx).await?;
    crate::realtime::notify(
        &state,
        user_id,
        "share",
        serde_json::json!({"project_id": id, "project_name": project.name, "permission": req.permission, "by": auth.id}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(share)))
}

/// The project's shares, expired ones included (admin permission).
#[utoipa::path(get, path = "/api/projects/{id}/shares", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Page<Share>), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn list_shares(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<Share>>> {
    queries::load(&state.db, auth.id, id)
        .await?
        .require(auth.id, Permission::Admin)?;
    let shares = state
        .db
        .page_newest_first(
            &format!("{SHARE_SELECT} WHERE s.project_id = $1"),
            "s.id",
            args![id],
            &page,
            |s: &Share| s.id,
        )
        .await?;
    Ok(Json(shares))
}

/// Ends a user's share (admin permission, or the user giving up their own share).
#[utoipa::path(delete, path = "/api/projects/{id}/shares/{user_id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn revoke_share(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, user_id)): AppPath<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let project = queries::load(&mut tx, auth.id, id).await?;
    if user_id != auth.id {
        project.require(auth.id, Permission::Admin)?;
    }
    let deleted = tx
        .execute(
            "DELETE FROM project_shares WHERE project_id = $1 AND user_id = $2",
            args![id, user_id],
        )
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("share"));
    }
    crate::team::audit(
        &mut tx,
        project.workspace_id,
        auth.id,
        "project.unshare",
        "project",
        Some(id.to_string()),
        serde_json::json!({ "user_id": user_id }),
    )
    .await?;
    tx.commit().await?;
    crate::realtime::access_changed(&state, user_id).await;
    Ok(StatusCode::NO_CONTENT)
}
