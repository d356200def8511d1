//! The projects' SQL, shared by the handlers.

use uuid::Uuid;

use super::ProjectRow;
use crate::access::{Archived, visible_projects};
use crate::args;
use crate::db::{Arg, Db, Exec, Tx, new_id, now, placeholders};
use crate::error::{AppError, AppResult};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};

/// Every project column plus the caller's (`$1`) workspace role and live share at time `$2`,
/// for the projects `p` joined to it.
const PROJECT_COLUMNS: &str = "SELECT p.id, p.workspace_id, p.owner_id, p.name, p.description,
        p.tags, p.status, p.settings, p.system_prompt, p.model_config, p.template_id,
        p.archived_at, p.version, p.created_at, p.updated_at,
        m.role AS member_role, s.permission AS share_permission";

/// The caller's role and live share on project `p`.
const ACCESS_JOINS: &str =
    "LEFT JOIN workspace_members m ON m.workspace_id = p.workspace_id AND m.user_id = $1
    LEFT JOIN project_shares s ON s.project_id = p.id AND s.user_id = $1
        AND (s.expires_at IS NULL OR s.expires_at > $2)";

/// Projects by id, with the caller's access (`$1`, `$2` as above).
pub fn select_projects() -> String {
    format!("{PROJECT_COLUMNS} FROM projects p {ACCESS_JOINS}")
}

/// The projects the caller (`$1` at `$2`) sees, with their access, for lists: the rows come
/// from the caller's memberships and shares (see [`visible_projects`]), never from a scan of
/// every tenant's projects.
pub fn select_visible_projects() -> String {
    format!(
        "{PROJECT_COLUMNS} FROM ({}) v CROSS JOIN projects p {ACCESS_JOINS} WHERE p.id = v.id",
        visible_projects("$1", "$2", Archived::Included)
    )
}

/// One project as the caller sees it; 404 when it does not exist or is not theirs to see.
pub async fn load<'a>(ex: impl Into<Exec<'a>>, caller: Uuid, id: Uuid) -> AppResult<ProjectRow> {
    ex.into()
        .fetch_optional::<ProjectRow>(
            &format!("{} WHERE p.id = $3", select_projects()),
            args![caller, now(), id],
        )
        .await?
        .filter(|row| row.permission(caller).is_some())
        .ok_or(AppError::NotFound("project"))
}

/// A project of `workspace_id` as the workspace itself uses it (a workflow's agent node),
/// with no caller's access; `None` when it is not there (any more).
pub async fn load_in_workspace(
    db: &Db,
    workspace_id: Uuid,
    id: Uuid,
) -> AppResult<Option<ProjectRow>> {
    Ok(db
        .fetch_optional::<ProjectRow>(
            &format!(
                "{} WHERE p.id = $3 AND p.workspace_id = $4",
                select_projects()
            ),
            args![Uuid::nil(), now(), id, workspace_id],
        )
        .await?)
}

/// The tags on the projects the caller sees, from the workspaces' tag counts and their
/// live shares, optionally of one workspace.
pub async fn available_tags(
    db: &Db,
    caller: Uuid,
    workspace: Option<Uuid>,
) -> AppResult<Vec<String>> {
    let (in_workspace, shared_in_workspace) = match workspace {
        Some(_) => (
            " AND w.workspace_id = $3",
            " JOIN projects p ON p.id = s.project_id AND p.workspace_id = $3",
        ),
        None => ("", ""),
    };
    let mut binds = args![caller, now()];
    if let Some(ws) = workspace {
        binds.push(ws.into());
    }
    let tags: Vec<(String,)> = db
        .fetch_all(
            &format!(
                "SELECT w.tag FROM workspace_tags w
                 JOIN workspace_members m ON m.workspace_id = w.workspace_id AND m.user_id = $1
                 WHERE 1 = 1{in_workspace}
                 UNION
                 SELECT t.tag FROM project_shares s
                 JOIN project_tags t ON t.project_id = s.project_id{shared_in_workspace}
                 WHERE s.user_id = $1 AND (s.expires_at IS NULL OR s.expires_at > $2)
                 ORDER BY 1 LIMIT 500"
            ),
            binds,
        )
        .await?;
    Ok(tags.into_iter().map(|(t,)| t).collect())
}

/// Several projects by id (those that exist; visibility is for the caller to check).
pub async fn load_many(tx: &mut Tx, caller: Uuid, ids: &[Uuid]) -> AppResult<Vec<ProjectRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds = args![caller, now()];
    let placeholders = placeholders(&mut binds, ids.iter().map(|id| Arg::from(*id)));
    Ok(tx
        .fetch_all(
            &format!("{} WHERE p.id IN ({placeholders})", select_projects()),
            binds,
        )
        .await?)
}

/// The fields of a project to insert.
pub struct NewProjectRecord {
    pub workspace_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub status: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub system_prompt: String,
    pub model_config: serde_json::Map<String, serde_json::Value>,
    pub template_id: Option<String>,
}

impl NewProjectRecord {
    /// A copy of `source` owned by `owner_id` in `workspace_id`, named `name`.
    pub fn copy_of(source: &ProjectRow, owner_id: Uuid, workspace_id: Uuid, name: String) -> Self {
        NewProjectRecord {
            workspace_id,
            owner_id,
            name,
            description: source.description.clone(),
            tags: source.tags.0.clone(),
            status: source.status.clone(),
            settings: source.settings.0.clone(),
            system_prompt: source.system_prompt.clone(),
            model_config: source.model_config.0.clone(),
            template_id: source.template_id.clone(),
        }
    }
}

pub async fn insert(tx: &mut Tx, p: NewProjectRecord) -> AppResult<Uuid> {
    let id = new_id();
    let at = now();
    tx.execute(
        "INSERT INTO projects (id, workspace_id, owner_id, name, description, tags, status, settings,
            system_prompt, model_config, template_id, archived_at, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, 1, $12, $12)",
        args![
            id,
            p.workspace_id,
            p.owner_id,
            p.name,
            p.description,
            serde_json::json!(p.tags),
            p.status,
            serde_json::Value::Object(p.settings),
            p.system_prompt,
            serde_json::Value::Object(p.model_config),
            p.template_id,
            at
        ],
    )
    .await?;
    insert_tags(tx, id, p.workspace_id, &p.tags).await?;
    super::revisions::record(tx, id, Some(p.owner_id), None).await?;
    Ok(id)
}

/// Replaces a project's tag rows and the workspace's tag counts (the `tags` column is
/// updated by the caller).
pub async fn replace_tags(tx: &mut Tx, project: &ProjectRow, tags: &[String]) -> AppResult<()> {
    remove_tags(tx, project).await?;
    insert_tags(tx, project.id, project.workspace_id, tags).await
}

/// Deletes a project, keeping the workspace's tag counts right.
pub async fn delete(tx: &mut Tx, project: &ProjectRow) -> AppResult<()> {
    remove_tags(tx, project).await?;
    tx.execute("DELETE FROM projects WHERE id = $1", args![project.id])
        .await?;
    Ok(())
}

async fn remove_tags(tx: &mut Tx, project: &ProjectRow) -> AppResult<()> {
    tx.execute(
        "DELETE FROM project_tags WHERE project_id = $1",
        args![project.id],
    )
    .await?;
    if project.tags.0.is_empty() {
        return Ok(());
    }
    let mut binds = args![project.workspace_id];
    let list = placeholders(&mut binds, project.tags.0.iter().map(Arg::from));
    tx.execute(
        &format!(
            "UPDATE workspace_tags SET project_count = project_count - 1
             WHERE workspace_id = $1 AND tag IN ({list})"
        ),
        binds,
    )
    .await?;
    tx.execute(
        "DELETE FROM workspace_tags WHERE workspace_id = $1 AND project_count <= 0",
        args![project.workspace_id],
    )
    .await?;
    Ok(())
}

async fn insert_tags(
    tx: &mut Tx,
    project_id: Uuid,
    workspace_id: Uuid,
    tags: &[String],
) -> AppResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    // Both statements bind the tags as $2…; $1 is the project, then the workspace.
    let mut binds = args![project_id];
    let list = placeholders(&mut binds, tags.iter().map(Arg::from));
    let values = |rest: &str| {
        list.split(", ")
            .map(|tag| format!("($1, {tag}{rest})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    tx.execute(
        &format!(
            "INSERT INTO project_tags (project_id, tag) VALUES {}",
            values("")
        ),
        binds.clone(),
    )
    .await?;
    binds[0] = workspace_id.into();
    tx.execute(
        &format!(
            "INSERT INTO workspace_tags (workspace_id, tag, project_count) VALUES {}
             ON CONFLICT (workspace_id, tag)
             DO UPDATE SET project_count = workspace_tags.project_count + 1",
            values(", 1")
        ),
        binds,
    )
    .await?;
    Ok(())
}

/// A name for a copy of `name` that fits the length limit.
pub fn copy_name(name: &str) -> String {
    let base: String = name.chars().take(super::crud::MAX_NAME - 7).collect();
    format!("{base} (copy)")
}

/// Records a `project.*` event about `project_id` (named `name`) caused by `actor`, inside
/// the transaction making the change; `extra` adds to its data.
pub async fn record_event(
    tx: &mut Tx,
    actor: Uuid,
    kind: &'static str,
    (workspace_id, project_id, name): (Uuid, Uuid, &str),
    extra: serde_json::Value,
) -> AppResult<()> {
    eventlog::record(
        tx,
        &Cause::user(actor),
        NewEvent {
            workspace_id,
            project_id: Some(project_id),
            kind,
            subject: Subject::new("project", project_id, Some(name.to_owned())),
            data: eventlog::merged(
                serde_json::json!({"project_id": project_id, "name": name}),
                extra,
            ),
        },
    )
    .await?;
    Ok(())
}
