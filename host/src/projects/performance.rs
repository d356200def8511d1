//! `GET /api/projects/{id}/performance` and `GET /api/projects/comparison?ids=…` (seed §3).
//!
//! Conversations arrive with the chat section; until then every project has no
//! conversations, so its figures are zero and satisfaction is null (no ratings yet).

use axum::Json;
use axum::extract::State;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{ProjectRow, queries};
use crate::auth::AuthUser;
use crate::db::now;
use crate::error::{AppError, AppPath, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(performance))
        .routes(routes!(comparison))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
pub enum TimeRange {
    #[serde(rename = "7d")]
    Week,
    #[default]
    #[serde(rename = "30d")]
    Month,
    #[serde(rename = "90d")]
    Quarter,
}

impl TimeRange {
    pub fn days(self) -> i64 {
        match self {
            TimeRange::Week => 7,
            TimeRange::Month => 30,
            TimeRange::Quarter => 90,
        }
    }

    /// The days of the range, oldest first, ending today (UTC).
    pub fn dates(self) -> Vec<NaiveDate> {
        let today = now().date_naive();
        (0..self.days())
            .rev()
            .map(|back| today - Duration::days(back))
            .collect()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionCount {
    pub question: String,
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
    pub most_asked_questions: Vec<QuestionCount>,
    /// Agent replies that failed, over all agent replies.
    pub error_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyPerformance {
    pub date: NaiveDate,
    pub conversations: i64,
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// 7d, 30d (default) or 90d.
    pub time_range: Option<TimeRange>,
}

fn measure(project: &ProjectRow, range: TimeRange) -> Performance {
    Performance {
        project_id: project.id,
        time_range: range,
        metrics: PerformanceMetrics {
            success_rate: 0.0,
            avg_response_time: 0.0,
            total_conversations: 0,
            user_satisfaction: None,
            most_asked_questions: Vec::new(),
            error_rate: 0.0,
        },
        historical_data: range
            .dates()
            .into_iter()
            .map(|date| DailyPerformance {
                date,
                conversations: 0,
                success_rate: 0.0,
                avg_response_time: 0.0,
                user_satisfaction: None,
                error_rate: 0.0,
            })
            .collect(),
    }
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
    let project = queries::load(&state.db, auth.id, id).await?;
    Ok(Json(measure(&project, q.time_range.unwrap_or_default())))
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
        let measured = measure(&project, range);
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
