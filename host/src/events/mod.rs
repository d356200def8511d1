//! `/api/events/*`: the catalogue of the event log's types. The log itself lives in
//! `infra::eventlog`; sections record events with the changes they make, and hear of each
//! other's changes by consuming them.

pub mod catalogue;

use std::collections::HashMap;

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::{Arg, Db, placeholders};
use crate::error::{AppError, AppResult};
use crate::infra::eventlog::Event;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_types))
}

/// One type of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeInfo {
    /// e.g. `chat.message.created`.
    #[serde(rename = "type")]
    pub name: &'static str,
    pub description: &'static str,
    /// The JSON Schema of the event's `data`.
    #[schema(value_type = Object)]
    pub data_schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypes {
    pub items: Vec<EventTypeInfo>,
}

/// Every event type, with what it means and the JSON Schema of its `data`. Rules, integration
/// subscriptions and webhooks name these types (or a prefix such as `chat.*`, or `*`).
#[utoipa::path(get, path = "/api/events/types", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = EventTypes)))]
async fn list_types(_auth: AuthUser) -> Json<EventTypes> {
    Json(EventTypes {
        items: catalogue::TYPES
            .iter()
            .map(|t| EventTypeInfo {
                name: t.name,
                description: t.description,
                data_schema: t.schema(),
            })
            .collect(),
    })
}

/// Puts the catalogue into the OpenAPI document: the `data` of each type as the component
/// `EventData.<type>` (e.g. `EventData.chat.message.created`), described as the type is.
pub fn document(openapi: &mut utoipa::openapi::OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    for t in catalogue::TYPES {
        let mut schema = t.schema();
        schema["description"] = Value::from(format!("`{}`: {}", t.name, t.description));
        match serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::Schema>>(schema) {
            Ok(schema) => {
                components
                    .schemas
                    .insert(format!("EventData.{}", t.name), schema);
            }
            Err(e) => tracing::error!(r#type = t.name, "event schema not in OpenAPI: {e}"),
        }
    }
}

/// Whether `pattern` (a type, `prefix.*` or `*`) covers the type `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Checks a list of type patterns against the catalogue: each must name a type or cover one.
pub fn validate_patterns(field: &str, patterns: &[String]) -> AppResult<()> {
    if patterns.len() > 100 {
        return Err(AppError::invalid(field, "holds at most 100 event types"));
    }
    for (i, pattern) in patterns.iter().enumerate() {
        let known = catalogue::TYPES.iter().any(|t| matches(pattern, t.name));
        let well_formed = !pattern.contains('*') || pattern == "*" || pattern.ends_with(".*");
        if !known || !well_formed {
            return Err(AppError::invalid(
                &format!("{field}/{i}"),
                format!(
                    "`{pattern}` is not an event type of the catalogue (GET /api/events/types), a prefix such as `chat.*`, or `*`"
                ),
            ));
        }
    }
    Ok(())
}

/// Who did something, as the activity feed and notifications name them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Named {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// The names of the actors of `events`, looked up once per kind (users, agents, rules,
/// plugins), keyed by (kind, id).
pub async fn actor_names(
    db: &Db,
    events: &[Event],
) -> AppResult<HashMap<(String, String), String>> {
    let mut names = HashMap::new();
    for (kind, sql) in [
        ("user", "SELECT id, name FROM users WHERE id IN"),
        ("agent", "SELECT id, name FROM projects WHERE id IN"),
        ("rule", "SELECT id, name FROM automation_rules WHERE id IN"),
    ] {
        let ids: Vec<Uuid> = events
            .iter()
            .filter(|e| e.actor_type == kind)
            .filter_map(|e| e.actor_id.as_deref()?.parse().ok())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let mut binds = Vec::new();
        let list = placeholders(&mut binds, ids.iter().map(|id| Arg::from(*id)));
        let rows: Vec<(Uuid, String)> = db.fetch_all(&format!("{sql} ({list})"), binds).await?;
        names.extend(
            rows.into_iter()
                .map(|(id, name)| ((kind.to_owned(), id.to_string()), name)),
        );
    }
    let plugins: Vec<String> = events
        .iter()
        .filter(|e| e.actor_type == "plugin")
        .filter_map(|e| e.actor_id.clone())
        .collect();
    if !plugins.is_empty() {
        let mut binds = Vec::new();
        let list = placeholders(&mut binds, plugins.iter().map(|id| Arg::from(id.as_str())));
        let rows: Vec<(String, String)> = db
            .fetch_all(
                &format!("SELECT id, name FROM plugins WHERE id IN ({list})"),
                binds,
            )
            .await?;
        names.extend(
            rows.into_iter()
                .map(|(id, name)| (("plugin".to_owned(), id), name)),
        );
    }
    Ok(names)
}

/// An event's actor with their name.
pub fn actor_of(event: &Event, names: &HashMap<(String, String), String>) -> Named {
    let name = match event.actor_type.as_str() {
        "system" => Some("Nova".to_owned()),
        kind => event
            .actor_id
            .as_ref()
            .and_then(|id| names.get(&(kind.to_owned(), id.clone())).cloned()),
    };
    Named {
        kind: event.actor_type.clone(),
        id: event.actor_id.clone(),
        name,
    }
}

/// The readable sentence for an event, e.g. "Alice shared Support Bot with bob@example.com
/// (edit)".
pub fn summary(event: &Event, actor: &Named) -> String {
    let template =
        catalogue::find(&event.kind).map_or("{{ actor.name }}: {{ type }}", |t| t.summary);
    let context = serde_json::json!({
        "type": event.kind,
        "actor": {"name": actor.name.clone().unwrap_or_else(|| "Someone".into())},
        "subject": {"name": event.subject_name.clone().unwrap_or_else(|| event.subject_type.replace('_', " "))},
        "data": event.data.0,
    });
    crate::infra::template::render(template, &context)
}
