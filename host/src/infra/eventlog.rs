//! The event log: an outbox every change that matters writes in its own transaction, and the
//! one runner that feeds it to the consumers (automation rules, integrations, the live
//! activity feed, …).
//!
//! - [`record`] inserts an event inside the caller's transaction: a change that rolls back
//!   leaves no event, a committed one always has its event.
//! - Each [`Consumer`] has a durable position (`event_consumers`) and reads the log in commit
//!   order from it. One host at a time holds a consumer's lease, so with several replicas an
//!   event is consumed once per consumer; a host killed mid-way leaves its lease to run out
//!   and the next holder resumes from the last position written. The position moves after
//!   each event, so at most the event in hand is delivered again: consumers key their effects
//!   by event id.
//! - Commit order: on SQLite one writer holds the lock at a time, so `seq` follows commit
//!   order. On PostgreSQL transactions commit in any order; an event carries its transaction
//!   id and is read only once every older transaction has ended (the snapshot's xmin), in
//!   `(tx_id, seq)` order, so no event can turn up behind a consumer's position.
//! - A commit nudges the runners through the bus (on every replica with Redis); they also
//!   poll, so a lost nudge only delays.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bus::EventBus;
use crate::args;
use crate::db::{Db, Tx, new_id, now};
use crate::error::AppResult;

/// The bus channel that wakes the runners.
const NUDGE_CHANNEL: &str = "eventlog";
/// How often an idle runner looks anyway (a nudge may be lost while Redis is down).
const POLL: Duration = Duration::from_millis(500);
/// The first wait for an event held back behind an older transaction (PostgreSQL).
const HELD_BACK_FIRST_WAIT: Duration = Duration::from_millis(2);
/// Events read at a time.
const BATCH: i64 = 100;
/// Tries of one event before the runner logs it and moves on.
const ATTEMPTS: u32 = 3;

crate::text_enum! {
    /// Who made a change.
    pub enum ActorKind {
        User = "user",
        Agent = "agent",
        Plugin = "plugin",
        Rule = "rule",
        Workflow = "workflow",
        System = "system",
    }
}

/// Who caused a change, and how many rule firings led to it (events a rule's actions cause
/// are one deeper than the event that fired the rule).
#[derive(Debug, Clone)]
pub struct Cause {
    pub actor: ActorKind,
    /// A user, project or rule id, or a plugin id; none for the system.
    pub actor_id: Option<String>,
    pub depth: i64,
}

impl Cause {
    pub fn user(id: Uuid) -> Cause {
        Cause::of(ActorKind::User, id.to_string())
    }

    pub fn agent(project_id: Uuid) -> Cause {
        Cause::of(ActorKind::Agent, project_id.to_string())
    }

    pub fn plugin(plugin_id: &str) -> Cause {
        Cause::of(ActorKind::Plugin, plugin_id.to_owned())
    }

    pub fn system() -> Cause {
        Cause {
            actor: ActorKind::System,
            actor_id: None,
            depth: 0,
        }
    }

    /// What a rule fired by an event at `depth` causes.
    pub fn rule(rule_id: Uuid, depth: i64) -> Cause {
        Cause {
            depth: depth + 1,
            ..Cause::of(ActorKind::Rule, rule_id.to_string())
        }
    }

    /// What a run of a workflow started at `depth` causes.
    pub fn workflow(workflow_id: Uuid, depth: i64) -> Cause {
        Cause {
            depth: depth + 1,
            ..Cause::of(ActorKind::Workflow, workflow_id.to_string())
        }
    }

    /// The same depth with another actor (a plugin acting for a rule).
    pub fn by(&self, actor: ActorKind, actor_id: String) -> Cause {
        Cause {
            actor,
            actor_id: Some(actor_id),
            depth: self.depth,
        }
    }

    fn of(actor: ActorKind, id: String) -> Cause {
        Cause {
            actor,
            actor_id: Some(id),
            depth: 0,
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `project`, `chat_session`, `chat_message`, `document`, `upload`, `member`, …
    pub kind: &'static str,
    pub id: String,
    /// Its name as it was (a project's name, a session's title).
    pub name: Option<String>,
}

impl Subject {
    pub fn new(kind: &'static str, id: impl ToString, name: Option<String>) -> Subject {
        Subject {
            kind,
            id: id.to_string(),
            name,
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub workspace_id: Uuid,
    /// The project (agent) it concerns, if any: people a project is shared with see its
    /// events.
    pub project_id: Option<Uuid>,
    /// A type of the catalogue (`GET /api/events/types`).
    pub kind: &'static str,
    pub subject: Subject,
    pub data: Value,
}

/// An event as stored.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Event {
    /// UUID v7: time-ordered.
    pub id: Uuid,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub workspace_id: Uuid,
    pub project_id: Option<Uuid>,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub subject_type: String,
    pub subject_id: String,
    pub subject_name: Option<String>,
    #[schema(value_type = Object)]
    pub data: SqlJson<Value>,
    /// How many rule firings led to it.
    pub depth: i64,
    pub occurred_at: DateTime<Utc>,
    #[serde(skip)]
    pub tx_id: i64,
    #[serde(skip)]
    pub seq: i64,
}

impl Event {
    /// The event as templates, plugins and workflow runs see it: `{id, type, occurred_at,
    /// workspace_id, project_id, subject, data}`.
    pub fn context(&self) -> Value {
        serde_json::json!({
            "id": self.id, "type": self.kind, "occurred_at": self.occurred_at,
            "workspace_id": self.workspace_id, "project_id": self.project_id,
            "subject": {"type": self.subject_type, "id": self.subject_id, "name": self.subject_name},
            "data": self.data.0,
        })
    }
}

pub const EVENT_COLUMNS: &str = "id, type, workspace_id, project_id, actor_type, actor_id,
    subject_type, subject_id, subject_name, data, depth, occurred_at, tx_id, seq";

/// Records `event`, caused by `cause`, inside the transaction making the change.
pub async fn record(tx: &mut Tx, cause: &Cause, event: NewEvent) -> AppResult<Uuid> {
    let id = new_id();
    tx.execute(
        "INSERT INTO events (id, workspace_id, project_id, type, actor_type, actor_id,
            subject_type, subject_id, subject_name, data, depth, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        args![
            id,
            event.workspace_id,
            event.project_id,
            event.kind,
            cause.actor.as_str(),
            cause.actor_id.clone(),
            event.subject.kind,
            event.subject.id,
            event.subject.name,
            event.data,
            cause.depth,
            now()
        ],
    )
    .await?;
    Ok(id)
}

/// `base` with the fields of `extra` (an object) added.
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// Claims an effect of `consumer` for `event_id` (e.g. the post to one installation): `true`
/// the first time, `false` when a delivery before this one had it.
pub async fn first_time(db: &Db, consumer: &str, event_id: Uuid, effect: &str) -> AppResult<bool> {
    let claimed = db
        .execute(
            "INSERT INTO event_receipts (consumer, event_id, effect, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (consumer, event_id, effect) DO NOTHING",
            args![consumer, event_id, effect, now()],
        )
        .await?;
    Ok(claimed > 0)
}

/// The log's handle in the application state: commits that recorded events wake the runners.
#[derive(Clone)]
pub struct EventLog {
    bus: EventBus,
}

impl EventLog {
    pub fn new(bus: EventBus) -> EventLog {
        EventLog { bus }
    }

    /// Commits a transaction that recorded events, and tells the runners.
    pub async fn commit(&self, tx: Tx) -> AppResult<()> {
        tx.commit().await?;
        self.nudge().await;
        Ok(())
    }

    /// Wakes the runners of every replica.
    pub async fn nudge(&self) {
        self.bus
            .publish(NUDGE_CHANNEL, &serde_json::json!({}))
            .await;
    }
}

/// What a consumer's handler returns: an error is retried (the event is not passed).
pub type Handled<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// One reader of the log, with a position of its own.
pub trait Consumer: Send + Sync + 'static {
    /// Its durable name (the key of its position).
    fn name(&self) -> &'static str;
    /// Applies one event. It may see an event again after a crash, so its effects are keyed
    /// by the event's id.
    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a>;
}

/// How the runners read the log.
pub struct Runner {
    pub db: Db,
    pub bus: EventBus,
    pub lease: chrono::Duration,
    pub retention_days: i64,
    pub consumers: Vec<Arc<dyn Consumer>>,
    /// Turns true when the host shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Registers the consumers (a new one starts at the end of the log) and runs one task per
/// consumer, plus the retention sweep, until the host shuts down.
pub async fn spawn(runner: Runner) -> AppResult<()> {
    for consumer in &runner.consumers {
        register(&runner.db, consumer.name()).await?;
    }
    let host = new_id();
    let runner = Arc::new(runner);
    for consumer in runner.consumers.clone() {
        tokio::spawn(run_consumer(runner.clone(), consumer, host));
    }
    tokio::spawn(sweep(runner));
    Ok(())
}

async fn register(db: &Db, name: &str) -> AppResult<()> {
    let end: Option<(i64, i64)> = db
        .fetch_optional(
            "SELECT tx_id, seq FROM events ORDER BY tx_id DESC, seq DESC LIMIT 1",
            vec![],
        )
        .await?;
    let (tx_id, seq) = end.unwrap_or((0, 0));
    db.execute(
        "INSERT INTO event_consumers (name, tx_id, seq, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
        args![name, tx_id, seq, now()],
    )
    .await?;
    Ok(())
}

async fn run_consumer(runner: Arc<Runner>, consumer: Arc<dyn Consumer>, host: Uuid) {
    let mut nudges = runner.bus.subscribe(NUDGE_CHANNEL);
    let mut shutdown = runner.shutdown.clone();
    let mut held = None;
    let mut held_back_wait = HELD_BACK_FIRST_WAIT;
    loop {
        let wait = match step(&runner, consumer.as_ref(), host, &mut held).await {
            Ok(Next::More) => continue,
            Ok(Next::HeldBack) => {
                // A committed event waits for an older transaction to end: look again soon
                // rather than at the next nudge or poll, backing off while it lasts.
                held_back_wait = (held_back_wait * 2).min(POLL);
                held_back_wait / 2
            }
            Ok(Next::Idle) => {
                held_back_wait = HELD_BACK_FIRST_WAIT;
                POLL
            }
            Err(e) => {
                held = None;
                tracing::warn!(consumer = consumer.name(), error = %e, "event consumer could not read the log");
                POLL
            }
        };
        tokio::select! {
            _ = nudges.recv() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    // Leave the lease to the next host at once rather than after it runs out.
    let _ = runner
        .db
        .execute(
            "UPDATE event_consumers SET leased_until = NULL WHERE name = $1 AND leased_by = $2",
            args![consumer.name(), host],
        )
        .await;
}

/// A lease this host holds: the consumer's position, and when to renew the lease (a third of
/// its time), so that a host holding it writes nothing while the log is quiet.
struct Held {
    position: (i64, i64),
    renew_at: std::time::Instant,
}

impl Held {
    fn new(position: (i64, i64), lease: chrono::Duration) -> Held {
        Held {
            position,
            renew_at: std::time::Instant::now() + (lease / 3).to_std().unwrap_or(POLL),
        }
    }
}

/// What a consumer's runner does after a step.
enum Next {
    /// A full batch was read: more may follow at once.
    More,
    /// Events are committed past the position but not yet readable: an older transaction
    /// is still open (PostgreSQL).
    HeldBack,
    /// Nothing to read, or another host holds the lease.
    Idle,
}

/// Hands the consumer the next batch of events, if this host holds (or now takes) its lease.
async fn step(
    runner: &Runner,
    consumer: &dyn Consumer,
    host: Uuid,
    held: &mut Option<Held>,
) -> AppResult<Next> {
    let mut position = match held {
        Some(h) if std::time::Instant::now() < h.renew_at => h.position,
        _ => match take_lease(runner, consumer.name(), host).await? {
            Some(position) => position,
            None => {
                *held = None;
                return Ok(Next::Idle);
            }
        },
    };
    *held = Some(Held::new(position, runner.lease));
    let committed = if runner.db.is_postgres() {
        " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    } else {
        ""
    };
    let events: Vec<Event> = runner
        .db
        .fetch_all(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE (tx_id, seq) > ($1, $2){committed}
                 ORDER BY tx_id, seq LIMIT {BATCH}"
            ),
            args![position.0, position.1],
        )
        .await?;
    for event in &events {
        deliver(consumer, event).await;
        position = (event.tx_id, event.seq);
        // Moving the position renews the lease.
        let kept = runner
            .db
            .execute(
                "UPDATE event_consumers SET tx_id = $3, seq = $4, leased_until = $5, updated_at = $6
                 WHERE name = $1 AND leased_by = $2",
                args![
                    consumer.name(),
                    host,
                    position.0,
                    position.1,
                    now() + runner.lease,
                    now()
                ],
            )
            .await?;
        if kept == 0 {
            // Another host took the lease over (this one stalled past it): it goes on.
            *held = None;
            return Ok(Next::Idle);
        }
        *held = Some(Held::new(position, runner.lease));
    }
    if events.len() as i64 == BATCH {
        return Ok(Next::More);
    }
    if committed.is_empty() {
        return Ok(Next::Idle);
    }
    let waiting: Option<(i64,)> = runner
        .db
        .fetch_optional(
            "SELECT seq FROM events WHERE (tx_id, seq) > ($1, $2) LIMIT 1",
            args![position.0, position.1],
        )
        .await?;
    Ok(if waiting.is_some() {
        Next::HeldBack
    } else {
        Next::Idle
    })
}

/// The consumer's position, if this host holds (or now takes) its lease. A lease another host
/// holds is seen by a read, so waiting hosts do not write.
async fn take_lease(runner: &Runner, name: &str, host: Uuid) -> AppResult<Option<(i64, i64)>> {
    let (leased_by, leased_until): (Option<Uuid>, Option<DateTime<Utc>>) = runner
        .db
        .fetch_one(
            "SELECT leased_by, leased_until FROM event_consumers WHERE name = $1",
            args![name],
        )
        .await?;
    if leased_by != Some(host) && leased_until.is_some_and(|until| until >= now()) {
        return Ok(None);
    }
    Ok(runner
        .db
        .fetch_optional(
            "UPDATE event_consumers SET leased_by = $2, leased_until = $3
             WHERE name = $1 AND (leased_by = $2 OR leased_until IS NULL OR leased_until < $4)
             RETURNING tx_id, seq",
            args![name, host, now() + runner.lease, now()],
        )
        .await?)
}

/// Hands one event to a consumer, retrying a failure a few times; an event that keeps failing
/// is logged and passed, so that it cannot hold back every later one.
async fn deliver(consumer: &dyn Consumer, event: &Event) {
    for attempt in 1..=ATTEMPTS {
        match consumer.handle(event).await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(consumer = consumer.name(), event = %event.id, error = %e, "event consumer failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => {
                tracing::error!(consumer = consumer.name(), event = %event.id, error = %e, "event consumer gave up on an event");
            }
        }
    }
}

/// Deletes events older than `NOVA_EVENT_RETENTION_DAYS`, a batch at a time, every hour.
async fn sweep(runner: Arc<Runner>) {
    let mut shutdown = runner.shutdown.clone();
    loop {
        let cutoff = now() - chrono::Duration::days(runner.retention_days);
        if let Err(e) = runner
            .db
            .execute(
                "DELETE FROM event_receipts WHERE created_at < $1",
                args![cutoff],
            )
            .await
        {
            tracing::warn!(error = %e, "could not delete expired event receipts");
        }
        loop {
            let deleted = runner
                .db
                .execute(
                    "DELETE FROM events WHERE seq IN
                        (SELECT seq FROM events WHERE occurred_at < $1 LIMIT 1000)",
                    args![cutoff],
                )
                .await;
            match deleted {
                Ok(1000) => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete expired events");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
