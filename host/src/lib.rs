//! Nova: the Rust backend of the Nova Workspace.
//!
//! The host is a library with a thin `main.rs`: [`serve`] runs the API on a bound listener
//! until a shutdown signal, so that tests bind port 0 and run many hosts in one process.

pub mod analytics;
pub mod auth;
pub mod chat;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod jobs;
pub mod knowledge;
pub mod plugins;
pub mod projects;
pub mod ratelimit;
pub mod realtime;
pub mod secrets;
pub mod state;
pub mod team;
pub mod user;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = http::router(state.clone());
    jobs::spawn_worker(state.clone());
    let sockets = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            sockets.begin_shutdown();
        })
        .await?;
    // Sockets were told to close (1001); give them a moment to do it.
    state
        .sockets
        .drained(std::time::Duration::from_secs(5))
        .await;
    state.db.close().await;
    Ok(())
}
