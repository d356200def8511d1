//! `/api/projects/*` and `/api/agent-templates`: agents, their sharing, bulk operations,
//! duplication and performance.
//!
//! Who may do what to a project: workspace owners and admins, and the project's owner, have
//! `admin`; other workspace members `edit`; a share grants its permission until it expires.
//! `view` reads, `edit` changes, `admin` also shares and deletes. A project the caller cannot
//! see answers 404, never its data.

mod bulk;
pub mod collaboration;
pub mod crud;
mod performance;
mod provider;
pub mod queries;
pub mod revisions;
mod sharing;
mod templates;
pub mod variants;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::access::Role;
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(crud::router())
        .merge(bulk::router())
        .merge(sharing::router())
        .merge(templates::router())
        .merge(performance::router())
        .merge(provider::router())
        .merge(variants::router())
        .merge(revisions::router())
        .merge(collaboration::router())
}

crate::text_enum! {
    /// What a caller may do with a project, weakest first.
    pub enum Permission {
        View = "view",
        Edit = "edit",
        Admin = "admin",
    }
}

crate::text_enum! {
    pub enum Status {
        Active = "active",
        Paused = "paused",
        Training = "training",
        Error = "error",
    }
}

/// A project row with the caller's workspace role and live share, if any.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    pub tags: SqlJson<Vec<String>>,
    pub status: String,
    pub settings: SqlJson<serde_json::Map<String, serde_json::Value>>,
    pub system_prompt: String,
    pub model_config: SqlJson<serde_json::Map<String, serde_json::Value>>,
    pub template_id: Option<String>,
    pub archived_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub member_role: Option<String>,
    pub share_permission: Option<String>,
}

impl ProjectRow {
    /// The caller's permission on this project, or `None` if they may not see it.
    pub fn permission(&self, caller: Uuid) -> Option<Permission> {
        let from_workspace = self
            .member_role
            .as_deref()
            .and_then(Role::parse)
            .map(|role| {
                if role >= Role::Admin || self.owner_id == caller {
                    Permission::Admin
                } else {
                    Permission::Edit
                }
            });
        let from_share = self.share_permission.as_deref().and_then(Permission::parse);
        from_workspace.max(from_share)
    }

    /// The caller's permission, required to be at least `needed`.
    pub fn require(&self, caller: Uuid, needed: Permission) -> Result<Permission, AppError> {
        match self.permission(caller) {
            None => Err(AppError::NotFound("project")),
            Some(p) if p < needed => Err(AppError::forbidden(format!(
                "this needs {} permission on the project",
                needed.as_str()
            ))),
            Some(p) => Ok(p),
        }
    }

    pub fn into_view(self, caller: Uuid) -> Project {
        let permission = self.permission(caller).unwrap_or(Permission::View);
        Project {
            id: self.id,
            workspace_id: self.workspace_id,
            owner_id: self.owner_id,
            name: self.name,
            description: self.description,
            tags: self.tags.0,
            status: self.status,
            settings: self.settings.0,
            system_prompt: self.system_prompt,
            model_config: self.model_config.0,
            template_id: self.template_id,
            archived_at: self.archived_at,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            permission,
        }
    }
}

/// An agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    #[schema(value_type = Status)]
    pub status: String,
    /// Behaviour settings (temperature, fallback message, escalation rules…).
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub system_prompt: String,
    /// Which model answers (provider, model, max_tokens…).
    pub model_config: serde_json::Map<String, serde_json::Value>,
    /// The agent template it was made from, if any.
    pub template_id: Option<String>,
    /// Set when archived; archived projects are hidden from lists unless asked for.
    pub archived_at: Option<DateTime<Utc>>,
    /// Increases with every change; send it back with `PUT` to refuse lost updates.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What the caller may do with it.
    pub permission: Permission,
}
