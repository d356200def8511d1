//! `GET/POST /api/workflows`, `GET/PUT/DELETE /api/workflows/{id}`,
//! `GET /api/workflows/{id}/versions` and `POST /api/workflows/validate`: members of a
//! workspace read and write its workflows; every `PUT` is a new version.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::definition::{self, Definition, References};
use super::triggers;
use crate::access::{Role, require_role, target_workspace};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Db, Filter, Page, PageQuery, contains_pattern, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult, ConflictOnDuplicate};
use crate::infra::sandbox::Kind;
use crate::precondition::{IfMatch, Versioned, stale};
use crate::state::AppState;

/// A workflow as written (`POST`, and `PUT` replacing it whole).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowBody {
    /// 1–200 characters.
    pub name: String,
    /// The workspace (default: the caller's personal one). Fixed once the workflow exists.
    pub workspace_id: Option<Uuid>,
    pub description: Option<String>,
    pub definition: Definition,
    /// Default false: an active workflow's event, schedule and webhook triggers start runs.
    pub is_active: Option<bool>,
    /// On `PUT`: the version this change was based on (409 when it changed since).
    pub version: Option<i64>,
}

/// A workflow.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Workflow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Definition)]
    pub definition: SqlJson<Value>,
    /// Who made it.
    pub user_id: Option<Uuid>,
    pub is_active: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A `webhook` trigger's URL: a `POST` of JSON to it starts a run while the workflow is
    /// active. It holds the workflow's secret; switching the trigger to another kind and back
    /// issues a new one.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip)]
    pub webhook_secret_encrypted: Option<String>,
}

impl Workflow {
    /// The webhook secret, decrypted.
    pub fn webhook_secret(&self, state: &AppState) -> Option<String> {
        let sealed = self.webhook_secret_encrypted.as_deref()?;
        state.secrets.decrypt(sealed).ok()
    }

    /// With its `webhook_url` filled in.
    fn shown(mut self, state: &AppState) -> Workflow {
        self.webhook_url = self.webhook_secret(state).map(|secret| {
            let base = state.config.public_url.as_deref().unwrap_or_default();
            format!("{base}/api/workflows/{}/hooks/{secret}", self.id)
        });
        self
    }
}

pub const WORKFLOW_COLUMNS: &str = "w.id, w.workspace_id, w.name, w.description, w.definition,
    w.user_id, w.is_active, w.version, w.created_at, w.updated_at, w.webhook_secret_encrypted";

/// The sealed webhook secret a definition needs: the one it has, a new one for a new
/// `webhook` trigger, none for other triggers.
fn webhook_secret(
    state: &AppState,
    kind: &str,
    current: Option<&str>,
) -> AppResult<Option<String>> {
    if kind != "webhook" {
        return Ok(None);
    }
    if let Some(sealed) = current {
        return Ok(Some(sealed.to_owned()));
    }
    let secret = crate::auth::generate_token().replacen("nova_", "whk_", 1);
    Ok(Some(state.secrets.encrypt(&secret)?))
}

/// An agent is answered by one active workflow at most (a unique index says so).
const ONE_ANSWERING_WORKFLOW: &str =
    "another active workflow already answers this agent's chat sessions";

/// One saved version of a workflow's definition.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct WorkflowVersion {
    pub version: i64,
    #[schema(value_type = Definition)]
    pub definition: SqlJson<Value>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The projects and plugins a definition names, looked up once.
struct Known {
    projects: HashSet<String>,
    plugins: HashSet<(String, String)>,
}

impl References for Known {
    fn project_visible(&self, id: &str) -> bool {
        self.projects.contains(id)
    }

    fn plugin_usable(&self, node_kind: &str, id: &str) -> bool {
        self.plugins
            .contains(&(node_kind.to_owned(), id.to_owned()))
    }
}

async fn references(db: &Db, workspace_id: Uuid, d: &Definition) -> AppResult<Known> {
    let mut known = Known {
        projects: HashSet::new(),
        plugins: HashSet::new(),
    };
    for node in d.nodes.iter().take(definition::MAX_NODES) {
        let config_text = |key: &str| node.config.get(key).and_then(Value::as_str);
        match node.kind.as_str() {
            "agent" | "trigger" => {
                let Some(id) = config_text("project_id") else {
                    continue;
                };
                let Ok(uuid) = id.parse::<Uuid>() else {
                    continue;
                };
                let found: Option<(Uuid,)> = db
                    .fetch_optional(
                        "SELECT id FROM projects WHERE id = $1 AND workspace_id = $2",
                        args![uuid, workspace_id],
                    )
                    .await?;
                if found.is_some() {
                    known.projects.insert(id.to_owned());
                }
            }
            kind @ ("action" | "notify") => {
                let Some(id) = config_text("plugin_id") else {
                    continue;
                };
                let plugin_kind = if kind == "notify" {
                    Kind::Integration
                } else {
                    Kind::AutomationAction
                };
                let usable = match crate::plugins::usable(db, workspace_id, id, plugin_kind).await {
                    Ok(found) => kind == "action" || !found.installation_id.is_nil(),
                    Err(AppError::Database(e)) => return Err(AppError::Database(e)),
                    Err(_) => false,
                };
                if usable {
                    known.plugins.insert((kind.to_owned(), id.to_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(known)
}

/// A checked body: its name, description and definition (422 naming each problem).
async fn check(
    db: &Db,
    workspace_id: Uuid,
    body: &WorkflowBody,
) -> AppResult<(String, Option<String>)> {
    let name = body.name.trim();
    let mut errors = Vec::new();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(crate::error::FieldError::new(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    let description = body
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        errors.push(crate::error::FieldError::new(
            "description",
            "must be at most 2000 characters",
        ));
    }
    let known = references(db, workspace_id, &body.definition).await?;
    errors.extend(definition::check(&body.definition, &known));
    if errors.is_empty() {
        Ok((name.to_owned(), description))
    } else {
        Err(AppError::fields(errors))
    }
}

pub async fn load(db: &Db, id: Uuid) -> AppResult<Workflow> {
    db.fetch_optional(
        &format!("SELECT {WORKFLOW_COLUMNS} FROM workflows w WHERE w.id = $1"),
        args![id],
    )
    .await?
    .ok_or(AppError::NotFound("workflow"))
}

/// A workflow of a workspace the caller belongs to (404 otherwise), with their role.
pub async fn load_visible(db: &Db, caller: Uuid, id: Uuid) -> AppResult<(Workflow, Role)> {
    let workflow = load(db, id).await?;
    let role = require_role(db, workflow.workspace_id, caller, Role::Member)
        .await
        .map_err(|_| AppError::NotFound("workflow"))?;
    Ok((workflow, role))
}

async fn save_version(
    tx: &mut crate::db::Tx,
    id: Uuid,
    version: i64,
    definition: &Definition,
    author: Uuid,
) -> AppResult<()> {
    tx.execute(
        "INSERT INTO workflow_versions (workflow_id, version, definition, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        args![id, version, json!(definition), author, now()],
    )
    .await?;
    Ok(())
}

/// Creates a workflow (members of its workspace): version 1.
#[utoipa::path(post, path = "/api/workflows", tag = "workflows", security(("bearer" = [])),
    request_body = WorkflowBody,
    responses((status = 201, body = Workflow), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn create_workflow(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<WorkflowBody>,
) -> AppResult<(StatusCode, Json<Workflow>)> {
    let workspace_id = target_workspace(&state, &auth, body.workspace_id).await?;
    require_role(&state.db, workspace_id, auth.id, Role::Member).await?;
    if body.version.is_some() {
        return Err(AppError::invalid("version", "is only for PUT"));
    }
    let (name, description) = check(&state.db, workspace_id, &body).await?;
    let id = new_id();
    let at = now();
    let is_active = body.is_active.unwrap_or(false);
    let trigger = triggers::columns(&body.definition, is_active);
    let hook_secret = webhook_secret(&state, &trigger.kind, None)?;
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO workflows (id, workspace_id, name, description, definition, user_id,
            is_active, version, created_at, updated_at, trigger_kind, trigger_event_type,
            next_fire_at, webhook_secret_encrypted, answers_project_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9, $10, $11, $12, $13)",
        args![
            id,
            workspace_id,
            name.clone(),
            description,
            json!(body.definition),
            auth.id,
            is_active,
            at,
            trigger.kind,
            trigger.event_type,
            trigger.next_fire_at,
            hook_secret,
            trigger.answers_project_id
        ],
    )
    .await
    .conflict_on_duplicate(ONE_ANSWERING_WORKFLOW)?;
    save_version(&mut tx, id, 1, &body.definition, auth.id).await?;
    crate::team::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "workflow.create",
        "workflow",
        Some(id.to_string()),
        json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(load(&state.db, id).await?.shown(&state)),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkflowListQuery {
    /// Only this workspace's workflows; left out, every workspace the caller belongs to.
    pub workspace_id: Option<Uuid>,
    pub is_active: Option<bool>,
    /// Words of the name or description.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The workflows of the caller's workspaces, newest first.
#[utoipa::path(get, path = "/api/workflows", tag = "workflows", security(("bearer" = [])),
    params(WorkflowListQuery),
    responses((status = 200, body = Page<Workflow>), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn list_workflows(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<WorkflowListQuery>,
) -> AppResult<Json<Page<Workflow>>> {
    let mut filter = Filter::after(args![auth.id]);
    if let Some(ws) = q.workspace_id {
        target_workspace(&state, &auth, Some(ws)).await?;
        filter.and(" AND w.workspace_id = {}", ws);
    }
    if let Some(active) = q.is_active {
        filter.and(" AND w.is_active = {}", active);
    }
    if let Some(words) = q.q.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        if words.chars().count() > 200 {
            return Err(AppError::invalid("q", "must be at most 200 characters"));
        }
        let p = filter.bind(contains_pattern(&words.to_lowercase()));
        filter.sql += &format!(
            " AND (LOWER(w.name) LIKE {p} ESCAPE '\\' OR LOWER(COALESCE(w.description, '')) LIKE {p} ESCAPE '\\')"
        );
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let workflows = state
        .db
        .page_newest_first(
            &format!(
                "SELECT {WORKFLOW_COLUMNS} FROM workspace_members m
                 JOIN workflows w ON w.workspace_id = m.workspace_id
                 WHERE m.user_id = $1{}",
                filter.sql
            ),
            "w.id",
            filter.binds,
            &page,
            |w: &Workflow| w.id,
        )
        .await?;
    Ok(Json(workflows.map(|w| w.shown(&state))))
}

/// One workflow (members of its workspace).
#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Workflow, headers(("ETag" = String, description = "The workflow's version, for If-Match"))),
        (status = 404, body = crate::error::Problem)))]
pub async fn get_workflow(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Versioned<Json<Workflow>>> {
    let workflow = load_visible(&state.db, auth.id, id).await?.0;
    Ok(Versioned(workflow.version, Json(workflow.shown(&state))))
}

/// Replaces a workflow (members of its workspace): a new version. A `version` in the body
/// other than the current one answers 409; an `If-Match` naming another version, 412 with
/// the current workflow.
#[utoipa::path(put, path = "/api/workflows/{id}", tag = "workflows", security(("bearer" = [])),
    params(("id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag this write is based on")),
    request_body = WorkflowBody,
    responses((status = 200, body = Workflow, headers(("ETag" = String))),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn replace_workflow(
    State(state): State<AppState>,
    auth: AuthUser,
    if_match: IfMatch,
    AppPath(id): AppPath<Uuid>,
    AppJson(body): AppJson<WorkflowBody>,
) -> AppResult<Versioned<Json<Workflow>>> {
    let (current, _) = load_visible(&state.db, auth.id, id).await?;
    if body
        .workspace_id
        .is_some_and(|ws| ws != current.workspace_id)
    {
        return Err(AppError::invalid(
            "workspace_id",
            "a workflow stays in its workspace",
        ));
    }
    let (name, description) = check(&state.db, current.workspace_id, &body).await?;
    // Preconditions are weighed once the request is known to be valid (RFC 9110 13.2.1).
    if_match.check("workflow", current.version, || {
        current.clone().shown(&state)
    })?;
    let base = body.version.unwrap_or(current.version);
    let is_active = body.is_active.unwrap_or(current.is_active);
    let trigger = triggers::columns(&body.definition, is_active);
    let hook_secret = webhook_secret(
        &state,
        &trigger.kind,
        current.webhook_secret_encrypted.as_deref(),
    )?;
    let mut tx = state.db.begin().await?;
    let written = tx
        .execute(
            "UPDATE workflows SET name = $2, description = $3, definition = $4, is_active = $5,
                version = version + 1, updated_at = $6, trigger_kind = $8,
                trigger_event_type = $9, next_fire_at = $10, webhook_secret_encrypted = $11,
                answers_project_id = $12
             WHERE id = $1 AND version = $7",
            args![
                id,
                name.clone(),
                description,
                json!(body.definition),
                is_active,
                now(),
                base,
                trigger.kind,
                trigger.event_type,
                trigger.next_fire_at,
                hook_secret,
                trigger.answers_project_id
            ],
        )
        .await
        .conflict_on_duplicate(ONE_ANSWERING_WORKFLOW)?;
    if written == 0 {
        let now = load(&state.db, id).await?;
        return Err(stale(
            if_match.lost_race(),
            format!("the workflow changed since version {base}; read it again"),
            now.version,
            now.shown(&state),
            None,
        ));
    }
    save_version(&mut tx, id, base + 1, &body.definition, auth.id).await?;
    crate::team::audit(
        &mut tx,
        current.workspace_id,
        auth.id,
        "workflow.update",
        "workflow",
        Some(id.to_string()),
        json!({"name": name, "version": base + 1}),
    )
    .await?;
    tx.commit().await?;
    let saved = load(&state.db, id).await?;
    Ok(Versioned(saved.version, Json(saved.shown(&state))))
}

/// Deletes a workflow with its versions (its author, or the workspace's owners and admins).
#[utoipa::path(delete, path = "/api/workflows/{id}", tag = "workflows", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
pub async fn delete_workflow(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let (workflow, role) = load_visible(&state.db, auth.id, id).await?;
    if role < Role::Admin && workflow.user_id != Some(auth.id) {
        return Err(AppError::forbidden(
            "a workflow is deleted by its author or the workspace's owners and admins",
        ));
    }
    let mut tx = state.db.begin().await?;
    tx.execute("DELETE FROM workflows WHERE id = $1", args![id])
        .await?;
    crate::team::audit(
        &mut tx,
        workflow.workspace_id,
        auth.id,
        "workflow.delete",
        "workflow",
        Some(id.to_string()),
        json!({"name": workflow.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A workflow's versions, newest first.
#[utoipa::path(get, path = "/api/workflows/{id}/versions", tag = "workflows", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Page<WorkflowVersion>), (status = 400, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn list_versions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<WorkflowVersion>>> {
    load_visible(&state.db, auth.id, id).await?;
    let limit = page.limit()?;
    let mut binds = args![id];
    let mut after = String::new();
    if let Some(before) = page.integer_cursor("version")? {
        binds.push(before.into());
        after = " AND version < $2".into();
    }
    let rows: Vec<WorkflowVersion> = state
        .db
        .fetch_all(
            &format!(
                "SELECT version, definition, created_by, created_at FROM workflow_versions
                 WHERE workflow_id = $1{after} ORDER BY version DESC LIMIT {}",
                limit + 1
            ),
            binds,
        )
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |v| crate::db::Cursor {
        sort: "version".into(),
        value: Some(v.version.to_string()),
        id,
    })))
}

/// The body to check: a definition, in the workspace whose projects and plugins it names.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    pub workspace_id: Option<Uuid>,
    pub definition: Definition,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    /// Always true: an invalid definition is a 422 naming each problem.
    pub valid: bool,
    pub nodes: usize,
    pub edges: usize,
}

/// Checks a definition without saving it.
#[utoipa::path(post, path = "/api/workflows/validate", tag = "workflows", security(("bearer" = [])),
    request_body = ValidateBody,
    responses((status = 200, body = Validation), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn validate(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<ValidateBody>,
) -> AppResult<Json<Validation>> {
    let workspace_id = target_workspace(&state, &auth, body.workspace_id).await?;
    require_role(&state.db, workspace_id, auth.id, Role::Member).await?;
    let known = references(&state.db, workspace_id, &body.definition).await?;
    let errors = definition::check(&body.definition, &known);
    if !errors.is_empty() {
        return Err(AppError::fields(errors));
    }
    Ok(Json(Validation {
        valid: true,
        nodes: body.definition.nodes.len(),
        edges: body.definition.edges.len(),
    }))
}
