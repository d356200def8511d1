//! `/api/user/*` and `/api/shortcuts/custom`: the caller's account, API keys, preferences
//! and keyboard shortcuts.

mod api_keys;
pub mod auth;
mod preferences;
mod shortcuts;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::auth::AuthUser;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .merge(auth::router())
        .merge(api_keys::router())
        .merge(preferences::router())
        .merge(shortcuts::router())
}

/// A user as others may see them.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// Instance admins manage the plugin marketplace.
    pub is_instance_admin: bool,
    pub created_at: DateTime<Utc>,
}

pub async fn load_user(db: &Db, id: Uuid) -> AppResult<UserView> {
    db.fetch_optional(
        "SELECT id, email, name, is_instance_admin, created_at FROM users WHERE id = $1",
        args![id],
    )
    .await?
    .ok_or(AppError::NotFound("user"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: UserView,
    /// The workspace made at registration, where new projects go by default.
    pub personal_workspace_id: Option<Uuid>,
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/user/me", tag = "user", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = crate::error::Problem)))]
async fn me(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<Me>> {
    let user = load_user(&state.db, auth.id).await?;
    let personal_workspace_id = crate::access::personal_workspace(&state.db, auth.id).await?;
    Ok(Json(Me {
        user,
        personal_workspace_id,
    }))
}
