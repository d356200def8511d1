//! `nova-bench dashboard`: seeds 20 agents with N messages over 90 days (the `seed-demo`
//! generator, then `recompute-metrics`), and measures `GET /api/dashboard/analytics`,
//! uncached (the cache is retired before each request) and cached, at each size.

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use crate::http::{InProcessHost, percentile};

#[derive(clap::Args)]
pub struct Args {
    /// Message counts to measure, in order (each adds to the previous data).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    messages: Vec<i64>,
    /// Requests per measurement.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    #[arg(long, default_value_t = 20)]
    agents: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let InProcessHost {
        dir,
        state,
        mut conn,
        token,
        ..
    } = InProcessHost::start(|_| {}).await?;
    let db = state.db.clone();
    let cache = state.cache.clone();
    let backend = db.backend_name();
    let me = conn
        .request("GET", "/api/user/me", Some(&token), None)
        .await?;
    let user: Uuid = me["id"].as_str().context("no id")?.parse()?;
    let workspace: Uuid = me["personal_workspace_id"]
        .as_str()
        .context("no workspace")?
        .parse()?;
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let p = conn
            .request(
                "POST",
                "/api/projects",
                Some(&token),
                Some(json!({"name": format!("Agent {i:02}")})),
            )
            .await?;
        agents.push(p["id"].as_str().context("no agent id")?.parse::<Uuid>()?);
    }

    let mut seeded = 0i64;
    let path = "/api/dashboard/analytics?time_range=30d";
    println!(
        "{:>10} {:>12} {:>12} {:>12} {:>12}",
        "messages", "uncached p50", "uncached p99", "cached p50", "cached p99"
    );
    let mut p99s = Vec::new();
    for target in args.messages {
        let started = Instant::now();
        seeded += nova_host::analytics::demo::generate(
            &db,
            workspace,
            user,
            &agents,
            90,
            target - seeded,
            target as u64,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        nova_host::analytics::rollup::recompute(&db)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        db.execute("ANALYZE", Vec::new()).await?;
        eprintln!(
            "seeded {seeded} messages on {backend} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for _ in 0..20 {
            cache.bump().await;
            conn.request("GET", path, Some(&token), None).await?;
        }
        let mut uncached = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            cache.bump().await;
            let t = Instant::now();
            conn.request("GET", path, Some(&token), None).await?;
            uncached.push(t.elapsed());
        }
        let mut cached = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let t = Instant::now();
            conn.request("GET", path, Some(&token), None).await?;
            cached.push(t.elapsed());
        }
        uncached.sort();
        cached.sort();
        let p99 = percentile(&uncached, 0.99);
        p99s.push(p99);
        println!(
            "{seeded:>10} {:>9.2} ms {p99:>9.2} ms {:>9.2} ms {:>9.2} ms",
            percentile(&uncached, 0.50),
            percentile(&cached, 0.50),
            percentile(&cached, 0.99)
        );
    }
    if let (Some(first), Some(last)) = (p99s.first(), p99s.last()) {
        println!("uncached p99 ratio largest/smallest: {:.2}", last / first);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
