//! `nova-bench`: Nova's benchmarks, run against release builds.
//!
//! ```sh
//! cargo run --release -p nova-host --bin nova-bench -- projects --projects 10000
//! cargo run --release -p nova-host --bin nova-bench -- sockets --clients 5000
//! cargo run --release -p nova-host --bin nova-bench -- dashboard --messages 10000,1000000
//! cargo run --release -p nova-host --bin nova-bench -- search --chunks 100000
//! cargo run --release -p nova-host --bin nova-bench -- plugins --events 10000
//! cargo run --release -p nova-host --bin nova-bench -- automations --rules 1000
//! cargo run --release -p nova-host --bin nova-bench -- webhooks --events 10000 --endpoints 10
//! cargo run --release -p nova-host --bin nova-bench -- workflows --runs 1000
//! cargo run --release -p nova-host --bin nova-bench -- collaboration --clients 50
//! ```

mod automations;
mod collaboration;
mod dashboard;
mod http;
mod plugins;
mod projects;
mod search;
mod sockets;
mod webhooks;
mod workflows;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Nova's benchmarks")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// GET /api/projects over many projects, next to a bare axum route.
    Projects(projects::Args),
    /// Many WebSocket clients on one host: its memory and the time from a POST to delivery.
    Sockets(sockets::Args),
    /// GET /api/dashboard/analytics at growing message counts.
    Dashboard(dashboard::Args),
    /// Knowledge ingest throughput and search latency over many chunks.
    Search(search::Args),
    /// The cost of one event dispatched to a component plugin, and the host's throughput
    /// with a plugin in the request path.
    Plugins(plugins::Args),
    /// The time from a message to a rule's effect, and the cost of a workspace's rules per
    /// message.
    Automations(automations::Args),
    /// Events delivered to webhook endpoints: deliveries per second and event → receiver
    /// latency.
    Webhooks(webhooks::Args),
    /// The workflow engine's overhead per node, and runs per second with many runs queued.
    Workflows(workflows::Args),
    /// Live co-editing: update → other clients' latency on one document, and the host's
    /// memory per open collaboration.
    Collaboration(collaboration::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `RUST_LOG=sqlx::query=debug` shows each statement and its time.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match Cli::parse().bench {
        Bench::Projects(args) => projects::run(args).await,
        Bench::Sockets(args) => sockets::run(args).await,
        Bench::Dashboard(args) => dashboard::run(args).await,
        Bench::Search(args) => search::run(args).await,
        Bench::Plugins(args) => plugins::run(args).await,
        Bench::Automations(args) => automations::run(args).await,
        Bench::Webhooks(args) => webhooks::run(args).await,
        Bench::Workflows(args) => workflows::run(args).await,
        Bench::Collaboration(args) => collaboration::run(args).await,
    }
}
