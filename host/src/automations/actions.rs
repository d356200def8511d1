//! What a rule does when it fires: the seed's three actions (run by their built-in
//! automation-action plugins), `notify` through an installed integration, and `plugin`, any
//! installed automation-action plugin. String parameters are templates over the event.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::infra::eventlog::{Cause, Event};
use crate::infra::sandbox::{self, Notification};
use crate::infra::template;
use crate::plugins::{self, Call, Kind};
use crate::state::AppState;

const MAX_ACTIONS: usize = 10;
const MAX_PARAMETERS_BYTES: usize = 16 * 1024;

/// One action as written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// `escalate_to_human`, `send_notification`, `update_priority`, `notify` or `plugin`.
    #[serde(rename = "type")]
    pub kind: String,
    /// escalate_to_human `{reason?}`; send_notification `{title?, message?,
    /// user_id?, user_ids?, roles?}` (everyone in the workspace when it names no one);
    /// update_priority `{priority}`; notify `{plugin_id, title?, text, severity?}`; plugin
    /// `{plugin_id, …}` (the rest goes to the plugin). Strings are templates over the event
    /// (`{{ data.session_id }}`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub parameters: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// The plugin an action runs, and how.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// An automation-action plugin, given the parameters.
    Action(String),
    /// An integration's `notify`.
    Notify(String),
}

impl Action {
    fn target(&self) -> Result<Target, String> {
        let plugin_id = || {
            self.parameters
                .get("plugin_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "`plugin_id` is required".to_owned())
        };
        Ok(match self.kind.as_str() {
            "escalate_to_human" => Target::Action("escalate-to-human".into()),
            "send_notification" => Target::Action("send-notification".into()),
            "update_priority" => Target::Action("update-priority".into()),
            "plugin" => Target::Action(plugin_id()?),
            "notify" => Target::Notify(plugin_id()?),
            other => {
                return Err(format!(
                    "`{other}` is not escalate_to_human, send_notification, update_priority, notify or plugin"
                ));
            }
        })
    }
}

/// Checks the actions of a rule of `workspace_id`: known types, templates that parse, and
/// plugins installed and enabled there (422 naming the action's field).
pub async fn validate(db: &Db, workspace_id: Uuid, actions: &[Action]) -> AppResult<()> {
    if actions.is_empty() || actions.len() > MAX_ACTIONS {
        return Err(AppError::invalid(
            "actions",
            format!("must hold 1 to {MAX_ACTIONS} actions"),
        ));
    }
    for (i, action) in actions.iter().enumerate() {
        let field = |name: &str| format!("actions/{i}/{name}");
        let params = action
            .parameters
            .as_object()
            .ok_or_else(|| AppError::invalid(&field("parameters"), "must be an object"))?;
        if action.parameters.to_string().len() > MAX_PARAMETERS_BYTES {
            return Err(AppError::invalid(
                &field("parameters"),
                format!("must be at most {MAX_PARAMETERS_BYTES} bytes"),
            ));
        }
        let target = action.target().map_err(|e| {
            let name = if e.contains("plugin_id") {
                "parameters/plugin_id"
            } else {
                "type"
            };
            AppError::invalid(&field(name), e)
        })?;
        for (key, value) in params {
            if let Value::String(text) = value {
                template::validate(text)
                    .map_err(|e| AppError::invalid(&field(&format!("parameters/{key}")), e))?;
            }
        }
        if let Target::Notify(_) = target
            && !params.get("text").is_some_and(Value::is_string)
        {
            return Err(AppError::invalid(
                &field("parameters/text"),
                "is required: the message's text (a template)",
            ));
        }
        if action.kind == "send_notification" {
            // A templated `user_id` is known only when the rule fires.
            let mut audience = action.parameters.clone();
            if audience["user_id"]
                .as_str()
                .is_some_and(|u| u.contains("{{"))
            {
                audience["user_id"] = Value::Null;
            }
            plugins::notification_audience(&audience)
                .map_err(|e| AppError::invalid(&field("parameters"), e))?;
        }
        if action.kind == "update_priority"
            && !params
                .get("priority")
                .and_then(Value::as_str)
                .is_some_and(|p| crate::chat::Priority::parse(p).is_some() || p.contains("{{"))
        {
            return Err(AppError::invalid(
                &field("parameters/priority"),
                "must be low, normal, high or urgent",
            ));
        }
        let (plugin_id, kind) = match &target {
            Target::Action(id) => (id, Kind::AutomationAction),
            Target::Notify(id) => (id, Kind::Integration),
        };
        usable(db, workspace_id, plugin_id, kind)
            .await
            .map_err(|e| match e {
                AppError::Unprocessable { detail, errors } => AppError::invalid(
                    &field("parameters/plugin_id"),
                    errors.first().map(|e| e.message.clone()).unwrap_or(detail),
                ),
                AppError::Conflict(why) => AppError::invalid(&field("parameters/plugin_id"), why),
                other => other,
            })?;
    }
    Ok(())
}

/// The plugin a workspace runs for an action: for an integration, an enabled installation
/// (an integration needs its settings); for an automation action, as `plugins::usable` says.
async fn usable(
    db: &Db,
    workspace_id: Uuid,
    plugin_id: &str,
    kind: Kind,
) -> AppResult<plugins::Installed> {
    let found = plugins::usable(db, workspace_id, plugin_id, kind).await?;
    if kind == Kind::Integration && found.installation_id.is_nil() {
        return Err(AppError::invalid(
            "plugin_id",
            "is not installed in this workspace: install it from the marketplace first",
        ));
    }
    Ok(found)
}

/// What an action would receive: its plugin and rendered parameters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Prepared {
    #[serde(rename = "type")]
    pub kind: String,
    pub plugin_id: String,
    /// The parameters with their templates rendered.
    #[schema(value_type = Object)]
    pub parameters: Value,
}

/// Renders an action's parameters over the event.
pub fn prepare(action: &Action, context: &Value) -> Result<Prepared, String> {
    let target = action.target()?;
    let rendered: Map<String, Value> = action
        .parameters
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "plugin_id")
        .map(|(k, v)| {
            let v = match v {
                Value::String(t) => Value::String(template::render(t, context)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    let plugin_id = match &target {
        Target::Action(id) | Target::Notify(id) => id.clone(),
    };
    Ok(Prepared {
        kind: action.kind.clone(),
        plugin_id,
        parameters: Value::Object(rendered),
    })
}

/// How one action went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionResult {
    #[serde(rename = "type")]
    pub kind: String,
    pub plugin_id: String,
    /// `succeeded` or `failed`.
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// Runs one action for a rule fired by `event`, on behalf of `cause` (the rule).
pub async fn run(
    state: &AppState,
    cause: &Cause,
    event: &Event,
    action: &Action,
) -> AppResult<ActionResult> {
    let started = Instant::now();
    let context = event.context();
    let outcome = match prepare(action, &context) {
        Ok(prepared) => call(state, cause, event, action, &prepared).await?,
        Err(e) => Err(e),
    };
    let plugin_id = action
        .target()
        .map(|t| match t {
            Target::Action(id) | Target::Notify(id) => id,
        })
        .unwrap_or_default();
    let (status, output, error) = match outcome {
        Ok(output) => ("succeeded", Some(output), None),
        Err(e) => ("failed", None, Some(e)),
    };
    Ok(ActionResult {
        kind: action.kind.clone(),
        plugin_id,
        status: status.into(),
        output,
        error,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Calls the action's plugin: the outer error is the host's, the inner one the action's.
async fn call(
    state: &AppState,
    cause: &Cause,
    event: &Event,
    action: &Action,
    prepared: &Prepared,
) -> AppResult<Result<Value, String>> {
    let target = match action.target() {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let kind = match target {
        Target::Action(_) => Kind::AutomationAction,
        Target::Notify(_) => Kind::Integration,
    };
    let installed = match usable(&state.db, event.workspace_id, &prepared.plugin_id, kind).await {
        Ok(found) => found,
        Err(AppError::Unprocessable { detail, .. }) => return Ok(Err(detail)),
        Err(AppError::Conflict(why)) => return Ok(Err(why)),
        Err(other) => return Err(other),
    };
    let params = &prepared.parameters;
    let call = match target {
        Target::Action(_) => Call::Run {
            params: params.to_string(),
            event: sandbox::Event {
                kind: event.kind.clone(),
                payload: event.data.0.to_string(),
            },
        },
        Target::Notify(_) => {
            let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
            Call::Notify(Notification {
                title: text("title").unwrap_or_else(|| format!("Nova: {}", event.kind)),
                text: text("text").unwrap_or_default(),
                url: event_link(state, event),
                severity: text("severity").unwrap_or_else(|| "info".into()),
            })
        }
    };
    let result = plugins::invoke_for(state, cause, &installed, "automation", call).await?;
    Ok(result
        .map(|outcome| plugins::output_json(&outcome.output))
        .map_err(|e| e.to_string()))
}

/// A link back into Nova for an event: its chat session, document or project, under
/// `NOVA_PUBLIC_URL` when it is set.
pub fn event_link(state: &AppState, event: &Event) -> Option<String> {
    let data = &event.data.0;
    let id = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
    let path = if let Some(session) = id("session_id") {
        format!("/api/chat/sessions/{session}")
    } else if let Some(document) = id("document_id") {
        format!("/api/knowledge/documents/{document}")
    } else {
        format!("/api/projects/{}", event.project_id?)
    };
    let base = state.config.public_url.as_deref().unwrap_or_default();
    Some(format!("{base}{path}"))
}
