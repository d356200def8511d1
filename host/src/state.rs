//! The one application state every handler receives.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::infra::api_usage::ApiUsage;
use crate::infra::bus::EventBus;
use crate::infra::cache::Cache;
use crate::infra::eventlog::EventLog;
use crate::infra::livedocs::LiveDocs;
use crate::infra::metrics::Metrics;
use crate::infra::outbound::Outbound;
use crate::infra::ratelimit::RateLimiter;
use crate::infra::redis::RedisLink;
use crate::infra::sandbox;
use crate::infra::secrets::SecretBox;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub rate_limiter: RateLimiter,
    /// The link to Redis when `REDIS_URL` is set (shared by the limiter, bus and cache).
    pub redis: Option<RedisLink>,
    pub bus: EventBus,
    /// The event log: commits that recorded events go through it to wake its consumers.
    pub events: EventLog,
    /// Cached analytics answers.
    pub cache: Cache,
    pub secrets: SecretBox,
    /// The outbound guard every request to the outside goes through (providers, voice,
    /// plugins).
    pub outbound: Outbound,
    pub metrics: Arc<Metrics>,
    /// API requests by caller, written to `api_usage_daily` every second.
    pub api_usage: Arc<ApiUsage>,
    /// Turns true when the host shuts down: sockets close with 1001.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    shutdown_trigger: Arc<tokio::sync::watch::Sender<bool>>,
    /// Open sockets: shutdown waits for them to say goodbye (axum does not track
    /// upgraded connections).
    pub sockets: Arc<OpenSockets>,
    /// The plugin sandbox, with the compiled components.
    pub plugins: sandbox::Runtime,
    /// The collaborative documents this host has open.
    pub live_docs: LiveDocs,
}

/// A count of open sockets that shutdown can wait on.
#[derive(Default)]
pub struct OpenSockets {
    open: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

/// Held while a socket is open.
pub struct SocketGuard(Arc<OpenSockets>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.closed.notify_waiters();
    }
}

impl OpenSockets {
    pub fn enter(self: &Arc<Self>) -> SocketGuard {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SocketGuard(self.clone())
    }

    /// Waits until every socket is closed, or `limit` passes.
    pub async fn drained(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.closed.notified();
                if self.open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }
}

impl AppState {
    /// Opens the database (applying migrations) and, when configured, Redis.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let db = Db::connect(&config.effective_database_url()?).await?;
        db.migrate().await?;
        // Redis need not be up: the link connects when it can, and falls back meanwhile.
        let redis = config
            .redis_url
            .as_ref()
            .map(|url| RedisLink::new(&url.0))
            .transpose()?;
        let (rate_limiter, bus, cache) = match &redis {
            Some(link) => (
                RateLimiter::redis(link.clone()),
                EventBus::redis(link.clone()).await,
                Cache::redis(link.clone(), crate::infra::cache::TTL),
            ),
            None => (
                RateLimiter::in_process(),
                EventBus::in_process(),
                Cache::in_process(crate::infra::cache::TTL),
            ),
        };
        let secrets = SecretBox::load(config.master_key.as_ref().map(|k| &k.0), &config.data_dir)?;
        let outbound = Outbound::new(config.allow_private_urls.clone(), &config.resolve)?;
        let plugins = sandbox::Runtime::new(
            sandbox::Limits {
                deadline: std::time::Duration::from_millis(config.plugin_timeout_ms),
                memory_bytes: (config.plugin_memory_mb as usize) << 20,
            },
            db.clone(),
            outbound.clone(),
        )?;
        let (shutdown_trigger, shutdown) = tokio::sync::watch::channel(false);
        Ok(AppState {
            config: Arc::new(config),
            db,
            rate_limiter,
            redis,
            events: EventLog::new(bus.clone()),
            bus,
            cache,
            secrets,
            outbound,
            metrics: Arc::new(Metrics::default()),
            api_usage: Arc::new(ApiUsage::default()),
            shutdown,
            shutdown_trigger: Arc::new(shutdown_trigger),
            sockets: Arc::default(),
            plugins,
            live_docs: LiveDocs::default(),
        })
    }

    /// Counts a background job (a bulk upload, an export) that `user` starts: 429 past
    /// `NOVA_JOB_RATE_LIMIT` a minute, so one user cannot fill the queue.
    pub async fn count_job_start(&self, user: uuid::Uuid) -> Result<(), crate::error::AppError> {
        self.rate_limiter
            .per_minute(
                &format!("jobs:{user}"),
                self.config.job_rate_limit_per_minute,
            )
            .await
    }

    /// Tells long-lived connections (sockets) that the host is going down.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_trigger.send(true);
    }
}
