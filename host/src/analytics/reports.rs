//! `/api/analytics/reports`: scheduled reports. A report is a composed export (the body of
//! `POST /api/analytics/export`) with a cron schedule in UTC; each run is an export made as the
//! report's owner, announced to its recipients (members of its workspace, who may then read
//! and download that export) and optionally posted to an integration with its link.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::export::{self, ExportRequest, Prepared};
use super::report::{Composition, Section};
use crate::access::{Role, require_role, target_workspace, workspace_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Tx, new_id, now, placeholders};
use crate::db::{Filter, Page, PageQuery};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::infra::cron::Schedule;
use crate::infra::sandbox::{Call, Notification};
use crate::plugins::{Kind, invoke, usable};
use crate::realtime::notify;
use crate::state::AppState;

/// Reports one workspace may schedule.
const MAX_REPORTS: i64 = 100;
/// Recipients of one report.
const MAX_RECIPIENTS: usize = 50;
/// Exports a report keeps: older ones are deleted when a run adds one.
const KEEP_EXPORTS: i64 = 20;
/// How often the scheduler looks for reports that are due.
const POLL: Duration = Duration::from_secs(1);
/// Reports run per look.
const PER_ROUND: i64 = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_report, list_reports))
        .routes(routes!(get_report, delete_report))
        .routes(routes!(run_report))
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    /// Members of the report's workspace: each is notified (`report.ready` on the notification
    /// socket) with the download link, and may read and download the report's exports.
    #[serde(default)]
    pub user_ids: Vec<Uuid>,
    /// An integration plugin of the workspace (e.g. `slack`) to post the link to.
    pub integration_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReport {
    /// 1–200 characters.
    pub name: String,
    /// Cron in UTC: five fields (minute hour day month weekday), or six with seconds first;
    /// runs at most once per `NOVA_REPORT_MIN_INTERVAL_SECS` (default an hour).
    pub schedule: String,
    #[serde(default)]
    pub recipients: Recipients,
    /// What to render: the body of `POST /api/analytics/export`. A `time_range` is the days
    /// up to each run; `from`/`to` are the same days every run.
    pub export: ExportRequest,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledReport {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// Whose view of the agents the report shows.
    pub owner_id: Uuid,
    pub name: String,
    pub schedule: String,
    /// Null when the schedule never fires again.
    pub next_run_at: Option<DateTime<Utc>>,
    pub recipients: Recipients,
    pub plugin_id: String,
    pub title: String,
    pub sections: Vec<Section>,
    pub agent_ids: Vec<Uuid>,
    /// `7d`, `30d`, `90d` (the days up to each run), or `from..to`.
    pub time_range: String,
    pub last_run_at: Option<DateTime<Utc>>,
    /// The latest run's export (`GET /api/analytics/export/{id}`).
    pub last_export_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "r.id, r.workspace_id, r.owner_id, r.name, r.plugin_id, r.title, r.composition, r.schedule,
    r.next_run_at, r.integration_id, r.last_run_at, r.last_export_id, r.created_at, r.updated_at";

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    workspace_id: Uuid,
    owner_id: Uuid,
    name: String,
    plugin_id: String,
    title: String,
    composition: SqlJson<Composition>,
    schedule: String,
    next_run_at: Option<DateTime<Utc>>,
    integration_id: Option<String>,
    last_run_at: Option<DateTime<Utc>>,
    last_export_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ReportRow {
    fn prepared(&self) -> Prepared {
        Prepared {
            plugin_id: self.plugin_id.clone(),
            title: self.title.clone(),
            workspace_id: self.workspace_id,
            composition: self.composition.0.clone(),
        }
    }

    fn shown(self, user_ids: Vec<Uuid>) -> ScheduledReport {
        let composition = self.composition.0;
        ScheduledReport {
            id: self.id,
            workspace_id: self.workspace_id,
            owner_id: self.owner_id,
            name: self.name,
            schedule: self.schedule,
            next_run_at: self.next_run_at,
            recipients: Recipients {
                user_ids,
                integration_id: self.integration_id,
            },
            plugin_id: self.plugin_id,
            title: self.title,
            time_range: composition.days.label(),
            sections: composition.sections,
            agent_ids: composition.agent_ids,
            last_run_at: self.last_run_at,
            last_export_id: self.last_export_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A schedule's first run, once it is checked: it parses, fires again, and not more often
/// than the instance allows.
fn first_run(state: &AppState, expr: &str) -> AppResult<DateTime<Utc>> {
    let schedule = Schedule::parse(expr).map_err(|e| AppError::invalid("schedule", e))?;
    let first = schedule
        .next_after(now())
        .ok_or_else(|| AppError::invalid("schedule", "never fires"))?;
    // The tightest gap over the next runs: cron gaps are uneven (`0,1 * * * *`).
    let min = chrono::Duration::seconds(state.config.report_min_interval_secs);
    let mut at = first;
    for _ in 0..24 {
        let Some(next) = schedule.next_after(at) else {
            break;
        };
        if next - at < min {
            return Err(AppError::invalid(
                "schedule",
                format!(
                    "fires more often than every {} s (NOVA_REPORT_MIN_INTERVAL_SECS)",
                    min.num_seconds()
                ),
            ));
        }
        at = next;
    }
    Ok(first)
}

/// Recipients must be members of the report's workspace; the integration one of its usable
/// integrations.
async fn check_recipients(
    state: &AppState,
    workspace_id: Uuid,
    r: &mut Recipients,
) -> AppResult<()> {
    r.user_ids.sort();
    r.user_ids.dedup();
    if r.user_ids.len() > MAX_RECIPIENTS {
        return Err(AppError::invalid(
            "recipients.user_ids",
            format!("name at most {MAX_RECIPIENTS} users"),
        ));
    }
    for user in &r.user_ids {
        if workspace_role(&state.db, workspace_id, *user)
            .await?
            .is_none()
        {
            return Err(AppError::invalid(
                "recipients.user_ids",
                format!("{user} is not a member of the report's workspace"),
            ));
        }
    }
    if let Some(plugin) = &r.integration_id {
        usable(&state.db, workspace_id, plugin, Kind::Integration).await?;
    }
    Ok(())
}

/// Schedules a report.
#[utoipa::path(post, path = "/api/analytics/reports", tag = "analytics", security(("bearer" = [])),
    request_body = CreateReport,
    responses((status = 201, body = ScheduledReport), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_report(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<CreateReport>,
) -> AppResult<(StatusCode, Json<ScheduledReport>)> {
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid("name", "must hold 1–200 characters"));
    }
    let next_run_at = first_run(&state, req.schedule.trim())?;
    let prepared = export::prepare(&state, &auth, req.export).await?;
    let mut recipients = req.recipients;
    check_recipients(&state, prepared.workspace_id, &mut recipients).await?;
    let id = new_id();
    let at = now();
    let mut tx = state.db.begin().await?;
    let (count,): (i64,) = tx
        .fetch_one(
            "SELECT COUNT(*) FROM analytics_reports WHERE workspace_id = $1",
            args![prepared.workspace_id],
        )
        .await?;
    if count >= MAX_REPORTS {
        return Err(AppError::Conflict(format!(
            "the workspace has {MAX_REPORTS} scheduled reports, the most it may have"
        )));
    }
    tx.execute(
        "INSERT INTO analytics_reports (id, workspace_id, owner_id, name, plugin_id, title, composition, schedule,
            next_run_at, integration_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        args![id, prepared.workspace_id, auth.id, name, prepared.plugin_id, prepared.title,
            json!(prepared.composition), req.schedule.trim(), next_run_at, recipients.integration_id, at],
    )
    .await?;
    for user in &recipients.user_ids {
        tx.execute(
            "INSERT INTO analytics_report_recipients (report_id, user_id) VALUES ($1, $2)",
            args![id, *user],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(load(&state, auth.id, id).await?)))
}

/// The report if the caller may see it (a member of its workspace).
async fn load(state: &AppState, caller: Uuid, id: Uuid) -> AppResult<ScheduledReport> {
    let row = visible_row(state, caller, id).await?;
    let users = recipients_of(state, &[row.id]).await?;
    Ok(row.shown(users.into_iter().map(|(_, u)| u).collect()))
}

/// The stored report if the caller is a member of its workspace; 404 otherwise.
async fn visible_row(state: &AppState, caller: Uuid, id: Uuid) -> AppResult<ReportRow> {
    state
        .db
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM analytics_reports r
                 JOIN workspace_members m ON m.workspace_id = r.workspace_id AND m.user_id = $2
                 WHERE r.id = $1"
            ),
            args![id, caller],
        )
        .await?
        .ok_or(AppError::NotFound("report"))
}

/// The recipients of these reports, as (report, user) pairs.
async fn recipients_of(state: &AppState, reports: &[Uuid]) -> AppResult<Vec<(Uuid, Uuid)>> {
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds = Vec::new();
    let list = placeholders(&mut binds, reports.iter().map(|id| Arg::from(*id)));
    Ok(state
        .db
        .fetch_all(
            &format!(
                "SELECT report_id, user_id FROM analytics_report_recipients
                 WHERE report_id IN ({list}) ORDER BY user_id"
            ),
            binds,
        )
        .await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportListQuery {
    /// One of the caller's workspaces (default: all of them).
    pub workspace_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The scheduled reports of the caller's workspaces, newest first.
#[utoipa::path(get, path = "/api/analytics/reports", tag = "analytics", security(("bearer" = [])),
    params(ReportListQuery),
    responses((status = 200, body = Page<ScheduledReport>), (status = 400, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn list_reports(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ReportListQuery>,
) -> AppResult<Json<Page<ScheduledReport>>> {
    let mut filter = Filter::after(args![auth.id]);
    if let Some(ws) = q.workspace_id {
        target_workspace(&state, &auth, Some(ws)).await?;
        filter.and(" AND r.workspace_id = {}", ws);
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let rows: Page<ReportRow> = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {COLUMNS} FROM workspace_members m
                 JOIN analytics_reports r ON r.workspace_id = m.workspace_id
                 WHERE m.user_id = $1{}",
                filter.sql
            ),
            "r.id",
            filter.binds,
            &page,
            |r: &ReportRow| r.id,
        )
        .await?;
    let ids: Vec<Uuid> = rows.items.iter().map(|r| r.id).collect();
    let recipients = recipients_of(&state, &ids).await?;
    Ok(Json(rows.map(|row| {
        let users = recipients
            .iter()
            .filter(|(report, _)| *report == row.id)
            .map(|(_, user)| *user)
            .collect();
        row.shown(users)
    })))
}

/// One scheduled report (members of its workspace).
#[utoipa::path(get, path = "/api/analytics/reports/{id}", tag = "analytics", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ScheduledReport), (status = 404, body = crate::error::Problem)))]
async fn get_report(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<ScheduledReport>> {
    Ok(Json(load(&state, auth.id, id).await?))
}

/// Its owner, or an admin of its workspace.
async fn require_manager(state: &AppState, auth: &AuthUser, report: &ReportRow) -> AppResult<()> {
    if report.owner_id == auth.id {
        return Ok(());
    }
    require_role(&state.db, report.workspace_id, auth.id, Role::Admin)
        .await
        .map(|_| ())
}

/// Deletes a scheduled report (its owner or a workspace admin); its exports stay with their
/// requester.
#[utoipa::path(delete, path = "/api/analytics/reports/{id}", tag = "analytics", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn delete_report(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let report = visible_row(&state, auth.id, id).await?;
    require_manager(&state, &auth, &report).await?;
    state
        .db
        .execute("DELETE FROM analytics_reports WHERE id = $1", args![id])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a scheduled report now, outside its schedule (its owner or a workspace admin): the
/// export it starts, delivered as a scheduled run is.
#[utoipa::path(post, path = "/api/analytics/reports/{id}/run", tag = "analytics", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = export::ExportStatus), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn run_report(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<(StatusCode, Json<export::ExportStatus>)> {
    let row = visible_row(&state, auth.id, id).await?;
    require_manager(&state, &auth, &row).await?;
    state.count_job_start(auth.id).await?;
    let mut tx = state.db.begin().await?;
    let export_id = start_run(&mut tx, &row).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(export::status_of(&state, row.owner_id, export_id).await?),
    ))
}

async fn row_of(state: &AppState, id: Uuid) -> AppResult<Option<ReportRow>> {
    Ok(state
        .db
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM analytics_reports r WHERE r.id = $1"),
            args![id],
        )
        .await?)
}

/// Queues one run as the report's owner, and drops the report's oldest exports beyond
/// [`KEEP_EXPORTS`].
async fn start_run(tx: &mut Tx, report: &ReportRow) -> AppResult<Uuid> {
    let export_id = export::queue(tx, &report.prepared(), report.owner_id, Some(report.id)).await?;
    tx.execute(
        "UPDATE analytics_reports SET last_run_at = $2, last_export_id = $3 WHERE id = $1",
        args![report.id, now(), export_id],
    )
    .await?;
    tx.execute(
        &format!(
            "DELETE FROM analytics_exports WHERE report_id = $1 AND id NOT IN
                (SELECT id FROM analytics_exports WHERE report_id = $1 ORDER BY id DESC LIMIT {KEEP_EXPORTS})"
        ),
        args![report.id],
    )
    .await?;
    Ok(export_id)
}

/// Runs due reports until the host shuts down.
pub fn spawn_scheduler(state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        loop {
            if let Err(e) = run_due(&state).await {
                tracing::warn!(error = %e, "could not run scheduled reports");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Starts one run of each report that is due (a host that was down runs it once, not once per
/// missed time) and moves it to its next time; a replica that loses the race skips it.
async fn run_due(state: &AppState) -> AppResult<()> {
    let at = now();
    let due: Vec<ReportRow> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM analytics_reports r
                 WHERE r.next_run_at <= $1 ORDER BY r.next_run_at LIMIT {PER_ROUND}"
            ),
            args![at],
        )
        .await?;
    for report in due {
        // A report runs as its owner's view of the workspace: once they have left it, the
        // report stops (its next run is cleared) rather than go on showing them its data.
        let owner_left = workspace_role(&state.db, report.workspace_id, report.owner_id)
            .await?
            .is_none();
        let next = Schedule::parse(&report.schedule)
            .ok()
            .and_then(|s| s.next_after(at))
            .filter(|_| !owner_left);
        let mut tx = state.db.begin().await?;
        let claimed = tx
            .execute(
                "UPDATE analytics_reports SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2",
                args![report.id, report.next_run_at, next],
            )
            .await?;
        if claimed == 0 {
            continue;
        }
        if owner_left {
            tracing::info!(report = %report.id, "a scheduled report stopped: its owner left the workspace");
        } else {
            start_run(&mut tx, &report).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Announces a finished run: a `report.ready` notification to each recipient, and a post to
/// the report's integration. Delivery is best effort: the export is done either way.
pub async fn deliver(state: &AppState, report_id: Uuid, export_id: Uuid, download_url: &str) {
    if let Err(e) = try_deliver(state, report_id, export_id, download_url).await {
        tracing::warn!(report = %report_id, error = %e, "could not deliver a scheduled report");
    }
}

async fn try_deliver(
    state: &AppState,
    report_id: Uuid,
    export_id: Uuid,
    download_url: &str,
) -> AppResult<()> {
    let Some(report) = row_of(state, report_id).await? else {
        return Ok(());
    };
    let message = json!({"report_id": report_id, "name": report.name, "export_id": export_id,
        "download_url": download_url});
    // Recipients who have left the workspace hear nothing (and may no longer read it).
    let members: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT r.user_id FROM analytics_report_recipients r
             JOIN workspace_members m ON m.workspace_id = $2 AND m.user_id = r.user_id
             WHERE r.report_id = $1",
            args![report_id, report.workspace_id],
        )
        .await?;
    for (user,) in members {
        notify(state, user, "report.ready", message.clone()).await;
    }
    let Some(plugin) = &report.integration_id else {
        return Ok(());
    };
    let installed = usable(&state.db, report.workspace_id, plugin, Kind::Integration).await?;
    let link = match &state.config.public_url {
        Some(base) => format!("{}{download_url}", base.trim_end_matches('/')),
        None => download_url.to_owned(),
    };
    let call = Call::Notify(Notification {
        title: report.title.clone(),
        text: format!(
            "The scheduled report \u{201c}{}\u{201d} is ready.",
            report.name
        ),
        url: Some(link),
        severity: "info".into(),
    });
    if let Err(e) = invoke(state, &installed, "report", call).await? {
        tracing::warn!(report = %report_id, plugin = %plugin, error = %e, "the integration did not take the report");
    }
    Ok(())
}
