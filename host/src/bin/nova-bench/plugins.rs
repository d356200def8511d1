//! `nova-bench plugins`: the cost of one event dispatched to a component plugin (a fresh
//! instance, the call, the drop), measured on the runtime directly, and the host's throughput
//! for `POST /api/knowledge/auto-tag` with the keyword-tagger plugin in the path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::http::{InProcessHost, percentile};
use nova_host::infra::sandbox::{Call, Capability, Event, Grants, Kind, PackageFormat};

#[derive(clap::Args)]
pub struct Args {
    /// Events to dispatch.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Auto-tag requests to send.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        mut conn,
        token,
        ..
    } = InProcessHost::start(|_| {}).await?;
    let (digest, wasm): (String, Vec<u8>) = state
        .db
        .fetch_one(
            "SELECT sha256, wasm FROM plugins WHERE id = 'update-priority'",
            Vec::new(),
        )
        .await?;
    state
        .plugins
        .prepare(
            &digest,
            Kind::AutomationAction,
            PackageFormat::Component,
            &wasm,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let grants = Grants {
        plugin_id: "update-priority".into(),
        workspace_id: None,
        capabilities: vec![Capability::Events],
        http_hosts: Vec::new(),
        config: HashMap::new(),
        dry_run: false,
    };
    let event = || Call::Run {
        params: json!({"priority": "urgent"}).to_string(),
        event: Event {
            kind: "chat.message".into(),
            payload: json!({"session_id": "01a21a8d-08c3-759d-a323-f4de45fb1ab5"}).to_string(),
        },
    };
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.events);
    for i in 0..args.events + 200 {
        let t = Instant::now();
        let outcome = state
            .plugins
            .call(&digest, grants.clone(), event())
            .await
            .result
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= 200 {
            latencies.push(t.elapsed());
        }
        anyhow::ensure!(outcome.events.len() == 1, "the plugin emitted no event");
    }
    latencies.sort();
    println!(
        "event → component plugin (instantiate + call + drop, {} events): median {:.1} µs, p99 {:.1} µs",
        args.events,
        percentile(&latencies, 0.50) * 1000.0,
        percentile(&latencies, 0.99) * 1000.0
    );

    let r = conn
        .request(
            "POST",
            "/api/integrations/keyword-tagger/install",
            Some(&token),
            Some(json!({})),
        )
        .await?;
    r["installation"]
        .as_object()
        .context("the tagger did not install")?;
    let text = "Refund policy: customers may return damaged items within 30 days for a full refund \
        to the original payment method; shipping costs are refunded for defective products.";
    let mut latencies = Vec::with_capacity(args.requests);
    let started = Instant::now();
    for _ in 0..args.requests {
        let t = Instant::now();
        let r = conn
            .request(
                "POST",
                "/api/knowledge/auto-tag",
                Some(&token),
                Some(json!({"text": text})),
            )
            .await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(r["taggers"][0]["status"] == "ok", "auto-tag failed: {r}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "POST /api/knowledge/auto-tag on {} (plugin call + invocation log): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        state.db.backend_name(),
        args.requests as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
