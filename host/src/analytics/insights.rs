//! `GET /api/analytics/conversations` and `GET /api/analytics/performance/comparison` (seed §7).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::metrics::{self, DayTotals, Period, Scope, TimeRange, VariantTotals, ratio};
use super::stats::{self, TestResult};
use crate::access::{Role, require_role};
use crate::auth::AuthUser;
use crate::db::Db;
use crate::error::{AppError, AppJson, AppQuery, AppResult};
use crate::projects::queries as projects;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversations))
        .routes(routes!(ab_comparison))
        .routes(routes!(get_topics, put_topics))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopicsQuery {
    pub workspace_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicKeywords {
    /// Topic name → keywords (whole words, case-insensitive). A user message counts toward
    /// every topic whose keyword it contains; counted when written.
    pub topics: std::collections::BTreeMap<String, Vec<String>>,
}

/// A workspace's topic keywords (members).
#[utoipa::path(get, path = "/api/analytics/topics", tag = "analytics", security(("bearer" = [])),
    params(TopicsQuery),
    responses((status = 200, body = TopicKeywords), (status = 404, body = crate::error::Problem)))]
async fn get_topics(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<TopicsQuery>,
) -> AppResult<Json<TopicKeywords>> {
    require_role(&state.db, q.workspace_id, auth.id, Role::Member).await?;
    Ok(Json(TopicKeywords {
        topics: super::rollup::workspace_topics(&state.db, q.workspace_id).await?,
    }))
}

/// Sets a workspace's topic keywords (owners and admins). New messages count toward them;
/// `nova recompute-metrics` recounts the past.
#[utoipa::path(put, path = "/api/analytics/topics", tag = "analytics", security(("bearer" = [])),
    params(TopicsQuery), request_body = TopicKeywords,
    responses((status = 200, body = TopicKeywords), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn put_topics(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<TopicsQuery>,
    AppJson(req): AppJson<TopicKeywords>,
) -> AppResult<Json<TopicKeywords>> {
    require_role(&state.db, q.workspace_id, auth.id, Role::Admin).await?;
    if req.topics.is_empty() || req.topics.len() > 50 {
        return Err(AppError::invalid("topics", "1 to 50 topics"));
    }
    let mut topics = std::collections::BTreeMap::new();
    for (name, keywords) in req.topics {
        let name = name.trim().to_lowercase();
        let keywords: Vec<String> = keywords
            .iter()
            .flat_map(|k| super::text::words(k))
            .collect();
        if name.is_empty() || name.len() > 50 || keywords.is_empty() || keywords.len() > 100 {
            return Err(AppError::invalid(
                "topics",
                format!("`{name}` needs a name of 1–50 characters and 1–100 keywords"),
            ));
        }
        topics.insert(name, keywords);
    }
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO workspace_topics (workspace_id, topics, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id) DO UPDATE SET topics = excluded.topics, updated_at = excluded.updated_at",
        crate::args![q.workspace_id, serde_json::json!(topics), crate::db::now()],
    )
    .await?;
    crate::team::audit(
        &mut tx,
        q.workspace_id,
        auth.id,
        "analytics.topics.set",
        "workspace",
        Some(q.workspace_id.to_string()),
        serde_json::json!({"topics": topics.keys().collect::<Vec<_>>()}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(TopicKeywords { topics }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsightQuery {
    /// 7d, 30d (default) or 90d.
    pub time_range: Option<TimeRange>,
    /// One agent (default: all the caller's agents); `project_id` is accepted as an alias.
    #[serde(alias = "project_id")]
    pub agent_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SentimentShares {
    pub positive: f64,
    pub neutral: f64,
    pub negative: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicShare {
    pub topic: String,
    /// Share of user messages that mention the topic.
    pub frequency: f64,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntentShare {
    /// question, complaint, request, greeting, purchase, cancellation, feedback, statement.
    pub intent: String,
    pub count: i64,
    pub share: f64,
    pub example: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationInsights {
    pub time_range: TimeRange,
    #[serde(flatten)]
    pub insights: Insights,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Insights {
    pub total_messages: i64,
    /// Shares of user messages by sentiment (scored when written, lexicon-based with negation).
    pub sentiment_analysis: SentimentShares,
    /// Keyword topics (`PUT /api/analytics/topics` sets a workspace's own).
    pub topics: Vec<TopicShare>,
    pub intent_recognition: Vec<IntentShare>,
}

async fn scope_for(state: &AppState, auth: &AuthUser, agent: Option<Uuid>) -> AppResult<Vec<Uuid>> {
    match agent {
        Some(id) => {
            projects::load(&state.db, auth.id, id).await?;
            Ok(vec![id])
        }
        None => Ok(Vec::new()),
    }
}

/// Sentiment, topics and intents of the users' messages.
#[utoipa::path(get, path = "/api/analytics/conversations", tag = "analytics", security(("bearer" = [])),
    params(InsightQuery),
    responses((status = 200, body = ConversationInsights), (status = 404, body = crate::error::Problem)))]
async fn conversations(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<InsightQuery>,
) -> AppResult<Json<serde_json::Value>> {
    let range = q.time_range.unwrap_or_default();
    let agents = scope_for(&state, &auth, q.agent_id).await?;
    let key = format!(
        "conversations:{}:{}:{:?}",
        auth.id,
        range.as_str(),
        q.agent_id
    );
    let value = state
        .cache
        .get_or(&key, async {
            let scope = if q.agent_id.is_some() {
                Scope::Agents(&agents)
            } else {
                Scope::Visible(auth.id)
            };
            AppResult::Ok(ConversationInsights {
                time_range: range,
                insights: {
                    let period = range.period();
                    let rows = metrics::days(&state.db, &scope, period).await?;
                    insights(&state.db, &scope, period, &rows).await?
                },
            })
        })
        .await?;
    Ok(Json(value))
}

/// Sentiment, topics and intents of the users' messages to the agents in `scope`.
/// `rows` are the rollup rows of `scope` over `period`, which the caller has read already.
pub async fn insights(
    db: &Db,
    scope: &Scope<'_>,
    period: Period,
    rows: &[DayTotals],
) -> AppResult<Insights> {
    let total = metrics::total(rows);
    let users = total.user_messages;
    let topics = metrics::labels(db, scope, period, "topic:", 50).await?;
    let intents = metrics::labels(db, scope, period, "intent:", 20).await?;
    Ok(Insights {
        total_messages: total.messages(),
        sentiment_analysis: SentimentShares {
            positive: ratio(total.positive_messages, users),
            neutral: ratio(total.neutral_messages, users),
            negative: ratio(total.negative_messages, users),
        },
        topics: topics
            .into_iter()
            .map(|l| TopicShare {
                topic: l.label.trim_start_matches("topic:").to_owned(),
                frequency: ratio(l.messages, users),
                count: l.messages,
            })
            .collect(),
        intent_recognition: intents
            .into_iter()
            .map(|l| IntentShare {
                intent: l.label.trim_start_matches("intent:").to_owned(),
                share: ratio(l.messages, users),
                count: l.messages,
                example: l.example,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AbQuery {
    /// The agent whose variants are compared; `project_id` is accepted as an alias.
    #[serde(alias = "project_id")]
    pub agent_id: Uuid,
    pub time_range: Option<TimeRange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantResult {
    /// The variant's name (`""`: sessions without a variant).
    pub variant: String,
    /// Sessions started.
    pub sessions: i64,
    /// Agent replies: the sample size of both tests.
    pub sample_size: i64,
    pub success_rate: f64,
    pub avg_response_time: f64,
    pub error_rate: f64,
    pub user_satisfaction: Option<f64>,
    /// Against the first variant (the control); absent for the control.
    pub success_rate_test: Option<TestResult>,
    pub response_time_test: Option<TestResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AbComparison {
    pub agent_id: Uuid,
    pub time_range: TimeRange,
    /// The first is the control; each other is tested against it: a two-proportion z-test
    /// on success rate, Welch's t-test on response time (significant when p < 0.05).
    pub variants: Vec<VariantResult>,
}

/// A/B test results of an agent's variants.
#[utoipa::path(get, path = "/api/analytics/performance/comparison", tag = "analytics", security(("bearer" = [])),
    params(AbQuery),
    responses((status = 200, body = AbComparison), (status = 404, body = crate::error::Problem)))]
async fn ab_comparison(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<AbQuery>,
) -> AppResult<Json<AbComparison>> {
    projects::load(&state.db, auth.id, q.agent_id).await?;
    let range = q.time_range.unwrap_or_default();
    let rows = metrics::variants(&state.db, &Scope::Agents(&[q.agent_id]), range.period()).await?;
    let variants = compare(&rows);
    if variants.is_empty() {
        return Err(AppError::NotFound(
            "conversations for this agent in the range",
        ));
    }
    Ok(Json(AbComparison {
        agent_id: q.agent_id,
        time_range: range,
        variants,
    }))
}

/// Each variant's figures, and each but the first tested against the first (the control).
pub fn compare(rows: &[VariantTotals]) -> Vec<VariantResult> {
    let control = rows.first().cloned();
    rows.iter()
        .enumerate()
        .map(|(i, v)| {
            let t = &v.totals;
            let (s_test, r_test) = match (&control, i) {
                (Some(c), i) if i > 0 => {
                    let c = &c.totals;
                    (
                        stats::two_proportion_z(
                            t.successful_replies,
                            t.agent_replies,
                            c.successful_replies,
                            c.agent_replies,
                        ),
                        stats::welch_t(
                            t.agent_replies,
                            t.latency_ms_sum as f64 / 1000.0,
                            t.latency_ms_sq_sum / 1_000_000.0,
                            c.agent_replies,
                            c.latency_ms_sum as f64 / 1000.0,
                            c.latency_ms_sq_sum / 1_000_000.0,
                        ),
                    )
                }
                _ => (None, None),
            };
            VariantResult {
                variant: v.variant.clone(),
                sessions: t.conversations,
                sample_size: t.agent_replies,
                success_rate: ratio(t.successful_replies, t.agent_replies),
                avg_response_time: ratio(t.latency_ms_sum, t.agent_replies) / 1000.0,
                error_rate: ratio(t.error_replies, t.agent_replies),
                user_satisfaction: (t.rating_count > 0)
                    .then(|| t.rating_sum as f64 / t.rating_count as f64),
                success_rate_test: s_test,
                response_time_test: r_test,
            }
        })
        .collect()
}
