//! `POST /api/projects/bulk` and `POST /api/projects/{id}/duplicate`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::crud::{
    MAX_DESCRIPTION, MAX_PROMPT, normalize_tags, validate_name, validate_object, validate_text,
};
use super::queries::{self, NewProjectRecord, copy_name};
use super::{Permission, Project, ProjectRow, Status};
use crate::access::target_workspace;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Tx, now};
use crate::error::{AppError, AppJson, AppPath, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bulk))
        .routes(routes!(duplicate))
}

pub const MAX_BULK_IDS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Archive,
    Duplicate,
    Delete,
    UpdateSettings,
}

impl BulkAction {
    pub const NAMES: [&'static str; 4] = ["archive", "duplicate", "update_settings", "delete"];

    fn as_str(self) -> &'static str {
        match self {
            BulkAction::Archive => "archive",
            BulkAction::Duplicate => "duplicate",
            BulkAction::Delete => "delete",
            BulkAction::UpdateSettings => "update_settings",
        }
    }

    /// What the caller needs on each project. Duplicating only reads the source.
    fn needs(self) -> Permission {
        match self {
            BulkAction::Duplicate => Permission::View,
            BulkAction::Archive | BulkAction::UpdateSettings => Permission::Edit,
            BulkAction::Delete => Permission::Admin,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkAction,
    /// 1–500 project ids.
    #[schema(min_items = 1, max_items = 500)]
    pub project_ids: Vec<Uuid>,
    /// For `update_settings` only: keys merged into each project's settings
    /// (a `null` value removes the key).
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Done.
    Ok,
    /// Not done because another item failed (the whole operation was rolled back).
    RolledBack,
    NotFound,
    Forbidden,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkItem {
    pub id: Uuid,
    pub status: ItemStatus,
    /// For `duplicate`: the new project's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub action: BulkAction,
    pub succeeded: usize,
    pub results: Vec<BulkItem>,
}

/// Runs one action on many projects, all or nothing. Every id is permission-checked; when
/// any fails, nothing changes and the response (403 or 404) lists each id's outcome.
/// Rate limited per user (429 with `Retry-After`) and audited.
#[utoipa::path(post, path = "/api/projects/bulk", tag = "projects", security(("bearer" = [])),
    request_body = BulkRequest,
    responses((status = 200, body = BulkResult), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem)))]
async fn bulk(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<BulkRequest>,
) -> AppResult<Json<BulkResult>> {
    // Counted as sent, before any other work: a body of many thousand ids costs nothing.
    if req.project_ids.is_empty() || req.project_ids.len() > MAX_BULK_IDS {
        return Err(AppError::invalid(
            "project_ids",
            format!("must hold 1 to {MAX_BULK_IDS} ids"),
        ));
    }
    let mut ids: Vec<Uuid> = Vec::with_capacity(req.project_ids.len());
    for id in &req.project_ids {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    let settings = match (req.action, req.settings) {
        (BulkAction::UpdateSettings, Some(s)) => Some(validate_object("settings", s)?),
        (BulkAction::UpdateSettings, None) => {
            return Err(AppError::invalid(
                "settings",
                "is required for update_settings",
            ));
        }
        (_, Some(_)) => {
            return Err(AppError::invalid("settings", "is only for update_settings"));
        }
        (_, None) => None,
    };
    state
        .rate_limiter
        .per_minute(
            &format!("bulk:{}", auth.id),
            state.config.bulk_rate_limit_per_minute,
        )
        .await?;

    let mut tx = state.db.begin().await?;
    let rows: HashMap<Uuid, ProjectRow> = queries::load_many(&mut tx, auth.id, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let needed = req.action.needs();
    let refusals: Vec<(Uuid, ItemStatus, String)> = ids
        .iter()
        .filter_map(
            |id| match rows.get(id).map(|r| r.require(auth.id, needed)) {
                None | Some(Err(AppError::NotFound(_))) => {
                    Some((*id, ItemStatus::NotFound, "project not found".to_owned()))
                }
                Some(Err(e)) => Some((*id, ItemStatus::Forbidden, e.to_string())),
                Some(Ok(_)) => None,
            },
        )
        .collect();
    if !refusals.is_empty() {
        let status = if refusals
            .iter()
            .any(|r| matches!(r.1, ItemStatus::Forbidden))
        {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        let mut by_id: HashMap<Uuid, (ItemStatus, String)> = refusals
            .into_iter()
            .map(|(id, s, e)| (id, (s, e)))
            .collect();
        let results: Vec<BulkItem> = ids
            .iter()
            .map(|id| match by_id.remove(id) {
                Some((status, error)) => BulkItem {
                    id: *id,
                    status,
                    new_id: None,
                    error: Some(error),
                },
                None => BulkItem {
                    id: *id,
                    status: ItemStatus::RolledBack,
                    new_id: None,
                    error: None,
                },
            })
            .collect();
        return Err(AppError::Rejected {
            status,
            detail: "some projects could not be processed; nothing was changed".into(),
            results: serde_json::to_value(results).map_err(anyhow::Error::from)?,
        });
    }

    let mut results = Vec::with_capacity(ids.len());
    let mut by_workspace: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let personal = crate::access::personal_workspace(&state.db, auth.id).await?;
    for id in &ids {
        let row = &rows[id];
        by_workspace.entry(row.workspace_id).or_default().push(*id);
        let about = (row.workspace_id, *id, row.name.as_str());
        let new_id = match req.action {
            BulkAction::Archive => {
                tx.execute(
                    "UPDATE projects SET archived_at = COALESCE(archived_at, $2),
                        version = version + 1, updated_at = $2 WHERE id = $1",
                    args![*id, now()],
                )
                .await?;
                if row.archived_at.is_none() {
                    queries::record_event(&mut tx, auth.id, "project.archived", about, json!({}))
                        .await?;
                }
                None
            }
            BulkAction::Delete => {
                queries::delete(&mut tx, row).await?;
                queries::record_event(&mut tx, auth.id, "project.deleted", about, json!({}))
                    .await?;
                None
            }
            BulkAction::UpdateSettings => {
                let merged =
                    validate_object("settings", merge(row.settings.0.clone(), settings.clone()))?;
                let written = tx
                    .execute(
                        "UPDATE projects SET settings = $2, version = version + 1, updated_at = $3
                         WHERE id = $1 AND version = $4",
                        args![*id, serde_json::Value::Object(merged), now(), row.version],
                    )
                    .await?;
                if written == 0 {
                    return Err(AppError::Conflict(format!(
                        "the project {id} changed while the settings were being merged; nothing was changed, try again"
                    )));
                }
                let revision = super::revisions::record(&mut tx, *id, Some(auth.id), None).await?;
                queries::record_event(
                    &mut tx,
                    auth.id,
                    "project.updated",
                    about,
                    json!({"fields": ["settings"], "version": row.version + 1, "revision": revision}),
                )
                .await?;
                None
            }
            BulkAction::Duplicate => {
                // A copy stays in the source's workspace when the caller belongs to it, and
                // otherwise (a project shared with them) lands in their personal workspace.
                let workspace_id = if row.member_role.is_some() {
                    row.workspace_id
                } else {
                    personal.ok_or_else(|| {
                        AppError::invalid("project_ids", "you have no workspace to copy into")
                    })?
                };
                let name = copy_name(&row.name);
                let record = NewProjectRecord::copy_of(row, auth.id, workspace_id, name.clone());
                let copy = queries::insert(&mut tx, record).await?;
                queries::record_event(
                    &mut tx,
                    auth.id,
                    "project.created",
                    (workspace_id, copy, &name),
                    json!({"source_id": id}),
                )
                .await?;
                Some(copy)
            }
        };
        results.push(BulkItem {
            id: *id,
            status: ItemStatus::Ok,
            new_id,
            error: None,
        });
    }
    for (workspace_id, project_ids) in by_workspace {
        crate::team::audit(
            &mut tx,
            workspace_id,
            auth.id,
            &format!("project.bulk.{}", req.action.as_str()),
            "project",
            None,
            serde_json::json!({ "project_ids": project_ids, "settings": settings }),
        )
        .await?;
    }
    state.events.commit(tx).await?;
    Ok(Json(BulkResult {
        action: req.action,
        succeeded: results.len(),
        results,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRequest {
    /// Defaults to the source's name with ` (copy)`.
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub status: Option<Status>,
    /// Keys merged into the copied settings (`null` removes a key).
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub system_prompt: Option<String>,
    /// Keys merged into the copied model configuration (`null` removes a key).
    pub model_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Where the copy goes; defaults to the source's workspace when the caller belongs to
    /// it, else the caller's personal workspace.
    pub workspace_id: Option<Uuid>,
}

fn merge(
    mut base: serde_json::Map<String, serde_json::Value>,
    overrides: Option<serde_json::Map<String, serde_json::Value>>,
) -> serde_json::Map<String, serde_json::Value> {
    for (k, v) in overrides.into_iter().flatten() {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
    base
}

/// Copies an agent (view permission on the source) with changes.
#[utoipa::path(post, path = "/api/projects/{id}/duplicate", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = Option<DuplicateRequest>, description = "Optional; an empty body copies as is"),
    responses((status = 201, body = Project), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn duplicate(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    body: Option<AppJson<DuplicateRequest>>,
) -> AppResult<(StatusCode, Json<Project>)> {
    let req = body.map(|AppJson(r)| r).unwrap_or_default();
    let source = queries::load(&state.db, auth.id, id).await?;
    let workspace_id = match req.workspace_id {
        Some(ws) => target_workspace(&state, &auth, Some(ws)).await?,
        None if source.member_role.is_some() => source.workspace_id,
        None => target_workspace(&state, &auth, None).await?,
    };
    let name = match req.name {
        Some(n) => validate_name(&n)?,
        None => copy_name(&source.name),
    };
    let mut record = NewProjectRecord::copy_of(&source, auth.id, workspace_id, name.clone());
    if let Some(d) = req.description {
        record.description = validate_text("description", &d, MAX_DESCRIPTION)?;
    }
    if let Some(t) = req.tags {
        record.tags = normalize_tags(&t)?;
    }
    if let Some(s) = req.status {
        record.status = s.as_str().to_owned();
    }
    if let Some(p) = req.system_prompt {
        record.system_prompt = validate_text("system_prompt", &p, MAX_PROMPT)?;
    }
    record.settings = validate_object("settings", merge(record.settings, req.settings))?;
    record.model_config =
        validate_object("model_config", merge(record.model_config, req.model_config))?;
    let mut tx: Tx = state.db.begin().await?;
    let new_id = queries::insert(&mut tx, record).await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.created",
        (workspace_id, new_id, &name),
        json!({"source_id": id}),
    )
    .await?;
    crate::team::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "project.duplicate",
        "project",
        Some(new_id.to_string()),
        serde_json::json!({ "source_id": id }),
    )
    .await?;
    state.events.commit(tx).await?;
    let row = queries::load(&state.db, auth.id, new_id).await?;
    Ok((StatusCode::CREATED, Json(row.into_view(auth.id))))
}
