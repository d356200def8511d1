//! Runs that start by themselves, while a workflow `is_active`: an `event` trigger is a
//! consumer of the event log (a run per matching event, once, even when the event is
//! delivered again), a `schedule` trigger fires from `workflows.next_fire_at` (claimed by
//! compare-and-set, so with several replicas each firing starts one run).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::crud::{WORKFLOW_COLUMNS, Workflow};
use super::definition::{Definition, event_trigger};
use super::engine::{self, Start};
use crate::args;
use crate::automations::engine::MAX_DEPTH;
use crate::db::now;
use crate::error::{AppError, AppResult};
use crate::infra::cron::Schedule;
use crate::infra::eventlog::{Consumer, Event, Handled};
use crate::state::AppState;

/// How often the scheduler looks for schedules that are due.
const SCHEDULE_POLL: Duration = Duration::from_millis(500);
/// Schedules fired per look.
const SCHEDULES_PER_ROUND: i64 = 50;

/// What the `workflows` row says about how a definition starts by itself.
pub struct TriggerColumns {
    pub kind: String,
    /// An active event trigger's event type.
    pub event_type: Option<String>,
    /// An active schedule's next firing.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The agent whose chat sessions an active `reply` trigger answers.
    pub answers_project_id: Option<Uuid>,
}

pub fn columns(definition: &Definition, is_active: bool) -> TriggerColumns {
    let trigger = definition.nodes.iter().find(|n| n.kind == "trigger");
    let text = |key: &str| {
        trigger
            .and_then(|t| t.config.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let kind = text("kind").unwrap_or_else(|| "manual".into());
    let event_type = (is_active && kind == "event")
        .then(|| text("event_type"))
        .flatten();
    let next_fire_at = (is_active && kind == "schedule")
        .then(|| text("cron"))
        .flatten()
        .and_then(|cron| Schedule::parse(&cron).ok())
        .and_then(|s| s.next_after(now()));
    let answers_project_id = (event_type.as_deref() == Some(CHAT_MESSAGE)
        && trigger.is_some_and(|t| answers_chat(&t.config)))
    .then(|| text("project_id").and_then(|p| p.parse().ok()))
    .flatten();
    TriggerColumns {
        kind,
        event_type,
        next_fire_at,
        answers_project_id,
    }
}

/// The event a chat-attached workflow starts on.
pub const CHAT_MESSAGE: &str = "chat.message.created";

/// Whether a trigger's config answers its agent's chat sessions (`reply: true`).
pub fn answers_chat(config: &serde_json::Map<String, Value>) -> bool {
    config.get("reply") == Some(&Value::Bool(true))
}

/// The active workflow that answers `project_id`'s chat sessions instead of the agent, if any.
pub async fn answering(db: &crate::db::Db, project_id: Uuid) -> AppResult<Option<Uuid>> {
    let found: Option<(Uuid,)> = db
        .fetch_optional(
            "SELECT id FROM workflows WHERE answers_project_id = $1 AND is_active",
            args![project_id],
        )
        .await?;
    Ok(found.map(|(id,)| id))
}

fn trigger_config(workflow: &Workflow) -> serde_json::Map<String, Value> {
    workflow
        .definition
        .0
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|n| n.get("type").and_then(Value::as_str) == Some("trigger"))
        .and_then(|n| n.get("config"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The event log's `workflows` consumer.
pub struct WorkflowTriggers(pub AppState);

impl Consumer for WorkflowTriggers {
    fn name(&self) -> &'static str {
        "workflows"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a> {
        Box::pin(async move { start_for(&self.0, event).await.map_err(|e| e.to_string()) })
    }
}

/// A run's input for an event: the event's data, with the event itself under `event`.
fn event_input(event: &Event) -> Value {
    let mut input = match &event.data.0 {
        Value::Object(data) => data.clone(),
        other => serde_json::Map::from_iter([("data".to_owned(), other.clone())]),
    };
    input.insert("event".into(), event.context());
    Value::Object(input)
}

async fn start_for(state: &AppState, event: &Event) -> AppResult<()> {
    // A chain of workflows and rules stops where rules stop.
    if event.depth >= MAX_DEPTH {
        return Ok(());
    }
    let listening: Vec<Workflow> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {WORKFLOW_COLUMNS} FROM workflows w
                 WHERE w.trigger_event_type = $1 AND w.workspace_id = $2 AND w.is_active"
            ),
            args![event.kind.clone(), event.workspace_id],
        )
        .await?;
    let mut started = false;
    for workflow in &listening {
        let config = trigger_config(workflow);
        let wanted_project = config.get("project_id").and_then(Value::as_str);
        if wanted_project
            .is_some_and(|p| event.project_id.map(|id| id.to_string()).as_deref() != Some(p))
        {
            continue;
        }
        // A workflow answering a chat is started by what people say, not by its own replies.
        if answers_chat(&config) && event.data.0.get("role").and_then(Value::as_str) != Some("user")
        {
            continue;
        }
        let Ok(checked) = event_trigger(&config).check() else {
            continue;
        };
        if !checked.evaluate(&event.kind, &event.data.0).matched {
            continue;
        }
        let mut tx = state.db.begin().await?;
        let seen: Option<(Uuid,)> = tx
            .fetch_optional(
                "SELECT id FROM workflow_runs WHERE workflow_id = $1 AND event_id = $2",
                args![workflow.id, event.id],
            )
            .await?;
        if seen.is_some() {
            continue;
        }
        let start = Start {
            workflow,
            trigger: "event",
            input: event_input(event),
            dry_run: false,
            started_by: None,
            event_id: Some(event.id),
            depth: event.depth,
        };
        match engine::create(&mut tx, &state.config, start).await {
            Ok(_) => {
                tx.commit().await?;
                started = true;
            }
            Err(AppError::TooManyRequests { .. }) => {
                tracing::warn!(workflow = %workflow.id, event = %event.id, "an event did not start a workflow run: its workspace has the most runs under way");
            }
            Err(other) => return Err(other),
        }
    }
    if started {
        engine::wake(state).await;
    }
    Ok(())
}

/// Fires due schedules until the host shuts down.
pub fn spawn_scheduler(state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            match fire_due(&state).await {
                Ok(true) => engine::wake(&state).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not fire workflow schedules"),
            }
            tokio::select! {
                _ = tokio::time::sleep(SCHEDULE_POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

#[derive(sqlx::FromRow)]
struct Due {
    #[sqlx(flatten)]
    workflow: Workflow,
    next_fire_at: DateTime<Utc>,
}

/// Starts one run for each schedule that is due (a host that was down fires once, not once
/// per missed time) and moves it to its next time. Whether any run started.
async fn fire_due(state: &AppState) -> AppResult<bool> {
    let at = now();
    let due: Vec<Due> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {WORKFLOW_COLUMNS}, w.next_fire_at FROM workflows w
                 WHERE w.next_fire_at <= $1 ORDER BY w.next_fire_at LIMIT {SCHEDULES_PER_ROUND}"
            ),
            args![at],
        )
        .await?;
    let mut started = false;
    for Due {
        workflow,
        next_fire_at,
    } in due
    {
        let next = trigger_config(&workflow)
            .get("cron")
            .and_then(Value::as_str)
            .and_then(|c| Schedule::parse(c).ok())
            .and_then(|s| s.next_after(at));
        let mut tx = state.db.begin().await?;
        let claimed = tx
            .execute(
                "UPDATE workflows SET next_fire_at = $3 WHERE id = $1 AND next_fire_at = $2",
                args![workflow.id, next_fire_at, next],
            )
            .await?;
        if claimed == 0 {
            continue;
        }
        let start = Start {
            workflow: &workflow,
            trigger: "schedule",
            input: json!({"scheduled_at": next_fire_at, "fired_at": at}),
            dry_run: false,
            started_by: None,
            event_id: None,
            depth: 0,
        };
        match engine::create(&mut tx, &state.config, start).await {
            Ok(_) => started = true,
            Err(AppError::TooManyRequests { .. }) => {
                tracing::warn!(workflow = %workflow.id, "a schedule did not start a workflow run: its workspace has the most runs under way");
            }
            Err(other) => return Err(other),
        }
        tx.commit().await?;
    }
    Ok(started)
}
