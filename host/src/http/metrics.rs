//! The middleware that feeds the metrics registry.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::infra::api_usage::CallerSlot;
use crate::state::AppState;

/// Middleware: counts every request under its route template (not its raw path, so ids
/// do not explode the label set).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Only the methods the API knows become labels: others would grow the label set.
    let method = match req.method().as_str() {
        known @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let caller = CallerSlot::default();
    let mut req = req;
    req.extensions_mut().insert(caller.clone());
    let started = Instant::now();
    let response = next.run(req).await;
    state.api_usage.count(&caller, response.status().as_u16());
    state.metrics.observe(
        &method,
        &path,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
