//! Daily rollups per agent, kept up to date as sessions, messages, replies and ratings are
//! written, so that every analytics read costs O(days × agents), not O(messages).
//!
//! A [`Rollup`] gathers counter deltas in memory; [`Rollup::apply`] adds them to the tables.
//! Writes apply a rollup of one event inside their own transaction; `nova recompute-metrics`
//! builds one rollup from all the raw data and writes it in place of the old rows — the same
//! code both ways.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::text;
use crate::args;
use crate::db::{Arg, Db, Tx, new_id};
use crate::error::AppResult;

/// Upper bounds (ms) of the reply-latency histogram buckets; the last bucket is open.
pub const LATENCY_BOUNDS_MS: [i64; 11] = [
    100, 250, 500, 1_000, 2_000, 3_000, 5_000, 8_000, 13_000, 20_000, 30_000,
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub conversations: i64,
    pub user_messages: i64,
    pub agent_replies: i64,
    pub successful_replies: i64,
    pub unanswered_replies: i64,
    pub error_replies: i64,
    pub latency_ms_sum: i64,
    pub latency_ms_sq_sum: f64,
    pub rating_sum: i64,
    pub rating_count: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub positive: i64,
    pub neutral: i64,
    pub negative: i64,
    pub latency_buckets: [i64; 12],
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day {
    pub project_id: Uuid,
    pub workspace_id: Uuid,
    pub date: NaiveDate,
}

/// Where an agent reply stands for the success rate: ok and not rated ≤ 2.
fn is_success(status: &str, rating: Option<i64>) -> bool {
    status == "ok" && rating.is_none_or(|r| r > 2)
}

fn bucket(latency_ms: i64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| latency_ms <= *b)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// Counter deltas, by day and variant, by label and by model.
#[derive(Debug, Default)]
pub struct Rollup {
    pub metrics: BTreeMap<(Day, String), Counters>,
    pub labels: BTreeMap<(Day, String), (i64, String)>,
    pub usage: BTreeMap<(Day, String), Usage>,
}

/// What a user message is about, as computed when it is written.
pub struct Reading {
    pub sentiment: f64,
    pub intent: &'static str,
}

impl Reading {
    pub fn of(content: &str) -> Reading {
        let sentiment = text::sentiment(content);
        Reading {
            sentiment,
            intent: text::intent(content, sentiment),
        }
    }
}

impl Rollup {
    fn counters(&mut self, day: &Day, variant: &str) -> &mut Counters {
        self.metrics
            .entry((day.clone(), variant.to_owned()))
            .or_default()
    }

    pub fn session_started(&mut self, day: Day, variant: &str) {
        self.counters(&day, variant).conversations += 1;
    }

    pub fn user_message(
        &mut self,
        day: Day,
        variant: &str,
        content: &str,
        sentiment: f64,
        intent: &str,
        topics: &BTreeMap<String, Vec<String>>,
    ) {
        let c = self.counters(&day, variant);
        c.user_messages += 1;
        match text::sentiment_label(sentiment) {
            "positive" => c.positive += 1,
            "negative" => c.negative += 1,
            _ => c.neutral += 1,
        }
        let example: String = content.chars().take(200).collect();
        let mut labels = vec![format!("intent:{intent}")];
        labels.extend(
            text::topics(content, topics)
                .into_iter()
                .map(|t| format!("topic:{t}")),
        );
        if intent == "question"
            && let Some(key) = text::question_key(content)
        {
            labels.push(format!("question:{key}"));
        }
        for label in labels {
            let entry = self
                .labels
                .entry((day.clone(), label))
                .or_insert((0, example.clone()));
            entry.0 += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn agent_reply(
        &mut self,
        day: Day,
        variant: &str,
        status: &str,
        rating: Option<i64>,
        latency_ms: i64,
        prompt_tokens: i64,
        completion_tokens: i64,
        model: &str,
    ) {
        let c = self.counters(&day, variant);
        c.agent_replies += 1;
        if is_success(status, rating) {
            c.successful_replies += 1;
        }
        match status {
            "unanswered" => c.unanswered_replies += 1,
            "error" => c.error_replies += 1,
            _ => {}
        }
        c.latency_ms_sum += latency_ms;
        c.latency_ms_sq_sum += (latency_ms as f64).powi(2);
        c.latency_buckets[bucket(latency_ms)] += 1;
        c.prompt_tokens += prompt_tokens;
        c.completion_tokens += completion_tokens;
        if let Some(r) = rating {
            c.rating_sum += r;
            c.rating_count += 1;
        }
        let u = self.usage.entry((day, model.to_owned())).or_default();
        u.requests += 1;
        u.errors += i64::from(status == "error");
        u.prompt_tokens += prompt_tokens;
        u.completion_tokens += completion_tokens;
    }

    /// A reply's rating changed from `old` to `new` (the reply's day and status).
    pub fn rating_changed(
        &mut self,
        day: Day,
        variant: &str,
        status: &str,
        old: Option<i64>,
        new: i64,
    ) {
        let c = self.counters(&day, variant);
        c.rating_sum += new - old.unwrap_or(0);
        c.rating_count += i64::from(old.is_none());
        c.successful_replies +=
            i64::from(is_success(status, Some(new))) - i64::from(is_success(status, old));
    }

    /// Adds the deltas to the rollup tables.
    pub async fn apply(&self, tx: &mut Tx) -> AppResult<()> {
        for ((day, variant), c) in &self.metrics {
            let mut binds: Vec<Arg> = args![
                new_id(),
                day.project_id,
                day.workspace_id,
                day.date,
                variant.as_str()
            ];
            let mut columns = Vec::new();
            let mut add = |name: &'static str, value: Arg, binds: &mut Vec<Arg>| {
                binds.push(value);
                columns.push((name, binds.len()));
            };
            add("total_conversations", c.conversations.into(), &mut binds);
            add("user_messages", c.user_messages.into(), &mut binds);
            add("agent_replies", c.agent_replies.into(), &mut binds);
            add(
                "successful_replies",
                c.successful_replies.into(),
                &mut binds,
            );
            add(
                "unanswered_replies",
                c.unanswered_replies.into(),
                &mut binds,
            );
            add("error_replies", c.error_replies.into(), &mut binds);
            add("latency_ms_sum", c.latency_ms_sum.into(), &mut binds);
            add("latency_ms_sq_sum", c.latency_ms_sq_sum.into(), &mut binds);
            add("rating_sum", c.rating_sum.into(), &mut binds);
            add("rating_count", c.rating_count.into(), &mut binds);
            add("prompt_tokens", c.prompt_tokens.into(), &mut binds);
            add("completion_tokens", c.completion_tokens.into(), &mut binds);
            add("positive_messages", c.positive.into(), &mut binds);
            add("neutral_messages", c.neutral.into(), &mut binds);
            add("negative_messages", c.negative.into(), &mut binds);
            for (name, n) in super::metrics::LATENCY_COLUMNS
                .iter()
                .zip(c.latency_buckets)
            {
                add(name, n.into(), &mut binds);
            }
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let values: Vec<String> = columns.iter().map(|(_, i)| format!("${i}")).collect();
            let sums: Vec<String> = names
                .iter()
                .map(|n| format!("{n} = agent_metrics.{n} + excluded.{n}"))
                .collect();
            tx.execute(
                &format!(
                    "INSERT INTO agent_metrics (id, agent_id, workspace_id, date, variant, {})
                     VALUES ($1, $2, $3, $4, $5, {})
                     ON CONFLICT (agent_id, date, variant) DO UPDATE SET {}",
                    names.join(", "),
                    values.join(", "),
                    sums.join(", ")
                ),
                binds,
            )
            .await?;
            // The seed's derived columns, from the counters.
            tx.execute(
                "UPDATE agent_metrics SET
                    success_rate = CASE WHEN agent_replies > 0
                        THEN successful_replies * 1.0 / agent_replies ELSE 0 END,
                    avg_response_time = CASE WHEN agent_replies > 0
                        THEN latency_ms_sum / 1000.0 / agent_replies ELSE 0 END,
                    user_satisfaction = CASE WHEN rating_count > 0
                        THEN rating_sum * 1.0 / rating_count ELSE NULL END
                 WHERE agent_id = $1 AND date = $2 AND variant = $3",
                args![day.project_id, day.date, variant.as_str()],
            )
            .await?;
        }
        for ((day, label), (n, example)) in &self.labels {
            tx.execute(
                "INSERT INTO message_labels (agent_id, workspace_id, date, label, messages, example)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (agent_id, date, label)
                 DO UPDATE SET messages = message_labels.messages + excluded.messages",
                args![day.project_id, day.workspace_id, day.date, label.as_str(), *n, example.as_str()],
            )
            .await?;
        }
        for ((day, model), u) in &self.usage {
            tx.execute(
                "INSERT INTO usage_daily (agent_id, workspace_id, date, model, requests, errors,
                    prompt_tokens, completion_tokens)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (agent_id, date, model) DO UPDATE SET
                    requests = usage_daily.requests + excluded.requests,
                    errors = usage_daily.errors + excluded.errors,
                    prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
                    completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens",
                args![
                    day.project_id,
                    day.workspace_id,
                    day.date,
                    model.as_str(),
                    u.requests,
                    u.errors,
                    u.prompt_tokens,
                    u.completion_tokens
                ],
            )
            .await?;
        }
        Ok(())
    }
}

impl Day {
    pub fn of(project_id: Uuid, workspace_id: Uuid, at: DateTime<Utc>) -> Day {
        Day {
            project_id,
            workspace_id,
            date: at.date_naive(),
        }
    }
}

/// Topic names and their keywords.
pub type Topics = BTreeMap<String, Vec<String>>;

/// The topic keywords of a workspace (its own, or the defaults).
pub async fn workspace_topics(db: &Db, workspace_id: Uuid) -> AppResult<Topics> {
    let row: Option<(sqlx::types::Json<Topics>,)> = db
        .fetch_optional(
            "SELECT topics FROM workspace_topics WHERE workspace_id = $1",
            args![workspace_id],
        )
        .await?;
    Ok(row.map(|(t,)| t.0).unwrap_or_else(text::default_topics))
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    agent_id: Uuid,
    workspace_id: Uuid,
    variant: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    session_id: Uuid,
    role: String,
    content: String,
    status: String,
    rating: Option<i64>,
    latency_ms: Option<i64>,
    prompt_tokens: i64,
    completion_tokens: i64,
    sentiment: Option<f64>,
    intent: Option<String>,
    model: Option<String>,
    created_at: DateTime<Utc>,
}

/// Rebuilds every rollup from the raw sessions and messages (`nova recompute-metrics`).
/// Returns how many messages were read.
pub async fn recompute(db: &Db) -> AppResult<u64> {
    let mut rollup = Rollup::default();
    let mut sessions: HashMap<Uuid, (Uuid, Uuid, String)> = HashMap::new();
    let mut topics: HashMap<Uuid, BTreeMap<String, Vec<String>>> = HashMap::new();
    let mut after = Uuid::nil();
    loop {
        let page: Vec<SessionRow> = db
            .fetch_all(
                "SELECT id, agent_id, workspace_id, variant, created_at FROM chat_sessions
                 WHERE id > $1 ORDER BY id LIMIT 5000",
                args![after],
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for s in page {
            let variant = s.variant.unwrap_or_default();
            rollup.session_started(Day::of(s.agent_id, s.workspace_id, s.created_at), &variant);
            sessions.insert(s.id, (s.agent_id, s.workspace_id, variant));
        }
    }
    let mut read = 0u64;
    let mut after = Uuid::nil();
    loop {
        let page: Vec<MessageRow> = db
            .fetch_all(
                "SELECT id, session_id, role, content, status, rating, latency_ms, prompt_tokens,
                    completion_tokens, sentiment, intent, model, created_at
                 FROM chat_messages WHERE id > $1 ORDER BY id LIMIT 5000",
                args![after],
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for m in page {
            read += 1;
            let Some((project_id, workspace_id, variant)) = sessions.get(&m.session_id) else {
                continue;
            };
            let day = Day::of(*project_id, *workspace_id, m.created_at);
            match m.role.as_str() {
                "user" => {
                    if !topics.contains_key(workspace_id) {
                        topics.insert(*workspace_id, workspace_topics(db, *workspace_id).await?);
                    }
                    let reading = Reading::of(&m.content);
                    rollup.user_message(
                        day,
                        variant,
                        &m.content,
                        m.sentiment.unwrap_or(reading.sentiment),
                        m.intent.as_deref().unwrap_or(reading.intent),
                        &topics[workspace_id],
                    );
                }
                "agent" => rollup.agent_reply(
                    day,
                    variant,
                    &m.status,
                    m.rating,
                    m.latency_ms.unwrap_or(0),
                    m.prompt_tokens,
                    m.completion_tokens,
                    m.model.as_deref().unwrap_or("none"),
                ),
                _ => {}
            }
        }
    }
    let mut tx = db.begin().await?;
    for table in ["agent_metrics", "message_labels", "usage_daily"] {
        tx.execute(&format!("DELETE FROM {table}"), Vec::new())
            .await?;
    }
    rollup.apply(&mut tx).await?;
    tx.commit().await?;
    Ok(read)
}
