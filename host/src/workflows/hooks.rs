//! `POST /api/workflows/{id}/hooks/{secret}`: a `webhook` trigger's inbound URL. No bearer
//! token: the secret in the URL (`webhook_url` of the workflow) is the credential, and a
//! wrong one is a 404 like an unknown workflow.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::crud;
use super::engine::{self, Start};
use super::runs::RunStatus;
use crate::auth::hash_token;
use crate::error::{AppError, AppPath, AppResult};
use crate::state::AppState;

/// The largest body a workflow webhook takes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Requests one workflow's webhook takes a minute.
const PER_MINUTE: u32 = 600;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HookAccepted {
    pub run_id: Uuid,
    pub status: RunStatus,
}

/// Starts a run of an active workflow with a `webhook` trigger; its input is
/// `{"body": <the JSON sent>}` (an empty body is `{}`).
#[utoipa::path(post, path = "/api/workflows/{id}/hooks/{secret}", tag = "workflows",
    params(("id" = Uuid, Path), ("secret" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 202, body = HookAccepted), (status = 404, body = crate::error::Problem),
        (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem)))]
async fn receive(
    State(state): State<AppState>,
    AppPath((id, secret)): AppPath<(Uuid, String)>,
    body: Bytes,
) -> AppResult<(StatusCode, Json<HookAccepted>)> {
    let workflow = crud::load(&state.db, id)
        .await
        .map_err(|_| AppError::NotFound("workflow"))?;
    let expected = workflow.webhook_secret(&state);
    let listening =
        workflow.is_active && expected.is_some_and(|s| hash_token(&s) == hash_token(&secret));
    if !listening {
        return Err(AppError::NotFound("workflow"));
    }
    state
        .rate_limiter
        .per_minute(&format!("workflow-hook:{id}"), PER_MINUTE)
        .await?;
    let sent: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::invalid("body", format!("is not JSON: {e}")))?
    };
    let mut tx = state.db.begin().await?;
    let run_id = engine::create(
        &mut tx,
        &state.config,
        Start {
            workflow: &workflow,
            trigger: "webhook",
            input: json!({"body": sent}),
            dry_run: false,
            started_by: None,
            event_id: None,
            depth: 0,
        },
    )
    .await?;
    tx.commit().await?;
    engine::wake(&state).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(HookAccepted {
            run_id,
            status: RunStatus::Queued,
        }),
    ))
}
