//! `GET /api/projects/{id}/performance` and `GET /api/projects/comparison?ids=…` (seed §3),
//! read from the daily rollups.

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::queries;
use crate::analytics::metrics::{self, DayTotals, RangeQuery, Scope, TimeRange};
use crate::auth::AuthUser;
use crate::db::Db;
use crate::error::{AppError, AppPath, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(performance))
        .routes(routes!(comparison))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionCount {
    /// An example of the question as asked.
    pub question: String,
    /// Questions grouped by their content words (lower-cased, stemmed, stop words dropped).
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceMetrics {
    /// Agent replies neither unanswered nor errored nor rated ≤ 2, over all agent replies.
    pub success_rate: f64,
    /// Mean reply latency in seconds.
    pub avg_response_time: f64,
    /// Chat sessions started in the range.
    pub total_conversations: i64,
    /// Mean rating (1–5); null without ratings.
    pub user_satisfaction: Option<f64>,
    /// The ten most asked questions.
    pub most_asked_questions: Vec<QuestionCount>,
    /// Agent replies that failed, over all agent replies.
    pub error_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyPerformance {
    pub date: NaiveDate,
    pub conversations: i64,
    pub messages: i64,
    pub success_rate: f64,
    pub avg_response_time: f64,
    pub user_satisfaction: Option<f64>,
    pub error_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Performance {
    pub project_id: Uuid,
    pub time_range: TimeRange,
    pub metrics: PerformanceMetrics,
    /// One point per day of the range, oldest first, zero-filled.
    pub historical_data: Vec<DailyPerformance>,
}

async fn measure(db: &Db, project_id: Uuid, range: TimeRange) -> AppResult<Performance> {
    let ids = [project_id];
    let scope = Scope::Agents(&ids);
    let period = range.period();
    let rows = metrics::days(db, &scope, period).await?;
    let questions = metrics::labels(db, &scope, period, "question:", 10).await?;
    let total = metrics::total(&rows);
    let by_date = metrics::by_date(&rows);
    let empty = DayTotals::default();
    Ok(Performance {
        project_id,
        time_range: range,
        metrics: PerformanceMetrics {
            success_rate: total.success_rate(),
            avg_response_time: total.avg_response_time(),
            total_conversations: total.conversations,
            user_satisfaction: total.satisfaction(),
            most_asked_questions: questions
                .into_iter()
                .map(|q| QuestionCount {
                    question: q.example,
                    count: q.messages,
                })
                .collect(),
            error_rate: total.error_rate(),
        },
        historical_data: period
            .dates()
            .into_iter()
            .map(|date| {
                let d = by_date.get(&date).unwrap_or(&empty);
                DailyPerformance {
                    date,
                    conversations: d.conversations,
                    messages: d.messages(),
                    success_rate: d.success_rate(),
                    avg_response_time: d.avg_response_time(),
                    user_satisfaction: d.satisfaction(),
                    error_rate: d.error_rate(),
                }
            })
            .collect(),
    })
}

/// An agent's performance over a time range (view permission).
#[utoipa::path(get, path = "/api/projects/{id}/performance", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), RangeQuery),
    responses((status = 200, body = Performance), (status = 404, body = crate::error::Problem)))]
async fn performance(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<RangeQuery>,
) -> AppResult<Json<Performance>> {
    queries::load(&state.db, auth.id, id).await?;
    Ok(Json(
        measure(&state.db, id, q.time_range.unwrap_or_default()).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ComparisonQuery {
    /// 2–20 comma-separated project ids.
    pub ids: String,
    pub time_range: Option<TimeRange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComparedProject {
    pub id: Uuid,
    pub name: String,
    pub metrics: PerformanceMetrics,
    pub historical_data: Vec<DailyPerformance>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    pub time_range: TimeRange,
    pub projects: Vec<ComparedProject>,
}

/// Side-by-side performance of several agents (view permission on each).
#[utoipa::path(get, path = "/api/projects/comparison", tag = "projects", security(("bearer" = [])),
    params(ComparisonQuery),
    responses((status = 200, body = Comparison), (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn comparison(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ComparisonQuery>,
) -> AppResult<Json<Comparison>> {
    let mut ids: Vec<Uuid> = Vec::new();
    for raw in q.ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let id = Uuid::parse_str(raw)
            .map_err(|_| AppError::BadRequest(format!("`ids`: `{raw}` is not a UUID")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if !(2..=20).contains(&ids.len()) {
        return Err(AppError::BadRequest(
            "`ids` must name 2 to 20 projects".into(),
        ));
    }
    let range = q.time_range.unwrap_or_default();
    let mut projects = Vec::with_capacity(ids.len());
    for id in ids {
        let project = queries::load(&state.db, auth.id, id).await?;
        let measured = measure(&state.db, id, range).await?;
        projects.push(ComparedProject {
            id: project.id,
            name: project.name,
            metrics: measured.metrics,
            historical_data: measured.historical_data,
        });
    }
    Ok(Json(Comparison {
        time_range: range,
        projects,
    }))
}
