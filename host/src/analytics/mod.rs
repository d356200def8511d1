//! Analytics: rollups written with the data (see [`rollup`]), and the reads over them —
//! `/api/dashboard/*`, `/api/analytics/*`, `/api/usage/metrics`, per-project performance
//! and comparison. Every read costs O(days × agents).
//!
//! Responses are cached for a minute ([`crate::infra::cache::TTL`]) (in-process, or in Redis with `REDIS_URL`)
//! under a generation number that every analytics write bumps: a cached answer is never
//! older than the last write.

mod dashboard;
pub mod demo;
pub mod export;
pub mod insights;
pub mod metrics;
pub mod report;
pub mod reports;
pub mod rollup;
mod sections;
pub mod stats;
pub mod text;
pub mod usage;

use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(dashboard::router())
        .merge(insights::router())
        .merge(usage::router())
        .merge(export::router())
        .merge(reports::router())
}

/// Called after analytics data of `workspace_id` changed: cached answers are outdated.
pub async fn invalidate(state: &AppState, _workspace_id: Uuid) {
    state.cache.bump().await;
}
