//! `GET /api/integrations/marketplace`: every plugin (built-in and uploaded) with its state in
//! a workspace.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Capability, Installed, Kind, Manifest, installed, installed_in, open_secrets};
use crate::access::target_workspace;
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Cursor, Filter, Page, PageQuery, contains_pattern};
use crate::error::{AppError, AppQuery, AppResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(marketplace))
}

/// A workspace's installation of a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct Installation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub enabled: bool,
    /// The settings, without the secret ones.
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// The secret settings that are set (their values are never shown).
    pub secrets_set: Vec<String>,
    /// The hosts the admin approved for `http`.
    pub http_hosts: Vec<String>,
    /// False when the plugin changed since the admin approved it (another digest, or more
    /// capabilities asked for): calls are refused until the admin approves the new version
    /// (`PUT … {"approve": true}`).
    pub approved: bool,
    /// For a webhook handler: where the external service sends its requests.
    pub webhook_url: Option<String>,
    /// For an integration: the event types it is sent.
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A plugin in the marketplace.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub version: String,
    pub author: String,
    /// e.g. Slack, Teams, CRM, Knowledge, Analytics.
    pub categories: Vec<String>,
    pub icon: Option<String>,
    pub capabilities: Vec<Capability>,
    pub http_hosts: Vec<String>,
    /// The JSON Schema (subset) the installation's settings are validated against.
    #[schema(value_type = Object)]
    pub config_schema: Value,
    pub instructions: String,
    /// Shipped with the host (true) or uploaded by an instance admin.
    pub builtin: bool,
    /// The SHA-256 digest of the component.
    pub sha256: String,
    /// `not_installed`, `enabled` or `disabled` in the workspace asked about;
    /// `enabled_by_default` for a built-in plugin that needs no settings and no capability
    /// beyond `log` and `config`: it runs uninstalled until an admin disables it.
    pub installation_state: String,
    pub installation: Option<Installation>,
}

#[derive(sqlx::FromRow)]
pub(super) struct PluginRow {
    pub id: String,
    pub manifest: SqlJson<Manifest>,
    pub sha256: String,
    pub builtin: bool,
}

pub(super) const PLUGIN_COLUMNS: &str = "SELECT id, manifest, sha256, builtin FROM plugins";

fn view(state: &AppState, plugin: PluginRow, row: Option<Installed>) -> AppResult<PluginView> {
    let installation = row
        .map(|r| -> AppResult<Installation> {
            let secrets_set = open_secrets(&state.secrets, r.secrets.as_deref())?
                .keys()
                .cloned()
                .collect();
            let approved = r.is_approved();
            Ok(Installation {
                id: r.installation_id,
                workspace_id: r.workspace_id,
                enabled: r.enabled,
                config: r.config.0,
                secrets_set,
                http_hosts: r.http_hosts.0,
                approved,
                webhook_url: (plugin.manifest.0.kind == Kind::WebhookHandler).then(|| {
                    format!(
                        "/api/integrations/{}/webhook/{}",
                        plugin.id, r.installation_id
                    )
                }),
                events: r.events.0,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .transpose()?;
    let by_default = plugin.builtin && super::on_by_default(&plugin.manifest.0);
    let m = plugin.manifest.0;
    Ok(PluginView {
        id: plugin.id,
        name: m.name,
        description: m.description,
        kind: m.kind,
        version: m.version,
        author: m.author,
        categories: m.categories,
        icon: m.icon,
        capabilities: m.capabilities,
        http_hosts: m.http_hosts,
        config_schema: m.config_schema,
        instructions: m.instructions,
        builtin: plugin.builtin,
        sha256: plugin.sha256,
        installation_state: match &installation {
            None if by_default => "enabled_by_default",
            None => "not_installed",
            Some(i) if i.enabled => "enabled",
            Some(_) => "disabled",
        }
        .into(),
        installation,
    })
}

/// One plugin as the marketplace shows it, with its installation in `workspace_id`.
pub async fn plugin_view(
    state: &AppState,
    plugin_id: &str,
    workspace_id: Option<Uuid>,
) -> AppResult<PluginView> {
    let plugin: PluginRow = state
        .db
        .fetch_optional(&format!("{PLUGIN_COLUMNS} WHERE id = $1"), args![plugin_id])
        .await?
        .ok_or(AppError::NotFound("plugin"))?;
    let row = match workspace_id {
        Some(w) => installed(&state.db, w, plugin_id).await?,
        None => None,
    };
    view(state, plugin, row)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MarketplaceQuery {
    /// The workspace whose installations to show (default: the caller's personal one).
    pub workspace_id: Option<Uuid>,
    #[param(value_type = Option<Kind>)]
    pub kind: Option<Kind>,
    /// e.g. `Slack`, `CRM` (case-insensitive).
    pub category: Option<String>,
    /// Text in the name or description.
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Marketplace {
    pub plugins: Vec<PluginView>,
    pub next_cursor: Option<String>,
}

/// The plugins available to install (built-in and uploaded), ordered by id, each with its
/// installation state in the workspace.
#[utoipa::path(get, path = "/api/integrations/marketplace", tag = "plugins", security(("bearer" = [])),
    params(MarketplaceQuery),
    responses((status = 200, body = Marketplace), (status = 400, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn marketplace(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<MarketplaceQuery>,
) -> AppResult<Json<Marketplace>> {
    let workspace_id = target_workspace(&state, &auth, q.workspace_id).await?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let mut filter = Filter::default();
    if let Some(after) = page.cursor("id")?.and_then(|c| c.value) {
        filter.and(" AND id > {}", after);
    }
    if let Some(kind) = q.kind {
        filter.and(" AND kind = {}", kind.as_str());
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        filter.and(
            " AND LOWER(CAST(manifest AS TEXT)) LIKE {} ESCAPE '\\'",
            contains_pattern(text),
        );
    }
    if let Some(category) = q
        .category
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        filter.and(
            " AND LOWER(CAST(manifest AS TEXT)) LIKE {} ESCAPE '\\'",
            contains_pattern(&format!("\"{category}\"")),
        );
    }
    let sql = format!(
        "{PLUGIN_COLUMNS} WHERE 1 = 1{} ORDER BY id LIMIT {}",
        filter.sql,
        limit + 1
    );
    let rows: Vec<PluginRow> = state.db.fetch_all(&sql, filter.binds).await?;
    let mut installations = installed_in(&state.db, workspace_id).await?;
    let mut plugins = Vec::with_capacity(rows.len());
    for plugin in rows {
        let row = installations
            .iter()
            .position(|i| i.plugin_id == plugin.id)
            .map(|at| installations.swap_remove(at));
        plugins.push(view(&state, plugin, row)?);
    }
    let page = Page::from_rows(plugins, limit, |p| Cursor {
        sort: "id".into(),
        value: Some(p.id.clone()),
        id: Uuid::nil(),
    });
    Ok(Json(Marketplace {
        plugins: page.items,
        next_cursor: page.next_cursor,
    }))
}
