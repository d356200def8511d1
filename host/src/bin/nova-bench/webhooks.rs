//! `nova-bench webhooks`: events recorded in the event log (one per transaction, as changes
//! record them) delivered to local receivers, one webhook endpoint each. First one event at a
//! time (event → each receiver latency, unloaded), then a burst of `--events` events:
//! deliveries per second and event → receiver latency under that load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::HeaderMap;
use serde_json::json;
use uuid::Uuid;

use crate::http::{InProcessHost, percentile};
use nova_host::infra::eventlog::{self, Cause, NewEvent, Subject};

#[derive(clap::Args)]
pub struct Args {
    /// Events of the burst.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Endpoints (each with its own local receiver), all subscribed to every event.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Events sent one at a time first, for the unloaded latency.
    #[arg(long, default_value_t = 200)]
    single: usize,
}

/// When each event was committed, and when each receiver got it.
#[derive(Default)]
struct Clock {
    committed: HashMap<Uuid, Instant>,
    received: Vec<Duration>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        mut conn,
        token,
        ..
    } = InProcessHost::start(|c| {
        c.allow_private_urls = nova_host::config::AllowPrivate {
            everything: true,
            ..Default::default()
        };
    })
    .await?;
    let me = conn
        .request("GET", "/api/user/me", Some(&token), None)
        .await?;
    let workspace_id: Uuid = me["personal_workspace_id"]
        .as_str()
        .context("no workspace")?
        .parse()?;
    let clock = Arc::new(Mutex::new(Clock::default()));
    for _ in 0..args.endpoints {
        let url = receiver(clock.clone()).await?;
        conn.request(
            "POST",
            "/api/webhooks",
            Some(&token),
            Some(json!({"url": url, "events": ["*"]})),
        )
        .await?
        .get("secret")
        .context("the endpoint was not created")?;
    }

    // One event at a time.
    let mut unloaded = Vec::with_capacity(args.single * args.endpoints);
    for i in 0..args.single {
        record(&state, workspace_id, i, &clock).await?;
        let want = (i + 1) * args.endpoints;
        wait_for(&clock, want, Duration::from_secs(30)).await?;
    }
    unloaded.extend(std::mem::take(&mut clock.lock().expect("clock").received));
    unloaded.sort();

    // The burst.
    let started = Instant::now();
    for i in 0..args.events {
        record(&state, workspace_id, args.single + i, &clock).await?;
    }
    let recorded = started.elapsed();
    let total = args.events * args.endpoints;
    wait_for(&clock, total, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    let mut loaded = std::mem::take(&mut clock.lock().expect("clock").received);
    loaded.sort();
    println!(
        "webhooks ({}, {} endpoints): one event at a time, event → receiver p50 {:.2} ms, p99 {:.2} ms; \
         burst of {} events ({} deliveries, recorded in {:.1} s): {:.0} deliveries/s, event → receiver p50 {:.0} ms, p99 {:.0} ms",
        state.db.backend_name(),
        args.endpoints,
        percentile(&unloaded, 0.50),
        percentile(&unloaded, 0.99),
        args.events,
        total,
        recorded.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        percentile(&loaded, 0.50),
        percentile(&loaded, 0.99),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Records one `project.updated` event in a transaction of its own, as a change would.
async fn record(
    state: &nova_host::AppState,
    workspace_id: Uuid,
    i: usize,
    clock: &Mutex<Clock>,
) -> anyhow::Result<()> {
    let project = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    let id = eventlog::record(
        &mut tx,
        &Cause::system(),
        NewEvent {
            workspace_id,
            project_id: None,
            kind: "project.updated",
            subject: Subject::new("project", project, Some(format!("Bench {i}"))),
            data: json!({"project_id": project, "name": format!("Bench {i}"), "changed": ["name"]}),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    clock
        .lock()
        .expect("clock")
        .committed
        .insert(id, Instant::now());
    state
        .events
        .commit(tx)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

async fn wait_for(clock: &Mutex<Clock>, n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while clock.lock().expect("clock").received.len() < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} deliveries arrived",
            clock.lock().expect("clock").received.len()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// A local receiver answering 200 that notes when each event reached it.
async fn receiver(clock: Arc<Mutex<Clock>>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let clock = clock.clone();
        async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uuid>().ok());
            let mut clock = clock.lock().expect("clock");
            if let Some(at) = id.and_then(|id| clock.committed.get(&id).copied()) {
                clock.received.push(at.elapsed());
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hooks"))
}
