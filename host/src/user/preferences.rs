//! `GET/PUT /api/user/preferences` (seed §10).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::args;
use crate::auth::AuthUser;
use crate::error::{AppError, AppJson, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_preferences, put_preferences))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    Light,
    Dark,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ViewMode {
    Grid,
    List,
}

impl Theme {
    fn as_str(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
            Theme::Auto => "auto",
        }
    }
}

impl ViewMode {
    fn as_str(self) -> &'static str {
        match self {
            ViewMode::Grid => "grid",
            ViewMode::List => "list",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preferences {
    pub theme: Theme,
    /// The dashboard's widgets in order, as the frontend stores them.
    pub dashboard_layout: Vec<serde_json::Value>,
    pub notification_settings: serde_json::Map<String, serde_json::Value>,
    pub default_view_mode: ViewMode,
}

/// A partial update: fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesUpdate {
    pub theme: Option<Theme>,
    pub dashboard_layout: Option<Vec<serde_json::Value>>,
    pub notification_settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub default_view_mode: Option<ViewMode>,
}

#[derive(sqlx::FromRow)]
struct PreferencesRow {
    theme: String,
    default_view_mode: String,
    dashboard_layout: SqlJson<Vec<serde_json::Value>>,
    notification_settings: SqlJson<serde_json::Map<String, serde_json::Value>>,
}

const MAX_LAYOUT_ITEMS: usize = 100;

async fn load(state: &AppState, auth: &AuthUser) -> AppResult<Preferences> {
    let row: Option<PreferencesRow> = state
        .db
        .fetch_optional(
            "SELECT theme, default_view_mode, dashboard_layout, notification_settings
             FROM user_preferences WHERE user_id = $1",
            args![auth.id],
        )
        .await?;
    Ok(match row {
        Some(r) => Preferences {
            theme: match r.theme.as_str() {
                "light" => Theme::Light,
                "dark" => Theme::Dark,
                _ => Theme::Auto,
            },
            default_view_mode: if r.default_view_mode == "list" {
                ViewMode::List
            } else {
                ViewMode::Grid
            },
            dashboard_layout: r.dashboard_layout.0,
            notification_settings: r.notification_settings.0,
        },
        None => Preferences {
            theme: Theme::Auto,
            dashboard_layout: Vec::new(),
            notification_settings: serde_json::Map::new(),
            default_view_mode: ViewMode::Grid,
        },
    })
}

/// The caller's interface preferences (defaults until first saved).
#[utoipa::path(get, path = "/api/user/preferences", tag = "user", security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
async fn get_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
) -> AppResult<Json<Preferences>> {
    Ok(Json(load(&state, &auth).await?))
}

/// Updates the caller's preferences; returns them whole.
#[utoipa::path(put, path = "/api/user/preferences", tag = "user", security(("bearer" = [])),
    request_body = PreferencesUpdate,
    responses((status = 200, body = Preferences), (status = 422, body = crate::error::Problem)))]
async fn put_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(update): AppJson<PreferencesUpdate>,
) -> AppResult<Json<Preferences>> {
    if update
        .dashboard_layout
        .as_ref()
        .is_some_and(|l| l.len() > MAX_LAYOUT_ITEMS)
    {
        return Err(AppError::invalid(
            "dashboard_layout",
            format!("holds at most {MAX_LAYOUT_ITEMS} widgets"),
        ));
    }
    let current = load(&state, &auth).await?;
    let next = Preferences {
        theme: update.theme.unwrap_or(current.theme),
        dashboard_layout: update.dashboard_layout.unwrap_or(current.dashboard_layout),
        notification_settings: update
            .notification_settings
            .unwrap_or(current.notification_settings),
        default_view_mode: update
            .default_view_mode
            .unwrap_or(current.default_view_mode),
    };
    state
        .db
        .execute(
            "INSERT INTO user_preferences
                (user_id, theme, default_view_mode, dashboard_layout, notification_settings, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id) DO UPDATE SET theme = excluded.theme,
                default_view_mode = excluded.default_view_mode,
                dashboard_layout = excluded.dashboard_layout,
                notification_settings = excluded.notification_settings,
                updated_at = excluded.updated_at",
            args![
                auth.id,
                next.theme.as_str(),
                next.default_view_mode.as_str(),
                serde_json::Value::from(next.dashboard_layout.clone()),
                serde_json::Value::Object(next.notification_settings.clone()),
                crate::db::now()
            ],
        )
        .await?;
    Ok(Json(next))
}
