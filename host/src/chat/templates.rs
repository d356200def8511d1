//! `GET/POST /api/chat/templates`, `DELETE /api/chat/templates/{id}`: conversation starters.
//! Built-in ones belong to no workspace; workspace admins add their own.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::{Role, require_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(delete_template))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    CustomerSupport,
    Sales,
    General,
}

impl Category {
    fn as_str(self) -> &'static str {
        match self {
            Category::CustomerSupport => "customer_support",
            Category::Sales => "sales",
            Category::General => "general",
        }
    }
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ChatTemplate {
    pub id: Uuid,
    /// None for built-in templates.
    pub workspace_id: Option<Uuid>,
    #[schema(value_type = Category)]
    pub category: String,
    pub title: String,
    /// The opening message the template sends.
    pub content: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    pub category: Option<Category>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Built-in templates and those of the caller's workspaces, newest first.
#[utoipa::path(get, path = "/api/chat/templates", tag = "chat", security(("bearer" = [])),
    params(TemplateQuery),
    responses((status = 200, body = Page<ChatTemplate>), (status = 400, body = crate::error::Problem)))]
async fn list_templates(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<TemplateQuery>,
) -> AppResult<Json<Page<ChatTemplate>>> {
    let mut binds = args![auth.id];
    let mut filter = String::new();
    if let Some(c) = q.category {
        binds.push(c.as_str().into());
        filter = format!(" AND t.category = ${}", binds.len());
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let templates = state
        .db
        .page_newest_first(
            &format!(
                "SELECT t.id, t.workspace_id, t.category, t.title, t.content, t.description, t.created_at
                 FROM chat_templates t
                 WHERE (t.workspace_id IS NULL OR t.workspace_id IN
                    (SELECT workspace_id FROM workspace_members WHERE user_id = $1)){filter}"
            ),
            "t.id",
            binds,
            &page,
            |t: &ChatTemplate| t.id,
        )
        .await?;
    Ok(Json(templates))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChatTemplate {
    /// A workspace the caller administers.
    pub workspace_id: Uuid,
    pub category: Category,
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// 1–5,000 characters.
    #[schema(min_length = 1, max_length = 5000)]
    pub content: String,
    #[serde(default)]
    pub description: String,
}

/// Adds a template to a workspace (owners and admins).
#[utoipa::path(post, path = "/api/chat/templates", tag = "chat", security(("bearer" = [])),
    request_body = NewChatTemplate,
    responses((status = 201, body = ChatTemplate), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_template(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewChatTemplate>,
) -> AppResult<(StatusCode, Json<ChatTemplate>)> {
    require_role(&state.db, req.workspace_id, auth.id, Role::Admin).await?;
    let title = req.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::invalid("title", "must be 1 to 200 characters"));
    }
    let content = req.content.trim();
    if content.is_empty() || content.chars().count() > 5_000 {
        return Err(AppError::invalid("content", "must be 1 to 5000 characters"));
    }
    if req.description.chars().count() > 500 {
        return Err(AppError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    let id = new_id();
    let mut tx = state.db.begin().await?;
    tx.execute(
        "INSERT INTO chat_templates (id, workspace_id, category, title, content, description, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![id, req.workspace_id, req.category.as_str(), title, content, req.description.trim(), auth.id, now()],
    )
    .await?;
    crate::team::audit(
        &mut tx,
        req.workspace_id,
        auth.id,
        "chat_template.create",
        "chat_template",
        Some(id.to_string()),
        serde_json::json!({"title": title}),
    )
    .await?;
    let template = tx
        .fetch_one(
            "SELECT id, workspace_id, category, title, content, description, created_at FROM chat_templates WHERE id = $1",
            args![id],
        )
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(template)))
}

/// Removes a workspace's template (owners and admins; built-ins cannot be removed).
#[utoipa::path(delete, path = "/api/chat/templates/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn delete_template(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let owner: Option<(Option<Uuid>,)> = state
        .db
        .fetch_optional(
            "SELECT workspace_id FROM chat_templates WHERE id = $1",
            args![id],
        )
        .await?;
    let workspace_id = match owner {
        None => return Err(AppError::NotFound("chat template")),
        Some((None,)) => return Err(AppError::forbidden("built-in templates cannot be removed")),
        Some((Some(ws),)) => ws,
    };
    require_role(&state.db, workspace_id, auth.id, Role::Admin)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("chat template"),
            other => other,
        })?;
    let mut tx = state.db.begin().await?;
    tx.execute("DELETE FROM chat_templates WHERE id = $1", args![id])
        .await?;
    crate::team::audit(
        &mut tx,
        workspace_id,
        auth.id,
        "chat_template.delete",
        "chat_template",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
