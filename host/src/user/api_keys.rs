//! Personal API keys for scripts: `POST/GET/DELETE /api/user/api-keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::auth::{AuthUser, issue_token};
use crate::db::{Page, PageQuery};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What the key is for, 1–100 characters.
    pub name: String,
    /// Lifetime in days (1–3650); omitted, the key does not expire.
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: Option<String>,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The key itself, shown only in this response.
    pub key: String,
}

/// Creates a personal API key.
#[utoipa::path(post, path = "/api/user/api-keys", tag = "user", security(("bearer" = [])),
    request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 422, body = crate::error::Problem)))]
async fn create_api_key(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewApiKey>,
) -> AppResult<(StatusCode, Json<CreatedApiKey>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid("name", "must be 1 to 100 characters"));
    }
    let expires_at = match req.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(crate::db::now() + Duration::days(days)),
        Some(_) => return Err(AppError::invalid("expires_in_days", "must be 1 to 3650")),
    };
    let mut tx = state.db.begin().await?;
    let (id, key) = issue_token(&mut tx, auth.id, "api_key", Some(name), expires_at).await?;
    let api_key: ApiKey = tx
        .fetch_one(
            "SELECT id, name, prefix, created_at, expires_at FROM api_tokens WHERE id = $1",
            args![id],
        )
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { api_key, key })))
}

/// The caller's API keys, newest first.
#[utoipa::path(get, path = "/api/user/api-keys", tag = "user", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Page<ApiKey>)))]
async fn list_api_keys(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<ApiKey>>> {
    let keys = state
        .db
        .page_newest_first(
            "SELECT id, name, prefix, created_at, expires_at FROM api_tokens
             WHERE user_id = $1 AND kind = 'api_key'",
            "id",
            args![auth.id],
            &page,
            |k: &ApiKey| k.id,
        )
        .await?;
    Ok(Json(keys))
}

/// Revokes one of the caller's API keys.
#[utoipa::path(delete, path = "/api/user/api-keys/{id}", tag = "user", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
async fn delete_api_key(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let deleted = state
        .db
        .execute(
            "DELETE FROM api_tokens WHERE id = $1 AND user_id = $2 AND kind = 'api_key'",
            args![id, auth.id],
        )
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("api key"));
    }
    crate::realtime::access_changed(&state, auth.id).await;
    Ok(StatusCode::NO_CONTENT)
}
