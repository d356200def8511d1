//! `nova-bench workflows`: the engine's overhead per node (a chain of trivial `transform`
//! nodes, no model: the time between one node's outcome and the next's, as the notification
//! events report them), and the throughput of many runs of a 5-node workflow queued at once
//! (runs per second until the last one succeeded).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::http::{InProcessHost, percentile};
use nova_host::workflows::crud::{WORKFLOW_COLUMNS, Workflow};
use nova_host::workflows::engine::{self, Start};

#[derive(clap::Args)]
pub struct Args {
    /// Trivial nodes in the chain timed for the per-node overhead.
    #[arg(long, default_value_t = 50)]
    chain: usize,
    /// Runs of the chain timed one after another.
    #[arg(long, default_value_t = 20)]
    chain_runs: usize,
    /// Runs of the 5-node workflow queued at once.
    #[arg(long, default_value_t = 1_000)]
    runs: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        mut conn,
        token,
        ..
    } = InProcessHost::start(|c| c.workflow_max_active_runs = 1_000_000).await?;
    let me = conn
        .request("GET", "/api/user/me", Some(&token), None)
        .await?;
    let user_id: Uuid = me["id"].as_str().context("no user id")?.parse()?;

    // 1. Per-node overhead along a chain.
    let mut nodes = vec![json!({"id": "start", "type": "trigger", "config": {"kind": "manual"}})];
    let mut edges = Vec::new();
    let mut previous = "start".to_owned();
    for i in 0..args.chain {
        let id = format!("t{i}");
        nodes.push(json!({"id": id, "type": "transform", "config": {"template": "{{ input.n }}"}}));
        edges.push(json!({"from": previous, "to": id}));
        previous = id;
    }
    nodes.push(json!({"id": "done", "type": "end", "config": {"output": "ok"}}));
    edges.push(json!({"from": previous, "to": "done"}));
    let chain = create(&mut conn, &token, json!({"nodes": nodes, "edges": edges})).await?;
    let mut events = state.bus.subscribe(&format!("user:{user_id}"));
    let mut gaps = Vec::new();
    let mut per_run = Vec::new();
    for n in 0..args.chain_runs {
        let started = Instant::now();
        let run = conn
            .request(
                "POST",
                &format!("/api/workflows/{chain}/run"),
                Some(&token),
                Some(json!({"input": {"n": n}})),
            )
            .await?["id"]
            .as_str()
            .context("no run")?
            .to_owned();
        let mut last: Option<Instant> = None;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .context("the chain did not finish within 30 s")??;
            let event: Value = serde_json::from_str(&event)?;
            if event["run_id"] != run.as_str() {
                continue;
            }
            if event["type"] == "workflow.node" && event["status"] == "succeeded" {
                let at = Instant::now();
                if let Some(before) = last {
                    gaps.push(at - before);
                }
                last = Some(at);
            }
            if event["type"] == "workflow.run" && event["status"] == "succeeded" {
                per_run.push(started.elapsed());
                break;
            }
        }
    }
    gaps.sort();
    per_run.sort();
    println!(
        "engine overhead per trivial node ({} nodes × {} runs, {}): p50 {:.3} ms, p99 {:.3} ms; a whole {}-node run p50 {:.1} ms",
        args.chain + 2,
        args.chain_runs,
        state.db.backend_name(),
        percentile(&gaps, 0.50),
        percentile(&gaps, 0.99),
        args.chain + 2,
        percentile(&per_run, 0.50),
    );

    // 2. Many 5-node runs queued at once.
    let five = json!({"nodes": [
        {"id": "start", "type": "trigger", "config": {"kind": "manual"}},
        {"id": "clean", "type": "transform", "config": {"template": "{{ input.message }}"}},
        {"id": "pick", "type": "classify", "config": {"by": "keywords", "input": "{{ nodes.clean.output.text }}",
            "branches": {"billing": ["invoice", "refund"], "other": []}}},
        {"id": "reply", "type": "transform", "config": {"template": "{{ nodes.pick.output.branch }}: {{ input.n }}"}},
        {"id": "done", "type": "end", "config": {"output": "{{ nodes.reply.output.text }}"}}],
     "edges": [{"from": "start", "to": "clean"}, {"from": "clean", "to": "pick"},
               {"from": "pick", "to": "reply"}, {"from": "reply", "to": "done"}]});
    let id: Uuid = create(&mut conn, &token, five).await?.parse()?;
    let workflow: Workflow = state
        .db
        .fetch_one(
            &format!("SELECT {WORKFLOW_COLUMNS} FROM workflows w WHERE w.id = $1"),
            vec![id.into()],
        )
        .await?;
    let queued = Instant::now();
    let mut tx = state.db.begin().await?;
    for n in 0..args.runs {
        let message = if n % 2 == 0 {
            "a refund please"
        } else {
            "hello"
        };
        engine::create(
            &mut tx,
            &state.config,
            Start {
                workflow: &workflow,
                trigger: "manual",
                input: json!({"message": message, "n": n}),
                dry_run: false,
                started_by: Some(user_id),
                event_id: None,
                depth: 0,
            },
        )
        .await?;
    }
    tx.commit().await?;
    let queueing = queued.elapsed();
    engine::wake(&state).await;
    let started = Instant::now();
    loop {
        let done: i64 = state
            .db
            .scalar(
                "SELECT COUNT(*) FROM workflow_runs WHERE workflow_id = $1 AND status IN ('succeeded', 'failed')",
                vec![id.into()],
            )
            .await?;
        if done as usize >= args.runs {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the runs did not finish within 10 minutes ({done} of {})",
            args.runs
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let failed: i64 = state
        .db
        .scalar(
            "SELECT COUNT(*) FROM workflow_runs WHERE workflow_id = $1 AND status = 'failed'",
            vec![id.into()],
        )
        .await?;
    println!(
        "{} concurrent runs of a 5-node workflow ({}, {} executor slots): {:.0} runs/s ({:.0} nodes/s), all done in {:.2} s, {failed} failed; queueing them took {:.2} s",
        args.runs,
        state.db.backend_name(),
        state.config.workflow_workers,
        args.runs as f64 / elapsed.as_secs_f64(),
        (args.runs * 5) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        queueing.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

async fn create(
    conn: &mut crate::http::Conn,
    token: &str,
    definition: Value,
) -> anyhow::Result<String> {
    let r = conn
        .request(
            "POST",
            "/api/workflows",
            Some(token),
            Some(json!({"name": "Bench", "definition": definition})),
        )
        .await?;
    Ok(r["id"].as_str().context("no workflow")?.to_owned())
}
