//! `GET /api/usage/metrics` (seed §9): tokens, estimated cost, requests, response times and
//! errors, per day and per project.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::metrics::{self, DayTotals, Period, RangeQuery, Scope, TimeRange, ratio};
use crate::auth::AuthUser;
use crate::error::{AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UsageFigures {
    /// Agent replies (model calls, and fallback answers under model `none`).
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// In US dollars, from the price table (`NOVA_MODEL_PRICES`).
    pub estimated_cost: f64,
    pub error_rate: f64,
    /// Reply latency quantiles in seconds (from the latency histogram); null without replies.
    pub response_time_p50: Option<f64>,
    pub response_time_p95: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsage {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectUsage {
    pub project_id: Uuid,
    pub name: String,
    #[serde(flatten)]
    pub figures: UsageFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub time_range: TimeRange,
    #[serde(flatten)]
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub totals: UsageFigures,
    /// One entry per day, oldest first, zero-filled.
    pub daily: Vec<DailyUsage>,
    /// Most expensive first.
    pub by_project: Vec<ProjectUsage>,
    /// US dollars per million prompt / completion tokens, by model.
    pub prices: BTreeMap<String, (f64, f64)>,
    /// Webhook deliveries of the workspaces the caller administers.
    pub webhooks: crate::webhooks::usage::WebhookUsage,
    /// The caller's own API requests.
    pub api: ApiRequests,
}

/// API requests (every authenticated request, counted per user and token); errors are
/// answers of 400 and above.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ApiRequests {
    pub requests: i64,
    pub errors: i64,
    pub error_rate: f64,
    /// Per API key (login sessions are only in the totals), busiest first.
    pub by_api_key: Vec<ApiKeyRequests>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ApiKeyRequests {
    pub api_key_id: Uuid,
    /// Null once the key is revoked.
    pub name: Option<String>,
    pub requests: i64,
    pub errors: i64,
    #[sqlx(skip)]
    pub error_rate: f64,
}

#[derive(sqlx::FromRow)]
struct TokenDays {
    token_id: Uuid,
    api_key: bool,
    name: Option<String>,
    requests: i64,
    errors: i64,
}

/// The caller's requests over the period, in total and per API key.
async fn api_requests(db: &crate::db::Db, caller: Uuid, period: Period) -> AppResult<ApiRequests> {
    let rows: Vec<TokenDays> = db
        .fetch_all(
            "SELECT a.token_id, a.api_key, t.name, CAST(SUM(a.requests) AS BIGINT) AS requests,
                CAST(SUM(a.errors) AS BIGINT) AS errors
             FROM api_usage_daily a LEFT JOIN api_tokens t ON t.id = a.token_id
             WHERE a.user_id = $1 AND a.date >= $2 AND a.date <= $3
             GROUP BY a.token_id, a.api_key, t.name",
            crate::args![caller, period.from, period.to],
        )
        .await?;
    let mut report = ApiRequests::default();
    for row in rows {
        report.requests += row.requests;
        report.errors += row.errors;
        // A revoked key's counts stay under its id, without a name.
        if row.api_key {
            report.by_api_key.push(ApiKeyRequests {
                api_key_id: row.token_id,
                name: row.name,
                requests: row.requests,
                errors: row.errors,
                error_rate: ratio(row.errors, row.requests),
            });
        }
    }
    report.error_rate = ratio(report.errors, report.requests);
    report
        .by_api_key
        .sort_by_key(|k| std::cmp::Reverse(k.requests));
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct ModelDay {
    agent_id: Uuid,
    date: NaiveDate,
    model: String,
    prompt_tokens: i64,
    completion_tokens: i64,
}

fn figures(t: &DayTotals, cost: f64) -> UsageFigures {
    UsageFigures {
        requests: t.agent_replies,
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.completion_tokens,
        estimated_cost: (cost * 1e6).round() / 1e6,
        error_rate: ratio(t.error_replies, t.agent_replies),
        response_time_p50: t.latency_quantile(0.50),
        response_time_p95: t.latency_quantile(0.95),
    }
}

/// Usage and cost of the caller's agents.
#[utoipa::path(get, path = "/api/usage/metrics", tag = "analytics", security(("bearer" = [])),
    params(RangeQuery),
    responses((status = 200, body = UsageReport)))]
async fn usage(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<RangeQuery>,
) -> AppResult<Json<serde_json::Value>> {
    let range = q.time_range.unwrap_or_default();
    let key = format!("usage:{}:{}", auth.id, range.as_str());
    let value = state
        .cache
        .get_or(&key, async {
            let (scope, period) = (Scope::Visible(auth.id), range.period());
            let rows = metrics::days(&state.db, &scope, period).await?;
            let usage = measure(&state, auth.id, &scope, period, &rows).await?;
            AppResult::Ok(UsageReport {
                time_range: range,
                usage,
            })
        })
        .await?;
    Ok(Json(value))
}

/// Usage and cost of the agents in `scope` over the period, with the caller's API requests
/// and the webhook deliveries of the workspaces the caller administers; `rows` are the
/// rollup rows of `scope` over `period`, which the caller has read already.
pub async fn measure(
    state: &AppState,
    caller: Uuid,
    scope: &Scope<'_>,
    period: Period,
    rows: &[DayTotals],
) -> AppResult<Usage> {
    let mut binds = Vec::new();
    let condition = scope.condition("agent_id", &mut binds);
    binds.push(period.from.into());
    binds.push(period.to.into());
    let models: Vec<ModelDay> = state
        .db
        .fetch_all(
            &format!(
                "SELECT agent_id, date, model, prompt_tokens, completion_tokens FROM usage_daily
                 WHERE {condition} AND date >= ${} AND date <= ${}",
                binds.len() - 1,
                binds.len()
            ),
            binds,
        )
        .await?;
    let prices = &state.config.model_prices;
    let cost_of = |m: &ModelDay| {
        prices.get(&m.model).map_or(0.0, |(p, c)| {
            (m.prompt_tokens as f64 * p + m.completion_tokens as f64 * c) / 1e6
        })
    };
    let mut cost_by_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    let mut cost_by_agent: BTreeMap<Uuid, f64> = BTreeMap::new();
    for m in &models {
        *cost_by_day.entry(m.date).or_default() += cost_of(m);
        *cost_by_agent.entry(m.agent_id).or_default() += cost_of(m);
    }
    let by_date = metrics::by_date(rows);
    let empty = DayTotals::default();
    let per_agent = metrics::by_agent(rows);
    let ids: Vec<Uuid> = per_agent.keys().copied().collect();
    let mut names = metrics::agent_names(&state.db, &ids).await?;
    let mut by_project = Vec::new();
    for (agent, t) in per_agent {
        by_project.push(ProjectUsage {
            project_id: agent,
            name: names.remove(&agent).unwrap_or_default(),
            figures: figures(&t, cost_by_agent.get(&agent).copied().unwrap_or(0.0)),
        });
    }
    by_project.sort_by(|a, b| {
        b.figures
            .estimated_cost
            .total_cmp(&a.figures.estimated_cost)
    });
    Ok(Usage {
        totals: figures(&metrics::total(rows), cost_by_day.values().sum()),
        daily: period
            .dates()
            .into_iter()
            .map(|d| DailyUsage {
                date: d,
                figures: figures(
                    by_date.get(&d).unwrap_or(&empty),
                    cost_by_day.get(&d).copied().unwrap_or(0.0),
                ),
            })
            .collect(),
        by_project,
        prices: prices.clone(),
        webhooks: crate::webhooks::usage::usage(&state.db, caller, period).await?,
        api: api_requests(&state.db, caller, period).await?,
    })
}
