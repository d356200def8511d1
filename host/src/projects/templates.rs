//! `GET /api/agent-templates`: pre-built agents (customer_support, sales, hr, general).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::{Cursor, Page, PageQuery};
use crate::error::{AppError, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_templates))
}

pub const CATEGORIES: [&str; 4] = ["customer_support", "sales", "hr", "general"];

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AgentTemplate {
    /// Pass as `template_id` to `POST /api/projects`.
    pub id: String,
    pub category: String,
    pub name: String,
    pub description: String,
    pub system_prompt: String,
    #[schema(value_type = Object)]
    pub settings: SqlJson<serde_json::Value>,
    #[schema(value_type = Object)]
    pub model_config: SqlJson<serde_json::Value>,
    #[schema(value_type = Vec<String>)]
    pub tags: SqlJson<Vec<String>>,
    #[serde(skip)]
    pub position: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    /// customer_support, sales, hr or general.
    pub category: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The agent templates, optionally of one category.
#[utoipa::path(get, path = "/api/agent-templates", tag = "projects", security(("bearer" = [])),
    params(TemplateQuery),
    responses((status = 200, body = Page<AgentTemplate>), (status = 400, body = crate::error::Problem)))]
async fn list_templates(
    State(state): State<AppState>,
    _auth: AuthUser,
    AppQuery(q): AppQuery<TemplateQuery>,
) -> AppResult<Json<Page<AgentTemplate>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let mut binds = Vec::new();
    let mut filter = String::from(" WHERE 1 = 1");
    if let Some(category) = q.category.filter(|c| !c.is_empty()) {
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(AppError::BadRequest(format!(
                "`category` must be one of {}; got `{category}`",
                CATEGORIES.join(", ")
            )));
        }
        binds.push(category.into());
        filter += &format!(" AND category = ${}", binds.len());
    }
    // Templates are few and ordered by a curated position, which the cursor carries.
    if let Some(position) = page.integer_cursor("position")? {
        binds.push(position.into());
        filter += &format!(" AND position > ${}", binds.len());
    }
    let rows: Vec<AgentTemplate> = state
        .db
        .fetch_all(
            &format!(
                "SELECT id, category, name, description, system_prompt, settings, model_config, tags, position
                 FROM agent_templates{filter} ORDER BY position LIMIT {}",
                limit + 1
            ),
            binds,
        )
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |t| Cursor {
        sort: "position".into(),
        value: Some(t.position.to_string()),
        id: Uuid::nil(),
    })))
}
