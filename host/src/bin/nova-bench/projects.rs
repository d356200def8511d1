//! `nova-bench projects`: seeds projects through the API and measures `GET /api/projects`
//! next to a bare axum route served by the same process, so the ratio shows Nova's own cost.
//! SQLite in a temp dir by default; set `DATABASE_URL=postgres://…` (an empty database) to
//! measure PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::net::TcpListener;

use crate::http::{Conn, InProcessHost, percentile};

#[derive(clap::Args)]
pub struct Args {
    /// Projects to seed.
    #[arg(long, default_value_t = 10_000)]
    projects: usize,
    /// Requests per measured route.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        addr: nova,
        conn: mut client,
        token,
    } = InProcessHost::start(|c| c.bulk_rate_limit_per_minute = 100_000).await?;
    let backend = state.db.backend_name();
    let db = state.db.clone();

    let bare_listener = TcpListener::bind("127.0.0.1:0").await?;
    let bare = bare_listener.local_addr()?;
    let bare_app = axum::Router::new().route(
        "/bare",
        axum::routing::get(|| async { axum::Json(json!({"ok": true})) }),
    );
    tokio::spawn(async move { axum::serve(bare_listener, bare_app).await });

    let seeded = Instant::now();
    seed(&mut client, &token, args.projects).await?;
    println!(
        "seeded {} projects on {backend} in {:.1} s",
        args.projects,
        seeded.elapsed().as_secs_f64()
    );

    // A bulk load outpaces the planner's statistics; autovacuum (PostgreSQL) or
    // `PRAGMA optimize` (SQLite) would refresh them shortly, the benchmark does it now.
    db.execute("ANALYZE", Vec::new()).await?;

    let page = client
        .request("GET", "/api/projects", Some(&token), None)
        .await?;
    let per_page = page["projects"].as_array().map_or(0, Vec::len);
    println!("GET /api/projects returns {per_page} projects per page");

    let nova_stats = measure(
        nova,
        "/api/projects",
        Some(token.clone()),
        args.requests,
        args.concurrency,
    )
    .await?;
    let bare_stats = measure(bare, "/bare", None, args.requests, args.concurrency).await?;
    println!(
        "{:<22} {:>10} {:>10} {:>10}",
        "route", "req/s", "p50 ms", "p99 ms"
    );
    for (name, s) in [
        ("GET /api/projects", &nova_stats),
        ("bare axum", &bare_stats),
    ] {
        println!(
            "{name:<22} {:>10.0} {:>10.3} {:>10.3}",
            s.throughput, s.p50_ms, s.p99_ms
        );
    }
    println!(
        "ratio nova/bare: throughput {:.3}, p50 {:.1}x, p99 {:.1}x",
        nova_stats.throughput / bare_stats.throughput,
        nova_stats.p50_ms / bare_stats.p50_ms,
        nova_stats.p99_ms / bare_stats.p99_ms
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Creates 20 varied projects, then doubles them with bulk duplication until `total`.
async fn seed(client: &mut Conn, token: &str, total: usize) -> anyhow::Result<()> {
    const TAGS: [&str; 8] = [
        "customer-support",
        "sales",
        "hr",
        "internal",
        "faq",
        "returns",
        "onboarding",
        "it",
    ];
    const STATUSES: [&str; 4] = ["active", "paused", "training", "error"];
    let mut ids: Vec<String> = Vec::new();
    for i in 0..total.min(20) {
        let p = client
            .request(
                "POST",
                "/api/projects",
                Some(token),
                Some(json!({
                    "name": format!("Agent {i:02}"),
                    "description": format!("Benchmark agent number {i}"),
                    "tags": [TAGS[i % TAGS.len()], TAGS[(i + 3) % TAGS.len()]],
                    "status": STATUSES[i % STATUSES.len()],
                    "settings": {"temperature": 0.3, "fallback_message": "Sorry"},
                })),
            )
            .await?;
        ids.push(p["id"].as_str().context("no id")?.to_owned());
    }
    while ids.len() < total {
        let take = (total - ids.len()).min(500).min(ids.len());
        let batch: Vec<&String> = ids.iter().take(take).collect();
        let r = client
            .request(
                "POST",
                "/api/projects/bulk",
                Some(token),
                Some(json!({"action": "duplicate", "project_ids": batch})),
            )
            .await?;
        let results = r["results"]
            .as_array()
            .context("bulk returned no results")?;
        for item in results {
            ids.push(item["new_id"].as_str().context("no new_id")?.to_owned());
        }
    }
    Ok(())
}

struct Stats {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn measure(
    addr: std::net::SocketAddr,
    path: &'static str,
    token: Option<String>,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Stats> {
    // Warm up connections, caches and prepared statements.
    let mut warm = Conn::open(addr).await?;
    for _ in 0..50 {
        warm.request("GET", path, token.as_deref(), None).await?;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let token = token.clone();
        let count = requests / concurrency + usize::from(worker < requests % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                conn.request("GET", path, token.as_deref(), None).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all: Vec<Duration> = Vec::with_capacity(requests);
    for t in tasks {
        all.extend(t.await??);
    }
    let wall = started.elapsed();
    all.sort();
    Ok(Stats {
        throughput: all.len() as f64 / wall.as_secs_f64(),
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    })
}
