//! `POST /api/analytics/export`: a report composed of sections over chosen agents and days
//! (see [`super::report`]), gathered from the rollups and rendered by an analytics-exporter
//! plugin (csv, json, pdf or an uploaded one) in a durable background job;
//! `GET /api/analytics/export/{job_id}` shows its progress and links the file, which
//! `…/file` serves.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sqlx::types::Json as SqlJson;

use super::metrics::TimeRange;
use super::report::{self, Asked, Composition, Section};
use super::sections::{self, ReportRun};
use crate::access::target_workspace;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Tx, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::infra::jobs::{JobFuture, JobHandler};
use crate::infra::sandbox::Report;
use crate::plugins::{Call, Kind, Output, invoke, usable};
use crate::realtime::notify;
use crate::state::AppState;

pub const JOB_KIND: &str = "analytics.export";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_export))
        .routes(routes!(export_status))
        .routes(routes!(export_file))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Json,
    Pdf,
}

impl Format {
    fn plugin_id(self) -> &'static str {
        match self {
            Format::Csv => "csv-exporter",
            Format::Json => "json-exporter",
            Format::Pdf => "pdf-exporter",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// A built-in exporter; or give `plugin_id`.
    pub format: Option<Format>,
    /// Any analytics-exporter plugin installed in the workspace.
    pub plugin_id: Option<String>,
    /// What the report holds, in this order (default `["performance"]`; repeats are dropped).
    pub sections: Option<Vec<Section>>,
    /// The agents it covers (at most 50, each one the caller sees; default: every agent the
    /// caller sees). `project_ids` is accepted as an alias.
    #[serde(alias = "project_ids")]
    pub agent_ids: Option<Vec<Uuid>>,
    /// The last 7, 30 (default) or 90 days; or give `from` (and `to`, default today).
    pub time_range: Option<TimeRange>,
    /// First day (UTC) of a custom period of at most 366 days.
    pub from: Option<NaiveDate>,
    /// Last day (UTC) of a custom period, not after today.
    pub to: Option<NaiveDate>,
    /// A title for the report (default "Nova agent performance").
    pub title: Option<String>,
    /// The workspace whose exporter installation to use, and whose knowledge the `knowledge`
    /// section reports (default: the caller's personal one).
    pub workspace_id: Option<Uuid>,
}

impl ExportRequest {
    fn asked(&mut self) -> Asked {
        Asked {
            sections: self.sections.take(),
            agent_ids: self.agent_ids.take(),
            time_range: self.time_range.take(),
            from: self.from.take(),
            to: self.to.take(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportStatus {
    /// The export's (and its job's) id.
    pub id: Uuid,
    pub plugin_id: String,
    /// `7d`, `30d`, `90d`, or `from..to` for a custom period.
    pub time_range: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub sections: Vec<Section>,
    /// The agents named; empty: every agent the requester sees.
    pub agent_ids: Vec<Uuid>,
    /// The scheduled report that made it, if one did.
    pub report_id: Option<Uuid>,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// 0–100.
    pub progress: i64,
    pub error: Option<String>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size_bytes: Option<i64>,
    /// Where to download the file once `status` is `done`.
    pub download_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: Uuid,
    plugin_id: String,
    time_range: String,
    composition: Option<SqlJson<Composition>>,
    report_id: Option<Uuid>,
    status: String,
    progress: i64,
    error: Option<String>,
    content_type: Option<String>,
    file_name: Option<String>,
    size_bytes: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An export's composition; one from before reports were composed is the fixed report over
/// its time range.
fn composition_of(stored: Option<SqlJson<Composition>>, time_range: &str) -> Composition {
    stored.map(|c| c.0).unwrap_or_else(|| {
        let mut fixed = Composition::default();
        if let Ok(time_range) = serde_json::from_value::<TimeRange>(json!(time_range)) {
            fixed.days = report::Days::Last { time_range };
        }
        fixed
    })
}

impl From<ExportRow> for ExportStatus {
    fn from(row: ExportRow) -> Self {
        let composition = composition_of(row.composition, &row.time_range);
        let period = composition.days.period();
        let done = row.status == "done";
        ExportStatus {
            id: row.id,
            plugin_id: row.plugin_id,
            time_range: row.time_range,
            from: period.from,
            to: period.to,
            sections: composition.sections,
            agent_ids: composition.agent_ids,
            report_id: row.report_id,
            status: row.status,
            progress: row.progress,
            error: row.error,
            content_type: row.content_type,
            file_name: row.file_name,
            size_bytes: row.size_bytes.filter(|_| done),
            download_url: done.then(|| format!("/api/analytics/export/{}/file", row.id)),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Starts an export; answers at once with the job to follow.
#[utoipa::path(post, path = "/api/analytics/export", tag = "analytics", security(("bearer" = [])),
    request_body = ExportRequest,
    responses((status = 202, body = ExportStatus), (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn request_export(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<ExportRequest>,
) -> AppResult<(StatusCode, Json<ExportStatus>)> {
    state.count_job_start(auth.id).await?;
    let prepared = prepare(&state, &auth, req).await?;
    let mut tx = state.db.begin().await?;
    let id = queue(&mut tx, &prepared, auth.id, None).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_of(&state, auth.id, id).await?),
    ))
}

/// A checked export request: what to render, with what, where.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plugin_id: String,
    pub title: String,
    pub workspace_id: Uuid,
    pub composition: Composition,
}

/// Checks an export request: its exporter, its title, its workspace and its composition.
pub async fn prepare(
    state: &AppState,
    auth: &AuthUser,
    mut req: ExportRequest,
) -> AppResult<Prepared> {
    let composition = report::compose(&state.db, auth, req.asked()).await?;
    let plugin_id = match (&req.plugin_id, req.format) {
        (Some(id), None) => id.clone(),
        (None, Some(format)) => format.plugin_id().to_owned(),
        _ => {
            return Err(AppError::invalid(
                "format",
                "give either `format` (csv, json, pdf) or `plugin_id`",
            ));
        }
    };
    let title = req
        .title
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Nova agent performance".into());
    if title.chars().count() > 200 {
        return Err(AppError::invalid(
            "title",
            "must hold at most 200 characters",
        ));
    }
    let workspace_id = target_workspace(state, auth, req.workspace_id).await?;
    // Checked now so that a wrong choice is a 4xx, not a failed job.
    usable(&state.db, workspace_id, &plugin_id, Kind::AnalyticsExporter).await?;
    Ok(Prepared {
        plugin_id,
        title,
        workspace_id,
        composition,
    })
}

/// Queues the export's job in the transaction; the export's id. Its days are fixed now
/// (`7d` is the seven days up to today), so the export covers, and says it covers, the
/// same days however late its job runs or its status is read.
pub async fn queue(
    tx: &mut Tx,
    prepared: &Prepared,
    requested_by: Uuid,
    report_id: Option<Uuid>,
) -> AppResult<Uuid> {
    let id = new_id();
    let label = prepared.composition.days.label();
    let period = prepared.composition.days.period();
    let composition = Composition {
        days: report::Days::Between {
            from: period.from,
            to: period.to,
        },
        ..prepared.composition.clone()
    };
    tx.execute(
        "INSERT INTO analytics_exports (id, workspace_id, requested_by, plugin_id, time_range, composition, report_id,
            status, progress, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8)",
        args![id, prepared.workspace_id, requested_by, prepared.plugin_id.as_str(), label,
            json!(composition), report_id, now()],
    )
    .await?;
    crate::infra::jobs::enqueue(
        tx,
        JOB_KIND,
        requested_by,
        json!({"export_id": id, "title": prepared.title}),
    )
    .await?;
    Ok(id)
}

pub async fn status_of(state: &AppState, caller: Uuid, id: Uuid) -> AppResult<ExportStatus> {
    let row: ExportRow = state
        .db
        .fetch_optional(
            &format!(
                "SELECT id, plugin_id, time_range, composition, report_id, status, progress, error, content_type,
                    file_name, CAST(LENGTH(file) AS BIGINT) AS size_bytes, created_at, updated_at
                 FROM analytics_exports e WHERE id = $1 AND {READABLE}"
            ),
            args![id, caller],
        )
        .await?
        .ok_or(AppError::NotFound("export"))?;
    Ok(row.into())
}

/// Who may read export `$1`: its requester (`$2`), and the recipients of the scheduled report
/// that made it while they are members of its workspace.
const READABLE: &str = "(e.requested_by = $2 OR EXISTS (SELECT 1 FROM analytics_report_recipients r
    JOIN workspace_members m ON m.workspace_id = e.workspace_id AND m.user_id = r.user_id
    WHERE r.report_id = e.report_id AND r.user_id = $2))";

/// An export's progress (the caller's own exports, and those of reports sent to the caller).
#[utoipa::path(get, path = "/api/analytics/export/{job_id}", tag = "analytics", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, body = ExportStatus), (status = 404, body = crate::error::Problem)))]
async fn export_status(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(job_id): AppPath<Uuid>,
) -> AppResult<Json<ExportStatus>> {
    Ok(Json(status_of(&state, auth.id, job_id).await?))
}

#[derive(sqlx::FromRow)]
struct StoredFile {
    status: String,
    content_type: Option<String>,
    file_name: Option<String>,
    file: Option<Vec<u8>>,
}

/// The exported file, once the export is done (409 before).
#[utoipa::path(get, path = "/api/analytics/export/{job_id}/file", tag = "analytics", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, description = "The file, with its content type"),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn export_file(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(job_id): AppPath<Uuid>,
) -> AppResult<Response> {
    let StoredFile {
        status,
        content_type,
        file_name,
        file,
    } = state
        .db
        .fetch_optional(
            &format!(
                "SELECT status, content_type, file_name, file FROM analytics_exports e WHERE id = $1 AND {READABLE}"
            ),
            args![job_id, auth.id],
        )
        .await?
        .ok_or(AppError::NotFound("export"))?;
    let (Some(content_type), Some(file)) = (content_type, file) else {
        return Err(AppError::Conflict(format!(
            "the export is {status}, not done"
        )));
    };
    let file_name = file_name
        .unwrap_or_else(|| "report".into())
        .replace(['"', '\\', '\r', '\n'], "");
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        file,
    )
        .into_response())
}

#[derive(sqlx::FromRow)]
struct ExportJob {
    workspace_id: Uuid,
    requested_by: Uuid,
    plugin_id: String,
    time_range: String,
    composition: Option<SqlJson<Composition>>,
    report_id: Option<Uuid>,
    status: String,
}

/// Stores the rendered file with its `analytics.export.completed` event.
async fn record_done(
    state: &AppState,
    id: Uuid,
    job: &ExportJob,
    file: crate::infra::sandbox::File,
    download_url: &str,
) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    tx.execute(
        "UPDATE analytics_exports SET status = 'done', progress = 100, content_type = $1, file_name = $2,
            file = $3, updated_at = $4 WHERE id = $5",
        args![file.content_type, file.file_name, file.bytes, now(), id],
    )
    .await?;
    eventlog::record(
        &mut tx,
        &Cause::user(job.requested_by),
        NewEvent {
            workspace_id: job.workspace_id,
            project_id: None,
            kind: "analytics.export.completed",
            subject: Subject::new("export", id, None),
            data: json!({"export_id": id, "format": job.plugin_id, "download_url": download_url}),
        },
    )
    .await?;
    state.events.commit(tx).await
}

async fn set_progress(
    state: &AppState,
    id: Uuid,
    status: &str,
    progress: i64,
    error: Option<String>,
) -> Result<(), String> {
    state
        .db
        .execute(
            "UPDATE analytics_exports SET status = $1, progress = $2, error = $3, updated_at = $4 WHERE id = $5",
            args![status, progress, error, now(), id],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn export_id_of(payload: &Value) -> Result<Uuid, String> {
    payload["export_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "the job names no export".to_owned())
}

/// The export unless it has already ended.
async fn unfinished(state: &AppState, id: Uuid) -> Result<Option<ExportJob>, String> {
    let job: ExportJob = state
        .db
        .fetch_optional(
            "SELECT workspace_id, requested_by, plugin_id, time_range, composition, report_id, status
             FROM analytics_exports WHERE id = $1",
            args![id],
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the export is gone")?;
    Ok((!matches!(job.status.as_str(), "done" | "failed")).then_some(job))
}

async fn fail(state: &AppState, id: Uuid, job: &ExportJob, reason: String) -> Result<(), String> {
    set_progress(state, id, "failed", 100, Some(reason.clone())).await?;
    notify(
        state,
        job.requested_by,
        "export.failed",
        json!({"export_id": id, "error": reason}),
    )
    .await;
    Ok(())
}

/// Runs the export jobs: each renders one export with its exporter plugin.
pub struct ExportJobs(pub AppState);

impl JobHandler for ExportJobs {
    fn run(&self, payload: Value) -> JobFuture {
        let state = self.0.clone();
        Box::pin(async move { process(&state, &payload).await })
    }

    fn give_up(&self, payload: Value, error: String) -> JobFuture {
        let state = self.0.clone();
        Box::pin(async move { give_up(&state, &payload, &error).await })
    }
}

/// The job failed for good (it kept erroring): the export fails with the last error.
async fn give_up(state: &AppState, payload: &Value, error: &str) -> Result<(), String> {
    let id = export_id_of(payload)?;
    match unfinished(state, id).await? {
        Some(job) => fail(state, id, &job, format!("could not be produced: {error}")).await,
        None => Ok(()),
    }
}

/// The job: gather, render with the plugin, keep the file, tell the user.
async fn process(state: &AppState, payload: &Value) -> Result<(), String> {
    let id = export_id_of(payload)?;
    let title = payload["title"]
        .as_str()
        .unwrap_or("Nova report")
        .to_owned();
    let Some(mut job) = unfinished(state, id).await? else {
        return Ok(());
    };
    let composition = composition_of(job.composition.take(), &job.time_range);
    set_progress(state, id, "running", 10, None).await?;
    let run = ReportRun {
        owner: job.requested_by,
        workspace_id: job.workspace_id,
        title: &title,
        time_range: &job.time_range,
        composition: &composition,
    };
    let data = sections::gather(state, &run)
        .await
        .map_err(|e| e.to_string())?;
    set_progress(state, id, "running", 50, None).await?;
    let outcome = match usable(
        &state.db,
        job.workspace_id,
        &job.plugin_id,
        Kind::AnalyticsExporter,
    )
    .await
    {
        Ok(plugin) => {
            let call = Call::Render(Report {
                title: title.clone(),
                data: data.to_string(),
            });
            invoke(state, &plugin, "export", call)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(done) => {
            let Output::File(file) = done.output else {
                return Err("the exporter returned no file".into());
            };
            let download_url = format!("/api/analytics/export/{id}/file");
            record_done(state, id, &job, file, &download_url)
                .await
                .map_err(|e| e.to_string())?;
            notify(
                state,
                job.requested_by,
                "export.done",
                json!({"export_id": id, "download_url": download_url}),
            )
            .await;
            if let Some(report_id) = job.report_id {
                super::reports::deliver(state, report_id, id, &download_url).await;
            }
        }
        // A plugin's failure is the export's result, not a reason to retry the job.
        Err(reason) => fail(state, id, &job, reason).await?,
    }
    Ok(())
}
