//! The shared access rules, each written once: a member's role in a workspace, the workspace a
//! request targets, and which projects a caller sees. Sections ask here; none repeats them.

use uuid::Uuid;

use crate::args;
use crate::auth::AuthUser;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

crate::text_enum! {
    /// A member's role in a workspace, weakest first.
    pub enum Role {
        Member = "member",
        Admin = "admin",
        Owner = "owner",
    }
}

/// The caller's role in a workspace, if they belong to it.
pub async fn workspace_role(db: &Db, workspace_id: Uuid, user_id: Uuid) -> AppResult<Option<Role>> {
    let role: Option<(String,)> = db
        .fetch_optional(
            "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
            args![workspace_id, user_id],
        )
        .await?;
    Ok(role.and_then(|(r,)| Role::parse(&r)))
}

/// The caller's role, required to be at least `min`: a stranger gets 404 (the workspace's
/// existence is not revealed), a member below `min` 403.
pub async fn require_role(
    db: &Db,
    workspace_id: Uuid,
    user_id: Uuid,
    min: Role,
) -> AppResult<Role> {
    match workspace_role(db, workspace_id, user_id).await? {
        None => Err(AppError::NotFound("workspace")),
        Some(role) if role < min => Err(AppError::forbidden(format!(
            "this needs the {} role in the workspace",
            min.as_str()
        ))),
        Some(role) => Ok(role),
    }
}

/// Each of `ids` (a list a rule or webhook is limited to, at most 100) must be a project of
/// `workspace_id`; the error names the first that is not (`field/N`).
pub async fn projects_of_workspace(
    db: &Db,
    workspace_id: Uuid,
    field: &str,
    ids: &[Uuid],
) -> AppResult<()> {
    if ids.len() > 100 {
        return Err(AppError::invalid(field, "holds at most 100 projects"));
    }
    for (i, id) in ids.iter().enumerate() {
        let found: Option<(Uuid,)> = db
            .fetch_optional(
                "SELECT id FROM projects WHERE id = $1 AND workspace_id = $2",
                args![*id, workspace_id],
            )
            .await?;
        if found.is_none() {
            return Err(AppError::invalid(
                &format!("{field}/{i}"),
                "is not a project of this workspace",
            ));
        }
    }
    Ok(())
}

/// The workspace made for `user_id` at registration.
pub async fn personal_workspace(db: &Db, user_id: Uuid) -> AppResult<Option<Uuid>> {
    let row: Option<(Uuid,)> = db
        .fetch_optional(
            "SELECT id FROM team_workspaces WHERE owner_id = $1 AND is_personal = $2 ORDER BY id LIMIT 1",
            args![user_id, true],
        )
        .await?;
    Ok(row.map(|(id,)| id))
}

/// The caller's target workspace: the one asked for (they must belong to it) or their
/// personal one.
pub async fn target_workspace(
    state: &AppState,
    auth: &AuthUser,
    asked: Option<Uuid>,
) -> AppResult<Uuid> {
    match asked {
        Some(id) => {
            require_role(&state.db, id, auth.id, Role::Member)
                .await
                .map_err(|e| match e {
                    AppError::NotFound(_) => {
                        AppError::invalid("workspace_id", "is not a workspace you belong to")
                    }
                    other => other,
                })?;
            Ok(id)
        }
        None => personal_workspace(&state.db, auth.id)
            .await?
            .ok_or_else(|| {
                AppError::invalid(
                    "workspace_id",
                    "is required: you have no personal workspace",
                )
            }),
    }
}

/// Whether archived projects count among the visible ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    Included,
    Excluded,
}

/// A query of the ids (column `id`) of the projects that user `$user` sees at time `$at`
/// (placeholders as given, e.g. `$1`, `$2`): those of the workspaces they belong to and those
/// shared with them by a live share. It starts from the caller's memberships and shares, so
/// its cost follows what the caller sees, never the size of the instance.
pub fn visible_projects(user: &str, at: &str, archived: Archived) -> String {
    let live = match archived {
        Archived::Included => "",
        Archived::Excluded => " AND vp.archived_at IS NULL",
    };
    format!(
        "SELECT vp.id FROM workspace_members vm
            JOIN projects vp ON vp.workspace_id = vm.workspace_id
            WHERE vm.user_id = {user}{live}
         UNION
         SELECT vp.id FROM project_shares vs
            JOIN projects vp ON vp.id = vs.project_id
            WHERE vs.user_id = {user} AND (vs.expires_at IS NULL OR vs.expires_at > {at}){live}"
    )
}
