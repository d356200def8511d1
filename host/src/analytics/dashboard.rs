//! `GET /api/dashboard/analytics` and `GET /api/dashboard/recommendations` (seed §1).

use axum::Json;
use axum::extract::State;
use chrono::{Duration, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::metrics::{
    self, DayTotals, Period, RangeQuery, Scope, TimeRange, ratio, visible_agents,
};
use crate::args;
use crate::auth::AuthUser;
use crate::db::now;
use crate::error::{AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(analytics))
        .routes(routes!(recommendations))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopAgent {
    pub id: Uuid,
    pub name: String,
    pub success_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardMetrics {
    /// Agents the caller sees (not archived).
    pub total_agents: i64,
    /// Their chat sessions whose status is active.
    pub active_chats: i64,
    /// User messages and agent replies today (UTC).
    pub messages_today: i64,
    /// Mean reply latency over the range, in seconds.
    pub avg_response_time: f64,
    /// Mean rating (1–5) over the range; null without ratings.
    pub user_satisfaction: Option<f64>,
    /// The best agent over the range: the highest success rate, then mean rating, then
    /// conversations; null when no agent replied in the range.
    pub top_performing_agent: Option<TopAgent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountPoint {
    pub date: NaiveDate,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScorePoint {
    pub date: NaiveDate,
    /// Mean rating of the day; 0 on a day without ratings.
    pub score: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trends {
    pub messages: Vec<CountPoint>,
    pub satisfaction: Vec<ScorePoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub time_range: TimeRange,
    pub metrics: DashboardMetrics,
    /// One point per day of the range, oldest first, zero-filled.
    pub trends: Trends,
}

/// The dashboard over the caller's agents.
///
/// success_rate: agent replies neither unanswered nor errored nor rated ≤ 2, over all agent
/// replies. Response times are in seconds. Days are UTC.
#[utoipa::path(get, path = "/api/dashboard/analytics", tag = "analytics", security(("bearer" = [])),
    params(RangeQuery),
    responses((status = 200, body = Dashboard), (status = 400, body = crate::error::Problem)))]
async fn analytics(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<RangeQuery>,
) -> AppResult<Json<serde_json::Value>> {
    let range = q.time_range.unwrap_or(TimeRange::Week);
    let key = format!("dashboard:{}:{}", auth.id, range.as_str());
    let value = state
        .cache
        .get_or(&key, build(&state, auth.id, range))
        .await?;
    Ok(Json(value))
}

#[derive(sqlx::FromRow)]
struct DateSums {
    date: NaiveDate,
    messages: i64,
    agent_replies: i64,
    latency_ms_sum: i64,
    rating_sum: i64,
    rating_count: i64,
}

#[derive(sqlx::FromRow)]
struct AgentSums {
    agent_id: Uuid,
    successful_replies: i64,
    agent_replies: i64,
    rating_sum: i64,
    rating_count: i64,
    conversations: i64,
}

impl AgentSums {
    /// How agents rank: success rate, then mean rating (an agent without ratings below any
    /// rated one), then conversations. Success rate alone ties when no model is configured
    /// (every reply unanswered), and then a 1.8-rated agent could beat a 4.6-rated one.
    fn rank(&self) -> (f64, f64, i64) {
        let satisfaction = if self.rating_count > 0 {
            ratio(self.rating_sum, self.rating_count)
        } else {
            f64::NEG_INFINITY
        };
        (
            ratio(self.successful_replies, self.agent_replies),
            satisfaction,
            self.conversations,
        )
    }
}

/// Two narrow aggregates (by day, by agent) rather than every counter: the dashboard is the
/// most read page, and decoding rows dominates its cost.
async fn build(state: &AppState, user: Uuid, range: TimeRange) -> AppResult<Dashboard> {
    let mut binds = Vec::new();
    let condition = Scope::Visible(user).condition("agent_id", &mut binds);
    binds.push(range.first_day().into());
    let from = binds.len();
    let by_date: Vec<DateSums> = state
        .db
        .fetch_all(
            &format!(
                "SELECT date, CAST(SUM(user_messages + agent_replies) AS BIGINT) AS messages,
                    CAST(SUM(agent_replies) AS BIGINT) AS agent_replies,
                    CAST(SUM(latency_ms_sum) AS BIGINT) AS latency_ms_sum,
                    CAST(SUM(rating_sum) AS BIGINT) AS rating_sum,
                    CAST(SUM(rating_count) AS BIGINT) AS rating_count
                 FROM agent_metrics WHERE {condition} AND date >= ${from} GROUP BY date"
            ),
            binds.clone(),
        )
        .await?;
    let by_agent: Vec<AgentSums> = state
        .db
        .fetch_all(
            &format!(
                "SELECT agent_id, CAST(SUM(successful_replies) AS BIGINT) AS successful_replies,
                    CAST(SUM(agent_replies) AS BIGINT) AS agent_replies,
                    CAST(SUM(rating_sum) AS BIGINT) AS rating_sum,
                    CAST(SUM(rating_count) AS BIGINT) AS rating_count,
                    CAST(SUM(total_conversations) AS BIGINT) AS conversations
                 FROM agent_metrics WHERE {condition} AND date >= ${from} GROUP BY agent_id"
            ),
            binds,
        )
        .await?;
    let (total_agents,): (i64,) = state
        .db
        .fetch_one(
            &format!("SELECT COUNT(*) FROM ({}) v", visible_agents()),
            args![user, now()],
        )
        .await?;
    let (active_chats,): (i64,) = state
        .db
        .fetch_one(
            &format!(
                "SELECT COUNT(*) FROM chat_sessions WHERE status = 'active' AND agent_id IN ({})",
                visible_agents()
            ),
            args![user, now()],
        )
        .await?;
    let today = now().date_naive();
    let top = by_agent
        .iter()
        .filter(|a| a.agent_replies > 0)
        .max_by(|a, b| {
            let (a, b) = (a.rank(), b.rank());
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
    let top_performing_agent = match top {
        Some(a) => {
            let (name,): (String,) = state
                .db
                .fetch_one("SELECT name FROM projects WHERE id = $1", args![a.agent_id])
                .await?;
            Some(TopAgent {
                id: a.agent_id,
                name,
                success_rate: ratio(a.successful_replies, a.agent_replies),
            })
        }
        None => None,
    };
    let day = |d: &NaiveDate| by_date.iter().find(|r| r.date == *d);
    let replies: i64 = by_date.iter().map(|r| r.agent_replies).sum();
    let latency: i64 = by_date.iter().map(|r| r.latency_ms_sum).sum();
    let ratings: i64 = by_date.iter().map(|r| r.rating_count).sum();
    let rating_sum: i64 = by_date.iter().map(|r| r.rating_sum).sum();
    let dates = range.period().dates();
    Ok(Dashboard {
        time_range: range,
        metrics: DashboardMetrics {
            total_agents,
            active_chats,
            messages_today: day(&today).map_or(0, |r| r.messages),
            avg_response_time: ratio(latency, replies) / 1000.0,
            user_satisfaction: (ratings > 0).then(|| rating_sum as f64 / ratings as f64),
            top_performing_agent,
        },
        trends: Trends {
            messages: dates
                .iter()
                .map(|d| CountPoint {
                    date: *d,
                    count: day(d).map_or(0, |r| r.messages),
                })
                .collect(),
            satisfaction: dates
                .iter()
                .map(|d| ScorePoint {
                    date: *d,
                    score: day(d)
                        .filter(|r| r.rating_count > 0)
                        .map_or(0.0, |r| r.rating_sum as f64 / r.rating_count as f64),
                })
                .collect(),
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendation {
    /// optimization, quality, reliability, knowledge or usage.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub description: String,
    /// high, medium or low.
    pub priority: &'static str,
    pub action_url: String,
    pub agent_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub recommendations: Vec<Recommendation>,
}

#[derive(sqlx::FromRow)]
struct AgentInfo {
    id: Uuid,
    name: String,
    status: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Rules over the last 14 days (this week against the one before) and the workspace
/// average: slow replies (20 % above average), falling satisfaction (−0.3), rising error
/// rate (+5 points, at least 5 %), many unanswered questions (≥ 20 %), and agents unused
/// for 14 days. Highest priority first, at most 20.
#[utoipa::path(get, path = "/api/dashboard/recommendations", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = Recommendations)))]
async fn recommendations(
    State(state): State<AppState>,
    auth: AuthUser,
) -> AppResult<Json<serde_json::Value>> {
    let key = format!("recommendations:{}", auth.id);
    let value = state.cache.get_or(&key, recommend(&state, auth.id)).await?;
    Ok(Json(value))
}

async fn recommend(state: &AppState, user: Uuid) -> AppResult<Recommendations> {
    let today = now().date_naive();
    let this_week = today - Duration::days(6);
    let fortnight = Period {
        from: today - Duration::days(13),
        to: today,
    };
    let rows = metrics::days(&state.db, &Scope::Visible(user), fortnight).await?;
    let (recent, earlier): (Vec<DayTotals>, Vec<DayTotals>) =
        rows.into_iter().partition(|r| r.date >= this_week);
    let now_by_agent = metrics::by_agent(&recent);
    let before_by_agent = metrics::by_agent(&earlier);
    let agents: Vec<AgentInfo> = state
        .db
        .fetch_all(
            &format!(
                "SELECT id, name, status, created_at FROM projects WHERE id IN ({})
                 ORDER BY id LIMIT 1000",
                visible_agents()
            ),
            args![user, now()],
        )
        .await?;
    let with_replies: Vec<&DayTotals> = now_by_agent
        .values()
        .filter(|t| t.agent_replies > 0)
        .collect();
    let average = if with_replies.is_empty() {
        0.0
    } else {
        with_replies
            .iter()
            .map(|t| t.avg_response_time())
            .sum::<f64>()
            / with_replies.len() as f64
    };
    let mut out = Vec::new();
    let empty = DayTotals::default();
    for agent in &agents {
        let now_t = now_by_agent.get(&agent.id).unwrap_or(&empty);
        let before = before_by_agent.get(&agent.id).unwrap_or(&empty);
        let settings_url = format!("/dashboard/agents/{}/settings", agent.id);
        let mut push = |kind, priority, title: String, description: String, url: String| {
            out.push(Recommendation {
                kind,
                title,
                description,
                priority,
                action_url: url,
                agent_id: agent.id,
            })
        };
        if now_t.agent_replies > 0 && with_replies.len() > 1 && average > 0.0 {
            let above = (now_t.avg_response_time() / average - 1.0) * 100.0;
            if above >= 20.0 {
                push(
                    "optimization",
                    "medium",
                    format!("Optimize {}", agent.name),
                    format!(
                        "Response time is {above:.0}% above average ({:.2} s vs {average:.2} s)",
                        now_t.avg_response_time()
                    ),
                    settings_url.clone(),
                );
            }
        }
        if let (Some(a), Some(b)) = (now_t.satisfaction(), before.satisfaction())
            && b - a >= 0.3
        {
            push(
                "quality",
                "high",
                format!("Satisfaction with {} is falling", agent.name),
                format!("Average rating fell from {b:.1} to {a:.1} this week"),
                format!("/dashboard/agents/{}/conversations", agent.id),
            );
        }
        let (er_now, er_before) = (now_t.error_rate(), before.error_rate());
        if now_t.agent_replies > 0 && er_now >= 0.05 && er_now - er_before >= 0.05 {
            push(
                "reliability",
                "high",
                format!("Errors are rising for {}", agent.name),
                format!(
                    "Error rate rose to {:.0}% from {:.0}% last week",
                    er_now * 100.0,
                    er_before * 100.0
                ),
                settings_url.clone(),
            );
        }
        if now_t.agent_replies >= 5 && now_t.unanswered_rate() >= 0.2 {
            push(
                "knowledge",
                "medium",
                format!("{} leaves many questions unanswered", agent.name),
                format!(
                    "{:.0}% of replies this week were unanswered ({} of {})",
                    now_t.unanswered_rate() * 100.0,
                    now_t.unanswered_replies,
                    now_t.agent_replies
                ),
                format!("/dashboard/knowledge?agent={}", agent.id),
            );
        }
        let idle_since_creation = (now() - agent.created_at).num_days() >= 14;
        if agent.status == "active"
            && idle_since_creation
            && now_t.messages() == 0
            && before.messages() == 0
        {
            push(
                "usage",
                "low",
                format!("{} is unused", agent.name),
                "No conversations in the last 14 days: pause or archive it".to_owned(),
                format!("/dashboard/agents/{}", agent.id),
            );
        }
    }
    let rank = |p: &str| match p {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    };
    out.sort_by_key(|r| rank(r.priority));
    out.truncate(20);
    Ok(Recommendations {
        recommendations: out,
    })
}
