//! `GET /api/automations/rules/{id}/runs` (each firing, with its actions' outcomes) and
//! `POST /api/automations/rules/{id}/test` (a dry run on a sample event, without effects).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::actions::{self, Prepared};
use super::engine::RuleRun;
use super::rules::load_visible;
use super::trigger::Evaluation;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::infra::eventlog::Event;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(test_rule))
}

/// A rule's runs, newest first (members of its workspace).
#[utoipa::path(get, path = "/api/automations/rules/{id}/runs", tag = "automations", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Page<RuleRun>), (status = 404, body = crate::error::Problem)))]
async fn list_runs(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<RuleRun>>> {
    load_visible(&state.db, auth.id, id).await?;
    let runs = state
        .db
        .page_newest_first(
            "SELECT id, rule_id, event_id, event_type, status, actions, depth, started_at, finished_at
             FROM automation_runs WHERE rule_id = $1",
            "id",
            args![id],
            &page,
            |r: &RuleRun| r.id,
        )
        .await?;
    Ok(Json(runs))
}

/// A sample event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleEvent {
    /// A type of the catalogue, e.g. `chat.message.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's data, as the catalogue documents it.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    pub event: SampleEvent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleTestResult {
    /// Whether the rule would fire, and each condition's outcome.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// What each action would receive (its plugin and rendered parameters), when it fires.
    pub actions: Vec<Prepared>,
}

/// Evaluates the rule on a sample event and shows what its actions would receive; nothing
/// runs and nothing is recorded.
#[utoipa::path(post, path = "/api/automations/rules/{id}/test", tag = "automations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RuleTest,
    responses((status = 200, body = RuleTestResult), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn test_rule(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<RuleTest>,
) -> AppResult<Json<RuleTestResult>> {
    let (rule, _) = load_visible(&state.db, auth.id, id).await?;
    if crate::events::catalogue::find(&req.event.kind).is_none() {
        return Err(AppError::invalid(
            "event/type",
            "is not an event type of the catalogue (GET /api/events/types)",
        ));
    }
    if !req.event.data.is_object() {
        return Err(AppError::invalid("event/data", "must be an object"));
    }
    let checked = rule.written_trigger().check()?;
    let evaluation = checked.evaluate(&req.event.kind, &req.event.data);
    let sample = Event {
        id: Uuid::nil(),
        kind: req.event.kind.clone(),
        workspace_id: rule.workspace_id,
        project_id: req.event.data["project_id"]
            .as_str()
            .and_then(|p| p.parse().ok()),
        actor_type: "user".into(),
        actor_id: Some(auth.id.to_string()),
        subject_type: "sample".into(),
        subject_id: String::new(),
        subject_name: None,
        data: SqlJson(req.event.data),
        depth: 0,
        occurred_at: now(),
        tx_id: 0,
        seq: 0,
    };
    let context = sample.context();
    let prepared = if evaluation.matched {
        rule.actions
            .0
            .iter()
            .map(|a| actions::prepare(a, &context))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AppError::invalid("actions", e))?
    } else {
        Vec::new()
    };
    Ok(Json(RuleTestResult {
        evaluation,
        actions: prepared,
    }))
}
