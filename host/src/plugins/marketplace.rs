//! `/api/integrations/*`: the marketplace (every plugin with its state in a workspace), and
//! installing, configuring, enabling, disabling, testing and uninstalling a plugin in a
//! workspace (its owners and admins). Settings are validated against the plugin's schema;
//! `secret` settings are encrypted at rest and never shown back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::runtime::{Event, HttpRequest, Notification, Report, host_allowed};
use super::{
    Call, Capability, Installed, Kind, Manifest, Output, installed, installed_in, invoke,
    open_secrets,
};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Arg, Cursor, Page, PageQuery, contains_pattern, is_unique_violation, new_id, now};
use crate::error::{AppError, AppJson, AppPath, AppQuery, AppResult};
use crate::projects::crud::target_workspace;
use crate::state::AppState;
use crate::team::{Role, require_role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(marketplace))
        .routes(routes!(install, reconfigure, uninstall))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(test_plugin))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(inbound_webhook))
                .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_MAX_BYTES)),
        )
}

/// The largest request a webhook handler receives.
const WEBHOOK_MAX_BYTES: usize = 1024 * 1024;

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
    /// False when the plugin changed since the admin approved it: calls are refused until
    /// the admin approves the new version (`PUT … {"approve": true}`).
    pub approved: bool,
    /// For a webhook handler: where the external service sends its requests.
    pub webhook_url: Option<String>,
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
    /// `not_installed`, `enabled` or `disabled` in the workspace asked about.
    pub installation_state: String,
    pub installation: Option<Installation>,
}

#[derive(sqlx::FromRow)]
struct PluginRow {
    id: String,
    manifest: SqlJson<Manifest>,
    sha256: String,
    builtin: bool,
}

const PLUGIN_COLUMNS: &str = "SELECT id, manifest, sha256, builtin FROM plugins";

fn view(state: &AppState, plugin: PluginRow, row: Option<Installed>) -> AppResult<PluginView> {
    let installation = row
        .map(|r| -> AppResult<Installation> {
            let secrets_set = open_secrets(&state.secrets, r.secrets.as_deref())?
                .keys()
                .cloned()
                .collect();
            Ok(Installation {
                id: r.installation_id,
                workspace_id: r.workspace_id,
                enabled: r.enabled,
                config: r.config.0,
                secrets_set,
                http_hosts: r.http_hosts.0,
                approved: r.approved_sha256 == plugin.sha256,
                webhook_url: (plugin.manifest.0.kind == Kind::WebhookHandler).then(|| {
                    format!(
                        "/api/integrations/{}/webhook/{}",
                        plugin.id, r.installation_id
                    )
                }),
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .transpose()?;
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
    responses((status = 200, body = Marketplace), (status = 400, body = crate::error::Problem)))]
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
    let mut binds: Vec<Arg> = Vec::new();
    let mut sql = format!("{PLUGIN_COLUMNS} WHERE 1 = 1");
    let mut filter = |clause: &str, value: Arg, binds: &mut Vec<Arg>| {
        binds.push(value);
        sql += &clause.replace("{}", &format!("${}", binds.len()));
    };
    if let Some(after) = page.cursor("id")?.and_then(|c| c.value) {
        filter(" AND id > {}", after.into(), &mut binds);
    }
    if let Some(kind) = q.kind {
        filter(" AND kind = {}", kind.as_str().into(), &mut binds);
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        filter(
            " AND LOWER(CAST(manifest AS TEXT)) LIKE {} ESCAPE '\\'",
            contains_pattern(text).into(),
            &mut binds,
        );
    }
    if let Some(category) = q
        .category
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        filter(
            " AND LOWER(CAST(manifest AS TEXT)) LIKE {} ESCAPE '\\'",
            contains_pattern(&format!("\"{category}\"")).into(),
            &mut binds,
        );
    }
    sql += &format!(" ORDER BY id LIMIT {}", limit + 1);
    let rows: Vec<PluginRow> = state.db.fetch_all(&sql, binds).await?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceQuery {
    /// The workspace (default: the caller's personal one); the caller must be its owner or
    /// an admin.
    pub workspace_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// Settings, validated against the plugin's `config_schema`. On `PUT`, a secret setting
    /// left out keeps its value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// The hosts `http` may reach, each within those the manifest declares (default: all of
    /// them).
    pub http_hosts: Option<Vec<String>>,
    /// On `PUT`: approve the plugin's current version (after an upgrade).
    #[serde(default)]
    pub approve: bool,
}

/// The workspace an admin acts on, and the plugin's manifest and digest.
async fn admin_scope(
    state: &AppState,
    auth: &AuthUser,
    asked: Option<Uuid>,
    plugin_id: &str,
) -> AppResult<(Uuid, PluginRow)> {
    let workspace_id = target_workspace(state, auth, asked).await?;
    require_role(&state.db, workspace_id, auth.id, Role::Admin).await?;
    let plugin: PluginRow = state
        .db
        .fetch_optional(&format!("{PLUGIN_COLUMNS} WHERE id = $1"), args![plugin_id])
        .await?
        .ok_or(AppError::NotFound("plugin"))?;
    Ok((workspace_id, plugin))
}

/// An installation's settings as stored: plain ones, sealed secrets, approved hosts.
struct Settled {
    config: Map<String, Value>,
    sealed: Option<String>,
    http_hosts: Vec<String>,
}

/// Splits validated settings into plain ones and sealed secrets (`previous` secrets kept
/// where a secret is left out).
fn settle_config(
    state: &AppState,
    manifest: &Manifest,
    req: &InstallRequest,
    previous: Option<&str>,
) -> AppResult<Settled> {
    let mut config = req.config.clone();
    let secret_keys = manifest.secret_keys();
    let mut secrets = open_secrets(&state.secrets, previous)?;
    for key in &secret_keys {
        if let Some(value) = config.remove(key) {
            secrets.insert(key.clone(), value);
        }
    }
    let mut merged = config.clone();
    merged.extend(secrets.clone());
    let mut errors = manifest.validate_config(&merged);
    let any_host = manifest.http_hosts.iter().any(|h| h == "*");
    let hosts = match &req.http_hosts {
        None => manifest
            .http_hosts
            .iter()
            .filter(|h| *h != "*")
            .cloned()
            .collect(),
        Some(hosts) => {
            for h in hosts {
                let named = !h.is_empty() && !h.contains(['*', '/', ':']);
                let declared = (any_host && named)
                    || manifest.http_hosts.iter().filter(|d| *d != "*").any(|d| {
                        d.eq_ignore_ascii_case(h)
                            || host_allowed(std::slice::from_ref(d), h.trim_start_matches("*."))
                    });
                if !declared {
                    errors.push(crate::error::FieldError::new(
                        "http_hosts",
                        format!("`{h}` is not a host the plugin declares"),
                    ));
                }
            }
            hosts.clone()
        }
    };
    if !errors.is_empty() {
        return Err(AppError::fields(errors));
    }
    let sealed = if secrets.is_empty() {
        None
    } else {
        Some(state.secrets.encrypt(&Value::Object(secrets).to_string())?)
    };
    Ok(Settled {
        config,
        sealed,
        http_hosts: hosts,
    })
}

async fn audit(
    state: &AppState,
    auth: &AuthUser,
    workspace_id: Uuid,
    plugin_id: &str,
    action: &str,
) -> AppResult<()> {
    super::audit(
        &state.db,
        auth.id,
        &[workspace_id],
        plugin_id,
        action,
        json!({}),
    )
    .await
}

/// Installs a plugin in a workspace (enabled), approving its current version and the
/// capabilities and hosts its manifest asks for.
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/install", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery), request_body = InstallRequest,
    responses((status = 201, body = PluginView), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn install(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
    body: Option<AppJson<InstallRequest>>,
) -> AppResult<(StatusCode, Json<PluginView>)> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let (workspace_id, plugin) = admin_scope(&state, &auth, q.workspace_id, &plugin_id).await?;
    if installed(&state.db, workspace_id, &plugin_id)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(
            "the plugin is already installed in this workspace; PUT to reconfigure".into(),
        ));
    }
    let Settled {
        config,
        sealed,
        http_hosts,
    } = settle_config(&state, &plugin.manifest.0, &req, None)?;
    let at = now();
    state
        .db
        .execute(
            "INSERT INTO plugin_installations (id, plugin_id, workspace_id, enabled, config, secrets, http_hosts, approved_sha256, installed_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            args![
                new_id(),
                plugin_id.clone(),
                workspace_id,
                true,
                Value::Object(config),
                sealed,
                json!(http_hosts),
                plugin.sha256.clone(),
                auth.id,
                at
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::Conflict("the plugin is already installed in this workspace".into())
            } else {
                e.into()
            }
        })?;
    audit(&state, &auth, workspace_id, &plugin_id, "plugin.install").await?;
    let view = plugin_view(&state, &plugin_id, Some(workspace_id)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Reconfigures an installation (settings replaced; secrets left out are kept), and with
/// `approve` approves the plugin's current version.
#[utoipa::path(put, path = "/api/integrations/{plugin_id}/install", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery), request_body = InstallRequest,
    responses((status = 200, body = PluginView), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn reconfigure(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
    AppJson(req): AppJson<InstallRequest>,
) -> AppResult<Json<PluginView>> {
    let (workspace_id, plugin) = admin_scope(&state, &auth, q.workspace_id, &plugin_id).await?;
    let current = installed(&state.db, workspace_id, &plugin_id)
        .await?
        .ok_or(AppError::NotFound("installation"))?;
    let Settled {
        config,
        sealed,
        http_hosts,
    } = settle_config(&state, &plugin.manifest.0, &req, current.secrets.as_deref())?;
    let approved = if req.approve {
        plugin.sha256.clone()
    } else {
        current.approved_sha256
    };
    state
        .db
        .execute(
            "UPDATE plugin_installations SET config = $1, secrets = $2, http_hosts = $3,
                approved_sha256 = $4, updated_at = $5 WHERE id = $6",
            args![
                Value::Object(config),
                sealed,
                json!(http_hosts),
                approved,
                now(),
                current.installation_id
            ],
        )
        .await?;
    let action = if req.approve {
        "plugin.approve"
    } else {
        "plugin.configure"
    };
    audit(&state, &auth, workspace_id, &plugin_id, action).await?;
    Ok(Json(
        plugin_view(&state, &plugin_id, Some(workspace_id)).await?,
    ))
}

/// Uninstalls a plugin from a workspace, with its settings and stored data.
#[utoipa::path(delete, path = "/api/integrations/{plugin_id}/install", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
async fn uninstall(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
) -> AppResult<StatusCode> {
    let (workspace_id, _) = admin_scope(&state, &auth, q.workspace_id, &plugin_id).await?;
    let removed = state
        .db
        .execute(
            "DELETE FROM plugin_installations WHERE workspace_id = $1 AND plugin_id = $2",
            args![workspace_id, plugin_id.clone()],
        )
        .await?;
    if removed == 0 {
        return Err(AppError::NotFound("installation"));
    }
    state
        .db
        .execute(
            "DELETE FROM plugin_kv WHERE workspace_id = $1 AND plugin_id = $2",
            args![workspace_id, plugin_id.clone()],
        )
        .await?;
    audit(&state, &auth, workspace_id, &plugin_id, "plugin.uninstall").await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    auth: &AuthUser,
    plugin_id: &str,
    asked: Option<Uuid>,
    enabled: bool,
) -> AppResult<Json<PluginView>> {
    let (workspace_id, _) = admin_scope(state, auth, asked, plugin_id).await?;
    let changed = state
        .db
        .execute(
            "UPDATE plugin_installations SET enabled = $1, updated_at = $2
             WHERE workspace_id = $3 AND plugin_id = $4",
            args![enabled, now(), workspace_id, plugin_id],
        )
        .await?;
    if changed == 0 {
        return Err(AppError::NotFound("installation"));
    }
    let action = if enabled {
        "plugin.enable"
    } else {
        "plugin.disable"
    };
    audit(state, auth, workspace_id, plugin_id, action).await?;
    Ok(Json(
        plugin_view(state, plugin_id, Some(workspace_id)).await?,
    ))
}

/// Enables an installed plugin.
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/enable", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery),
    responses((status = 200, body = PluginView), (status = 404, body = crate::error::Problem)))]
async fn enable(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
) -> AppResult<Json<PluginView>> {
    set_enabled(&state, &auth, &plugin_id, q.workspace_id, true).await
}

/// Disables an installed plugin (kept installed, not called).
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/disable", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery),
    responses((status = 200, body = PluginView), (status = 404, body = crate::error::Problem)))]
async fn disable(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
) -> AppResult<Json<PluginView>> {
    set_enabled(&state, &auth, &plugin_id, q.workspace_id, false).await
}

/// The input of a test call; each kind reads its part and uses a sample for the rest.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TestRequest {
    /// auto-tagger: the document.
    pub title: Option<String>,
    pub text: Option<String>,
    /// automation-action: the action's JSON parameters.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// analytics-exporter: the report's data.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// `ok` or `error`.
    pub status: String,
    pub duration_ms: f64,
    /// What the plugin returned, as JSON (files as base64 with their type and name).
    #[schema(value_type = Object)]
    pub output: Value,
    /// The events the plugin emitted.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    pub error: Option<String>,
}

fn sample_call(kind: Kind, req: TestRequest) -> Call {
    let text = req
        .text
        .unwrap_or_else(|| "A test from Nova: the plugin is installed and runs.".into());
    match kind {
        Kind::Integration => Call::Notify(Notification {
            title: req.title.unwrap_or_else(|| "Nova test".into()),
            text,
            url: None,
            severity: "info".into(),
        }),
        Kind::AutomationAction => Call::Run {
            params: req.params.unwrap_or_else(|| json!({})).to_string(),
            event: Event {
                kind: "test".into(),
                payload: json!({"text": text}).to_string(),
            },
        },
        Kind::WebhookHandler => Call::Handle(HttpRequest {
            method: "POST".into(),
            url: "/test".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: text.into_bytes(),
        }),
        Kind::AutoTagger => Call::Suggest {
            title: req.title.unwrap_or_default(),
            text,
        },
        Kind::AnalyticsExporter => Call::Render(Report {
            title: req.title.unwrap_or_else(|| "Nova test report".into()),
            data: req
                .data
                .unwrap_or_else(|| {
                    json!({"summary": {"conversations": 3}, "columns": ["date", "conversations"],
                           "rows": [["2026-01-01", 1], ["2026-01-02", 2]]})
                })
                .to_string(),
        }),
    }
}

/// A plugin's output as JSON.
pub fn output_json(output: &Output) -> Value {
    match output {
        Output::Done => Value::Null,
        Output::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
        Output::Response(r) => json!({
            "status": r.status,
            "headers": r.headers,
            "body": String::from_utf8_lossy(&r.body),
        }),
        Output::Tagging(t) => json!({
            "tags": t.tags.iter().map(|s| json!({"name": s.name, "confidence": s.confidence})).collect::<Vec<_>>(),
            "categories": t.categories.iter().map(|s| json!({"name": s.name, "confidence": s.confidence})).collect::<Vec<_>>(),
        }),
        Output::File(f) => json!({
            "content_type": f.content_type,
            "file_name": f.file_name,
            "size_bytes": f.bytes.len(),
            "base64": STANDARD.encode(&f.bytes),
        }),
    }
}

/// Runs an installed plugin once on sample input (or the given one) and reports what it did;
/// the call is logged like any other.
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/test", tag = "plugins", security(("bearer" = [])),
    params(("plugin_id" = String, Path), WorkspaceQuery), request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 404, body = crate::error::Problem)))]
async fn test_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
    body: Option<AppJson<TestRequest>>,
) -> AppResult<Json<TestResult>> {
    let (workspace_id, plugin) = admin_scope(&state, &auth, q.workspace_id, &plugin_id).await?;
    let installed = installed(&state.db, workspace_id, &plugin_id)
        .await?
        .ok_or(AppError::NotFound("installation"))?;
    let call = sample_call(
        plugin.manifest.0.kind,
        body.map(|b| b.0).unwrap_or_default(),
    );
    let started = std::time::Instant::now();
    let result = invoke(&state, &installed, "test", call).await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(match result {
        Ok(outcome) => TestResult {
            status: "ok".into(),
            duration_ms,
            output: output_json(&outcome.output),
            events: outcome
                .events
                .iter()
                .map(|e| json!({"kind": e.kind, "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null)}))
                .collect(),
            error: None,
        },
        Err(e) => TestResult {
            status: "error".into(),
            duration_ms,
            output: Value::Null,
            events: Vec::new(),
            error: Some(e.to_string()),
        },
    }))
}

/// Headers a webhook handler's response may set.
const RESPONSE_HEADERS: [&str; 3] = ["content-type", "cache-control", "retry-after"];

/// Inbound webhooks from external services (no bearer token: the handler plugin authenticates
/// the request, e.g. by its signature). The request goes to the webhook-handler plugin of the
/// installation; the events it emits are applied in that workspace; its response is returned.
#[utoipa::path(post, path = "/api/integrations/{plugin_id}/webhook/{installation_id}", tag = "plugins",
    params(("plugin_id" = String, Path), ("installation_id" = Uuid, Path)),
    request_body(content = String, description = "Whatever the external service sends"),
    responses((status = 200, description = "The handler's response"), (status = 404, body = crate::error::Problem),
        (status = 502, body = crate::error::Problem)))]
async fn inbound_webhook(
    State(state): State<AppState>,
    AppPath((plugin_id, installation_id)): AppPath<(String, Uuid)>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> AppResult<axum::response::Response> {
    let found = super::installation(&state.db, installation_id)
        .await?
        .filter(|i| {
            i.plugin_id == plugin_id && i.enabled && i.manifest.0.kind == Kind::WebhookHandler
        })
        .ok_or(AppError::NotFound("webhook"))?;
    let request = HttpRequest {
        method: "POST".into(),
        url: uri.to_string(),
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let outcome = invoke(&state, &found, "webhook", Call::Handle(request))
        .await?
        .map_err(|e| AppError::Rejected {
            status: StatusCode::BAD_GATEWAY,
            detail: format!("the webhook handler failed: {e}"),
            results: Value::Null,
        })?;
    let Output::Response(response) = outcome.output else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "a webhook handler returned no response"
        )));
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut reply = axum::response::Response::builder().status(status);
    for (name, value) in &response.headers {
        if RESPONSE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            reply = reply.header(name, value);
        }
    }
    reply
        .body(axum::body::Body::from(response.body))
        .map_err(|e| AppError::Internal(e.into()))
}
