//! Custom keyboard shortcuts and quick actions: `POST/GET/DELETE /api/shortcuts/custom`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::auth::AuthUser;
use crate::db::{Page, PageQuery, new_id};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult, ConflictOnDuplicate};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_shortcut, list_shortcuts))
        .routes(routes!(delete_shortcut))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShortcut {
    /// A key combination such as `ctrl+shift+k`: modifiers (ctrl, alt, shift, meta, cmd)
    /// joined by `+`, then one key.
    pub keys: String,
    /// What the frontend runs, e.g. `open_chat`, `new_project`.
    pub action: String,
    #[serde(default)]
    pub description: String,
    /// Arguments of the action.
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Shortcut {
    pub id: Uuid,
    pub keys: String,
    pub action: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub parameters: SqlJson<serde_json::Map<String, serde_json::Value>>,
    pub created_at: DateTime<Utc>,
}

const MODIFIERS: [&str; 5] = ["ctrl", "alt", "shift", "meta", "cmd"];

/// Canonical form of a key combination: lower case, modifiers in a fixed order.
fn normalize_keys(keys: &str) -> Result<String, AppError> {
    let parts: Vec<String> = keys.split('+').map(|p| p.trim().to_lowercase()).collect();
    let Some((key, modifiers)) = parts.split_last() else {
        return Err(AppError::invalid("keys", "must not be empty"));
    };
    if key.is_empty() || key.chars().count() > 20 || MODIFIERS.contains(&key.as_str()) {
        return Err(AppError::invalid(
            "keys",
            "must end with a key, e.g. `ctrl+k`",
        ));
    }
    let mut sorted = Vec::new();
    for m in MODIFIERS {
        match modifiers.iter().filter(|x| x.as_str() == m).count() {
            0 => {}
            1 => sorted.push(m),
            _ => return Err(AppError::invalid("keys", format!("repeats `{m}`"))),
        }
    }
    if let Some(unknown) = modifiers.iter().find(|m| !MODIFIERS.contains(&m.as_str())) {
        return Err(AppError::invalid(
            "keys",
            format!("`{unknown}` is not a modifier (ctrl, alt, shift, meta, cmd)"),
        ));
    }
    sorted.push(key);
    Ok(sorted.join("+"))
}

/// Saves a custom shortcut for the caller.
#[utoipa::path(post, path = "/api/shortcuts/custom", tag = "user", security(("bearer" = [])),
    request_body = NewShortcut,
    responses((status = 201, body = Shortcut), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_shortcut(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(req): AppJson<NewShortcut>,
) -> AppResult<(StatusCode, Json<Shortcut>)> {
    let keys = normalize_keys(&req.keys)?;
    let action = req.action.trim();
    if action.is_empty() || action.chars().count() > 100 {
        return Err(AppError::invalid("action", "must be 1 to 100 characters"));
    }
    if req.description.chars().count() > 500 {
        return Err(AppError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    let id = new_id();
    state
        .db
        .execute(
            "INSERT INTO custom_shortcuts (id, user_id, keys, action, description, parameters, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![
                id,
                auth.id,
                &keys,
                action,
                req.description.trim(),
                serde_json::Value::Object(req.parameters),
                crate::db::now()
            ],
        )
        .await
        .conflict_on_duplicate(format!("you already have a shortcut on `{keys}`"))?;
    let shortcut = state
        .db
        .fetch_one(
            "SELECT id, keys, action, description, parameters, created_at FROM custom_shortcuts WHERE id = $1",
            args![id],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(shortcut)))
}

/// The caller's custom shortcuts, newest first.
#[utoipa::path(get, path = "/api/shortcuts/custom", tag = "user", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Page<Shortcut>)))]
async fn list_shortcuts(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(page): AppQuery<PageQuery>,
) -> AppResult<Json<Page<Shortcut>>> {
    let shortcuts = state
        .db
        .page_newest_first(
            "SELECT id, keys, action, description, parameters, created_at FROM custom_shortcuts
             WHERE user_id = $1",
            "id",
            args![auth.id],
            &page,
            |s: &Shortcut| s.id,
        )
        .await?;
    Ok(Json(shortcuts))
}

/// Deletes one of the caller's shortcuts.
#[utoipa::path(delete, path = "/api/shortcuts/custom/{id}", tag = "user", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
async fn delete_shortcut(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    let deleted = state
        .db
        .execute(
            "DELETE FROM custom_shortcuts WHERE id = $1 AND user_id = $2",
            args![id, auth.id],
        )
        .await?;
    if deleted == 0 {
        return Err(AppError::NotFound("shortcut"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::normalize_keys;

    #[test]
    fn keys_are_canonical() {
        assert_eq!(normalize_keys("Shift+Ctrl+K").unwrap(), "ctrl+shift+k");
        assert_eq!(normalize_keys("f2").unwrap(), "f2");
        assert!(normalize_keys("ctrl+").is_err());
        assert!(normalize_keys("ctrl+ctrl+k").is_err());
        assert!(normalize_keys("hyper+k").is_err());
        assert!(normalize_keys("ctrl+shift").is_err());
    }
}
