//! Nova: the Rust backend of the Nova Workspace.
//!
//! The host is a library with a thin `main.rs`: [`serve`] runs the API on a bound listener
//! until a shutdown signal, so that tests bind port 0 and run many hosts in one process.

// Layer 1: configuration, errors, storage.
pub mod config;
pub mod db;
pub mod error;
pub mod precondition;
// Layer 2: infrastructure, and the state that holds it.
pub mod infra;
pub mod state;
// Layer 3: who the caller is, and what they may see.
pub mod access;
pub mod auth;
// Layer 4: the sections of the API.
pub mod analytics;
pub mod automations;
pub mod chat;
pub mod events;
pub mod knowledge;
pub mod plugins;
pub mod projects;
pub mod realtime;
pub mod team;
pub mod user;
pub mod webhooks;
pub mod workflows;
// Layer 5: the HTTP surface.
pub mod http;

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
    plugins::sync_builtins(&state.db).await?;
    let app = http::router(state.clone());
    infra::jobs::spawn_workers(
        infra::jobs::Worker {
            db: state.db.clone(),
            lease: chrono::Duration::seconds(state.config.job_lease_secs),
            registry: job_kinds(&state),
            shutdown: state.shutdown.clone(),
        },
        state.config.job_workers,
    );
    infra::eventlog::spawn(infra::eventlog::Runner {
        db: state.db.clone(),
        bus: state.bus.clone(),
        lease: chrono::Duration::seconds(state.config.job_lease_secs),
        retention_days: state.config.event_retention_days,
        consumers: event_consumers(&state),
        shutdown: state.shutdown.clone(),
    })
    .await?;
    webhooks::sender::spawn(state.clone());
    workflows::engine::spawn(state.clone());
    workflows::triggers::spawn_scheduler(state.clone());
    analytics::reports::spawn_scheduler(state.clone());
    infra::api_usage::spawn_flush(
        state.api_usage.clone(),
        state.db.clone(),
        state.shutdown.clone(),
    );
    let sockets = state.clone();
    // Small writes (socket events, streamed tokens, live edits) go out at once: with Nagle's
    // algorithm one waits for the client's delayed ACK, up to 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer address keys the per-address rate limits (login, registration).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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

/// The event log's consumers: each reads every event once, from a position of its own.
fn event_consumers(state: &AppState) -> Vec<std::sync::Arc<dyn infra::eventlog::Consumer>> {
    vec![
        std::sync::Arc::new(automations::engine::RuleEngine(state.clone())),
        std::sync::Arc::new(plugins::IntegrationSubscriptions(state.clone())),
        std::sync::Arc::new(team::activity::ActivityFeed(state.clone())),
        std::sync::Arc::new(webhooks::WebhookFanout(state.clone())),
        std::sync::Arc::new(workflows::triggers::WorkflowTriggers(state.clone())),
        std::sync::Arc::new(chat::replies::WorkflowReplies(state.clone())),
    ]
}

/// The background job kinds and their handlers.
fn job_kinds(state: &AppState) -> infra::jobs::Registry {
    let mut registry = infra::jobs::Registry::default();
    registry.register(
        knowledge::upload::JOB_KIND,
        knowledge::upload::UploadJobs(state.clone()),
    );
    registry.register(
        knowledge::indexing::JOB_KIND,
        knowledge::indexing::IndexJobs(state.clone()),
    );
    registry.register(
        analytics::export::JOB_KIND,
        analytics::export::ExportJobs(state.clone()),
    );
    registry
}
