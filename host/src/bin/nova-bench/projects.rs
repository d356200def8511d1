//! `nova-bench projects`: seeds projects through the API and measures `GET /api/projects`
//! next to a bare axum route served by the same process, so the ratio shows Nova's own cost.
//! With `--workspaces`, the multi-tenant mode: the caller sees `--visible` projects (their
//! workspace's and some shared with them) among projects spread over other workspaces, and the
//! same page is measured at 10,000 and at `--projects` total, through the API and through `Db`
//! alone. SQLite in a temp dir by default; set `DATABASE_URL=postgres://…` (an empty database)
//! to measure PostgreSQL.

use std::time::{Duration, Instant};

use anyhow::Context;
use nova_host::args;
use nova_host::db::{Arg, Db};
use nova_host::projects::crud::{ProjectListQuery, list_page};
use serde_json::json;
use tokio::net::TcpListener;
use uuid::Uuid;

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
    /// Multi-tenant mode: spread the projects over this many workspaces.
    #[arg(long)]
    workspaces: Option<usize>,
    /// Multi-tenant mode: how many projects the measured caller sees (a tenth of them shared
    /// with them from other workspaces).
    #[arg(long, default_value_t = 100)]
    visible: usize,
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
    if let Some(workspaces) = args.workspaces {
        let result = multi_tenant(&args, workspaces, &db, nova, &mut client, &token).await;
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }

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
    run_workers(requests, concurrency, |count| {
        let token = token.clone();
        async move {
            let mut conn = Conn::open(addr).await?;
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                conn.request("GET", path, token.as_deref(), None).await?;
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }
    })
    .await
}

/// Runs `requests` timed calls over `concurrency` workers (`worker(count)` makes `count` of
/// them and returns their latencies) and sums them up.
async fn run_workers<F>(
    requests: usize,
    concurrency: usize,
    worker: impl Fn(usize) -> F,
) -> anyhow::Result<Stats>
where
    F: std::future::Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            tokio::spawn(worker(
                requests / concurrency + usize::from(w < requests % concurrency),
            ))
        })
        .collect();
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

/// The multi-tenant figures: the caller's page at 10,000 and at `args.projects` total.
async fn multi_tenant(
    args: &Args,
    workspaces: usize,
    db: &Db,
    nova: std::net::SocketAddr,
    client: &mut Conn,
    token: &str,
) -> anyhow::Result<()> {
    let backend = db.backend_name();
    let me = client
        .request("GET", "/api/user/me", Some(token), None)
        .await?;
    let caller: Uuid = me["id"].as_str().context("no user id")?.parse()?;
    let tenant = seed_visible(client, token, args.visible).await?;
    let others = seed_workspaces(db, tenant, workspaces.saturating_sub(1).max(1)).await?;
    let mut rows = Vec::new();
    let mut total = args.visible;
    for target in [10_000, args.projects] {
        let started = Instant::now();
        seed_elsewhere(db, tenant, &others, target.saturating_sub(total)).await?;
        total = total.max(target);
        db.execute("ANALYZE", Vec::new()).await?;
        println!(
            "{total} projects in {} workspaces on {backend} (seeded in {:.1} s); the caller sees {}",
            others.len() + 2,
            started.elapsed().as_secs_f64(),
            args.visible
        );
        let api = measure(
            nova,
            "/api/projects",
            Some(token.to_owned()),
            args.requests,
            args.concurrency,
        )
        .await?;
        let direct = measure_db(db, caller, args.requests, args.concurrency).await?;
        rows.push((total, api, direct));
    }
    println!(
        "{:<10} {:>12} {:>10} {:>10} {:>12} {:>10} {:>10} {:>9}",
        "projects", "API req/s", "p50 ms", "p99 ms", "Db req/s", "p50 ms", "p99 ms", "API/Db"
    );
    for (total, api, direct) in &rows {
        println!(
            "{total:<10} {:>12.0} {:>10.3} {:>10.3} {:>12.0} {:>10.3} {:>10.3} {:>8.2}x",
            api.throughput,
            api.p50_ms,
            api.p99_ms,
            direct.throughput,
            direct.p50_ms,
            direct.p99_ms,
            api.p50_ms / direct.p50_ms
        );
    }
    if let [(small, a, _), (large, b, _)] = rows.as_slice() {
        println!(
            "API {large} vs {small} projects: p50 {:.2}x, p99 {:.2}x",
            b.p50_ms / a.p50_ms,
            b.p99_ms / a.p99_ms
        );
    }
    Ok(())
}

/// The caller's own projects (nine in ten of `visible`), and a tenth created by another user
/// who shares them with the caller; returns that user's id.
async fn seed_visible(client: &mut Conn, token: &str, visible: usize) -> anyhow::Result<Uuid> {
    let shared = visible / 10;
    for i in 0..visible - shared {
        client
            .request(
                "POST",
                "/api/projects",
                Some(token),
                Some(json!({"name": format!("Mine {i:03}"), "tags": ["faq"]})),
            )
            .await?;
    }
    let other = client
        .request(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"email": "tenant@example.com", "password": "benchmark password"})),
        )
        .await?;
    let other_token = other["token"].as_str().context("no token")?.to_owned();
    for i in 0..shared {
        let p = client
            .request(
                "POST",
                "/api/projects",
                Some(&other_token),
                Some(json!({"name": format!("Shared {i:03}")})),
            )
            .await?;
        let id = p["id"].as_str().context("no id")?;
        client
            .request(
                "POST",
                &format!("/api/projects/{id}/share"),
                Some(&other_token),
                Some(json!({"user_email": "bench@example.com", "permission": "view"})),
            )
            .await?;
    }
    Ok(other["user"]["id"].as_str().context("no id")?.parse()?)
}

/// Workspaces of `owner` the caller does not belong to.
async fn seed_workspaces(db: &Db, owner: Uuid, count: usize) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let at = nova_host::db::now();
    let mut tx = db.begin().await?;
    for chunk in ids.chunks(500) {
        let mut binds: Vec<Arg> = args![owner, at];
        let mut workspaces = Vec::new();
        let mut members = Vec::new();
        for id in chunk {
            binds.push((*id).into());
            let n = binds.len();
            workspaces.push(format!("(${n}, 'Tenant', $1, FALSE, $2)"));
            members.push(format!("(${n}, $1, 'owner', $2)"));
        }
        tx.execute(
            &format!(
                "INSERT INTO team_workspaces (id, name, owner_id, is_personal, created_at) VALUES {}",
                workspaces.join(", ")
            ),
            binds.clone(),
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES {}",
                members.join(", ")
            ),
            binds,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// `count` projects of `owner` spread round-robin over `workspaces`, with distinct update
/// times (newer than the caller's, so an instance-wide walk in update order would meet them
/// first).
async fn seed_elsewhere(
    db: &Db,
    owner: Uuid,
    workspaces: &[Uuid],
    count: usize,
) -> anyhow::Result<()> {
    let start = nova_host::db::now();
    let mut tx = db.begin().await?;
    let mut made = 0;
    while made < count {
        let batch = (count - made).min(500);
        let mut binds: Vec<Arg> = args![owner];
        let mut rows = Vec::with_capacity(batch);
        for i in made..made + batch {
            let at = start + chrono::Duration::milliseconds(i as i64);
            binds.push(Uuid::now_v7().into());
            binds.push(workspaces[i % workspaces.len()].into());
            binds.push(format!("Agent {i}").into());
            binds.push(at.into());
            let n = binds.len();
            rows.push(format!(
                "(${}, ${}, $1, ${}, '', '[]', 'active', '{{}}', '', '{{}}', 1, ${n}, ${n})",
                n - 3,
                n - 2,
                n - 1
            ));
        }
        tx.execute(
            &format!(
                "INSERT INTO projects (id, workspace_id, owner_id, name, description, tags, status,
                    settings, system_prompt, model_config, version, created_at, updated_at)
                 VALUES {}",
                rows.join(", ")
            ),
            binds,
        )
        .await?;
        made += batch;
    }
    tx.commit().await?;
    Ok(())
}

/// The same page as `GET /api/projects` gives, read through `Db` alone.
async fn measure_db(
    db: &Db,
    caller: Uuid,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Stats> {
    let query = ProjectListQuery::default();
    for _ in 0..50 {
        list_page(db, caller, &query).await?;
    }
    run_workers(requests, concurrency, |count| {
        let db = db.clone();
        async move {
            let query = ProjectListQuery::default();
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                list_page(&db, caller, &query).await?;
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }
    })
    .await
}
