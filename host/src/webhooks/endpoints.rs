//! `POST/GET /api/webhooks`, `GET/PATCH/DELETE /api/webhooks/{id}` and
//! `POST /api/webhooks/{id}/rotate-secret`: the workspace admins' endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::signing;
use crate::access::{Role, projects_of_workspace, require_role, target_workspace};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Db, Filter, Page, PageQuery, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::events::validate_patterns;
use crate::state::AppState;

/// Endpoints one workspace may have.
const MAX_PER_WORKSPACE: i64 = 100;
/// How long the secret a rotation replaced still signs deliveries.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: https (http only to destinations
    /// `NOVA_ALLOW_PRIVATE_URLS` allows), at most 2,000 characters.
    pub url: String,
    /// Event types of the catalogue (`GET /api/events/types`), prefixes such as `agent.*`,
    /// or `["*"]`: 1–100.
    pub events: Vec<String>,
    /// The workspace (default: the caller's personal one); the caller must be its owner or
    /// an admin.
    pub workspace_id: Option<Uuid>,
    /// Only events of these agents (projects of the workspace); left out, every event of the
    /// workspace.
    pub project_ids: Option<Vec<Uuid>>,
    /// At most 500 characters.
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A change to an endpoint: the fields given are replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `[]`: every agent's events again.
    pub project_ids: Option<Vec<Uuid>>,
    /// `""` clears it.
    pub description: Option<String>,
    /// Enabling an endpoint that was disabled clears its failure record; its pending
    /// deliveries go out again.
    pub enabled: Option<bool>,
    /// The version this change was based on (409 when the endpoint changed since).
    pub version: Option<i64>,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    #[schema(value_type = Vec<String>)]
    pub events: SqlJson<Vec<String>>,
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub project_ids: Option<SqlJson<Vec<Uuid>>>,
    pub enabled: bool,
    /// Why Nova disabled it (410 Gone, or failing for too long).
    pub disabled_reason: Option<String>,
    /// Since when every attempt failed; null while the last one succeeded.
    pub failing_since: Option<DateTime<Utc>>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// Until then the secret before the last rotation signs too.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The signing secret (`whsec_…`): only in the answer that made it (creation, rotation).
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

pub const WEBHOOK_COLUMNS: &str = "w.id, w.workspace_id, w.url, w.description, w.events,
    w.project_ids, w.enabled, w.disabled_reason, w.failing_since, w.consecutive_failures,
    w.previous_secret_expires_at, w.version, w.created_by, w.created_at, w.updated_at";

async fn load(db: &Db, id: Uuid) -> AppResult<Webhook> {
    db.fetch_optional(
        &format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints w WHERE w.id = $1"),
        args![id],
    )
    .await?
    .ok_or(AppError::NotFound("webhook"))
}

/// An endpoint the caller manages (an owner or admin of its workspace): 404 to strangers,
/// 403 to members.
pub async fn load_managed(db: &Db, caller: Uuid, id: Uuid) -> AppResult<Webhook> {
    let webhook = load(db, id).await?;
    match require_role(db, webhook.workspace_id, caller, Role::Admin).await {
        Err(AppError::NotFound(_)) => Err(AppError::NotFound("webhook")),
        Err(e) => Err(e),
        Ok(_) => Ok(webhook),
    }
}

/// The URL, checked: parseable, https unless its destination is one
/// `NOVA_ALLOW_PRIVATE_URLS` allows, and no private address written into it.
fn check_url(state: &AppState, url: &str) -> AppResult<String> {
    let url = url.trim();
    if url.is_empty() || url.len() > 2000 {
        return Err(AppError::invalid("url", "must be 1 to 2000 characters"));
    }
    let parsed = state
        .outbound
        .check(url)
        .map_err(|e| AppError::invalid("url", e.to_string()))?;
    let allowed = &state.config.allow_private_urls;
    let host_allowed = match parsed.host() {
        Some(url::Host::Domain(name)) => allowed.host(name),
        Some(url::Host::Ipv4(ip)) => allowed.address(ip.into()),
        Some(url::Host::Ipv6(ip)) => allowed.address(ip.into()),
        None => false,
    };
    if parsed.scheme() != "https" && !host_allowed {
        return Err(AppError::invalid(
            "url",
            "must be https (http only to destinations NOVA_ALLOW_PRIVATE_URLS allows)",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(AppError::invalid(
            "url",
            "carries no credentials: receivers verify the signature",
        ));
    }
    Ok(parsed.to_string())
}

fn check_events(events: &[String]) -> AppResult<()> {
    if events.is_empty() {
        return Err(AppError::invalid(
            "events",
            "names at least one event type, or `*`",
        ));
    }
    validate_patterns("events", events)
}

fn check_description(description: Option<&str>) -> AppResult<Option<String>> {
    let description = description.map(str::trim).filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > 500) {
        return Err(AppError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(description.map(str::to_owned))
}

/// Creates an endpoint and answers with its signing secret, shown this once.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhook,
    responses((status = 201, body = Webhook, description = "The endpoint, with `secret`"),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "The workspace has 100 endpoints"),
        (status = 422, body = crate::error::Problem)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<CreateWebhook>,
) -> AppResult<(StatusCode, Json<Webhook>)> {
    let workspace_id = target_workspace(&state, &auth, body.workspace_id).await?;
    require_role(&state.db, workspace_id, auth.id, Role::Admin).await?;
    let url = check_url(&state, &body.url)?;
    check_events(&body.events)?;
    let description = check_description(body.description.as_deref())?;
    let project_ids = body.project_ids.clone().filter(|ids| !ids.is_empty());
    if let Some(ids) = &project_ids {
        projects_of_workspace(&state.db, workspace_id, "project_ids", ids).await?;
    }
    let count: i64 = state
        .db
        .scalar(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE workspace_id = $1",
            args![workspace_id],
        )
        .await?;
    if count >= MAX_PER_WORKSPACE {
        return Err(AppError::Conflict(format!(
            "a workspace has at most {MAX_PER_WORKSPACE} webhook endpoints"
        )));
    }
    let secret = signing::new_secret();
    let sealed = state.secrets.encrypt(&secret)?;
    let id = new_id();
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO webhook_endpoints (id, workspace_id, url, description, events, project_ids,
            enabled, secret, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        args![
            id,
            workspace_id,
            url.clone(),
            description,
            json!(body.events),
            project_ids.map(|p| json!(p)),
            body.enabled.unwrap_or(true),
            sealed,
            auth.id,
            now()
        ],
    )
    .await?;
    crate::team::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "webhook.create",
        "webhook",
        Some(id.to_string()),
        json!({"url": url, "events": body.events}),
    )
    .await?;
    tx.commit().await?;
    let mut webhook = load(&state.db, id).await?;
    webhook.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(webhook)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookListQuery {
    /// Only this workspace's endpoints; left out, those of every workspace the caller
    /// administers.
    pub workspace_id: Option<Uuid>,
    pub enabled: Option<bool>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The endpoints of the workspaces the caller administers, newest first.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(WebhookListQuery),
    responses((status = 200, body = Page<Webhook>), (status = 400, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<WebhookListQuery>,
) -> AppResult<Json<Page<Webhook>>> {
    let mut filter = Filter::after(args![auth.id]);
    if let Some(ws) = q.workspace_id {
        require_role(&state.db, ws, auth.id, Role::Admin).await?;
        filter.and(" AND w.workspace_id = {}", ws);
    }
    if let Some(enabled) = q.enabled {
        filter.and(" AND w.enabled = {}", enabled);
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let webhooks = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM workspace_members m
                 JOIN webhook_endpoints w ON w.workspace_id = m.workspace_id
                 WHERE m.user_id = $1 AND m.role IN ('owner', 'admin'){}",
                filter.sql
            ),
            "w.id",
            filter.binds,
            &page,
            |w: &Webhook| w.id,
        )
        .await?;
    Ok(Json(webhooks))
}

/// One endpoint (its workspace's owners and admins).
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Webhook), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Webhook>> {
    Ok(Json(load_managed(&state.db, auth.id, id).await?))
}

/// Changes an endpoint's URL, events, agents, description or state.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = Webhook), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn update_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> AppResult<Json<Webhook>> {
    let current = load_managed(&state.db, auth.id, id).await?;
    let url = match &body.url {
        Some(url) => check_url(&state, url)?,
        None => current.url.clone(),
    };
    let events = match &body.events {
        Some(events) => {
            check_events(events)?;
            events.clone()
        }
        None => current.events.0.clone(),
    };
    let description = match &body.description {
        Some(d) => check_description(Some(d))?,
        None => current.description.clone(),
    };
    let project_ids = match &body.project_ids {
        Some(ids) if ids.is_empty() => None,
        Some(ids) => {
            projects_of_workspace(&state.db, current.workspace_id, "project_ids", ids).await?;
            Some(ids.clone())
        }
        None => current.project_ids.as_ref().map(|p| p.0.clone()),
    };
    let enabled = body.enabled.unwrap_or(current.enabled);
    let reenabled = enabled && !current.enabled;
    let base = body.version.unwrap_or(current.version);
    let mut tx = state.db.begin().await?;
    let written = tx
        .execute(
            "UPDATE webhook_endpoints SET url = $2, events = $3, description = $4,
                project_ids = $5, enabled = $6, version = version + 1, updated_at = $7
             WHERE id = $1 AND version = $8",
            args![
                id,
                url.clone(),
                json!(events),
                description,
                project_ids.map(|p| json!(p)),
                enabled,
                now(),
                base
            ],
        )
        .await?;
    if written == 0 {
        return Err(AppError::Conflict(format!(
            "the webhook changed since version {base}; read it again"
        )));
    }
    if reenabled {
        super::sender::reenable(&mut tx, id).await?;
    }
    crate::team::audit(
        &mut tx,
        current.workspace_id,
        auth.id,
        "webhook.update",
        "webhook",
        Some(id.to_string()),
        json!({"url": url, "events": events, "enabled": enabled}),
    )
    .await?;
    tx.commit().await?;
    if reenabled {
        super::sender::wake(&state).await;
    }
    Ok(Json(load(&state.db, id).await?))
}

/// Deletes an endpoint with its delivery log.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let webhook = load_managed(&state.db, auth.id, id).await?;
    let mut tx = state.db.begin().await?;
    tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", args![id])
        .await?;
    crate::team::audit(
        &mut tx,
        webhook.workspace_id,
        auth.id,
        "webhook.delete",
        "webhook",
        Some(id.to_string()),
        json!({"url": webhook.url}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a new signing secret. For 24 hours deliveries carry a signature by each secret, so
/// a receiver can switch to the new one without dropping any.
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Webhook, description = "The endpoint, with its new `secret`"),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Webhook>> {
    let webhook = load_managed(&state.db, auth.id, id).await?;
    let secret = signing::new_secret();
    let sealed = state.secrets.encrypt(&secret)?;
    let mut tx = state.db.begin().await?;
    tx.execute(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $2,
            previous_secret_expires_at = $3, version = version + 1, updated_at = $4
         WHERE id = $1",
        args![
            id,
            sealed,
            now() + chrono::Duration::hours(ROTATION_OVERLAP_HOURS),
            now()
        ],
    )
    .await?;
    crate::team::audit(
        &mut tx,
        webhook.workspace_id,
        auth.id,
        "webhook.rotate_secret",
        "webhook",
        Some(id.to_string()),
        json!({"url": webhook.url}),
    )
    .await?;
    tx.commit().await?;
    let mut webhook = load(&state.db, id).await?;
    webhook.secret = Some(secret);
    Ok(Json(webhook))
}
