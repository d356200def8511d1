//! Webhook figures for `GET /api/usage/metrics`: attempts, failures and latency per endpoint
//! and day, counted as attempts settle (`webhook_usage_daily`), so a report reads O(days ×
//! endpoints) rows.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::sender::{Outcome, Target};
use crate::analytics::metrics::{
    LATENCY_COLUMNS, LatencyBuckets, Period, histogram_quantile, ratio,
};
use crate::args;
use crate::db::{Db, Tx, now};
use crate::error::AppResult;

/// Upper bounds (ms) of the latency buckets; the last bucket is everything slower.
const BOUNDS_MS: [i64; 11] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];
/// Webhook deliveries of the workspaces the caller administers.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct WebhookUsage {
    /// Attempts (first tries, retries and manual retries; tests not counted).
    pub attempts: i64,
    pub failed_attempts: i64,
    /// Failed attempts over attempts.
    pub failure_rate: f64,
    /// Deliveries that ended in the range: delivered, or out of retries.
    pub succeeded: i64,
    pub failed: i64,
    /// Attempt duration quantiles in milliseconds; null without attempts.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

/// Counts one attempt (in the transaction that settles it); `finished` when it ended the
/// delivery: `Some(true)` delivered, `Some(false)` failed for good.
pub async fn count(
    tx: &mut Tx,
    target: &Target,
    outcome: &Outcome,
    succeeded: bool,
    finished: Option<bool>,
) -> AppResult<()> {
    let bucket = BOUNDS_MS
        .iter()
        .position(|b| outcome.duration_ms <= *b)
        .unwrap_or(BOUNDS_MS.len());
    let column = LATENCY_COLUMNS[bucket];
    tx.execute(
        &format!(
            "INSERT INTO webhook_usage_daily (workspace_id, date, endpoint_id, attempts,
                failed_attempts, succeeded, failed, {column})
             VALUES ($1, $2, $3, 1, $4, $5, $6, 1)
             ON CONFLICT (workspace_id, date, endpoint_id) DO UPDATE SET
                attempts = webhook_usage_daily.attempts + 1,
                failed_attempts = webhook_usage_daily.failed_attempts + excluded.failed_attempts,
                succeeded = webhook_usage_daily.succeeded + excluded.succeeded,
                failed = webhook_usage_daily.failed + excluded.failed,
                {column} = webhook_usage_daily.{column} + 1"
        ),
        args![
            target.workspace_id,
            now().date_naive(),
            target.endpoint_id,
            i64::from(!succeeded),
            i64::from(finished == Some(true)),
            i64::from(finished == Some(false))
        ],
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Day {
    attempts: i64,
    failed_attempts: i64,
    succeeded: i64,
    failed: i64,
    #[sqlx(flatten)]
    latency: LatencyBuckets,
}

/// The caller's webhook figures over the period (their workspaces where they are owner or
/// admin).
pub async fn usage(db: &Db, caller: Uuid, period: Period) -> AppResult<WebhookUsage> {
    let days: Vec<Day> = db
        .fetch_all(
            &format!(
                "SELECT u.attempts, u.failed_attempts, u.succeeded, u.failed, {}
                 FROM workspace_members m
                 JOIN webhook_usage_daily u ON u.workspace_id = m.workspace_id
                 WHERE m.user_id = $1 AND m.role IN ('owner', 'admin') AND u.date >= $2 AND u.date <= $3",
                LATENCY_COLUMNS.map(|b| format!("u.{b}")).join(", ")
            ),
            args![caller, period.from, period.to],
        )
        .await?;
    let mut total = WebhookUsage::default();
    let mut latency = LatencyBuckets::default();
    for day in &days {
        total.attempts += day.attempts;
        total.failed_attempts += day.failed_attempts;
        total.succeeded += day.succeeded;
        total.failed += day.failed;
        latency.add(&day.latency);
    }
    total.failure_rate = ratio(total.failed_attempts, total.attempts);
    let ceiling = super::sender::TIMEOUT.as_millis() as i64;
    let buckets = latency.counts();
    total.latency_p50_ms = histogram_quantile(&buckets, &BOUNDS_MS, ceiling, 0.50);
    total.latency_p95_ms = histogram_quantile(&buckets, &BOUNDS_MS, ceiling, 0.95);
    Ok(total)
}
