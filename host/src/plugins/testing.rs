//! `POST /api/integrations/{plugin_id}/test`: one call of an installed plugin on sample (or
//! given) input, reported with its output, events and error.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Call, Called, Kind, Output, installed, invoke_logged};
use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::infra::eventlog::Cause;
use crate::infra::sandbox::{Event, HttpRequest, Notification, Report};
use crate::state::AppState;

use super::installations::{WorkspaceQuery, admin_scope};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(test_plugin))
}

/// The input of a test call; each kind reads its part and uses a sample for the rest.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// auto-tagger: the document.
    pub title: Option<String>,
    pub text: Option<String>,
    /// automation-action: the action's JSON parameters.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// analytics-exporter: the report's data.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Run against a scratch key-value store (reads see the installation's, writes stay in
    /// the call) and report the events without acting on them. HTTP requests still go out.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PluginTestResult)]
pub struct TestResult {
    /// `ok` or `error`.
    pub status: String,
    pub duration_ms: f64,
    /// What the plugin returned, as JSON (files as base64 with their type and name); null
    /// when the call failed.
    #[schema(value_type = Option<Object>)]
    pub output: Value,
    /// The events the plugin emitted.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    pub error: Option<String>,
    /// The lines the plugin logged, whether the call succeeded or not (a component's; at most
    /// 100 lines or 16 KiB).
    pub logs: Vec<String>,
}

fn sample_call(kind: Kind, req: TestRequest) -> Call {
    let text = req
        .text
        .unwrap_or_else(|| "A test from Nova: the plugin is installed and runs.".into());
    match kind {
        Kind::Integration => Call::Notify(Notification {
            title: req.title.unwrap_or_else(|| "Nova test".into()),
            text,
            url: None,
            severity: "info".into(),
        }),
        Kind::AutomationAction => Call::Run {
            params: req.params.unwrap_or_else(|| json!({})).to_string(),
            event: Event {
                kind: "test".into(),
                payload: json!({"text": text}).to_string(),
            },
        },
        Kind::WebhookHandler => Call::Handle(HttpRequest {
            method: "POST".into(),
            url: "/test".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: text.into_bytes(),
        }),
        Kind::AutoTagger => Call::Suggest {
            title: req.title.unwrap_or_default(),
            text,
        },
        Kind::AnalyticsExporter => Call::Render(Report {
            title: req.title.unwrap_or_else(|| "Nova test report".into()),
            data: req
                .data
                .unwrap_or_else(|| {
                    json!({"summary": {"conversations": 3}, "columns": ["date", "conversations"],
                           "rows": [["2026-01-01", 1], ["2026-01-02", 2]]})
                })
                .to_string(),
        }),
    }
}

/// A plugin's output as JSON.
pub fn output_json(output: &Output) -> Value {
    match output {
        Output::Done => Value::Null,
        Output::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
        Output::Response(r) => json!({
            "status": r.status,
            "headers": r.headers,
            "body": String::from_utf8_lossy(&r.body),
        }),
        Output::Tagging(t) => json!({
            "tags": t.tags.iter().map(|s| json!({"name": s.name, "confidence": s.confidence})).collect::<Vec<_>>(),
            "categories": t.categories.iter().map(|s| json!({"name": s.name, "confidence": s.confidence})).collect::<Vec<_>>(),
        }),
        Output::File(f) => json!({
            "content_type": f.content_type,
            "file_name": f.file_name,
            "size_bytes": f.bytes.len(),
            "base64": STANDARD.encode(&f.bytes),
        }),
    }
}

/// Runs an installed plugin once on sample input (or the given one) and reports what it did;
/// the call is logged like any other.
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/test", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery), request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 404, body = crate::error::Problem)))]
async fn test_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
    body: Option<AppJson<TestRequest>>,
) -> AppResult<Json<TestResult>> {
    let (workspace_id, plugin) = admin_scope(&state, &auth, q.workspace_id, &plugin_id).await?;
    let installed = installed(&state.db, workspace_id, &plugin_id)
        .await?
        .ok_or(AppError::NotFound("installation"))?;
    let req = body.map(|b| b.0).unwrap_or_default();
    let dry_run = req.dry_run;
    let call = sample_call(plugin.manifest.0.kind, req);
    let started = std::time::Instant::now();
    let cause = Cause::plugin(&installed.plugin_id);
    let operation = if dry_run { "test (dry run)" } else { "test" };
    let Called { result, logs } =
        invoke_logged(&state, &cause, &installed, operation, call, dry_run).await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(match result {
        Ok(outcome) => TestResult {
            status: "ok".into(),
            duration_ms,
            output: output_json(&outcome.output),
            events: outcome
                .events
                .iter()
                .map(|e| json!({"kind": e.kind, "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null)}))
                .collect(),
            error: None,
            logs,
        },
        Err(e) => TestResult {
            status: "error".into(),
            duration_ms,
            output: Value::Null,
            events: Vec::new(),
            error: Some(e.to_string()),
            logs,
        },
    }))
}
