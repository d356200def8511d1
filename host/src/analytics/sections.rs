//! The data of a composed report, as the exporters receive it: each asked-for section as
//! titled tables (columns and rows) with a chart, so an exporter renders any section without
//! knowing what it means. The daily performance table stays at the top level (`summary`,
//! `columns`, `rows`) for exporters written before reports were composed.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::insights;
use super::metrics::{self, DayTotals, Period, Scope};
use super::report::{Composition, Section};
use super::usage;
use crate::args;
use crate::db::{Arg, Db, now, placeholders};
use crate::error::AppResult;
use crate::state::AppState;

/// Rows of the per-agent tables: the busiest agents when a report covers more.
const MAX_AGENT_ROWS: usize = 200;

/// What the report is about, fixed when it runs.
pub struct ReportRun<'a> {
    pub owner: Uuid,
    pub workspace_id: Uuid,
    pub title: &'a str,
    /// How the days were asked for (`7d`, or `from..to`).
    pub time_range: &'a str,
    pub composition: &'a Composition,
}

/// The report's data: its agents, the legacy daily table and one entry per section.
pub async fn gather(state: &AppState, run: &ReportRun<'_>) -> AppResult<Value> {
    let composition = run.composition;
    let period = composition.days.period();
    let named = named_agents(&state.db, run.owner, &composition.agent_ids).await?;
    let ids: Vec<Uuid> = named.keys().copied().collect();
    let scope = if composition.agent_ids.is_empty() {
        Scope::Visible(run.owner)
    } else {
        // Only those the owner still sees: a scheduled report outlives shares.
        Scope::Agents(&ids)
    };
    let rows = metrics::days(&state.db, &scope, period).await?;
    let names = names_of(&state.db, &rows, named).await?;
    let mut sections = Vec::with_capacity(composition.sections.len());
    for section in &composition.sections {
        let body = match section {
            Section::Performance => performance(&rows, &names, period),
            Section::Conversations => {
                conversations(insights::insights(&state.db, &scope, period, &rows).await?)
            }
            Section::Knowledge => knowledge(
                crate::knowledge::analytics::measure(&state.db, run.owner, Some(run.workspace_id))
                    .await?,
            ),
            Section::Usage => usage_section(
                usage::measure(state, run.owner, &scope, period, &rows).await?,
                &names,
            ),
            Section::AbTests => {
                ab_tests(metrics::variants(&state.db, &scope, period).await?, &names)
            }
        };
        sections.push(json!({
            "id": section,
            "title": section.title(),
            "tables": body.tables,
            "chart": body.chart,
        }));
    }
    let (columns, daily) = daily_table(&rows, period);
    let total = metrics::total(&rows);
    Ok(json!({
        "title": run.title,
        "time_range": run.time_range,
        "from": period.from,
        "to": period.to,
        "generated_at": now().to_rfc3339(),
        "agents": names.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        "summary": {
            "conversations": total.conversations,
            "messages": total.messages(),
            "agent_replies": total.agent_replies,
            "success_rate": round(total.success_rate()),
            "error_rate": round(total.error_rate()),
            "avg_response_time_s": round(total.avg_response_time()),
            "user_satisfaction": total.satisfaction().map(round),
            "tokens": total.prompt_tokens + total.completion_tokens,
        },
        "columns": columns,
        "rows": daily,
        "sections": sections,
    }))
}

/// A section's tables and its chart.
struct Body {
    tables: Vec<Value>,
    chart: Value,
}

fn table(title: &str, columns: &[&str], rows: Vec<Value>) -> Value {
    json!({"title": title, "columns": columns, "rows": rows})
}

/// A bar chart of one series.
fn bars(title: &str, series: &str, labels: Vec<String>, values: Vec<f64>) -> Value {
    json!({"kind": "bar", "title": title, "labels": labels,
        "series": [{"name": series, "values": values}]})
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn percent(x: f64) -> f64 {
    (x * 1000.0).round() / 10.0
}

/// The agents a report names that its owner still sees (none named: none here, and the
/// scope is everything the owner sees).
async fn named_agents(db: &Db, owner: Uuid, ids: &[Uuid]) -> AppResult<BTreeMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut binds = args![owner, now()];
    let list = placeholders(&mut binds, ids.iter().map(|id| Arg::from(*id)));
    let rows: Vec<(Uuid, String)> = db
        .fetch_all(
            &format!(
                "SELECT id, name FROM projects WHERE id IN ({list}) AND id IN ({})",
                metrics::visible_agents()
            ),
            binds,
        )
        .await?;
    Ok(rows.into_iter().collect())
}

/// Names of the named agents and of every agent with figures in the rows.
async fn names_of(
    db: &Db,
    rows: &[DayTotals],
    mut names: BTreeMap<Uuid, String>,
) -> AppResult<BTreeMap<Uuid, String>> {
    let missing: Vec<Uuid> = metrics::by_agent(rows)
        .into_keys()
        .filter(|id| !names.contains_key(id))
        .collect();
    names.extend(metrics::agent_names(db, &missing).await?);
    Ok(names)
}

fn name<'a>(names: &'a BTreeMap<Uuid, String>, id: &Uuid) -> &'a str {
    names.get(id).map_or("(deleted agent)", String::as_str)
}

const PERFORMANCE_COLUMNS: [&str; 8] = [
    "Conversations",
    "Messages",
    "Replies",
    "Success rate (%)",
    "Error rate (%)",
    "Avg response (s)",
    "Satisfaction (of 5)",
    "Tokens",
];

fn performance_cells(t: &DayTotals) -> Vec<Value> {
    vec![
        json!(t.conversations),
        json!(t.messages()),
        json!(t.agent_replies),
        json!(percent(t.success_rate())),
        json!(percent(t.error_rate())),
        json!(round(t.avg_response_time())),
        json!(t.satisfaction().map(round)),
        json!(t.prompt_tokens + t.completion_tokens),
    ]
}

fn with_first(first: &str, rest: &[&'static str]) -> Vec<String> {
    std::iter::once(first.to_owned())
        .chain(rest.iter().map(|c| (*c).to_owned()))
        .collect()
}

fn performance(rows: &[DayTotals], names: &BTreeMap<Uuid, String>, period: Period) -> Body {
    let mut agents: Vec<(Uuid, DayTotals)> = metrics::by_agent(rows).into_iter().collect();
    // Agents named in the report but silent in the period are listed with zeros.
    for id in names.keys() {
        if !agents.iter().any(|(a, _)| a == id) {
            agents.push((*id, DayTotals::default()));
        }
    }
    // The order of "best agent" everywhere: success rate, then satisfaction, then volume.
    agents.sort_by(|(_, a), (_, b)| {
        let key = |t: &DayTotals| {
            (
                t.success_rate(),
                t.satisfaction().unwrap_or(f64::NEG_INFINITY),
                t.conversations,
            )
        };
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    agents.truncate(MAX_AGENT_ROWS);
    let per_agent: Vec<Value> = agents
        .iter()
        .map(|(id, t)| {
            let mut cells = vec![json!(name(names, id))];
            cells.extend(performance_cells(t));
            Value::Array(cells)
        })
        .collect();
    let by_date = metrics::by_date(rows);
    let empty = DayTotals::default();
    let dates = period.dates();
    let per_day: Vec<Value> = dates
        .iter()
        .map(|d| {
            let mut cells = vec![json!(d.to_string())];
            cells.extend(performance_cells(by_date.get(d).unwrap_or(&empty)));
            Value::Array(cells)
        })
        .collect();
    let agent_columns = with_first("Agent", &PERFORMANCE_COLUMNS);
    let day_columns = with_first("Date", &PERFORMANCE_COLUMNS);
    Body {
        tables: vec![
            json!({"title": "Per agent", "columns": agent_columns, "rows": per_agent}),
            json!({"title": "Per day", "columns": day_columns, "rows": per_day}),
        ],
        chart: bars(
            "Conversations per day",
            "Conversations",
            dates
                .iter()
                .map(|d| d.format("%m-%d").to_string())
                .collect(),
            dates
                .iter()
                .map(|d| by_date.get(d).map_or(0.0, |t| t.conversations as f64))
                .collect(),
        ),
    }
}

/// The legacy top-level daily table.
fn daily_table(rows: &[DayTotals], period: Period) -> (Value, Vec<Value>) {
    let by_date = metrics::by_date(rows);
    let table = period
        .dates()
        .into_iter()
        .map(|date| (date, by_date.get(&date).cloned().unwrap_or_default()))
        .map(|(date, t)| {
            json!([
                date.to_string(),
                t.conversations,
                t.messages(),
                t.agent_replies,
                round(t.success_rate()),
                round(t.error_rate()),
                round(t.avg_response_time()),
                t.satisfaction().map(round)
            ])
        })
        .collect();
    let columns = json!([
        "date",
        "conversations",
        "messages",
        "agent_replies",
        "success_rate",
        "error_rate",
        "avg_response_time_s",
        "user_satisfaction"
    ]);
    (columns, table)
}

fn conversations(found: insights::Insights) -> Body {
    let s = &found.sentiment_analysis;
    let sentiment = [
        ("positive", s.positive),
        ("neutral", s.neutral),
        ("negative", s.negative),
    ];
    Body {
        tables: vec![
            table(
                "Sentiment of user messages",
                &["Sentiment", "Share (%)"],
                sentiment
                    .iter()
                    .map(|(label, share)| json!([label, percent(*share)]))
                    .collect(),
            ),
            table(
                "Topics",
                &["Topic", "Messages", "Share (%)"],
                found
                    .topics
                    .iter()
                    .map(|t| json!([t.topic, t.count, percent(t.frequency)]))
                    .collect(),
            ),
            table(
                "Intents",
                &["Intent", "Messages", "Share (%)", "Example"],
                found
                    .intent_recognition
                    .iter()
                    .map(|i| json!([i.intent, i.count, percent(i.share), i.example]))
                    .collect(),
            ),
        ],
        chart: bars(
            "Sentiment of user messages (%)",
            "Share (%)",
            sentiment.iter().map(|(l, _)| (*l).to_owned()).collect(),
            sentiment.iter().map(|(_, v)| percent(*v)).collect(),
        ),
    }
}

fn knowledge(found: crate::knowledge::analytics::KnowledgeAnalytics) -> Body {
    Body {
        tables: vec![
            table(
                "Most referenced documents",
                &[
                    "Document",
                    "References",
                    "Last referenced",
                    "Effectiveness (%)",
                ],
                found
                    .most_referenced
                    .iter()
                    .map(|d| {
                        json!([
                            d.title,
                            d.reference_count,
                            d.last_referenced.map(|t| t.format("%Y-%m-%d").to_string()),
                            d.effectiveness_score.map(percent)
                        ])
                    })
                    .collect(),
            ),
            table(
                "Knowledge gaps",
                &[
                    "Question",
                    "Occurrences",
                    "Confidence (%)",
                    "Suggested documents",
                ],
                found
                    .knowledge_gaps
                    .iter()
                    .map(|g| {
                        json!([
                            g.topic,
                            g.occurrences,
                            percent(g.confidence),
                            g.suggested_documents.join("; ")
                        ])
                    })
                    .collect(),
            ),
        ],
        chart: bars(
            "References per document",
            "References",
            found
                .most_referenced
                .iter()
                .map(|d| d.title.clone())
                .collect(),
            found
                .most_referenced
                .iter()
                .map(|d| d.reference_count as f64)
                .collect(),
        ),
    }
}

fn usage_section(found: usage::Usage, names: &BTreeMap<Uuid, String>) -> Body {
    let t = &found.totals;
    let totals = vec![
        json!(["Agent replies", t.requests]),
        json!(["Prompt tokens", t.prompt_tokens]),
        json!(["Completion tokens", t.completion_tokens]),
        json!(["Estimated cost (USD)", t.estimated_cost]),
        json!(["Reply error rate (%)", percent(t.error_rate)]),
        json!(["Reply time p50 (s)", t.response_time_p50.map(round)]),
        json!(["Reply time p95 (s)", t.response_time_p95.map(round)]),
        json!(["API requests", found.api.requests]),
        json!(["API errors", found.api.errors]),
        json!(["Webhook attempts", found.webhooks.attempts]),
        json!(["Webhook failed attempts", found.webhooks.failed_attempts]),
        json!(["Webhook deliveries succeeded", found.webhooks.succeeded]),
        json!(["Webhook deliveries failed", found.webhooks.failed]),
    ];
    let per_agent = found
        .by_project
        .iter()
        .take(MAX_AGENT_ROWS)
        .map(|p| {
            let label = names.get(&p.project_id).unwrap_or(&p.name);
            json!([
                label,
                p.figures.requests,
                p.figures.prompt_tokens,
                p.figures.completion_tokens,
                p.figures.estimated_cost
            ])
        })
        .collect();
    let per_day = found
        .daily
        .iter()
        .map(|d| {
            json!([
                d.date.to_string(),
                d.figures.requests,
                d.figures.prompt_tokens + d.figures.completion_tokens,
                d.figures.estimated_cost
            ])
        })
        .collect();
    Body {
        tables: vec![
            table("Totals", &["Figure", "Value"], totals),
            table(
                "Per agent",
                &[
                    "Agent",
                    "Replies",
                    "Prompt tokens",
                    "Completion tokens",
                    "Cost (USD)",
                ],
                per_agent,
            ),
            table(
                "Per day",
                &["Date", "Replies", "Tokens", "Cost (USD)"],
                per_day,
            ),
        ],
        chart: bars(
            "Tokens per day",
            "Tokens",
            found
                .daily
                .iter()
                .map(|d| d.date.format("%m-%d").to_string())
                .collect(),
            found
                .daily
                .iter()
                .map(|d| (d.figures.prompt_tokens + d.figures.completion_tokens) as f64)
                .collect(),
        ),
    }
}

/// Every agent of the report that ran variants in the period, tested against its control.
fn ab_tests(rows: Vec<metrics::VariantTotals>, names: &BTreeMap<Uuid, String>) -> Body {
    let mut tables = Vec::new();
    let (mut labels, mut values) = (Vec::new(), Vec::new());
    for agent_rows in rows.chunk_by(|a, b| a.agent_id == b.agent_id) {
        if agent_rows.len() < 2 {
            continue;
        }
        let agent = name(names, &agent_rows[0].agent_id);
        let compared = insights::compare(agent_rows);
        let p_value = |t: &Option<super::stats::TestResult>| t.as_ref().map(|t| round(t.p_value));
        tables.push(table(
            agent,
            &[
                "Variant",
                "Sessions",
                "Replies",
                "Success rate (%)",
                "Avg response (s)",
                "Satisfaction (of 5)",
                "p (success rate)",
                "p (response time)",
            ],
            compared
                .iter()
                .map(|v| {
                    json!([
                        if v.variant.is_empty() {
                            "(none)"
                        } else {
                            v.variant.as_str()
                        },
                        v.sessions,
                        v.sample_size,
                        percent(v.success_rate),
                        round(v.avg_response_time),
                        v.user_satisfaction.map(round),
                        p_value(&v.success_rate_test),
                        p_value(&v.response_time_test)
                    ])
                })
                .collect(),
        ));
        for v in &compared {
            let variant = if v.variant.is_empty() {
                "(none)"
            } else {
                &v.variant
            };
            labels.push(format!("{agent} / {variant}"));
            values.push(percent(v.success_rate));
        }
    }
    Body {
        tables,
        chart: bars(
            "Success rate by variant (%)",
            "Success rate (%)",
            labels,
            values,
        ),
    }
}
