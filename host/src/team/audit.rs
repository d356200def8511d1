//! The audit log of bulk operations and configuration changes: `GET /api/audit-log`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::{Role, require_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery, Tx, new_id};
use crate::error::{AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

/// Records one audited action inside the transaction that performs it.
pub async fn record(
    tx: &mut Tx,
    workspace_id: Uuid,
    actor_id: Uuid,
    action: &str,
    target_type: &str,
    target_id: Option<String>,
    details: serde_json::Value,
) -> AppResult<()> {
    tx.execute(
        "INSERT INTO audit_log (id, workspace_id, actor_id, action, target_type, target_id, details, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![new_id(), workspace_id, actor_id, action, target_type, target_id, details, crate::db::now()],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub actor_id: Option<Uuid>,
    /// e.g. `project.bulk.archive`, `project.update`, `member.add`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: SqlJson<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// One workspace (the caller must be its owner or an admin); left out, every workspace
    /// the caller owns or administers.
    pub workspace_id: Option<Uuid>,
    /// Only entries whose action starts with this, e.g. `project.bulk`.
    pub action: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The audit log of the workspaces the caller owns or administers (or of one of them),
/// newest first.
#[utoipa::path(get, path = "/api/audit-log", tag = "team", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn list_audit_log(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<AuditQuery>,
) -> AppResult<Json<Page<AuditEntry>>> {
    let (workspaces, mut binds) = match q.workspace_id {
        Some(id) => {
            require_role(&state.db, id, auth.id, Role::Admin).await?;
            ("workspace_id = $1", args![id])
        }
        None => (
            "workspace_id IN (SELECT workspace_id FROM workspace_members
                WHERE user_id = $1 AND role IN ('owner', 'admin'))",
            args![auth.id],
        ),
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let mut filter = String::new();
    if let Some(prefix) = q.action.filter(|a| !a.is_empty()) {
        binds.push(format!("{}%", prefix.replace(['%', '_'], "")).into());
        filter = format!(" AND action LIKE ${}", binds.len());
    }
    let entries = state
        .db
        .page_newest_first(
            &format!(
                "SELECT id, workspace_id, actor_id, action, target_type, target_id, details, created_at
                 FROM audit_log WHERE {workspaces}{filter}"
            ),
            "id",
            binds,
            &page,
            |e: &AuditEntry| e.id,
        )
        .await?;
    Ok(Json(entries))
}
