//! `/api/team/*`: team workspaces and their members, and `/api/audit-log`.
//! Every resource belongs to a workspace; membership and role decide what a user may do.

pub mod audit;
mod members;
mod workspaces;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

pub use audit::record as audit;
pub use workspaces::{create_workspace, personal_workspace};

use crate::args;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(workspaces::router())
        .merge(members::router())
        .merge(audit::router())
}

/// A member's role in a workspace, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
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
