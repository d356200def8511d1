//! The `nova` command: `serve` (default), `migrate`, `create-admin`.

use std::io::Read;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nova_host::config::{Config, LogFormat};
use nova_host::{AppState, db::Db};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "nova", version, about = "The Nova Workspace server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Create an instance admin, or make an existing user one (and set their password).
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Rebuild the analytics rollups from the raw sessions and messages.
    RecomputeMetrics,
    /// Fill a user's personal workspace with realistic agents and 90 days of conversations.
    SeedDemo {
        /// A registered user.
        #[arg(long)]
        email: String,
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nova: invalid configuration: {e:#}");
            std::process::exit(2);
        }
    };
    init_logging(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let db = Db::connect(&config.effective_database_url()?).await?;
            db.migrate().await?;
            tracing::info!(backend = db.backend_name(), "migrations applied");
            Ok(())
        }
        Command::CreateAdmin { email, .. } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let state = AppState::build(config).await?;
            let created = nova_host::user::auth::create_admin(&state.db, &email, password).await?;
            println!(
                "{} instance admin {}",
                if created { "created" } else { "promoted" },
                email.trim().to_lowercase()
            );
            Ok(())
        }
        Command::RecomputeMetrics => {
            let state = AppState::build(config).await?;
            let started = std::time::Instant::now();
            let read = nova_host::analytics::rollup::recompute(&state.db)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            state.cache.bump().await;
            println!(
                "recomputed the rollups from {read} messages in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::SeedDemo { email, days } => {
            let state = AppState::build(config).await?;
            let summary = nova_host::analytics::demo::seed(&state, &email, days)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{summary}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let state = AppState::build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("NOVA_BIND: cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        backend = state.db.backend_name(),
        "Nova listening on http://{addr} — API docs at http://{addr}/docs (OpenAPI at /api/openapi.json)"
    );
    nova_host::serve(listener, state, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
