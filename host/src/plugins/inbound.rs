//! `POST /api/integrations/{plugin_id}/webhook/{installation_id}`: requests from external
//! services to a webhook-handler installation.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Call, Kind, Output, invoke};
use crate::error::{AppError, AppPath, AppResult};
use crate::infra::sandbox::HttpRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(inbound_webhook))
        .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_MAX_BYTES))
}

/// The largest request a webhook handler receives.
const WEBHOOK_MAX_BYTES: usize = 1024 * 1024;

/// Headers a webhook handler's response may set.
const RESPONSE_HEADERS: [&str; 3] = ["content-type", "cache-control", "retry-after"];

/// Inbound webhooks from external services (no bearer token: the handler plugin authenticates
/// the request, e.g. by its signature). The request goes to the webhook-handler plugin of the
/// installation; the events it emits are applied in that workspace; its response is returned.
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/webhook/{installation_id}", tag = "plugins",
    params(("plugin_id" = String, Path), ("installation_id" = Uuid, Path)),
    request_body(content = String, description = "Whatever the external service sends"),
    responses((status = 200, description = "The handler's response"), (status = 404, body = crate::error::Problem),
        (status = 502, body = crate::error::Problem)))]
async fn inbound_webhook(
    State(state): State<AppState>,
    AppPath((plugin_id, installation_id)): AppPath<(String, Uuid)>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> AppResult<axum::response::Response> {
    let found = super::installation(&state.db, installation_id)
        .await?
        .filter(|i| {
            i.plugin_id == plugin_id && i.enabled && i.manifest.0.kind == Kind::WebhookHandler
        })
        .ok_or(AppError::NotFound("webhook"))?;
    let request = HttpRequest {
        method: "POST".into(),
        url: uri.to_string(),
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let outcome = invoke(&state, &found, "webhook", Call::Handle(request))
        .await?
        // The caller is outside Nova: the reason goes to the invocation log, for the admins.
        .map_err(|_| AppError::Rejected {
            status: StatusCode::BAD_GATEWAY,
            detail: "the webhook handler failed".into(),
            results: Value::Null,
        })?;
    let Output::Response(response) = outcome.output else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "a webhook handler returned no response"
        )));
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut reply = axum::response::Response::builder().status(status);
    for (name, value) in &response.headers {
        if RESPONSE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            reply = reply.header(name, value);
        }
    }
    reply
        .body(axum::body::Body::from(response.body))
        .map_err(|e| AppError::Internal(e.into()))
}
