//! `GET/PUT /api/projects/{id}/variants`: A/B variants of an agent's configuration. New chat
//! sessions are assigned a variant at random by weight; the variant's prompt and settings
//! then apply to the session, and analytics compare the variants.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::crud::{MAX_PROMPT, validate_object, validate_text};
use super::{Permission, queries};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Db, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_variants, put_variants))
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Variant {
    pub id: Uuid,
    pub name: String,
    /// Share of new sessions, 0–100; the weights of an agent add up to 100.
    pub weight: i64,
    /// Replaces the agent's system prompt in this variant's sessions.
    pub system_prompt: Option<String>,
    /// Merged over the agent's settings in this variant's sessions.
    #[schema(value_type = Object)]
    pub settings: SqlJson<serde_json::Map<String, serde_json::Value>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Variants {
    pub variants: Vec<Variant>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    /// 1–50 letters, digits, `-` or `_`, unique within the agent.
    pub name: String,
    pub weight: i64,
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantsUpdate {
    /// The whole set (2–10 variants, weights adding up to 100), or empty to stop testing.
    pub variants: Vec<NewVariant>,
}

const SELECT_VARIANTS: &str = "SELECT id, name, weight, system_prompt, settings, created_at
    FROM project_variants WHERE project_id = $1 ORDER BY name";

/// The agent's variants (view permission).
#[utoipa::path(get, path = "/api/projects/{id}/variants", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Variants), (status = 404, body = crate::error::Problem)))]
async fn get_variants(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Variants>> {
    queries::load(&state.db, auth.id, id).await?;
    let variants = state.db.fetch_all(SELECT_VARIANTS, args![id]).await?;
    Ok(Json(Variants { variants }))
}

/// Replaces the agent's variants (admin permission). Sessions already started keep theirs.
#[utoipa::path(put, path = "/api/projects/{id}/variants", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = VariantsUpdate,
    responses((status = 200, body = Variants), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn put_variants(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<VariantsUpdate>,
) -> AppResult<Json<Variants>> {
    let n = req.variants.len();
    if n == 1 || n > 10 {
        return Err(AppError::invalid(
            "variants",
            "an A/B test has 2 to 10 variants (or none)",
        ));
    }
    if n > 0 && req.variants.iter().map(|v| v.weight).sum::<i64>() != 100 {
        return Err(AppError::invalid(
            "variants",
            "the weights must add up to 100",
        ));
    }
    let mut names = Vec::new();
    for v in &req.variants {
        let valid = !v.name.is_empty()
            && v.name.len() <= 50
            && v.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid || names.contains(&v.name) {
            return Err(AppError::invalid(
                "variants",
                format!(
                    "`{}` is not a unique name of letters, digits, - or _",
                    v.name
                ),
            ));
        }
        if !(0..=100).contains(&v.weight) {
            return Err(AppError::invalid("variants", "each weight is 0 to 100"));
        }
        names.push(v.name.clone());
    }
    let mut tx = state.db.begin().await?;
    let project = queries::load(&mut tx, auth.id, id).await?;
    project.require(auth.id, Permission::Admin)?;
    tx.execute(
        "DELETE FROM project_variants WHERE project_id = $1",
        args![id],
    )
    .await?;
    for v in req.variants {
        let prompt = v
            .system_prompt
            .map(|p| validate_text("system_prompt", &p, MAX_PROMPT))
            .transpose()?;
        tx.execute(
            "INSERT INTO project_variants (id, project_id, name, weight, system_prompt, settings, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![new_id(), id, v.name, v.weight, prompt, serde_json::Value::Object(validate_object("settings", v.settings)?), now()],
        )
        .await?;
    }
    crate::team::audit(
        &mut tx,
        project.workspace_id,
        auth.id,
        "project.variants.set",
        "project",
        Some(id.to_string()),
        serde_json::json!({"variants": names}),
    )
    .await?;
    queries::record_event(
        &mut tx,
        auth.id,
        "project.updated",
        (project.workspace_id, id, &project.name),
        serde_json::json!({"fields": ["variants"]}),
    )
    .await?;
    let variants = tx.fetch_all(SELECT_VARIANTS, args![id]).await?;
    state.events.commit(tx).await?;
    Ok(Json(Variants { variants }))
}

/// Picks a variant for a new session of `project_id` by weight (none without variants).
pub async fn assign(db: &Db, project_id: Uuid) -> AppResult<Option<String>> {
    let variants: Vec<(String, i64)> = db
        .fetch_all(
            "SELECT name, weight FROM project_variants WHERE project_id = $1 ORDER BY name",
            args![project_id],
        )
        .await?;
    let total: i64 = variants.iter().map(|(_, w)| w).sum();
    if total <= 0 {
        return Ok(None);
    }
    let mut pick = rand::thread_rng().gen_range(0..total);
    for (name, weight) in variants {
        if pick < weight {
            return Ok(Some(name));
        }
        pick -= weight;
    }
    Ok(None)
}

type Settings = serde_json::Map<String, serde_json::Value>;

/// The system prompt and settings a session of `variant` uses.
pub async fn effective(
    db: &Db,
    project: &super::ProjectRow,
    variant: Option<&str>,
) -> AppResult<(String, Settings)> {
    let mut prompt = project.system_prompt.clone();
    let mut settings = project.settings.0.clone();
    if let Some(name) = variant {
        let row: Option<(Option<String>, SqlJson<Settings>)> = db
            .fetch_optional(
                "SELECT system_prompt, settings FROM project_variants WHERE project_id = $1 AND name = $2",
                args![project.id, name],
            )
            .await?;
        if let Some((p, s)) = row {
            if let Some(p) = p {
                prompt = p;
            }
            settings.extend(s.0);
        }
    }
    Ok((prompt, settings))
}
