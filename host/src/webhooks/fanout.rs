//! The event log's `webhooks` consumer: each event becomes one pending delivery per enabled
//! endpoint of its workspace subscribed to its type, in one transaction. Sending is the
//! senders' work (`sender`), so a slow receiver never holds the log back.

use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use super::sender::{due_now, wake};
use crate::args;
use crate::db::{new_id, now};
use crate::error::AppResult;
use crate::events::matches;
use crate::infra::eventlog::{Consumer, Event, Handled};
use crate::state::AppState;

pub struct WebhookFanout(pub AppState);

impl Consumer for WebhookFanout {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a> {
        Box::pin(async move { fan_out(&self.0, event).await.map_err(|e| e.to_string()) })
    }
}

/// The body every receiver gets: `{"type", "timestamp", "data"}`, the event's `data` as the
/// catalogue documents it.
pub fn body(kind: &str, occurred_at: chrono::DateTime<chrono::Utc>, data: &Value) -> String {
    json!({"type": kind, "timestamp": occurred_at.to_rfc3339(), "data": data}).to_string()
}

/// What an endpoint listens to.
#[derive(sqlx::FromRow)]
struct Subscription {
    id: Uuid,
    events: SqlJson<Vec<String>>,
    project_ids: Option<SqlJson<Vec<Uuid>>>,
}

impl Subscription {
    fn covers(&self, event: &Event) -> bool {
        self.events.0.iter().any(|p| matches(p, &event.kind))
            && match &self.project_ids {
                None => true,
                Some(ids) => event.project_id.is_some_and(|p| ids.0.contains(&p)),
            }
    }
}

async fn fan_out(state: &AppState, event: &Event) -> AppResult<()> {
    let endpoints: Vec<Subscription> = state
        .db
        .fetch_all(
            "SELECT id, events, project_ids FROM webhook_endpoints
             WHERE workspace_id = $1 AND enabled = $2 ORDER BY id",
            args![event.workspace_id, true],
        )
        .await?;
    let subscribed: Vec<Uuid> = endpoints
        .into_iter()
        .filter(|s| s.covers(event))
        .map(|s| s.id)
        .collect();
    if subscribed.is_empty() {
        return Ok(());
    }
    let payload = body(&event.kind, event.occurred_at, &event.data.0);
    let at = now();
    let mut tx = state.db.begin().await?;
    for endpoint in &subscribed {
        // A redelivered event finds its deliveries made already.
        tx.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload,
                status, attempts, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            args![
                new_id(),
                *endpoint,
                event.id,
                event.kind.clone(),
                payload.clone(),
                at
            ],
        )
        .await?;
        due_now(&mut tx, *endpoint).await?;
    }
    tx.commit().await?;
    wake(state).await;
    Ok(())
}
