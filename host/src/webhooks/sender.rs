//! Sends webhook deliveries, at least once, from any replica.
//!
//! - Work is found by endpoint: `webhook_endpoints.next_due_at` is the earliest
//!   `next_attempt_at` of the endpoint's pending deliveries, so a sender looks at endpoints
//!   with something due, oldest first, and takes from each at most what its bound leaves room
//!   for. One slow or dead receiver fills its own few slots and delays no other endpoint.
//! - A claim moves a delivery's `next_attempt_at` to when the claim lapses: a sender killed
//!   mid-attempt leaves the delivery due again then, for any replica. Every change of an
//!   endpoint's deliveries first takes the endpoint's row (an idle `UPDATE`: the row lock on
//!   PostgreSQL, the write lock on SQLite), so claims of one endpoint never overlap and
//!   `next_due_at` is recomputed from what is committed.
//! - Failures are retried on `NOVA_WEBHOOK_RETRY_SCHEDULE` (with ±10 % jitter); `410 Gone`
//!   or failing for `NOVA_WEBHOOK_DISABLE_AFTER` disables the endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rand::Rng;
use reqwest::Method;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use super::signing::signature_header;
use crate::args;
use crate::config::DisableAfter;
use crate::db::{Arg, Db, Tx, new_id, now, placeholders};
use crate::error::{AppError, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::state::AppState;

/// The bus channel that wakes the senders of every replica.
const CHANNEL: &str = "webhooks";
/// Deliveries in flight to one endpoint from one host.
const PER_ENDPOINT: usize = 4;
/// Deliveries in flight from one host.
const SLOTS: usize = 64;
/// How long one attempt may take, response body included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim holds: past it, a delivery whose sender died is due again.
const CLAIM_SECONDS: i64 = 60;
/// How much of a response body the log keeps.
const RESPONSE_KEPT: usize = 4096;
/// How often an idle sender looks anyway (retries come due; a nudge may be lost).
const POLL: Duration = Duration::from_millis(500);
/// Endpoints looked at per round.
const ENDPOINTS_PER_ROUND: i64 = 50;
/// Attempts one delivery may have, manual retries included.
pub const MAX_ATTEMPTS: i64 = 30;

/// Wakes the senders of every replica: something is due.
pub async fn wake(state: &AppState) {
    state.bus.publish(CHANNEL, &json!({})).await;
}

/// Where and how to send an endpoint's deliveries.
pub struct Target {
    pub endpoint_id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    /// The live secrets, decrypted: the current one, and the one it replaced while that still
    /// signs.
    pub secrets: Vec<String>,
}

/// A delivery in hand.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    /// Attempts so far, and the status, when it was taken in hand.
    pub attempts: i64,
    pub status: String,
}

/// What one attempt got.
pub struct Outcome {
    pub response_status: Option<u16>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

/// How an attempt came about: the schedule, an admin's retry, or a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    Scheduled,
    Manual,
    Test,
}

/// Takes the endpoint's row for the rest of the transaction; `false` when it is gone (or,
/// with `enabled_only`, disabled).
async fn lock_endpoint(tx: &mut Tx, endpoint_id: Uuid, enabled_only: bool) -> AppResult<bool> {
    let written = if enabled_only {
        tx.execute(
            "UPDATE webhook_endpoints SET next_due_at = next_due_at WHERE id = $1 AND enabled = $2",
            args![endpoint_id, true],
        )
        .await?
    } else {
        tx.execute(
            "UPDATE webhook_endpoints SET next_due_at = next_due_at WHERE id = $1",
            args![endpoint_id],
        )
        .await?
    };
    Ok(written > 0)
}

/// Recomputes when the endpoint next has something due (under its row lock).
async fn refresh_due(tx: &mut Tx, endpoint_id: Uuid) -> AppResult<()> {
    tx.execute(
        "UPDATE webhook_endpoints SET next_due_at =
            (SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d
             WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at IS NOT NULL)
         WHERE id = $1 AND enabled = $2",
        args![endpoint_id, true],
    )
    .await?;
    Ok(())
}

/// Marks the endpoint as having something due now (a new delivery), under its row lock.
pub async fn due_now(tx: &mut Tx, endpoint_id: Uuid) -> AppResult<()> {
    tx.execute(
        "UPDATE webhook_endpoints SET next_due_at =
            CASE WHEN next_due_at IS NULL OR next_due_at > $2 THEN $2 ELSE next_due_at END
         WHERE id = $1 AND enabled = $3",
        args![endpoint_id, now(), true],
    )
    .await?;
    Ok(())
}

/// An endpoint enabled again: its failure record cleared, its pending deliveries due.
pub async fn reenable(tx: &mut Tx, endpoint_id: Uuid) -> AppResult<()> {
    tx.execute(
        "UPDATE webhook_endpoints SET disabled_reason = NULL, failing_since = NULL,
            consecutive_failures = 0 WHERE id = $1",
        args![endpoint_id],
    )
    .await?;
    refresh_due(tx, endpoint_id).await
}

/// The endpoint's URL and live secrets.
pub async fn target(state: &AppState, endpoint_id: Uuid) -> AppResult<Target> {
    #[derive(sqlx::FromRow)]
    struct Row {
        workspace_id: Uuid,
        url: String,
        secret: String,
        previous_secret: Option<String>,
        previous_secret_expires_at: Option<DateTime<Utc>>,
    }
    let row: Row = state
        .db
        .fetch_optional(
            "SELECT workspace_id, url, secret, previous_secret, previous_secret_expires_at
             FROM webhook_endpoints WHERE id = $1",
            args![endpoint_id],
        )
        .await?
        .ok_or(AppError::NotFound("webhook"))?;
    let mut secrets = vec![state.secrets.decrypt(&row.secret)?];
    if let (Some(previous), Some(until)) = (&row.previous_secret, row.previous_secret_expires_at)
        && until > now()
    {
        secrets.push(state.secrets.decrypt(previous)?);
    }
    Ok(Target {
        endpoint_id,
        workspace_id: row.workspace_id,
        url: row.url,
        secrets,
    })
}

/// POSTs one delivery: signed by Standard Webhooks, within [`TIMEOUT`], through the outbound
/// guard.
pub async fn attempt(state: &AppState, target: &Target, delivery: &Pending) -> Outcome {
    let started = Instant::now();
    let result = send(state, target, delivery).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match result {
        Ok((status, body)) => Outcome {
            response_status: Some(status),
            duration_ms,
            response_body: Some(body),
            error: None,
        },
        Err(error) => Outcome {
            response_status: None,
            duration_ms,
            response_body: None,
            error: Some(error),
        },
    }
}

async fn send(
    state: &AppState,
    target: &Target,
    delivery: &Pending,
) -> Result<(u16, String), String> {
    let id = delivery.event_id.to_string();
    let timestamp = Utc::now().timestamp();
    let signature = signature_header(&target.secrets, &id, timestamp, &delivery.payload)?;
    let response = state
        .outbound
        .request(Method::POST, &target.url)
        .map_err(|e| e.to_string())?
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header("user-agent", "Nova-Webhooks/1")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else {
                crate::infra::outbound::error_chain(&e)
            }
        })?;
    let status = response.status().as_u16();
    Ok((status, read_head(response).await))
}

/// The first [`RESPONSE_KEPT`] bytes of a response body (as text); the rest is not read.
async fn read_head(response: reqwest::Response) -> String {
    let mut head = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        head.extend_from_slice(&chunk);
        if head.len() >= RESPONSE_KEPT {
            break;
        }
    }
    head.truncate(RESPONSE_KEPT);
    let mut text = String::from_utf8_lossy(&head).into_owned();
    while text.len() > RESPONSE_KEPT {
        text.pop();
    }
    text
}

/// The wait before the retry after `attempts` failed attempts, with ±10 % jitter; `None`
/// when the schedule is spent.
fn retry_delay(schedule: &[Duration], attempts: i64) -> Option<chrono::Duration> {
    let base = schedule.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    let jitter = rand::thread_rng().gen_range(0.9..=1.1);
    chrono::Duration::from_std(base.mul_f64(jitter)).ok()
}

/// Records an attempt and what follows from it: the delivery succeeded, waits for its next
/// try or failed; the endpoint's failure record; and, past the configured bound or on
/// `410 Gone`, the endpoint disabled (an event, and its admins told); the day's usage
/// figures. One transaction, whose first statement takes the endpoint's row.
pub async fn settle(
    state: &AppState,
    target: &Target,
    delivery: &Pending,
    outcome: &Outcome,
    trigger: Trigger,
) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    let gone = outcome.response_status == Some(410);
    let health = if trigger == Trigger::Test {
        // A test does not count against the endpoint.
        if lock_endpoint(&mut tx, target.endpoint_id, false).await? {
            Health::Kept
        } else {
            Health::Deleted
        }
    } else {
        record_health(state, &mut tx, target, outcome, gone).await?
    };
    if matches!(health, Health::Deleted) {
        return Ok(()); // deleted meanwhile, with its log
    }
    let at = now();
    tx.execute(
        "INSERT INTO webhook_attempts (id, delivery_id, attempted_at, response_status,
            duration_ms, response_body, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            new_id(),
            delivery.id,
            at,
            outcome.response_status.map(i64::from),
            outcome.duration_ms,
            outcome.response_body.clone(),
            outcome.error.clone()
        ],
    )
    .await?;
    let (status, next_attempt_at) = if outcome.succeeded() {
        ("succeeded", None)
    } else if trigger == Trigger::Test || gone {
        ("failed", None)
    } else if delivery.status == "pending" {
        match retry_delay(&state.config.webhook_retry_schedule, delivery.attempts + 1) {
            Some(delay) => ("pending", Some(at + delay)),
            None => ("failed", None),
        }
    } else {
        // A manual retry of a finished delivery that failed again stays as it was.
        (delivery.status.as_str(), None)
    };
    // Unless another host's attempt finished it meanwhile (a lapsed claim), or it succeeded.
    let written = tx
        .execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2,
                next_attempt_at = $3, claimed_by = NULL, updated_at = $4
             WHERE id = $1 AND (status = $5 OR $2 = 'succeeded')",
            args![
                delivery.id,
                status,
                next_attempt_at,
                at,
                delivery.status.clone()
            ],
        )
        .await?;
    if written == 0 {
        tx.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, updated_at = $2 WHERE id = $1",
            args![delivery.id, at],
        )
        .await?;
    }
    if trigger != Trigger::Test {
        let finished = match status {
            "succeeded" => Some(true),
            "failed" if delivery.status == "pending" => Some(false),
            _ => None,
        };
        super::usage::count(&mut tx, target, outcome, outcome.succeeded(), finished).await?;
    }
    refresh_due(&mut tx, target.endpoint_id).await?;
    match health {
        Health::Disabled(reason) => {
            state.events.commit(tx).await?;
            tell_admins(state, target, &reason).await
        }
        _ => Ok(tx.commit().await?),
    }
}

/// The endpoint after an attempt.
enum Health {
    Kept,
    /// Disabled by this attempt, and why.
    Disabled(String),
    /// Deleted meanwhile.
    Deleted,
}

/// Updates the endpoint's failure record (taking its row); disables it when it answered 410
/// or has failed for too long.
async fn record_health(
    state: &AppState,
    tx: &mut Tx,
    target: &Target,
    outcome: &Outcome,
    gone: bool,
) -> AppResult<Health> {
    if outcome.succeeded() {
        let found = tx
            .execute(
                "UPDATE webhook_endpoints SET failing_since = NULL, consecutive_failures = 0 WHERE id = $1",
                args![target.endpoint_id],
            )
            .await?;
        return Ok(if found > 0 {
            Health::Kept
        } else {
            Health::Deleted
        });
    }
    let record: Option<(DateTime<Utc>, i64)> = tx
        .fetch_optional(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2),
                consecutive_failures = consecutive_failures + 1
             WHERE id = $1 RETURNING failing_since, consecutive_failures",
            args![target.endpoint_id, now()],
        )
        .await?;
    let Some((failing_since, failures)) = record else {
        return Ok(Health::Deleted);
    };
    let reason = if gone {
        Some("the endpoint answered 410 Gone".to_owned())
    } else {
        match state.config.webhook_disable_after {
            DisableAfter::Failures(n) if failures >= i64::from(n) => {
                Some(format!("{failures} attempts in a row failed"))
            }
            DisableAfter::Failing(span)
                if chrono::Duration::from_std(span)
                    .is_ok_and(|span| now() - failing_since >= span) =>
            {
                Some(format!(
                    "every attempt failed since {}",
                    failing_since.to_rfc3339()
                ))
            }
            _ => None,
        }
    };
    let Some(reason) = reason else {
        return Ok(Health::Kept);
    };
    let was_enabled = tx
        .execute(
            "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = $3, next_due_at = NULL,
                version = version + 1, updated_at = $4
             WHERE id = $1 AND enabled = $5",
            args![target.endpoint_id, false, reason.clone(), now(), true],
        )
        .await?;
    if was_enabled == 0 {
        return Ok(Health::Kept); // disabled already (by an admin, or another attempt)
    }
    eventlog::record(
        tx,
        &Cause::system(),
        NewEvent {
            workspace_id: target.workspace_id,
            project_id: None,
            kind: "webhook.endpoint.disabled",
            subject: Subject::new("webhook", target.endpoint_id, Some(target.url.clone())),
            data: json!({"webhook_id": target.endpoint_id, "url": target.url, "reason": reason}),
        },
    )
    .await?;
    Ok(Health::Disabled(reason))
}

/// Tells the workspace's owners and admins, live, that an endpoint was disabled.
async fn tell_admins(state: &AppState, target: &Target, reason: &str) -> AppResult<()> {
    let admins: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT user_id FROM workspace_members WHERE workspace_id = $1 AND role IN ('owner', 'admin')",
            args![target.workspace_id],
        )
        .await?;
    for (admin,) in admins {
        crate::realtime::notify(
            state,
            admin,
            "webhook.disabled",
            json!({"webhook_id": target.endpoint_id, "url": target.url, "reason": reason}),
        )
        .await;
    }
    Ok(())
}

/// The host's sender: its in-flight deliveries, by endpoint.
struct Sender {
    state: AppState,
    host: Uuid,
    in_flight: Mutex<HashMap<Uuid, usize>>,
    slots: Arc<Semaphore>,
    /// A delivery finished: there is room for another.
    done: Notify,
}

/// Starts this host's sender and the hourly sweep of old deliveries.
pub fn spawn(state: AppState) {
    let sender = Arc::new(Sender {
        state,
        host: new_id(),
        in_flight: Mutex::new(HashMap::new()),
        slots: Arc::new(Semaphore::new(SLOTS)),
        done: Notify::new(),
    });
    tokio::spawn(sweep(sender.state.clone()));
    tokio::spawn(run(sender));
}

async fn run(sender: Arc<Sender>) {
    let mut nudges = sender.state.bus.subscribe(CHANNEL);
    let mut shutdown = sender.state.shutdown.clone();
    loop {
        if let Err(e) = round(&sender).await {
            tracing::warn!(error = %e, "webhook sender could not claim deliveries");
        }
        tokio::select! {
            _ = nudges.recv() => {}
            _ = sender.done.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

impl Sender {
    fn busy(&self, endpoint: Uuid) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    fn saturated(&self) -> Vec<Uuid> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, n)| **n >= PER_ENDPOINT)
            .map(|(id, _)| *id)
            .collect()
    }

    fn count(&self, endpoint: Uuid, delta: isize) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(endpoint).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            map.remove(&endpoint);
        }
    }
}

/// Claims what is due from the endpoints with room, oldest first, and sends each.
async fn round(sender: &Arc<Sender>) -> AppResult<()> {
    if sender.slots.available_permits() == 0 {
        return Ok(());
    }
    let mut binds = args![now()];
    let saturated = sender.saturated();
    let skip = if saturated.is_empty() {
        String::new()
    } else {
        let list = placeholders(&mut binds, saturated.into_iter().map(Arg::from));
        format!(" AND id NOT IN ({list})")
    };
    let due: Vec<(Uuid,)> = sender
        .state
        .db
        .fetch_all(
            &format!(
                "SELECT id FROM webhook_endpoints WHERE next_due_at <= $1{skip}
                 ORDER BY next_due_at LIMIT {ENDPOINTS_PER_ROUND}"
            ),
            binds,
        )
        .await?;
    for (endpoint,) in due {
        let room = PER_ENDPOINT
            .saturating_sub(sender.busy(endpoint))
            .min(sender.slots.available_permits());
        if room == 0 {
            continue;
        }
        // One endpoint's trouble (a secret that no longer opens) holds back no other.
        if let Err(e) = send_due(sender, endpoint, room).await {
            tracing::warn!(webhook = %endpoint, error = %e, "could not send a webhook's deliveries");
        }
    }
    Ok(())
}

/// Claims up to `room` of the endpoint's due deliveries and sends each in a task of its own.
async fn send_due(sender: &Arc<Sender>, endpoint: Uuid, room: usize) -> AppResult<()> {
    let target = Arc::new(target(&sender.state, endpoint).await?);
    for delivery in claim(sender, endpoint, room).await? {
        let Ok(permit) = sender.slots.clone().try_acquire_owned() else {
            break; // its claim lapses and it is sent then
        };
        sender.count(endpoint, 1);
        let sender = sender.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let outcome = attempt(&sender.state, &target, &delivery).await;
            if let Err(e) = settle(
                &sender.state,
                &target,
                &delivery,
                &outcome,
                Trigger::Scheduled,
            )
            .await
            {
                tracing::warn!(delivery = %delivery.id, error = %e, "could not record a webhook attempt");
            }
            sender.count(endpoint, -1);
            drop(permit);
            sender.done.notify_one();
        });
    }
    Ok(())
}

/// Takes up to `room` due deliveries of an endpoint for this host.
async fn claim(sender: &Sender, endpoint: Uuid, room: usize) -> AppResult<Vec<Pending>> {
    let mut tx = sender.state.db.begin().await?;
    let claimed: Vec<Pending> = if lock_endpoint(&mut tx, endpoint, true).await? {
        tx.fetch_all(
            &format!(
                "SELECT id, event_id, event_type, payload, attempts, status FROM webhook_deliveries
                 WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2
                 ORDER BY next_attempt_at LIMIT {room}"
            ),
            args![endpoint, now()],
        )
        .await?
    } else {
        Vec::new()
    };
    if !claimed.is_empty() {
        let mut binds = args![
            now() + chrono::Duration::seconds(CLAIM_SECONDS),
            sender.host
        ];
        let list = placeholders(&mut binds, claimed.iter().map(|d| Arg::from(d.id)));
        tx.execute(
            &format!(
                "UPDATE webhook_deliveries SET next_attempt_at = $1, claimed_by = $2 WHERE id IN ({list})"
            ),
            binds,
        )
        .await?;
    }
    refresh_due(&mut tx, endpoint).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Deletes finished deliveries (and their attempts) older than the event log keeps events,
/// every hour.
async fn sweep(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let cutoff = now() - chrono::Duration::days(state.config.event_retention_days);
        if let Err(e) = delete_old(&state.db, cutoff).await {
            tracing::warn!(error = %e, "could not delete old webhook deliveries");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn delete_old(db: &Db, cutoff: DateTime<Utc>) -> AppResult<()> {
    loop {
        let deleted = db
            .execute(
                "DELETE FROM webhook_deliveries WHERE id IN
                    (SELECT id FROM webhook_deliveries
                     WHERE created_at < $1 AND status <> 'pending' LIMIT 1000)",
                args![cutoff],
            )
            .await?;
        if deleted < 1000 {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}
