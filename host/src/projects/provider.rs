//! `GET/PUT/DELETE /api/projects/{id}/provider`: the OpenAI-compatible model endpoint that
//! answers for one agent. The API key is encrypted at rest and never returned.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Permission, queries};
use crate::args;
use crate::auth::AuthUser;
use crate::db::now;
use crate::error::{AppError, AppJson, AppPath, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_provider, put_provider, delete_provider))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The API's base URL, e.g. `https://api.openai.com/v1`; an internal address only where
    /// `NOVA_ALLOW_PRIVATE_URLS` allows it.
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token; stored encrypted. Omit to keep the stored key (only while
    /// `base_url` stays the same: a new destination drops it); `""` removes it.
    pub api_key: Option<String>,
    /// Stream the reply token by token (default true).
    pub stream: Option<bool>,
    /// How long a reply may take, 1,000–600,000 ms (default 60,000).
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ProviderView {
    pub base_url: String,
    pub model: String,
    pub has_api_key: bool,
    pub stream: bool,
    pub timeout_ms: i64,
    pub updated_at: DateTime<Utc>,
}

const SELECT_VIEW: &str = "SELECT base_url, model, api_key_encrypted IS NOT NULL AS has_api_key,
    stream, timeout_ms, updated_at FROM project_providers WHERE project_id = $1";

/// The agent's own model provider (edit permission).
#[utoipa::path(get, path = "/api/projects/{id}/provider", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProviderView), (status = 404, body = crate::error::Problem)))]
async fn get_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<ProviderView>> {
    queries::load(&state.db, auth.id, id)
        .await?
        .require(auth.id, Permission::Edit)?;
    let view = state
        .db
        .fetch_optional(SELECT_VIEW, args![id])
        .await?
        .ok_or(AppError::NotFound("provider for this project"))?;
    Ok(Json(view))
}

/// Sets the agent's model provider (admin permission).
#[utoipa::path(put, path = "/api/projects/{id}/provider", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProviderSettings,
    responses((status = 200, body = ProviderView), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn put_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<ProviderSettings>,
) -> AppResult<Json<ProviderView>> {
    let base_url = req.base_url.trim().trim_end_matches('/').to_owned();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        || reqwest::Url::parse(&base_url).is_err()
    {
        return Err(AppError::invalid("base_url", "must be an http(s) URL"));
    }
    state
        .outbound
        .check(&base_url)
        .map_err(|e| AppError::invalid("base_url", e.to_string()))?;
    let model = req.model.trim();
    if model.is_empty() || model.len() > 200 {
        return Err(AppError::invalid("model", "must be 1 to 200 characters"));
    }
    let timeout_ms = req.timeout_ms.unwrap_or(60_000);
    if !(1_000..=600_000).contains(&timeout_ms) {
        return Err(AppError::invalid("timeout_ms", "must be 1000 to 600000"));
    }
    let mut tx = state.db.begin().await?;
    let project = queries::load(&mut tx, auth.id, id).await?;
    project.require(auth.id, Permission::Admin)?;
    let existing: Option<(String, Option<String>)> = tx
        .fetch_optional(
            "SELECT base_url, api_key_encrypted FROM project_providers WHERE project_id = $1",
            args![id],
        )
        .await?;
    // A stored key follows its destination: sent elsewhere, it is dropped unless given again
    // (or a share's admin could point the key at a server of their own).
    let api_key = match req.api_key.as_deref() {
        None => existing.and_then(|(url, key)| key.filter(|_| url == base_url)),
        Some("") => None,
        Some(key) => Some(state.secrets.encrypt(key)?),
    };
    tx.execute(
        "INSERT INTO project_providers (project_id, base_url, model, api_key_encrypted, stream, timeout_ms, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (project_id) DO UPDATE SET base_url = excluded.base_url, model = excluded.model,
            api_key_encrypted = excluded.api_key_encrypted, stream = excluded.stream,
            timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at",
        args![id, &base_url, model, api_key, req.stream.unwrap_or(true), timeout_ms, now()],
    )
    .await?;
    crate::team::audit(
        &mut tx,
        project.workspace_id,
        auth.id,
        "project.provider.set",
        "project",
        Some(id.to_string()),
        serde_json::json!({"base_url": base_url, "model": model}),
    )
    .await?;
    let revision = super::revisions::record(&mut tx, id, Some(auth.id), None).await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.updated",
        (project.workspace_id, id, &project.name),
        serde_json::json!({"fields": ["provider"], "revision": revision}),
    )
    .await?;
    let view = tx.fetch_one(SELECT_VIEW, args![id]).await?;
    state.events.commit(tx).await?;
    Ok(Json(view))
}

/// Removes the agent's own provider: the instance's (or the fallback) answers again.
#[utoipa::path(delete, path = "/api/projects/{id}/provider", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn delete_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let project = queries::load(&mut tx, auth.id, id).await?;
    project.require(auth.id, Permission::Admin)?;
    let deleted = tx
        .execute(
            "DELETE FROM project_providers WHERE project_id = $1",
            args![id],
        )
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("provider for this project"));
    }
    crate::team::audit(
        &mut tx,
        project.workspace_id,
        auth.id,
        "project.provider.delete",
        "project",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    let revision = super::revisions::record(&mut tx, id, Some(auth.id), None).await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.updated",
        (project.workspace_id, id, &project.name),
        serde_json::json!({"fields": ["provider"], "revision": revision}),
    )
    .await?;
    state.events.commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}
