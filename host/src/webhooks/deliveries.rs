//! The delivery log: `GET /api/webhooks/{id}/deliveries`,
//! `POST /api/webhooks/{id}/deliveries/{delivery_id}/retry` and `POST /api/webhooks/{id}/test`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::endpoints::load_managed;
use super::fanout::body;
use super::sender::{self, MAX_ATTEMPTS, Pending, Trigger};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Db, Filter, Page, PageQuery, new_id, now, placeholders};
use crate::error::{AppError, AppPath, AppQuery, AppResult};
use crate::state::AppState;

crate::text_enum! {
    /// Where a delivery stands.
    pub enum DeliveryStatus {
        /// Waiting for its first or next attempt.
        Pending = "pending",
        Succeeded = "succeeded",
        /// Out of retries, or the endpoint answered 410 Gone.
        Failed = "failed",
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub id: Uuid,
    #[serde(skip)]
    pub delivery_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status; null when there was no answer (`error` says why).
    pub response_status: Option<i64>,
    pub duration_ms: i64,
    /// The first 4 KiB of the response body.
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// One event's delivery to an endpoint, with its attempts (oldest first).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    #[sqlx(rename = "endpoint_id")]
    pub webhook_id: Uuid,
    /// The `webhook-id` header: a receiver dedupes by it.
    pub event_id: Uuid,
    pub event_type: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    #[sqlx(rename = "attempts")]
    pub attempt_count: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub attempts: Vec<Attempt>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, status, attempts,
    next_attempt_at, created_at, updated_at";

/// The deliveries with their attempts, read in one query.
async fn with_attempts(db: &Db, mut deliveries: Vec<Delivery>) -> AppResult<Vec<Delivery>> {
    if deliveries.is_empty() {
        return Ok(deliveries);
    }
    let mut binds = Vec::new();
    let list = placeholders(&mut binds, deliveries.iter().map(|d| Arg::from(d.id)));
    let attempts: Vec<Attempt> = db
        .fetch_all(
            &format!(
                "SELECT id, delivery_id, attempted_at, response_status, duration_ms, response_body, error
                 FROM webhook_attempts WHERE delivery_id IN ({list}) ORDER BY id"
            ),
            binds,
        )
        .await?;
    for attempt in attempts {
        if let Some(d) = deliveries.iter_mut().find(|d| d.id == attempt.delivery_id) {
            d.attempts.push(attempt);
        }
    }
    Ok(deliveries)
}

async fn load(db: &Db, webhook: Uuid, id: Uuid) -> AppResult<Delivery> {
    let delivery: Delivery = db
        .fetch_optional(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2"
            ),
            args![id, webhook],
        )
        .await?
        .ok_or(AppError::NotFound("delivery"))?;
    Ok(with_attempts(db, vec![delivery]).await?.remove(0))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event type.
    pub event_type: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// An endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path), DeliveryListQuery),
    responses((status = 200, body = Page<Delivery>), (status = 400, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<DeliveryListQuery>,
) -> AppResult<Json<Page<Delivery>>> {
    load_managed(&state.db, auth.id, id).await?;
    let mut filter = Filter::after(args![id]);
    if let Some(status) = q.status {
        filter.and(" AND status = {}", status.as_str());
    }
    if let Some(kind) = q.event_type {
        filter.and(" AND event_type = {}", kind);
    }
    let page: Page<Delivery> = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1{}",
                filter.sql
            ),
            "id",
            filter.binds,
            &PageQuery {
                limit: q.limit,
                cursor: q.cursor,
            },
            |d: &Delivery| d.id,
        )
        .await?;
    let items = with_attempts(&state.db, page.items).await?;
    Ok(Json(Page { items, ..page }))
}

/// Sends a delivery again now, whatever its status (at most 30 attempts in all), and
/// answers with it and the new attempt.
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 200, body = Delivery), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, delivery_id)): AppPath<(Uuid, Uuid)>,
) -> AppResult<Json<Delivery>> {
    load_managed(&state.db, auth.id, id).await?;
    let delivery = load(&state.db, id, delivery_id).await?;
    if delivery.attempt_count >= MAX_ATTEMPTS {
        return Err(AppError::Conflict(format!(
            "a delivery is attempted at most {MAX_ATTEMPTS} times"
        )));
    }
    let payload: String = state
        .db
        .scalar(
            "SELECT payload FROM webhook_deliveries WHERE id = $1",
            args![delivery_id],
        )
        .await?;
    let pending = Pending {
        id: delivery.id,
        event_id: delivery.event_id,
        event_type: delivery.event_type,
        payload,
        attempts: delivery.attempt_count,
        status: delivery.status.as_str().to_owned(),
    };
    send_now(&state, id, &pending, Trigger::Manual).await?;
    Ok(Json(load(&state.db, id, delivery_id).await?))
}

/// Sends a `webhook.test` event to the endpoint now (enabled or not) and answers with the
/// delivery and its attempt. A test is not retried and does not count against the endpoint.
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Delivery), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn test_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Delivery>> {
    let webhook = load_managed(&state.db, auth.id, id).await?;
    let at = now();
    let pending = Pending {
        id: new_id(),
        event_id: new_id(),
        event_type: "webhook.test".into(),
        payload: body(
            "webhook.test",
            at,
            &json!({"webhook_id": id, "workspace_id": webhook.workspace_id,
                "message": "A test event from Nova."}),
        ),
        attempts: 0,
        status: DeliveryStatus::Pending.as_str().to_owned(),
    };
    state
        .db
        .execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload,
                status, attempts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
            args![
                pending.id,
                id,
                pending.event_id,
                pending.event_type.clone(),
                pending.payload.clone(),
                at
            ],
        )
        .await?;
    send_now(&state, id, &pending, Trigger::Test).await?;
    Ok(Json(load(&state.db, id, pending.id).await?))
}

async fn send_now(
    state: &AppState,
    webhook: Uuid,
    pending: &Pending,
    trigger: Trigger,
) -> AppResult<()> {
    let target = sender::target(state, webhook).await?;
    let outcome = sender::attempt(state, &target, pending).await;
    sender::settle(state, &target, pending, &outcome, trigger).await
}
