//! `nova-bench automations`: the time from `POST …/messages` to a rule's effect (the session's
//! priority changed by the update-priority plugin, seen on the session's bus channel), and
//! the cost of finding and evaluating a workspace's rules for one message when it holds 1 and
//! when it holds 1,000 keyword rules (found through the keyword index), next to loading and
//! evaluating all 1,000 one by one.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use crate::http::{Conn, InProcessHost, percentile};
use nova_host::automations::engine::{RuleEngine, candidates};
use nova_host::infra::eventlog::{Consumer, Event};

#[derive(clap::Args)]
pub struct Args {
    /// Messages whose rule effect is timed.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Keyword rules in the workspace for the evaluation figures.
    #[arg(long, default_value_t = 1_000)]
    rules: usize,
    /// Evaluations timed at each rule count.
    #[arg(long, default_value_t = 2_000)]
    evaluations: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        mut conn,
        token,
        ..
    } = InProcessHost::start(|c| c.chat_rate_limit_per_minute = 1_000_000).await?;
    let me = conn
        .request("GET", "/api/user/me", Some(&token), None)
        .await?;
    let workspace_id: Uuid = me["personal_workspace_id"]
        .as_str()
        .context("no workspace")?
        .parse()?;
    let agent = conn
        .request(
            "POST",
            "/api/projects",
            Some(&token),
            Some(json!({"name": "Bench agent"})),
        )
        .await?["id"]
        .as_str()
        .context("no agent")?
        .to_owned();
    rule(
        &mut conn,
        &token,
        "refund",
        json!({"type": "update_priority", "parameters": {"priority": "urgent"}}),
    )
    .await?;

    let mut latencies = Vec::with_capacity(args.messages);
    for _ in 0..args.messages {
        let session = conn
            .request(
                "POST",
                "/api/chat/sessions",
                Some(&token),
                Some(json!({"agent_id": agent})),
            )
            .await?["id"]
            .as_str()
            .context("no session")?
            .to_owned();
        let mut channel = state.bus.subscribe(&format!("chat:{session}"));
        let started = Instant::now();
        conn.request(
            "POST",
            &format!("/api/chat/sessions/{session}/messages"),
            Some(&token),
            Some(json!({"content": "I want a refund for my order"})),
        )
        .await?;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let raw = channel.recv().await?;
                let event: Value = serde_json::from_str(&raw)?;
                if event["type"] == "session" && event["session"]["priority"] == "urgent" {
                    return anyhow::Ok(());
                }
            }
        })
        .await
        .context("the rule's effect did not arrive within 10 s")??;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "POST …/messages → rule effect (update-priority via the event log, {} messages, {}): p50 {:.2} ms, p99 {:.2} ms",
        args.messages,
        state.db.backend_name(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );

    // A message no rule matches, evaluated by the rules' consumer itself.
    let event = Event {
        id: Uuid::now_v7(),
        kind: "chat.message.created".into(),
        workspace_id,
        project_id: agent.parse().ok(),
        actor_type: "user".into(),
        actor_id: None,
        subject_type: "chat_message".into(),
        subject_id: Uuid::now_v7().to_string(),
        subject_name: None,
        data: SqlJson(json!({"role": "user", "content":
            "Hello, my parcel has not arrived yet and the tracking page shows no update since Monday; could you check where it is?"})),
        depth: 0,
        occurred_at: chrono::Utc::now(),
        tx_id: 0,
        seq: 0,
    };
    let engine = RuleEngine(state.clone());
    let with_one = time_handling(&engine, &event, args.evaluations).await?;
    for i in 1..args.rules {
        rule(
            &mut conn,
            &token,
            &format!("keyword{i}"),
            json!({"type": "send_notification", "parameters": {}}),
        )
        .await?;
    }
    // Fresh statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` would leave them: with
    // none, the planner walks all the workspace's keyword rows instead of looking the words up.
    state.db.execute("ANALYZE", vec![]).await?;
    let with_many = time_handling(&engine, &event, args.evaluations).await?;
    let scan = time_scan(&state.db, &event, args.evaluations).await?;
    println!(
        "one message through the rules' consumer (no match): 1 rule p50 {:.3} ms, p99 {:.3} ms; {} rules p50 {:.3} ms, p99 {:.3} ms (ratio {:.2}); loading and evaluating all {} one by one p50 {:.3} ms",
        with_one.0,
        with_one.1,
        args.rules,
        with_many.0,
        with_many.1,
        with_many.0 / with_one.0,
        args.rules,
        scan
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn rule(conn: &mut Conn, token: &str, keyword: &str, action: Value) -> anyhow::Result<()> {
    conn.request(
        "POST",
        "/api/automations/rules",
        Some(token),
        Some(json!({"name": format!("On {keyword}"), "enabled": true,
            "trigger": {"type": "keyword_detected", "conditions": {"keywords": [keyword], "role": "user"}},
            "actions": [action]})),
    )
    .await?;
    Ok(())
}

/// p50 and p99 (ms) of the consumer handling `event`.
async fn time_handling(engine: &RuleEngine, event: &Event, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        engine.handle(event).await.map_err(|e| anyhow::anyhow!(e))?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    // The keyword index offers no rule for a message none of whose words is a keyword.
    anyhow::ensure!(candidates(&engine.0.db, event).await?.is_empty());
    Ok((percentile(&latencies, 0.50), percentile(&latencies, 0.99)))
}

/// p50 (ms) of reading every rule of the workspace and checking each trigger: what the index
/// saves.
async fn time_scan(db: &nova_host::db::Db, event: &Event, n: usize) -> anyhow::Result<f64> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n.min(200) {
        let started = Instant::now();
        let words =
            nova_host::automations::words(event.data.0["content"].as_str().unwrap_or_default());
        let rows: Vec<(String, SqlJson<Value>)> = db
            .fetch_all(
                "SELECT trigger_type, conditions FROM automation_rules WHERE workspace_id = $1",
                nova_host::args![event.workspace_id],
            )
            .await?;
        let fired = rows
            .iter()
            .filter(|(kind, conditions)| {
                kind == "keyword_detected"
                    && conditions.0["keywords"].as_array().is_some_and(|k| {
                        k.iter()
                            .any(|k| k.as_str().is_some_and(|k| words.iter().any(|w| w == k)))
                    })
            })
            .count();
        anyhow::ensure!(fired == 0, "no rule matches the message");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    Ok(percentile(&latencies, 0.50))
}
