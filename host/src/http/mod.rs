//! The HTTP surface: every section's router merged, the OpenAPI document and docs page,
//! health and metrics endpoints, and the cross-cutting layers.

pub mod metrics;
mod problems;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::AppError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nova API",
        description = "The Nova Workspace backend: agents (projects), chat, knowledge, analytics, \
            automation and plugins. Errors are RFC 9457 problem documents. Lists are keyset \
            paginated: pass `limit` (1–200, default 50) and the `next_cursor` of the previous page \
            as `cursor`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login and logout"),
        (name = "user", description = "The caller's account, API keys, preferences and shortcuts"),
        (name = "team", description = "Team workspaces, members and the audit log"),
        (name = "projects", description = "Agents: CRUD, sharing, bulk operations, templates, performance"),
        (name = "chat", description = "Chat sessions, messages, ratings, conversation templates and voice"),
        (name = "analytics", description = "Dashboard, recommendations, conversation insights, A/B tests and usage; figures are defined on each endpoint"),
        (name = "knowledge", description = "Documents, versions, full-text search and auto-tagging"),
        (name = "plugins", description = "Plugin marketplace, packages, installations and their invocation log"),
        (name = "events", description = "The event log's catalogue: every event type with the JSON Schema of its data"),
        (name = "automations", description = "Automation rules over live events, their runs and dry runs"),
        (name = "webhooks", description = "Outbound webhooks: endpoints, Standard Webhooks signatures, retries and the delivery log"),
        (name = "workflows", description = "Workflows: graphs of agents, knowledge, conditions, actions and people; definitions, validation and versions"),
        (name = "realtime", description = "WebSocket tickets; sockets at /ws/chat/{session_id} and /ws/notifications/{user_id}"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::user::router())
        .merge(crate::team::router())
        .merge(crate::projects::router())
        .merge(crate::chat::router())
        .merge(crate::realtime::router())
        .merge(crate::analytics::router())
        .merge(crate::knowledge::router())
        .merge(crate::plugins::router())
        .merge(crate::events::router())
        .merge(crate::automations::router())
        .merge(crate::webhooks::router())
        .merge(crate::workflows::router())
        .split_for_parts();
    let mut openapi = openapi;
    errors_as_problem_json(&mut openapi);
    crate::events::document(&mut openapi);
    // utoipa has no `webhooks` section: it is added to the JSON.
    let mut openapi = serde_json::to_value(&openapi).unwrap_or_default();
    crate::webhooks::document(&mut openapi);
    let openapi = Arc::new(openapi);
    let request_id = HeaderName::from_static("x-request-id");

    Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi) }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { AppError::NotFound("route") })
        .layer(axum::middleware::from_fn(problems::errors_as_problems))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(cors(&state.config.cors_origins))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Errors are served as `application/problem+json` (RFC 9457): the document says so for every
/// response whose body is a `Problem`.
fn errors_as_problem_json(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    let is_problem = |content: &utoipa::openapi::Content| matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"));
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            declare_common_errors(operation);
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if response
                    .content
                    .get("application/json")
                    .is_some_and(is_problem)
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), content);
                }
            }
        }
    }
}

/// The errors every operation can give, declared where an operation's own annotation left them
/// out: 401 for a token-protected one, 400 for one with parameters (a malformed id or query),
/// 400 and 413 for a multipart body, and 400 (malformed), 413 (too large), 415 (not JSON) and
/// 422 (invalid) for one with a JSON body.
fn declare_common_errors(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let multipart_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("multipart/form-data"));
    let mut common: Vec<(&str, &str)> = Vec::new();
    if secured {
        common.push(("401", "No valid bearer token"));
    }
    if has_parameters {
        common.push(("400", "A path or query parameter is malformed"));
    }
    if multipart_body {
        common.extend([
            ("400", "Not a multipart body, or a malformed one"),
            ("413", "The body is larger than allowed"),
        ]);
    }
    if json_body {
        common.extend([
            ("400", "Malformed JSON"),
            ("413", "The body is larger than allowed"),
            ("415", "The body is not `application/json`"),
            ("422", "A field is missing, of the wrong type or invalid"),
        ]);
    }
    for (status, description) in common {
        if operation.responses.responses.contains_key(status) {
            continue;
        }
        let problem = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/problem+json", problem)
            .build();
        operation
            .responses
            .responses
            .insert(status.to_owned(), response.into());
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(list)
    }
}

/// Ready when the database answers. Redis is reported but does not make the host unready:
/// without it the host serves on, with this host's own rate limits, cache and events.
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    let one: i64 = state
        .db
        .scalar("SELECT CAST(1 AS BIGINT)", Vec::new())
        .await
        .map_err(|e| {
            // The driver's words stay in the log; the answer says only what is down.
            tracing::warn!(error = %e, "readiness check: the database did not answer");
            AppError::Unavailable("database not ready".into())
        })?;
    if one != 1 {
        return Err(AppError::Unavailable("database not ready".into()));
    }
    let redis = match &state.redis {
        None => "not configured",
        Some(link) => {
            let pong = link
                .run("readiness check", |mut conn| async move {
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                })
                .await;
            match pong {
                Some(_) if state.bus.shared() => "ok",
                Some(_) => "reconnecting: events reach this host's sockets only",
                None => "unavailable: rate limits, cache and events are this host's own",
            }
        }
    };
    Ok(Json(
        serde_json::json!({"status": "ready", "database": "ok", "redis": redis}),
    ))
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// A self-contained docs page (no CDN): it reads `/api/openapi.json`, lists every operation
/// with its parameters and schemas, and can send requests with a bearer token.
const DOCS_PAGE: &str = include_str!("docs.html");
