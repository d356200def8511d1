//! `GET /api/projects/{id}/revisions`, `GET …/revisions/{n}` and `POST …/revisions/{n}/restore`.
//!
//! Every change of an agent's configuration is a revision: who made it, when, the
//! configuration after it and what changed (`{field: {from, to}}`). Revision 1 is the
//! creation. A revision is recorded in the transaction of the change, by comparing the
//! configuration with the last revision's, so no writer can forget one. The provider is kept
//! without its key (`api_key_set` says whether one is stored).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::crud::{self, Edit};
use super::queries;
use super::{Permission, Project};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Cursor, Page, PageQuery, Tx, now};
use crate::error::{AppError, AppPath, AppQuery, AppResult};
use crate::precondition::{IfMatch, Versioned};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_revisions))
        .routes(routes!(get_revision))
        .routes(routes!(restore_revision))
}

/// A recorded change of an agent's configuration.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Revision {
    /// 1 for the creation, then one more per change.
    pub number: i64,
    /// The project's `version` after the change.
    pub version: i64,
    pub author_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// `{field: {from, to}}` for each field that changed.
    #[schema(value_type = Object)]
    pub changes: SqlJson<Value>,
    /// The revision this one restored, if it is a restore.
    pub restored_from: Option<i64>,
    /// The whole configuration after the change (name, description, tags, status, settings,
    /// system_prompt, model_config, provider without its key).
    #[schema(value_type = Object)]
    pub config: SqlJson<Value>,
}

const REVISION_COLUMNS: &str =
    "number, version, author_id, created_at, changes, restored_from, config";

#[derive(sqlx::FromRow)]
struct Current {
    name: String,
    description: String,
    tags: SqlJson<Value>,
    status: String,
    settings: SqlJson<Value>,
    system_prompt: String,
    model_config: SqlJson<Value>,
    version: i64,
    base_url: Option<String>,
    model: Option<String>,
    stream: Option<bool>,
    timeout_ms: Option<i64>,
    api_key_set: Option<bool>,
}

impl Current {
    fn config(self) -> Map<String, Value> {
        let provider = match (self.base_url, self.model) {
            (Some(base_url), Some(model)) => json!({
                "base_url": base_url, "model": model, "stream": self.stream.unwrap_or(true),
                "timeout_ms": self.timeout_ms, "api_key_set": self.api_key_set.unwrap_or(false),
            }),
            _ => Value::Null,
        };
        Map::from_iter([
            ("name".to_owned(), json!(self.name)),
            ("description".to_owned(), json!(self.description)),
            ("tags".to_owned(), self.tags.0),
            ("status".to_owned(), json!(self.status)),
            ("settings".to_owned(), self.settings.0),
            ("system_prompt".to_owned(), json!(self.system_prompt)),
            ("model_config".to_owned(), self.model_config.0),
            ("provider".to_owned(), provider),
        ])
    }
}

/// Records a revision when the project's configuration differs from its last revision's
/// (inside the transaction that changed it); the new revision's number.
pub async fn record(
    tx: &mut Tx,
    project_id: Uuid,
    author: Option<Uuid>,
    restored_from: Option<i64>,
) -> AppResult<Option<i64>> {
    // The project's row lock orders the revisions of concurrent writers.
    tx.execute(
        "UPDATE projects SET updated_at = updated_at WHERE id = $1",
        args![project_id],
    )
    .await?;
    let current: Current = tx
        .fetch_one(
            "SELECT p.name, p.description, p.tags, p.status, p.settings, p.system_prompt,
                p.model_config, p.version, pp.base_url, pp.model, pp.stream, pp.timeout_ms,
                pp.api_key_encrypted IS NOT NULL AS api_key_set
             FROM projects p LEFT JOIN project_providers pp ON pp.project_id = p.id
             WHERE p.id = $1",
            args![project_id],
        )
        .await?;
    let version = current.version;
    let config = current.config();
    let last: Option<(i64, SqlJson<Value>)> = tx
        .fetch_optional(
            "SELECT number, config FROM project_revisions WHERE project_id = $1
             ORDER BY number DESC LIMIT 1",
            args![project_id],
        )
        .await?;
    let (number, before) = match last {
        Some((n, SqlJson(Value::Object(before)))) => (n + 1, before),
        Some((n, _)) => (n + 1, Map::new()),
        None => (1, Map::new()),
    };
    let changes = diff(&before, &config);
    if changes.is_empty() && number > 1 {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO project_revisions (project_id, number, version, author_id, config, changes,
            restored_from, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            project_id,
            number,
            version,
            author,
            Value::Object(config),
            Value::Object(changes),
            restored_from,
            now()
        ],
    )
    .await?;
    Ok(Some(number))
}

/// `{field: {from, to}}` for each field whose value differs.
fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    after
        .iter()
        .filter(|(field, to)| before.get(*field).unwrap_or(&Value::Null) != *to)
        .map(|(field, to)| {
            let from = before.get(field).cloned().unwrap_or(Value::Null);
            (field.clone(), json!({"from": from, "to": to}))
        })
        .collect()
}

/// The configuration as of `version`: the last revision recorded at or before it.
pub async fn config_at(
    tx: &mut Tx,
    project_id: Uuid,
    version: i64,
) -> AppResult<Option<Map<String, Value>>> {
    let found: Option<(SqlJson<Value>,)> = tx
        .fetch_optional(
            "SELECT config FROM project_revisions WHERE project_id = $1 AND version <= $2
             ORDER BY number DESC LIMIT 1",
            args![project_id, version],
        )
        .await?;
    Ok(found.and_then(|(c,)| match c.0 {
        Value::Object(config) => Some(config),
        _ => None,
    }))
}

/// A revision of a project the caller can see (404 otherwise).
async fn load(tx: &mut Tx, caller: Uuid, project_id: Uuid, number: i64) -> AppResult<Revision> {
    queries::load(&mut *tx, caller, project_id).await?;
    tx.fetch_optional(
        &format!(
            "SELECT {REVISION_COLUMNS} FROM project_revisions WHERE project_id = $1 AND number = $2"
        ),
        args![project_id, number],
    )
    .await?
    .ok_or(AppError::NotFound("revision"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An agent's revisions, newest first (view permission).
#[utoipa::path(get, path = "/api/projects/{id}/revisions", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), RevisionQuery),
    responses((status = 200, body = Page<Revision>), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
async fn list_revisions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<RevisionQuery>,
) -> AppResult<Json<Page<Revision>>> {
    queries::load(&state.db, auth.id, id).await?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let before = page.integer_cursor("number")?.unwrap_or(i64::MAX);
    let rows: Vec<Revision> = state
        .db
        .fetch_all(
            &format!(
                "SELECT {REVISION_COLUMNS} FROM project_revisions
                 WHERE project_id = $1 AND number < $2 ORDER BY number DESC LIMIT $3"
            ),
            args![id, before, limit + 1],
        )
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |r| Cursor {
        sort: "number".into(),
        value: Some(r.number.to_string()),
        id,
    })))
}

/// One revision with the whole configuration after it (view permission).
#[utoipa::path(get, path = "/api/projects/{id}/revisions/{number}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("number" = i64, Path)),
    responses((status = 200, body = Revision), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
async fn get_revision(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath((id, number)): AppPath<(Uuid, i64)>,
) -> AppResult<Json<Revision>> {
    let mut tx = state.db.begin().await?;
    let revision = load(&mut tx, auth.id, id, number).await?;
    tx.commit().await?;
    Ok(Json(revision))
}

/// Restores the configuration of revision `number` (edit permission): name, description,
/// tags, status, settings, system prompt and model config as they were then; the provider
/// stays as it is. The restore is a new revision. Honours `If-Match`.
#[utoipa::path(post, path = "/api/projects/{id}/revisions/{number}/restore", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("number" = i64, Path),
        ("If-Match" = Option<String>, Header, description = "The project's ETag this restore is based on")),
    responses((status = 200, body = Project, headers(("ETag" = String))),
        (status = 400, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem)))]
async fn restore_revision(
    State(state): State<AppState>,
    auth: AuthUser,
    if_match: IfMatch,
    AppPath((id, number)): AppPath<(Uuid, i64)>,
) -> AppResult<Versioned<Json<Project>>> {
    let mut tx = state.db.begin().await?;
    let row = queries::load(&mut tx, auth.id, id).await?;
    row.require(auth.id, Permission::Edit)?;
    if_match.check("project", row.version, || row.clone().into_view(auth.id))?;
    let revision = load(&mut tx, auth.id, id, number).await?;
    let Value::Object(config) = revision.config.0 else {
        return Err(AppError::NotFound("revision"));
    };
    let edits: Map<String, Value> = config
        .into_iter()
        .filter(|(field, _)| crud::EDITABLE.contains(&field.as_str()))
        .collect();
    let edit = Edit {
        author: auth.id,
        edits,
        restored_from: Some(number),
        if_match,
        from_live_document: false,
    };
    crud::apply(&state, tx, &row, edit).await
}
