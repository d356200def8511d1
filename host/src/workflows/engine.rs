//! The workflow engine: drives runs, durably, on any replica.
//!
//! - A run is its own queue entry. `due_at` says when an executor should take it up (now when
//!   queued; the end of the holder's lease while running; the next timer while waiting), and
//!   `claim` who holds it. Each host drives up to `NOVA_WORKFLOW_WORKERS` runs at once; a host
//!   killed mid-run leaves its lease to lapse, and any replica takes the run up where its
//!   last committed node left it.
//! - Each node's outcome is committed (with a check that the claim is still this host's)
//!   before anything that depends on it starts. A node with an outside effect (agent,
//!   knowledge_search, action, notify) first commits that it started, so a crash during it is
//!   counted as an attempt; a node whose outcome committed is never run again.
//! - Nodes whose predecessors are all decided run as soon as one incoming edge was taken
//!   (its source succeeded on the edge's branch); with none taken they are skipped. Nodes
//!   without a dependency between them run at the same time.
//! - A run with nothing to do but wait (a delay, a person, a retry's backoff) is parked:
//!   released with `due_at` at its next timer. A resume or cancel bumps `wakeups`, so a run is
//!   never parked over news its executor has not read, and tells the holder on the run's bus
//!   channel.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value, json};
use sqlx::types::Json as SqlJson;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use super::crud::Workflow;
use super::definition::Definition;
use super::nodes::{self, Attempt, Done};
use super::runs::{NodeStatus, RunStatus, RunSummary};
use crate::args;
use crate::config::Config;
use crate::db::{Tx, new_id, now};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The bus channel that wakes the executors of every replica.
const CHANNEL: &str = "workflows";
/// How often an idle executor looks anyway (timers come due; a nudge may be lost).
const POLL: Duration = Duration::from_millis(250);
/// The most one node's output may hold, as JSON.
const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Starts of one node whose host stopped each time before the run gives up on it.
const MAX_CRASHED_STARTS: i64 = 5;

/// How a run starts.
pub struct Start<'a> {
    pub workflow: &'a Workflow,
    /// manual, event, schedule or webhook.
    pub trigger: &'static str,
    pub input: Value,
    pub dry_run: bool,
    pub started_by: Option<Uuid>,
    /// The event that started it (an event trigger): a workflow runs once per event.
    pub event_id: Option<Uuid>,
    /// How many rule or workflow firings led to it.
    pub depth: i64,
}

/// Queues a run of the workflow's current version inside the caller's transaction, with a
/// `pending` row per node; 429 when the workspace has `NOVA_WORKFLOW_MAX_ACTIVE_RUNS` runs
/// under way.
pub async fn create(tx: &mut Tx, config: &Config, start: Start<'_>) -> AppResult<Uuid> {
    let workflow = start.workflow;
    let active: i64 = tx
        .scalar(
            "SELECT COUNT(*) FROM workflow_runs
             WHERE workspace_id = $1 AND status IN ('queued', 'running', 'waiting')",
            args![workflow.workspace_id],
        )
        .await?;
    if active >= config.workflow_max_active_runs {
        return Err(AppError::TooManyRequests {
            retry_after: Duration::from_secs(5),
        });
    }
    let definition = parse(&workflow.definition.0)?;
    let id = new_id();
    let at = now();
    tx.execute(
        "INSERT INTO workflow_runs (id, workflow_id, workspace_id, version, status, trigger,
            input, dry_run, started_by, event_id, depth, due_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $11, $11)",
        args![
            id,
            workflow.id,
            workflow.workspace_id,
            workflow.version,
            start.trigger,
            start.input,
            start.dry_run,
            start.started_by,
            start.event_id,
            start.depth,
            at
        ],
    )
    .await?;
    let mut sql = String::from(
        "INSERT INTO workflow_run_nodes (run_id, node_id, node_type, position, status) VALUES ",
    );
    let mut binds = args![id];
    for (i, node) in definition.nodes.iter().enumerate() {
        let n = binds.len();
        if i > 0 {
            sql += ", ";
        }
        sql += &format!("($1, ${}, ${}, {i}, 'pending')", n + 1, n + 2);
        binds.push(node.id.clone().into());
        binds.push(node.kind.clone().into());
    }
    tx.execute(&sql, binds).await?;
    Ok(id)
}

fn parse(definition: &Value) -> AppResult<Definition> {
    serde_json::from_value(definition.clone())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a stored workflow definition: {e}")))
}

/// Wakes the executors of every replica: a run is due.
pub async fn wake(state: &AppState) {
    state.bus.publish(CHANNEL, &json!({})).await;
}

fn run_channel(run_id: Uuid) -> String {
    format!("workflow-run:{run_id}")
}

/// Tells the host driving a run that it changed from outside (a resume, a cancel).
pub async fn tell_run(state: &AppState, run_id: Uuid) {
    state.bus.publish(&run_channel(run_id), &json!({})).await;
}

/// Marks a run changed from outside; a parked run is queued again.
pub async fn requeue(tx: &mut Tx, run_id: Uuid) -> AppResult<()> {
    tx.execute(
        "UPDATE workflow_runs SET wakeups = wakeups + 1, updated_at = $2,
            due_at = CASE WHEN status = 'waiting' THEN $2 ELSE due_at END,
            status = CASE WHEN status = 'waiting' THEN 'queued' ELSE status END
         WHERE id = $1",
        args![run_id, now()],
    )
    .await?;
    Ok(())
}

/// Who hears a run's progress on their notification socket: who started it, and the
/// workflow's author.
async fn audience(state: &AppState, run: &RunSummary) -> Vec<Uuid> {
    let author: Option<(Option<Uuid>,)> = state
        .db
        .fetch_optional(
            "SELECT user_id FROM workflows WHERE id = $1",
            args![run.workflow_id],
        )
        .await
        .unwrap_or_default();
    let mut users: Vec<Uuid> = run.started_by.into_iter().collect();
    users.extend(author.and_then(|a| a.0));
    users.dedup();
    users
}

async fn tell(state: &AppState, audience: &[Uuid], event: Value) {
    for user in audience {
        state.bus.publish(&format!("user:{user}"), &event).await;
    }
}

fn run_event(run: &RunSummary) -> Value {
    json!({"type": "workflow.run", "run_id": run.id, "workflow_id": run.workflow_id,
           "status": run.status, "at": now()})
}

fn node_event(run: &RunSummary, node_id: &str, status: NodeStatus) -> Value {
    json!({"type": "workflow.node", "run_id": run.id, "workflow_id": run.workflow_id,
           "node_id": node_id, "status": status, "at": now()})
}

/// `{"type": "workflow.run", run_id, workflow_id, status}` on the notification sockets of
/// who started the run and the workflow's author.
pub async fn announce_run(state: &AppState, run: &RunSummary) {
    tell(state, &audience(state, run).await, run_event(run)).await;
}

/// `{"type": "workflow.node", run_id, workflow_id, node_id, status}`, to the same people.
pub async fn announce_node(state: &AppState, run: &RunSummary, node_id: &str, status: NodeStatus) {
    tell(
        state,
        &audience(state, run).await,
        node_event(run, node_id, status),
    )
    .await;
}

/// Starts the executor: it takes up due runs while it has room, until the host shuts down.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(state.config.workflow_workers as usize));
        let finished = Arc::new(Notify::new());
        let mut nudges = state.bus.subscribe(CHANNEL);
        let mut shutdown = state.shutdown.clone();
        loop {
            while let Ok(slot) = slots.clone().try_acquire_owned() {
                match claim(&state).await {
                    Ok(Some(claimed)) => {
                        let (state, finished) = (state.clone(), finished.clone());
                        tokio::spawn(async move {
                            let run_id = claimed.id;
                            if let Err(e) = drive(state, claimed).await {
                                tracing::warn!(run = %run_id, error = %e, "a workflow run stopped on this host; its lease will lapse and it is taken up again");
                            }
                            drop(slot);
                            finished.notify_one();
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim a workflow run");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = nudges.recv() => {}
                _ = finished.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// A run taken up by this host.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    workflow_id: Uuid,
    workspace_id: Uuid,
    version: i64,
    input: SqlJson<Value>,
    dry_run: bool,
    depth: i64,
    claim: Uuid,
}

/// Takes the run due longest ago, if any.
async fn claim(state: &AppState) -> AppResult<Option<Claimed>> {
    let skip_locked = if state.db.is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let at = now();
    let lease = chrono::Duration::seconds(state.config.job_lease_secs);
    let mut tx = state.db.begin().await?;
    let claimed: Option<Claimed> = tx
        .fetch_optional(
            &format!(
                "UPDATE workflow_runs SET claim = $1, due_at = $2, status = 'running',
                    started_at = COALESCE(started_at, $3), updated_at = $3
                 WHERE id = (SELECT id FROM workflow_runs WHERE due_at <= $3
                    ORDER BY due_at LIMIT 1{skip_locked})
                 RETURNING id, workflow_id, workspace_id, version, input, dry_run, depth, claim"
            ),
            args![new_id(), at + lease, at],
        )
        .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// What the engine knows of one node of the run.
#[derive(Debug, Clone, sqlx::FromRow)]
struct NodeState {
    node_id: String,
    #[sqlx(try_from = "String")]
    status: NodeStatus,
    branch: Option<String>,
    output: Option<SqlJson<Value>>,
    attempts: i64,
    wake_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
}

type Flight = Pin<Box<dyn Future<Output = (usize, Attempt)> + Send>>;

/// One run in hand.
struct Driver {
    state: AppState,
    run: Claimed,
    definition: Definition,
    /// For each node, its incoming edges: (source node, the branch it needs).
    incoming: Vec<Vec<(usize, Option<String>)>>,
    nodes: Vec<NodeState>,
    /// `wakeups` as last read: news from outside since then means reading the nodes again.
    wakeups: i64,
    summary: RunSummary,
    /// Who hears of its progress.
    audience: Vec<Uuid>,
}

/// What the graph allows next.
#[derive(Default)]
struct Plan {
    ready: Vec<usize>,
    skip: Vec<usize>,
    /// Waiting nodes whose timer has come.
    timers_due: Vec<usize>,
    next_wake: Option<DateTime<Utc>>,
    waiting: bool,
    failed: bool,
}

/// How a write went: the claim may have been lost (the lease lapsed, or the run was
/// cancelled).
enum Written {
    Held { news: bool },
    Lost,
}

async fn drive(state: AppState, run: Claimed) -> AppResult<()> {
    let Some(mut driver) = Driver::load(state, run).await? else {
        return Ok(());
    };
    driver.announce_run().await;
    let mut news = driver.state.bus.subscribe(&run_channel(driver.run.id));
    let mut shutdown = driver.state.shutdown.clone();
    let lease = chrono::Duration::seconds(driver.state.config.job_lease_secs);
    let mut renew = tokio::time::interval(
        (lease / 3)
            .to_std()
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(100)),
    );
    renew.tick().await;
    let mut flights: FuturesUnordered<Flight> = FuturesUnordered::new();
    let mut flying: HashSet<usize> = HashSet::new();
    loop {
        let plan = driver.plan(&flying, now());
        if !plan.skip.is_empty() {
            match driver.skip(&plan.skip).await? {
                Written::Lost => return Ok(()),
                Written::Held { news } => driver.catch_up(news).await?,
            }
            continue;
        }
        if let Some(&i) = plan.timers_due.first() {
            match driver.timer_came(i).await? {
                Written::Lost => return Ok(()),
                Written::Held { news } => driver.catch_up(news).await?,
            }
            continue;
        }
        if !plan.failed {
            for i in plan.ready {
                match driver.launch(i).await? {
                    Some(flight) => {
                        flying.insert(i);
                        flights.push(flight);
                    }
                    None => return Ok(()),
                }
            }
        }
        if flying.is_empty() {
            let done = if plan.failed {
                driver.finish(RunStatus::Failed).await?
            } else if plan.waiting || plan.next_wake.is_some() {
                driver.park(plan.next_wake).await?
            } else {
                driver.finish(RunStatus::Succeeded).await?
            };
            match done {
                Some(_) => return Ok(()),
                None => {
                    driver.catch_up(true).await?;
                    continue;
                }
            }
        }
        tokio::select! {
            Some((i, attempt)) = flights.next() => {
                flying.remove(&i);
                match driver.record(i, attempt).await? {
                    Written::Lost => return Ok(()),
                    Written::Held { news } => driver.catch_up(news).await?,
                }
            }
            _ = news.recv() => {
                if !driver.still_held().await? {
                    return Ok(());
                }
                driver.catch_up(true).await?;
            }
            _ = renew.tick() => {
                if !driver.renew(lease).await? {
                    return Ok(());
                }
            }
            _ = shutdown.changed() => {
                driver.release().await?;
                return Ok(());
            }
        }
    }
}

impl Driver {
    /// The run's definition (its version) and nodes; `None` when the run is gone.
    async fn load(state: AppState, run: Claimed) -> AppResult<Option<Driver>> {
        let stored: Option<(SqlJson<Value>,)> = state
            .db
            .fetch_optional(
                "SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
                args![run.workflow_id, run.version],
            )
            .await?;
        let Some((definition,)) = stored else {
            return Ok(None);
        };
        let definition = parse(&definition.0)?;
        let index: HashMap<&str, usize> = definition
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut incoming = vec![Vec::new(); definition.nodes.len()];
        for edge in &definition.edges {
            if let (Some(&from), Some(&to)) =
                (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
            {
                incoming[to].push((from, edge.when.clone()));
            }
        }
        let summary = fetch_summary(&state, run.id).await?;
        let audience = audience(&state, &summary).await;
        let mut driver = Driver {
            state,
            run,
            definition,
            incoming,
            nodes: Vec::new(),
            wakeups: 0,
            summary,
            audience,
        };
        driver.catch_up(true).await?;
        Ok(Some(driver))
    }

    /// Reads the nodes again when something changed them from outside.
    async fn catch_up(&mut self, news: bool) -> AppResult<()> {
        if !news {
            return Ok(());
        }
        let wakeups: Option<(i64,)> = self
            .state
            .db
            .fetch_optional(
                "SELECT wakeups FROM workflow_runs WHERE id = $1",
                args![self.run.id],
            )
            .await?;
        self.wakeups = wakeups.map_or(0, |w| w.0);
        let rows: Vec<NodeState> = self
            .state
            .db
            .fetch_all(
                "SELECT node_id, status, branch, output, attempts, wake_at, started_at
                 FROM workflow_run_nodes WHERE run_id = $1 ORDER BY position",
                args![self.run.id],
            )
            .await?;
        let by_id: HashMap<String, NodeState> =
            rows.into_iter().map(|r| (r.node_id.clone(), r)).collect();
        self.nodes = self
            .definition
            .nodes
            .iter()
            .map(|n| {
                by_id.get(&n.id).cloned().unwrap_or(NodeState {
                    node_id: n.id.clone(),
                    status: NodeStatus::Pending,
                    branch: None,
                    output: None,
                    attempts: 0,
                    wake_at: None,
                    started_at: None,
                })
            })
            .collect();
        Ok(())
    }

    fn plan(&self, flying: &HashSet<usize>, at: DateTime<Utc>) -> Plan {
        let mut plan = Plan::default();
        let wake = |plan: &mut Plan, t: DateTime<Utc>| {
            plan.next_wake = Some(plan.next_wake.map_or(t, |w| w.min(t)));
        };
        for (i, node) in self.nodes.iter().enumerate() {
            if flying.contains(&i) {
                continue;
            }
            match node.status {
                NodeStatus::Failed => plan.failed = true,
                NodeStatus::Waiting => match node.wake_at {
                    Some(t) if t <= at => plan.timers_due.push(i),
                    Some(t) => {
                        plan.waiting = true;
                        wake(&mut plan, t);
                    }
                    None => plan.waiting = true,
                },
                // Started on a host that stopped before its outcome was written: again.
                NodeStatus::Running => plan.ready.push(i),
                NodeStatus::Pending => {
                    if let Some(t) = node.wake_at.filter(|t| *t > at) {
                        wake(&mut plan, t);
                        continue;
                    }
                    let incoming = &self.incoming[i];
                    if incoming.is_empty() {
                        plan.ready.push(i);
                        continue;
                    }
                    let decided = incoming.iter().all(|(p, _)| {
                        matches!(
                            self.nodes[*p].status,
                            NodeStatus::Succeeded
                                | NodeStatus::Skipped
                                | NodeStatus::Failed
                                | NodeStatus::Cancelled
                        )
                    });
                    if !decided {
                        continue;
                    }
                    let taken = incoming.iter().any(|(p, when)| {
                        let source = &self.nodes[*p];
                        source.status == NodeStatus::Succeeded
                            && when
                                .as_ref()
                                .is_none_or(|w| source.branch.as_ref() == Some(w))
                    });
                    if taken {
                        plan.ready.push(i);
                    } else {
                        plan.skip.push(i);
                    }
                }
                NodeStatus::Succeeded | NodeStatus::Skipped | NodeStatus::Cancelled => {}
            }
        }
        plan
    }

    /// What templates read: `input`, and `nodes.<id>.{output, status, branch}`.
    fn context(&self) -> Value {
        let nodes: Map<String, Value> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.node_id.clone(),
                    json!({"output": n.output.as_ref().map(|o| &o.0), "status": n.status,
                           "branch": n.branch}),
                )
            })
            .collect();
        json!({"input": self.run.input.0, "nodes": nodes,
               "run": {"id": self.run.id, "workflow_id": self.run.workflow_id,
                       "dry_run": self.run.dry_run}})
    }

    /// Starts node `i`: a future that yields its attempt, or `None` when the claim was lost.
    async fn launch(&mut self, i: usize) -> AppResult<Option<Flight>> {
        let node = self.definition.nodes[i].clone();
        let context = self.context();
        let input = nodes::input_of(&node, &context);
        if nodes::has_effect(&node.kind) {
            if self.nodes[i].attempts >= node.attempts() + MAX_CRASHED_STARTS {
                let attempt = Attempt {
                    input,
                    result: Err("its host stopped during every attempt".into()),
                    duration_ms: 0.0,
                };
                return Ok(Some(Box::pin(std::future::ready((i, attempt)))));
            }
            let at = now();
            let mut tx = self.state.db.begin().await?;
            tx.execute(
                "UPDATE workflow_run_nodes SET status = 'running', attempts = attempts + 1,
                    started_at = $3, input = $4, wake_at = NULL
                 WHERE run_id = $1 AND node_id = $2",
                args![self.run.id, node.id.clone(), at, input.clone()],
            )
            .await?;
            match self.hold(tx).await? {
                Written::Lost => return Ok(None),
                Written::Held { .. } => {}
            }
            let n = &mut self.nodes[i];
            n.status = NodeStatus::Running;
            n.attempts += 1;
            n.started_at = Some(at);
            self.announce_node(&node.id, NodeStatus::Running).await;
        }
        let call = nodes::Call {
            state: self.state.clone(),
            workspace_id: self.run.workspace_id,
            workflow_id: self.run.workflow_id,
            run_id: self.run.id,
            dry_run: self.run.dry_run,
            depth: self.run.depth,
            context,
        };
        Ok(Some(Box::pin(async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(
                node.timeout(),
                nodes::run(&call, &node, &input),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "did not finish within {} s",
                    node.timeout().as_secs()
                )),
            };
            (
                i,
                Attempt {
                    input,
                    result,
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                },
            )
        })))
    }

    /// Commits node `i`'s attempt: done, waiting, to be retried, or failed.
    async fn record(&mut self, i: usize, attempt: Attempt) -> AppResult<Written> {
        let node = &self.definition.nodes[i];
        let at = now();
        let state = &self.nodes[i];
        let attempts = if nodes::has_effect(&node.kind) {
            state.attempts
        } else {
            state.attempts + 1
        };
        let started_at = match state.started_at {
            Some(t) if nodes::has_effect(&node.kind) => t,
            _ => at - chrono::Duration::microseconds((attempt.duration_ms * 1000.0) as i64),
        };
        let result = attempt.result.and_then(|done| {
            if done.output.to_string().len() > MAX_OUTPUT_BYTES {
                Err("its output is larger than 256 KiB".into())
            } else {
                Ok(done)
            }
        });
        let (status, branch, output, error, wake_at, finished) = match result {
            Ok(Done {
                output,
                branch,
                wait_until: Some(until),
            }) => (
                NodeStatus::Waiting,
                branch,
                Some(output),
                None,
                Some(until),
                None,
            ),
            Ok(Done { output, branch, .. }) => (
                NodeStatus::Succeeded,
                branch,
                Some(output),
                None,
                None,
                Some(at),
            ),
            Err(e) if attempts < node.attempts() => (
                NodeStatus::Pending,
                None,
                None,
                Some(e),
                Some(at + node.backoff(attempts)),
                None,
            ),
            Err(e) => (NodeStatus::Failed, None, None, Some(e), None, Some(at)),
        };
        let mut tx = self.state.db.begin().await?;
        tx.execute(
            "UPDATE workflow_run_nodes SET status = $3, branch = $4, input = $5, output = $6,
                error = $7, attempts = $8, wake_at = $9, started_at = $10, finished_at = $11,
                duration_ms = $12
             WHERE run_id = $1 AND node_id = $2",
            args![
                self.run.id,
                node.id.clone(),
                status.as_str(),
                branch.clone(),
                attempt.input,
                output.clone(),
                error.clone(),
                attempts,
                wake_at,
                started_at,
                finished,
                finished.map(|_| attempt.duration_ms)
            ],
        )
        .await?;
        let written = self.hold(tx).await?;
        if let Written::Held { .. } = written {
            let node_id = node.id.clone();
            let n = &mut self.nodes[i];
            n.status = status;
            n.branch = branch;
            n.output = output.map(SqlJson);
            n.attempts = attempts;
            n.wake_at = wake_at;
            n.started_at = Some(started_at);
            if let Some(e) = &error {
                tracing::info!(run = %self.run.id, node = %node_id, error = %e, "a workflow node failed");
            }
            self.announce_node(&node_id, status).await;
        }
        Ok(written)
    }

    /// A waiting node's timer came: a delay is over, a person did not answer in time.
    async fn timer_came(&mut self, i: usize) -> AppResult<Written> {
        let node = &self.definition.nodes[i];
        let (branch, output) = match node.kind.as_str() {
            "human" => (Some("timeout".to_owned()), json!({"timed_out": true})),
            _ => (None, json!({"waited_until": self.nodes[i].wake_at})),
        };
        let at = now();
        let duration_ms = self.nodes[i]
            .started_at
            .map(|s| (at - s).num_milliseconds() as f64);
        let mut tx = self.state.db.begin().await?;
        let changed = tx
            .execute(
                "UPDATE workflow_run_nodes SET status = 'succeeded', branch = $3, output = $4,
                    wake_at = NULL, finished_at = $5, duration_ms = $6
                 WHERE run_id = $1 AND node_id = $2 AND status = 'waiting'",
                args![
                    self.run.id,
                    node.id.clone(),
                    branch.clone(),
                    output.clone(),
                    at,
                    duration_ms
                ],
            )
            .await?;
        let written = self.hold(tx).await?;
        if let Written::Held { news } = written {
            if changed == 0 {
                // A person resumed it meanwhile.
                return Ok(Written::Held { news: true });
            }
            let node_id = node.id.clone();
            let n = &mut self.nodes[i];
            n.status = NodeStatus::Succeeded;
            n.branch = branch;
            n.output = Some(SqlJson(output));
            n.wake_at = None;
            self.announce_node(&node_id, NodeStatus::Succeeded).await;
            return Ok(Written::Held { news });
        }
        Ok(written)
    }

    /// Marks nodes on branches not taken as skipped.
    async fn skip(&mut self, skip: &[usize]) -> AppResult<Written> {
        let mut tx = self.state.db.begin().await?;
        for &i in skip {
            tx.execute(
                "UPDATE workflow_run_nodes SET status = 'skipped' WHERE run_id = $1 AND node_id = $2",
                args![self.run.id, self.definition.nodes[i].id.clone()],
            )
            .await?;
        }
        let written = self.hold(tx).await?;
        if let Written::Held { .. } = written {
            for &i in skip {
                self.nodes[i].status = NodeStatus::Skipped;
                let node_id = self.definition.nodes[i].id.clone();
                self.announce_node(&node_id, NodeStatus::Skipped).await;
            }
        }
        Ok(written)
    }

    /// Commits `tx` if the run is still this host's; says whether news came meanwhile.
    async fn hold(&self, mut tx: Tx) -> AppResult<Written> {
        let held: Option<(i64,)> = tx
            .fetch_optional(
                "UPDATE workflow_runs SET updated_at = $3 WHERE id = $1 AND claim = $2
                 RETURNING wakeups",
                args![self.run.id, self.run.claim, now()],
            )
            .await?;
        let Some((wakeups,)) = held else {
            return Ok(Written::Lost);
        };
        tx.commit().await?;
        Ok(Written::Held {
            news: wakeups != self.wakeups,
        })
    }

    async fn still_held(&self) -> AppResult<bool> {
        let held: Option<(Uuid,)> = self
            .state
            .db
            .fetch_optional(
                "SELECT id FROM workflow_runs WHERE id = $1 AND claim = $2",
                args![self.run.id, self.run.claim],
            )
            .await?;
        Ok(held.is_some())
    }

    async fn renew(&self, lease: chrono::Duration) -> AppResult<bool> {
        let renewed = self
            .state
            .db
            .execute(
                "UPDATE workflow_runs SET due_at = $3 WHERE id = $1 AND claim = $2",
                args![self.run.id, self.run.claim, now() + lease],
            )
            .await?;
        Ok(renewed > 0)
    }

    /// Hands the run back (the host shuts down): due again at once, for any replica.
    async fn release(&self) -> AppResult<()> {
        self.state
            .db
            .execute(
                "UPDATE workflow_runs SET due_at = $3, claim = NULL WHERE id = $1 AND claim = $2",
                args![self.run.id, self.run.claim, now()],
            )
            .await?;
        Ok(())
    }

    /// Releases a run that can only wait, due again at its next timer. `None` when news came
    /// in the meantime (read it and go on).
    async fn park(&mut self, next_wake: Option<DateTime<Utc>>) -> AppResult<Option<()>> {
        let parked = self
            .state
            .db
            .execute(
                "UPDATE workflow_runs SET status = 'waiting', due_at = $4, claim = NULL,
                    updated_at = $5
                 WHERE id = $1 AND claim = $2 AND wakeups = $3",
                args![self.run.id, self.run.claim, self.wakeups, next_wake, now()],
            )
            .await?;
        if parked == 0 {
            return Ok(if self.still_held().await? {
                None
            } else {
                Some(())
            });
        }
        self.summary.status = RunStatus::Waiting;
        self.announce_run().await;
        Ok(Some(()))
    }

    /// Ends the run: its output is the last `end` node's.
    async fn finish(&mut self, status: RunStatus) -> AppResult<Option<()>> {
        let output = self
            .definition
            .nodes
            .iter()
            .zip(&self.nodes)
            .filter(|(n, s)| n.kind == "end" && s.status == NodeStatus::Succeeded)
            .filter_map(|(_, s)| s.output.as_ref().map(|o| o.0.clone()))
            .next_back();
        let error = (status == RunStatus::Failed).then(|| {
            let failed: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| n.status == NodeStatus::Failed)
                .map(|n| n.node_id.as_str())
                .collect();
            format!("the node `{}` failed", failed.join("`, `"))
        });
        let at = now();
        let mut tx = self.state.db.begin().await?;
        tx.execute(
            "UPDATE workflow_run_nodes SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'",
            args![self.run.id],
        )
        .await?;
        let finished = tx
            .execute(
                "UPDATE workflow_runs SET status = $3, output = $4, error = $5, finished_at = $6,
                    updated_at = $6, due_at = NULL, claim = NULL
                 WHERE id = $1 AND claim = $2",
                args![
                    self.run.id,
                    self.run.claim,
                    status.as_str(),
                    output,
                    error,
                    at
                ],
            )
            .await?;
        if finished == 0 {
            return Ok(Some(()));
        }
        let answers_chat = self
            .definition
            .nodes
            .iter()
            .find(|n| n.kind == "trigger")
            .is_some_and(|t| super::triggers::answers_chat(&t.config));
        super::outcome::record(&mut tx, self.run.id, status, answers_chat).await?;
        self.state.events.commit(tx).await?;
        self.summary.status = status;
        self.announce_run().await;
        Ok(Some(()))
    }

    async fn announce_run(&self) {
        tell(&self.state, &self.audience, run_event(&self.summary)).await;
    }

    async fn announce_node(&self, node_id: &str, status: NodeStatus) {
        tell(
            &self.state,
            &self.audience,
            node_event(&self.summary, node_id, status),
        )
        .await;
    }
}

async fn fetch_summary(state: &AppState, id: Uuid) -> AppResult<RunSummary> {
    state
        .db
        .fetch_optional(
            &format!(
                "SELECT {} FROM workflow_runs r WHERE r.id = $1",
                super::runs::RUN_COLUMNS
            ),
            args![id],
        )
        .await?
        .ok_or(AppError::NotFound("workflow run"))
}
