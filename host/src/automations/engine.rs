//! The rules' consumer of the event log: for each event, the rules of its workspace that
//! listen to its type (keyword rules found through their keyword index, not scanned), their
//! trigger evaluated, and for each that fires a run of its actions.
//!
//! Safety: a chain of rules fires at most `MAX_DEPTH` times (an event caused by a rule's
//! actions is one deeper than the one that fired it); a rule with a cooldown fires once per
//! subject (chat session) within it; a run is keyed by (rule, event), so a redelivered event
//! runs nothing twice (a run a crash interrupted is run again).

use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use super::actions::{self, ActionResult};
use super::rules::{RULE_COLUMNS, Rule};
use super::trigger::{self, MESSAGE_CREATED};
use crate::args;
use crate::db::{Arg, Db, Filter, new_id, now};
use crate::error::AppResult;
use crate::infra::eventlog::{self, Cause, Consumer, Event, Handled, NewEvent, Subject};
use crate::state::AppState;

/// Events this deep (three rule firings in a chain) fire no more rules.
pub const MAX_DEPTH: i64 = 3;
/// Distinct words of a message looked up in the keyword index, a query at a time.
const WORDS_PER_QUERY: usize = 500;
const MAX_WORDS: usize = 5_000;

pub struct RuleEngine(pub AppState);

impl Consumer for RuleEngine {
    fn name(&self) -> &'static str {
        "automation_rules"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> Handled<'a> {
        Box::pin(async move { on_event(&self.0, event).await.map_err(|e| e.to_string()) })
    }
}

async fn on_event(state: &AppState, event: &Event) -> AppResult<()> {
    if event.depth >= MAX_DEPTH {
        return Ok(());
    }
    for rule in candidates(&state.db, event).await? {
        if !applies_to_project(&rule, event) {
            continue;
        }
        let Ok(checked) = rule.written_trigger().check() else {
            continue;
        };
        if checked.evaluate(&event.kind, &event.data.0).matched {
            fire(state, &rule, event).await?;
        }
    }
    Ok(())
}

fn applies_to_project(rule: &Rule, event: &Event) -> bool {
    match &rule.project_ids {
        None => true,
        Some(ids) => event.project_id.is_some_and(|p| ids.0.contains(&p)),
    }
}

/// The enabled rules of the event's workspace that may fire on it: those of its type other
/// than keyword rules, and the keyword rules indexed under one of a message's words.
pub async fn candidates(db: &Db, event: &Event) -> AppResult<Vec<Rule>> {
    let mut rules: Vec<Rule> = db
        .fetch_all(
            &format!(
                "SELECT {RULE_COLUMNS} FROM automation_rules r
                 WHERE r.workspace_id = $1 AND r.event_type = $2
                    AND r.trigger_type IN ('sentiment_negative', 'response_time_high', 'event')
                    AND r.enabled = $3 ORDER BY r.id"
            ),
            args![event.workspace_id, event.kind.clone(), true],
        )
        .await?;
    if event.kind == MESSAGE_CREATED {
        let content = event
            .data
            .0
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut words = trigger::words(content);
        words.sort();
        words.dedup();
        words.truncate(MAX_WORDS);
        for chunk in words.chunks(WORDS_PER_QUERY) {
            let mut filter = Filter::after(args![event.workspace_id, true]);
            let list = filter.list(chunk.iter().map(|w| Arg::from(w.as_str())));
            let found: Vec<Rule> = db
                .fetch_all(
                    &format!(
                        "SELECT {RULE_COLUMNS} FROM automation_rule_keywords k
                         JOIN automation_rules r ON r.id = k.rule_id
                         WHERE k.workspace_id = $1 AND k.word IN ({list}) AND r.enabled = $2"
                    ),
                    filter.binds,
                )
                .await?;
            for rule in found {
                if !rules.iter().any(|r| r.id == rule.id) {
                    rules.push(rule);
                }
            }
        }
    }
    Ok(rules)
}

/// What a rule's cooldown is kept for: the event's chat session, else its subject.
fn cooldown_subject(event: &Event) -> String {
    event
        .data
        .0
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}:{}", event.subject_type, event.subject_id))
}

/// Starts the rule's run for the event: `None` when it ran already (a redelivery) or the rule
/// is cooling down for the event's subject.
async fn start_run(db: &Db, rule: &Rule, event: &Event) -> AppResult<Option<Uuid>> {
    let existing: Option<(Uuid, String)> = db
        .fetch_optional(
            "SELECT id, status FROM automation_runs WHERE rule_id = $1 AND event_id = $2",
            args![rule.id, event.id],
        )
        .await?;
    match existing {
        // Interrupted by a crash: its actions run again.
        Some((id, status)) if status == "running" => return Ok(Some(id)),
        Some(_) => return Ok(None),
        None => {}
    }
    if let Some(seconds) = rule.cooldown_seconds {
        let at = now();
        let claimed = db
            .execute(
                "INSERT INTO automation_cooldowns (rule_id, subject, until) VALUES ($1, $2, $3)
                 ON CONFLICT (rule_id, subject) DO UPDATE SET until = excluded.until
                 WHERE automation_cooldowns.until <= $4",
                args![
                    rule.id,
                    cooldown_subject(event),
                    at + chrono::Duration::seconds(seconds),
                    at
                ],
            )
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
    }
    let id = new_id();
    db.execute(
        "INSERT INTO automation_runs (id, rule_id, event_id, event_type, status, actions, depth, started_at)
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $7) ON CONFLICT (rule_id, event_id) DO NOTHING",
        args![id, rule.id, event.id, event.kind.clone(), json!([]), event.depth, now()],
    )
    .await?;
    Ok(Some(id))
}

/// Runs the rule's actions for the event and records the run with its
/// `automation.rule.fired` event.
async fn fire(state: &AppState, rule: &Rule, event: &Event) -> AppResult<()> {
    let Some(run_id) = start_run(&state.db, rule, event).await? else {
        return Ok(());
    };
    let cause = Cause::rule(rule.id, event.depth);
    let mut results: Vec<ActionResult> = Vec::new();
    for action in &rule.actions.0 {
        results.push(actions::run(state, &cause, event, action).await?);
    }
    let status = if results.iter().all(|r| r.status == "succeeded") {
        "succeeded"
    } else {
        "failed"
    };
    let mut tx = state.db.begin().await?;
    tx.execute(
        "UPDATE automation_runs SET status = $2, actions = $3, finished_at = $4 WHERE id = $1",
        args![run_id, status, json!(results), now()],
    )
    .await?;
    eventlog::record(
        &mut tx,
        &cause,
        NewEvent {
            workspace_id: rule.workspace_id,
            project_id: event.project_id,
            kind: "automation.rule.fired",
            subject: Subject::new("automation_rule", rule.id, Some(rule.name.clone())),
            data: json!({"rule_id": rule.id, "run_id": run_id, "event_id": event.id,
                         "event_type": event.kind, "status": status}),
        },
    )
    .await?;
    state.events.commit(tx).await
}

/// A rule's recorded run.
#[derive(Debug, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct RuleRun {
    pub id: Uuid,
    pub rule_id: Uuid,
    /// The event that fired it.
    pub event_id: Uuid,
    pub event_type: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Each action's status, output, error and duration.
    #[schema(value_type = Vec<ActionResult>)]
    pub actions: SqlJson<Vec<ActionResult>>,
    /// How many rule firings led to the event.
    pub depth: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}
