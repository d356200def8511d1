//! `POST/GET /api/projects`, `GET/PUT/DELETE /api/projects/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::queries::{self, NewProjectRecord};
use super::{Permission, Project, ProjectRow, Status};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Cursor, Db, Filter, Page, PageQuery, Tx, contains_pattern, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::precondition::{IfMatch, Versioned, stale};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
}

pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2_000;
pub const MAX_PROMPT: usize = 20_000;
const MAX_TAGS: usize = 20;
const MAX_JSON_BYTES: usize = 64 * 1024;

pub fn validate_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(AppError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

pub fn validate_text(field: &str, value: &str, max: usize) -> AppResult<String> {
    if value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Lower-cased, trimmed, de-duplicated tags of letters, digits, `-`, `_` and spaces.
pub fn normalize_tags(tags: &[String]) -> AppResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        let valid = !tag.is_empty()
            && tag.chars().count() <= 50
            && tag
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '));
        if !valid {
            return Err(AppError::invalid(
                "tags",
                format!("`{tag}` must be 1 to 50 letters, digits, `-`, `_` or spaces"),
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(AppError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

pub fn validate_object(
    field: &str,
    value: serde_json::Map<String, serde_json::Value>,
) -> AppResult<serde_json::Map<String, serde_json::Value>> {
    let size = serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_JSON_BYTES {
        return Err(AppError::invalid(
            field,
            format!("must be at most {MAX_JSON_BYTES} bytes of JSON"),
        ));
    }
    Ok(value)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 1–200 characters; may be left out when `template_id` gives one.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Defaults to `active`.
    pub status: Option<Status>,
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub system_prompt: Option<String>,
    pub model_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Defaults to the caller's personal workspace; the caller must belong to it.
    pub workspace_id: Option<Uuid>,
    /// An agent template (`GET /api/agent-templates`) whose prompt, settings and tags
    /// are the defaults for the fields left out.
    pub template_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TemplateDefaults {
    name: String,
    description: String,
    system_prompt: String,
    settings: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    model_config: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    tags: sqlx::types::Json<Vec<String>>,
}

/// Creates an agent, optionally from a template.
#[utoipa::path(post, path = "/api/projects", tag = "projects", security(("bearer" = [])),
    request_body = NewProject,
    responses((status = 201, body = Project), (status = 422, body = crate::error::Problem)))]
async fn create_project(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewProject>,
) -> AppResult<Versioned<(StatusCode, Json<Project>)>> {
    let template: Option<TemplateDefaults> = match &req.template_id {
        Some(id) => Some(
            state
                .db
                .fetch_optional(
                    "SELECT name, description, system_prompt, settings, model_config, tags
                     FROM agent_templates WHERE id = $1",
                    args![id],
                )
                .await?
                .ok_or_else(|| AppError::invalid("template_id", "is not an agent template"))?,
        ),
        None => None,
    };
    let name = match (req.name, &template) {
        (Some(n), _) => validate_name(&n)?,
        (None, Some(t)) => t.name.clone(),
        (None, None) => return Err(AppError::invalid("name", "is required")),
    };
    let tags = normalize_tags(
        &req.tags
            .or_else(|| template.as_ref().map(|t| t.tags.0.clone()))
            .unwrap_or_default(),
    )?;
    let record = NewProjectRecord {
        workspace_id: crate::access::target_workspace(&state, &auth, req.workspace_id).await?,
        owner_id: auth.id,
        name,
        description: validate_text(
            "description",
            &req.description
                .or_else(|| template.as_ref().map(|t| t.description.clone()))
                .unwrap_or_default(),
            MAX_DESCRIPTION,
        )?,
        tags,
        status: req.status.unwrap_or(Status::Active).as_str().to_owned(),
        settings: validate_object(
            "settings",
            req.settings
                .or_else(|| template.as_ref().map(|t| t.settings.0.clone()))
                .unwrap_or_default(),
        )?,
        system_prompt: validate_text(
            "system_prompt",
            &req.system_prompt
                .or_else(|| template.as_ref().map(|t| t.system_prompt.clone()))
                .unwrap_or_default(),
            MAX_PROMPT,
        )?,
        model_config: validate_object(
            "model_config",
            req.model_config
                .or_else(|| template.as_ref().map(|t| t.model_config.0.clone()))
                .unwrap_or_default(),
        )?,
        template_id: req.template_id,
    };
    let workspace_id = record.workspace_id;
    let name = record.name.clone();
    let mut tx = state.db.begin().await?;
    let id = queries::insert(&mut tx, record).await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.created",
        (workspace_id, id, &name),
        serde_json::json!({}),
    )
    .await?;
    crate::team::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "project.create",
        "project",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    state.events.commit(tx).await?;
    let row = queries::load(&state.db, auth.id, id).await?;
    Ok(Versioned(
        row.version,
        (StatusCode::CREATED, Json(row.into_view(auth.id))),
    ))
}

/// One agent.
#[utoipa::path(get, path = "/api/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Project, headers(("ETag" = String, description = "The project's version, for If-Match"))),
        (status = 404, body = crate::error::Problem)))]
async fn get_project(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Versioned<Json<Project>>> {
    let row = queries::load(&state.db, auth.id, id).await?;
    Ok(Versioned(row.version, Json(row.into_view(auth.id))))
}

/// A partial update: fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub status: Option<Status>,
    /// Replaces the settings object.
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub system_prompt: Option<String>,
    /// Replaces the model configuration object.
    pub model_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// The `version` this update was based on: changes made since are merged with this one
    /// field by field; a field both changed is a 409 listing the `conflicts`.
    pub version: Option<i64>,
}

/// Changes an agent (edit permission). A write based on an older version (`version` in the
/// body) is merged field by field: fields changed since that version are kept unless the
/// write changes them too, in which case it is a 409 listing the `conflicts`. `If-Match`
/// instead asks for the exact version: any other answers 412 with the current project.
#[utoipa::path(put, path = "/api/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag this write is based on")),
    request_body = ProjectUpdate,
    responses((status = 200, body = Project, headers(("ETag" = String))),
        (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 412, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_project(
    State(state): State<AppState>,
    auth: AuthUser,
    if_match: IfMatch,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<ProjectUpdate>,
) -> AppResult<Versioned<Json<Project>>> {
    let mut tx = state.db.begin().await?;
    let row = queries::load(&mut tx, auth.id, id).await?;
    row.require(auth.id, Permission::Edit)?;
    // Preconditions are weighed once the request is known to be valid (RFC 9110 13.2.1).
    let base = if_match.base().or(req.version);
    let mut edits = validated(req)?;
    if_match.check("project", row.version, || row.clone().into_view(auth.id))?;
    if let Some(base) = base.filter(|b| *b != row.version) {
        edits = merge(&mut tx, &row, auth.id, base, edits).await?;
    }
    let edit = Edit {
        author: auth.id,
        edits,
        restored_from: None,
        if_match,
        from_live_document: false,
    };
    apply(&state, tx, &row, edit).await
}

/// The fields of an agent that `PUT` edits (and a restore puts back).
pub const EDITABLE: [&str; 7] = [
    "name",
    "description",
    "tags",
    "status",
    "settings",
    "system_prompt",
    "model_config",
];

/// A change to apply: new values of some [`EDITABLE`] fields, already validated.
pub struct Edit {
    pub author: Uuid,
    pub edits: serde_json::Map<String, serde_json::Value>,
    /// The revision a restore puts back.
    pub restored_from: Option<i64>,
    /// The write's precondition: under `If-Match`, losing a race is a 412.
    pub if_match: IfMatch,
    /// The change comes from the live document itself (its write-back), so it is not merged
    /// back into it.
    pub from_live_document: bool,
}

/// The request's fields, validated, as the JSON values they are stored as.
fn validated(req: ProjectUpdate) -> AppResult<serde_json::Map<String, serde_json::Value>> {
    use serde_json::{Value, json};
    let mut edits = serde_json::Map::new();
    if let Some(name) = req.name {
        edits.insert("name".into(), json!(validate_name(&name)?));
    }
    if let Some(d) = req.description {
        let d = validate_text("description", &d, MAX_DESCRIPTION)?;
        edits.insert("description".into(), json!(d));
    }
    if let Some(tags) = req.tags {
        edits.insert("tags".into(), json!(normalize_tags(&tags)?));
    }
    if let Some(status) = req.status {
        edits.insert("status".into(), json!(status.as_str()));
    }
    if let Some(settings) = req.settings {
        let settings = validate_object("settings", settings)?;
        edits.insert("settings".into(), Value::Object(settings));
    }
    if let Some(prompt) = req.system_prompt {
        let prompt = validate_text("system_prompt", &prompt, MAX_PROMPT)?;
        edits.insert("system_prompt".into(), json!(prompt));
    }
    if let Some(config) = req.model_config {
        let config = validate_object("model_config", config)?;
        edits.insert("model_config".into(), Value::Object(config));
    }
    Ok(edits)
}

/// The editable fields of a project as stored.
fn editable(row: &ProjectRow) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{Value, json};
    serde_json::Map::from_iter([
        ("name".to_owned(), json!(row.name)),
        ("description".to_owned(), json!(row.description)),
        ("tags".to_owned(), json!(row.tags.0)),
        ("status".to_owned(), json!(row.status)),
        ("settings".to_owned(), Value::Object(row.settings.0.clone())),
        ("system_prompt".to_owned(), json!(row.system_prompt)),
        (
            "model_config".to_owned(),
            Value::Object(row.model_config.0.clone()),
        ),
    ])
}

/// The edits of a write based on version `base` that still apply: fields the writer left as
/// they were at `base` are dropped (changes made since are kept); a field both the writer and
/// someone since changed, to different values, is a conflict (409 listing each).
async fn merge(
    tx: &mut Tx,
    row: &ProjectRow,
    caller: Uuid,
    base: i64,
    edits: serde_json::Map<String, serde_json::Value>,
) -> AppResult<serde_json::Map<String, serde_json::Value>> {
    let changed_since = || {
        format!(
            "the project changed since version {base}; it is now version {}",
            row.version
        )
    };
    let base_config = match base < row.version {
        true => super::revisions::config_at(tx, row.id, base).await?,
        false => None,
    };
    let current_view = || row.clone().into_view(caller);
    let Some(base_config) = base_config else {
        return Err(stale(
            StatusCode::CONFLICT,
            changed_since(),
            row.version,
            current_view(),
            None,
        ));
    };
    let current = editable(row);
    let null = serde_json::Value::Null;
    let mut kept = serde_json::Map::new();
    let mut conflicts = Vec::new();
    for (field, yours) in edits {
        let was = base_config.get(&field).unwrap_or(&null);
        if &yours == was {
            continue;
        }
        let theirs = current.get(&field).unwrap_or(&null);
        if theirs != was && theirs != &yours {
            conflicts.push(serde_json::json!({
                "field": field, "base": was, "theirs": theirs, "yours": yours,
            }));
        }
        kept.insert(field, yours);
    }
    if !conflicts.is_empty() {
        return Err(stale(
            StatusCode::CONFLICT,
            format!("{}, and both changed the same fields", changed_since()),
            row.version,
            current_view(),
            Some(serde_json::Value::Array(conflicts)),
        ));
    }
    Ok(kept)
}

/// Writes `edit` over the version read, records the revision, the audit entry and the
/// `project.updated` event, and answers the project with its new `ETag`.
pub async fn apply(
    state: &AppState,
    mut tx: Tx,
    row: &ProjectRow,
    edit: Edit,
) -> AppResult<Versioned<Json<Project>>> {
    let current = editable(row);
    let mut next = current.clone();
    next.extend(edit.edits);
    let changed: Vec<&str> = EDITABLE
        .into_iter()
        .filter(|f| next.get(*f) != current.get(*f))
        .collect();
    let text = |field: &str| next[field].as_str().unwrap_or_default().to_owned();
    let tags: Vec<String> = serde_json::from_value(next["tags"].clone()).unwrap_or_default();
    // Written only over the version read: of concurrent updates based on one version, one
    // wins and the others get 409 (PostgreSQL re-checks the condition after a writer commits).
    let written = tx
        .execute(
            "UPDATE projects SET name = $2, description = $3, tags = $4, status = $5, settings = $6,
                system_prompt = $7, model_config = $8, version = version + 1, updated_at = $9
             WHERE id = $1 AND version = $10",
            args![
                row.id,
                text("name"),
                text("description"),
                serde_json::json!(tags),
                text("status"),
                next["settings"].clone(),
                text("system_prompt"),
                next["model_config"].clone(),
                now(),
                row.version
            ],
        )
        .await?;
    if written == 0 {
        drop(tx);
        let now = queries::load(&state.db, edit.author, row.id).await?;
        return Err(stale(
            edit.if_match.lost_race(),
            format!(
                "the project changed while version {} was being updated; read it again",
                row.version
            ),
            now.version,
            now.into_view(edit.author),
            None,
        ));
    }
    if changed.contains(&"tags") {
        queries::replace_tags(&mut tx, row, &tags).await?;
    }
    let revision =
        super::revisions::record(&mut tx, row.id, Some(edit.author), edit.restored_from).await?;
    let absorbed = match edit.from_live_document {
        true => None,
        false => {
            let changed_values: serde_json::Map<_, _> = changed
                .iter()
                .map(|f| ((*f).to_owned(), next[*f].clone()))
                .collect();
            super::collaboration::room::absorb(&mut tx, row.id, &changed_values).await?
        }
    };
    let about = serde_json::json!({
        "fields": changed, "version": row.version + 1, "revision": revision,
        "restored_from": edit.restored_from,
    });
    crate::team::audit(
        &mut tx,
        row.workspace_id,
        edit.author,
        "project.update",
        "project",
        Some(row.id.to_string()),
        about.clone(),
    )
    .await?;
    let updated = queries::load(&mut tx, edit.author, row.id).await?;
    queries::record_event(
        &mut tx,
        edit.author,
        "project.updated",
        (row.workspace_id, row.id, updated.name.as_str()),
        about,
    )
    .await?;
    state.events.commit(tx).await?;
    if let Some(update) = absorbed {
        super::collaboration::room::publish_absorbed(state, row.id, edit.author, update).await;
    }
    Ok(Versioned(
        updated.version,
        Json(updated.into_view(edit.author)),
    ))
}

/// Deletes an agent (admin permission).
#[utoipa::path(delete, path = "/api/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn delete_project(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = queries::load(&mut tx, auth.id, id).await?;
    row.require(auth.id, Permission::Admin)?;
    queries::delete(&mut tx, &row).await?;
    crate::team::audit(
        &mut tx,
        row.workspace_id,
        auth.id,
        "project.delete",
        "project",
        Some(id.to_string()),
        serde_json::json!({ "name": row.name }),
    )
    .await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.deleted",
        (row.workspace_id, id, &row.name),
        serde_json::json!({}),
    )
    .await?;
    state.events.commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectListQuery {
    /// Only projects with any of these tags (comma-separated).
    pub tag: Option<String>,
    /// Only projects in any of these statuses (comma-separated).
    pub status: Option<String>,
    /// Text that the name or description contains (case-insensitive).
    pub q: Option<String>,
    /// `name`, `created_at` or `updated_at`, with a leading `-` for descending
    /// (default `-updated_at`).
    pub sort: Option<String>,
    /// Only projects of this workspace.
    pub workspace_id: Option<Uuid>,
    /// Include archived projects (default false).
    pub include_archived: Option<bool>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectFilters {
    /// The tags on the caller's projects (of `workspace_id` when given, archived ones
    /// included), for the tag filter; not narrowed by the other filters.
    pub available_tags: Vec<String>,
    pub performance_metrics: Vec<&'static str>,
    pub status_options: Vec<&'static str>,
}

/// The enhanced project list (seed §3).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<Project>,
    pub next_cursor: Option<String>,
    pub filters: ProjectFilters,
    pub bulk_actions: Vec<&'static str>,
}

#[derive(Clone, Copy)]
enum SortColumn {
    Name,
    CreatedAt,
    UpdatedAt,
}

fn parse_sort(sort: &str) -> AppResult<(SortColumn, bool)> {
    let (descending, column) = match sort.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, sort),
    };
    let column = match column {
        "name" => SortColumn::Name,
        "created_at" => SortColumn::CreatedAt,
        "updated_at" => SortColumn::UpdatedAt,
        _ => {
            return Err(AppError::BadRequest(format!(
                "`sort` must be name, created_at or updated_at, optionally with a leading `-`; got `{sort}`"
            )));
        }
    };
    Ok((column, descending))
}

fn split_list(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The caller's agents with filters, sort and keyset pagination, plus the filter facets.
#[utoipa::path(get, path = "/api/projects", tag = "projects", security(("bearer" = [])),
    params(ProjectListQuery),
    responses((status = 200, body = ProjectList), (status = 400, body = crate::error::Problem)))]
async fn list_projects(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ProjectListQuery>,
) -> AppResult<Json<ProjectList>> {
    let page = list_page(&state.db, auth.id, &q).await?;
    let available_tags = queries::available_tags(&state.db, auth.id, q.workspace_id).await?;
    Ok(Json(ProjectList {
        projects: page
            .items
            .into_iter()
            .map(|r| r.into_view(auth.id))
            .collect(),
        next_cursor: page.next_cursor,
        filters: ProjectFilters {
            available_tags,
            performance_metrics: vec!["success_rate", "response_time", "satisfaction"],
            status_options: Status::ALL.iter().map(|s| s.as_str()).collect(),
        },
        bulk_actions: super::bulk::BulkAction::NAMES.to_vec(),
    }))
}

/// One page of the projects `caller` sees, filtered and sorted as `q` asks. The rows come
/// from the caller's memberships and shares, so the cost follows what they see.
pub async fn list_page(db: &Db, caller: Uuid, q: &ProjectListQuery) -> AppResult<Page<ProjectRow>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = page.limit()?;
    let sort = q.sort.clone().unwrap_or_else(|| "-updated_at".into());
    let (column, descending) = parse_sort(&sort)?;
    let cursor = page.cursor(&sort)?;

    let mut filter = Filter::after(args![caller, now()]);
    if let Some(ws) = q.workspace_id {
        filter.and(" AND p.workspace_id = {}", ws);
    }
    if !q.include_archived.unwrap_or(false) {
        filter.sql += " AND p.archived_at IS NULL";
    }
    let statuses = split_list(q.status.as_deref());
    for s in &statuses {
        if Status::parse(s).is_none() {
            return Err(AppError::BadRequest(format!(
                "`status` must be among active, paused, training, error; got `{s}`"
            )));
        }
    }
    if !statuses.is_empty() {
        let list = filter.list(statuses.into_iter().map(Arg::from));
        filter.sql += &format!(" AND p.status IN ({list})");
    }
    let tags = split_list(q.tag.as_deref());
    if !tags.is_empty() {
        let list = filter.list(tags.into_iter().map(Arg::from));
        filter.sql += &format!(
            " AND EXISTS (SELECT 1 FROM project_tags t WHERE t.project_id = p.id AND t.tag IN ({list}))"
        );
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let n = filter.bind(contains_pattern(text));
        filter.sql += &format!(
            " AND (LOWER(p.name) LIKE {n} ESCAPE '\\' OR LOWER(p.description) LIKE {n} ESCAPE '\\')"
        );
    }

    let column_sql = match column {
        SortColumn::Name => "p.name",
        SortColumn::CreatedAt => "p.created_at",
        SortColumn::UpdatedAt => "p.updated_at",
    };
    let (op, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(c) = &cursor {
        let value: Arg = match (column, c.value.as_deref()) {
            (SortColumn::Name, Some(v)) => v.into(),
            (_, Some(v)) => DateTime::parse_from_rfc3339(v)
                .map(|t| Arg::from(t.with_timezone(&Utc)))
                .map_err(|_| {
                    AppError::BadRequest("`cursor` is not a cursor this API issued".into())
                })?,
            (_, None) => {
                return Err(AppError::BadRequest(
                    "`cursor` is not a cursor this API issued".into(),
                ));
            }
        };
        let v = filter.bind(value);
        let i = filter.bind(c.id);
        filter.sql +=
            &format!(" AND ({column_sql} {op} {v} OR ({column_sql} = {v} AND p.id {op} {i}))");
    }
    let rows: Vec<ProjectRow> = db
        .fetch_all(
            &format!(
                "{}{} ORDER BY {column_sql} {dir}, p.id {dir} LIMIT {}",
                queries::select_visible_projects(),
                filter.sql,
                limit + 1
            ),
            filter.binds,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        sort: sort.clone(),
        value: Some(match column {
            SortColumn::Name => r.name.clone(),
            SortColumn::CreatedAt => r.created_at.to_rfc3339(),
            SortColumn::UpdatedAt => r.updated_at.to_rfc3339(),
        }),
        id: r.id,
    }))
}
