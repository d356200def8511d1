//! `POST /api/workflows/{id}/run`, `GET /api/workflows/{id}/runs`,
//! `GET /api/workflow-runs/{run_id}` and its `cancel` and `resume`: members of a workflow's
//! workspace start, watch and steer its runs. The engine (`engine`) does the running.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::crud::load_visible;
use super::engine::{self, Start};
use crate::access::{Role, require_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Db, Filter, Page, PageQuery, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::state::AppState;

crate::text_enum! {
    /// Where a run is: `queued` (not yet taken up), `running`, `waiting` (for a timer or a
    /// person), then `succeeded`, `failed` or `cancelled`.
    pub enum RunStatus {
        Queued = "queued",
        Running = "running",
        Waiting = "waiting",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

crate::text_enum! {
    /// Where a node of a run is: `pending` (not reached, or waiting to be retried),
    /// `running`, `waiting` (a delay or a person), `succeeded`, `failed`, `skipped` (on a
    /// branch not taken) or `cancelled`.
    pub enum NodeStatus {
        Pending = "pending",
        Running = "running",
        Waiting = "waiting",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
        Cancelled = "cancelled",
    }
}

/// A run, without its nodes (as lists show it).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct RunSummary {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub workspace_id: Uuid,
    /// The workflow's version it runs: a later `PUT` does not change a run under way.
    pub version: i64,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    /// manual, event, schedule or webhook.
    pub trigger: String,
    #[schema(value_type = Object)]
    pub input: SqlJson<Value>,
    /// The `end` node's output once the run succeeded.
    #[schema(value_type = Option<Object>)]
    pub output: Option<SqlJson<Value>>,
    /// Why it failed.
    pub error: Option<String>,
    /// Actions and notifications were not executed; their nodes show what they would get.
    pub dry_run: bool,
    /// Who started it (none for event and schedule triggers).
    pub started_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub const RUN_COLUMNS: &str = "r.id, r.workflow_id, r.workspace_id, r.version, r.status,
    r.trigger, r.input, r.output, r.error, r.dry_run, r.started_by, r.created_at, r.started_at,
    r.finished_at, r.updated_at";

/// One node of a run.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct NodeRun {
    pub node_id: String,
    #[serde(rename = "type")]
    pub node_type: String,
    #[sqlx(try_from = "String")]
    pub status: NodeStatus,
    /// The branch it took: a classify branch, `true`/`false`, `resumed`/`timeout`.
    pub branch: Option<String>,
    /// What it was given, templates rendered.
    #[schema(value_type = Option<Object>)]
    pub input: Option<SqlJson<Value>>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<SqlJson<Value>>,
    /// The last attempt's error.
    pub error: Option<String>,
    pub attempts: i64,
    /// A waiting node's timer (a delay's end, a person's deadline) or a retry's time.
    pub wake_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
}

pub const NODE_COLUMNS: &str = "node_id, node_type, status, branch, input, output, error,
    attempts, wake_at, started_at, finished_at, duration_ms";

/// A run with each of its nodes, in the definition's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowRun {
    #[serde(flatten)]
    pub run: RunSummary,
    pub nodes: Vec<NodeRun>,
}

async fn load_run(db: &Db, id: Uuid) -> AppResult<WorkflowRun> {
    let run: RunSummary = db
        .fetch_optional(
            &format!("SELECT {RUN_COLUMNS} FROM workflow_runs r WHERE r.id = $1"),
            args![id],
        )
        .await?
        .ok_or(AppError::NotFound("workflow run"))?;
    let nodes: Vec<NodeRun> = db
        .fetch_all(
            &format!(
                "SELECT {NODE_COLUMNS} FROM workflow_run_nodes WHERE run_id = $1 ORDER BY position"
            ),
            args![id],
        )
        .await?;
    Ok(WorkflowRun { run, nodes })
}

/// A run of a workspace the caller belongs to (404 otherwise).
async fn load_visible_run(db: &Db, caller: Uuid, id: Uuid) -> AppResult<WorkflowRun> {
    let workspace: Option<(Uuid,)> = db
        .fetch_optional(
            "SELECT workspace_id FROM workflow_runs WHERE id = $1",
            args![id],
        )
        .await?;
    let Some((workspace_id,)) = workspace else {
        return Err(AppError::NotFound("workflow run"));
    };
    require_role(db, workspace_id, caller, Role::Member)
        .await
        .map_err(|_| AppError::NotFound("workflow run"))?;
    load_run(db, id).await
}

/// What to run with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// An object templates read as `input` (default `{}`); at most 64 KiB.
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// Runs without executing actions and notifications; their nodes show what they would
    /// get.
    pub dry_run: Option<bool>,
}

const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Starts a run (members of the workflow's workspace): 202 with the run, which goes on in
/// the background. Any workflow may be run by hand, active or not.
#[utoipa::path(post, path = "/api/workflows/{id}/run", tag = "workflows", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RunBody,
    responses((status = 202, body = WorkflowRun), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn start_run(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<RunBody>,
) -> AppResult<(StatusCode, Json<WorkflowRun>)> {
    let (workflow, _) = load_visible(&state.db, auth.id, id).await?;
    let input = body.input.unwrap_or_else(|| json!({}));
    if !input.is_object() {
        return Err(AppError::invalid("input", "must be an object"));
    }
    if input.to_string().len() > MAX_INPUT_BYTES {
        return Err(AppError::invalid("input", "must be at most 64 KiB as JSON"));
    }
    let mut tx = state.db.begin().await?;
    let run_id = engine::create(
        &mut tx,
        &state.config,
        Start {
            workflow: &workflow,
            trigger: "manual",
            input,
            dry_run: body.dry_run.unwrap_or(false),
            started_by: Some(auth.id),
            event_id: None,
            depth: 0,
        },
    )
    .await?;
    tx.commit().await?;
    engine::wake(&state).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(load_run(&state.db, run_id).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    #[param(value_type = Option<RunStatus>)]
    pub status: Option<RunStatus>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A workflow's runs, newest first.
#[utoipa::path(get, path = "/api/workflows/{id}/runs", tag = "workflows", security(("bearer" = [])),
    params(("id" = Uuid, Path), RunListQuery),
    responses((status = 200, body = Page<RunSummary>), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn list_runs(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<RunListQuery>,
) -> AppResult<Json<Page<RunSummary>>> {
    load_visible(&state.db, auth.id, id).await?;
    let mut filter = Filter::after(args![id]);
    if let Some(status) = q.status {
        filter.and(" AND r.status = {}", status.as_str());
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let runs = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {RUN_COLUMNS} FROM workflow_runs r WHERE r.workflow_id = $1{}",
                filter.sql
            ),
            "r.id",
            filter.binds,
            &page,
            |r: &RunSummary| r.id,
        )
        .await?;
    Ok(Json(runs))
}

/// One run with its nodes: status, input, output, error, attempts and timings of each.
#[utoipa::path(get, path = "/api/workflow-runs/{run_id}", tag = "workflows", security(("bearer" = [])),
    params(("run_id" = Uuid, Path)),
    responses((status = 200, body = WorkflowRun), (status = 404, body = crate::error::Problem)))]
pub async fn get_run(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(run_id): AppPath<Uuid>,
) -> AppResult<Json<WorkflowRun>> {
    Ok(Json(load_visible_run(&state.db, auth.id, run_id).await?))
}

/// Cancels a run that has not finished: no node starts after it, a node in flight is
/// stopped, and nodes not yet finished are `cancelled`. 409 once the run has finished.
#[utoipa::path(post, path = "/api/workflow-runs/{run_id}/cancel", tag = "workflows", security(("bearer" = [])),
    params(("run_id" = Uuid, Path)),
    responses((status = 200, body = WorkflowRun), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn cancel_run(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(run_id): AppPath<Uuid>,
) -> AppResult<Json<WorkflowRun>> {
    load_visible_run(&state.db, auth.id, run_id).await?;
    let at = now();
    let mut tx = state.db.begin().await?;
    let cancelled = tx
        .execute(
            "UPDATE workflow_runs SET status = 'cancelled', due_at = NULL, claim = NULL,
                wakeups = wakeups + 1, finished_at = $2, updated_at = $2,
                error = 'cancelled by a user'
             WHERE id = $1 AND status IN ('queued', 'running', 'waiting')",
            args![run_id, at],
        )
        .await?;
    if cancelled == 0 {
        return Err(AppError::Conflict("the run has finished already".into()));
    }
    tx.execute(
        "UPDATE workflow_run_nodes SET status = 'cancelled', wake_at = NULL, finished_at = $2
         WHERE run_id = $1 AND status IN ('pending', 'running', 'waiting')",
        args![run_id, at],
    )
    .await?;
    super::outcome::record(&mut tx, run_id, RunStatus::Cancelled, false).await?;
    state.events.commit(tx).await?;
    engine::tell_run(&state, run_id).await;
    let run = load_run(&state.db, run_id).await?;
    engine::announce_run(&state, &run.run).await;
    Ok(Json(run))
}

/// A person's answer to a `human` node.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// The `human` node that waits.
    pub node_id: String,
    /// The node's output, read by later templates as `nodes.<id>.output` (at most 64 KiB).
    #[schema(value_type = Object)]
    pub output: Value,
}

/// Resumes a run waiting at a `human` node with the person's output; the node takes its
/// `resumed` branch. 409 when that node is not waiting.
#[utoipa::path(post, path = "/api/workflow-runs/{run_id}/resume", tag = "workflows", security(("bearer" = [])),
    params(("run_id" = Uuid, Path)), request_body = ResumeBody,
    responses((status = 200, body = WorkflowRun), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn resume_run(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(run_id): AppPath<Uuid>,
    AppJson(body): AppJson<ResumeBody>,
) -> AppResult<Json<WorkflowRun>> {
    let run = load_visible_run(&state.db, auth.id, run_id).await?;
    if !run.nodes.iter().any(|n| n.node_id == body.node_id) {
        return Err(AppError::invalid("node_id", "is not a node of this run"));
    }
    if body.output.to_string().len() > MAX_INPUT_BYTES {
        return Err(AppError::invalid(
            "output",
            "must be at most 64 KiB as JSON",
        ));
    }
    let at = now();
    let mut tx = state.db.begin().await?;
    let resumed = tx
        .execute(
            "UPDATE workflow_run_nodes SET status = 'succeeded', branch = 'resumed', output = $3,
                wake_at = NULL, finished_at = $4, attempts = attempts + 1, error = NULL
             WHERE run_id = $1 AND node_id = $2 AND node_type = 'human' AND status = 'waiting'",
            args![run_id, body.node_id.clone(), body.output.clone(), at],
        )
        .await?;
    if resumed == 0 {
        return Err(AppError::Conflict(format!(
            "the node `{}` is not a human node waiting for a person",
            body.node_id
        )));
    }
    engine::requeue(&mut tx, run_id).await?;
    tx.commit().await?;
    engine::tell_run(&state, run_id).await;
    engine::wake(&state).await;
    let run = load_run(&state.db, run_id).await?;
    engine::announce_node(&state, &run.run, &body.node_id, NodeStatus::Succeeded).await;
    Ok(Json(run))
}
