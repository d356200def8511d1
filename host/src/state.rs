//! The one application state every handler receives.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::http::metrics::Metrics;
use crate::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub rate_limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Opens the database (applying migrations) and, when configured, Redis.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let db = Db::connect(&config.effective_database_url()?).await?;
        db.migrate().await?;
        let rate_limiter = match &config.redis_url {
            Some(url) => RateLimiter::redis(&url.0).await?,
            None => RateLimiter::in_process(),
        };
        Ok(AppState {
            config: Arc::new(config),
            db,
            rate_limiter,
            metrics: Arc::new(Metrics::default()),
        })
    }
}
