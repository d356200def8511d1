//! `/api/integrations/{plugin_id}/install|enable|disable`: installing, configuring, enabling,
//! disabling and uninstalling a plugin in a workspace (its owners and admins). Settings are
//! validated against the plugin's schema; `secret` settings are encrypted at rest and never
//! shown back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Installed, Manifest, installed, open_secrets};
use crate::access::target_workspace;
use crate::access::{Role, require_role};
use crate::args;
use crate::auth::AuthUser;
use crate::db::{Tx, new_id, now};
use crate::error::{
    AppError, AppJson, AppPath, AppQuery, AppResult, ConflictOnDuplicate, FieldError,
};
use crate::infra::eventlog::{self, Cause, NewEvent, Subject};
use crate::infra::sandbox::{Kind, host_allowed};
use crate::state::AppState;

use super::marketplace::{PLUGIN_COLUMNS, PluginRow, PluginView, plugin_view};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(install, reconfigure, uninstall))
        .routes(routes!(enable))
        .routes(routes!(disable))
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
    /// Integrations only: the event types (or prefixes such as `agent.*`, or `*`) whose events
    /// are sent through the plugin's `notify`. On `PUT`, left out keeps the subscription.
    pub events: Option<Vec<String>>,
}

/// The subscription asked for, checked: only integrations subscribe, to catalogue types.
fn subscription(manifest: &Manifest, req: &InstallRequest) -> AppResult<Option<Vec<String>>> {
    let Some(events) = &req.events else {
        return Ok(None);
    };
    if manifest.kind != Kind::Integration && !events.is_empty() {
        return Err(AppError::invalid(
            "events",
            "only integration plugins subscribe to events",
        ));
    }
    crate::events::validate_patterns("events", events)?;
    Ok(Some(events.clone()))
}

/// The workspace an admin acts on, and the plugin's manifest and digest.
pub(super) async fn admin_scope(
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

/// Splits validated settings into plain ones and sealed secrets. The `previous`
/// installation's secrets are kept where a secret is left out, as long as they would go where
/// they went before: the same approved hosts, and every URL setting at the same origin.
/// Otherwise they are dropped (an admin who may reconfigure could else send them elsewhere).
fn settle_config(
    state: &AppState,
    manifest: &Manifest,
    req: &InstallRequest,
    previous: Option<&Installed>,
) -> AppResult<Settled> {
    let mut config = req.config.clone();
    let secret_keys = manifest.secret_keys();
    let (hosts, host_errors) = approved_hosts(manifest, req);
    let kept = previous.filter(|p| same_destination(manifest, p, &config, &hosts));
    let mut secrets = open_secrets(&state.secrets, kept.and_then(|p| p.secrets.as_deref()))?;
    for key in &secret_keys {
        if let Some(value) = config.remove(key) {
            secrets.insert(key.clone(), value);
        }
    }
    let mut merged = config.clone();
    merged.extend(secrets.clone());
    let mut errors = manifest.validate_config(&merged);
    errors.extend(host_errors);
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

/// The hosts `http` may reach: those asked for, each one the plugin declares (default: all
/// it declares by name), and the errors about those it does not.
fn approved_hosts(manifest: &Manifest, req: &InstallRequest) -> (Vec<String>, Vec<FieldError>) {
    let mut errors = Vec::new();
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
                    errors.push(FieldError::new(
                        "http_hosts",
                        format!("`{h}` is not a host the plugin declares"),
                    ));
                }
            }
            hosts.clone()
        }
    };
    (hosts, errors)
}

/// Whether settings and hosts send the installation's data where `previous` sent it.
fn same_destination(
    manifest: &Manifest,
    previous: &Installed,
    config: &Map<String, Value>,
    hosts: &[String],
) -> bool {
    let origin = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|u| reqwest::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
    };
    let same_hosts = {
        let mut before = previous.http_hosts.0.clone();
        let mut after = hosts.to_vec();
        before.sort();
        after.sort();
        before == after
    };
    same_hosts
        && manifest
            .uri_keys()
            .iter()
            .all(|k| origin(previous.config.0.get(k)) == origin(config.get(k)))
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

/// Stores an installation of `plugin` approving its current version and the capabilities and
/// hosts its manifest asks for.
async fn insert_installation(
    tx: &mut Tx,
    auth: &AuthUser,
    workspace_id: Uuid,
    plugin: &PluginRow,
    (settled, events): (Settled, Vec<String>),
    enabled: bool,
) -> AppResult<()> {
    let Settled {
        config,
        sealed,
        http_hosts,
    } = settled;
    tx.execute(
            "INSERT INTO plugin_installations (id, plugin_id, workspace_id, enabled, config, secrets,
                http_hosts, approved_sha256, approved_capabilities, installed_by, created_at, updated_at,
                events)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)",
            args![
                new_id(),
                plugin.id.clone(),
                workspace_id,
                enabled,
                Value::Object(config),
                sealed,
                json!(http_hosts),
                plugin.sha256.clone(),
                json!(plugin.manifest.0.capabilities),
                auth.id,
                now(),
                json!(events)
            ],
        )
        .await
        .conflict_on_duplicate("the plugin is already installed in this workspace")?;
    Ok(())
}

/// Records `integration.installed` or `integration.removed`.
async fn record_event(
    tx: &mut Tx,
    auth: &AuthUser,
    workspace_id: Uuid,
    plugin: &PluginRow,
    kind: &'static str,
) -> AppResult<()> {
    eventlog::record(
        tx,
        &Cause::user(auth.id),
        NewEvent {
            workspace_id,
            project_id: None,
            kind,
            subject: Subject::new("plugin", &plugin.id, Some(plugin.manifest.0.name.clone())),
            data: json!({"plugin_id": plugin.id, "kind": plugin.manifest.0.kind.as_str()}),
        },
    )
    .await?;
    Ok(())
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
    let events = subscription(&plugin.manifest.0, &req)?.unwrap_or_default();
    let settled = settle_config(&state, &plugin.manifest.0, &req, None)?;
    let mut tx = state.db.begin().await?;
    insert_installation(
        &mut tx,
        &auth,
        workspace_id,
        &plugin,
        (settled, events),
        true,
    )
    .await?;
    record_event(
        &mut tx,
        &auth,
        workspace_id,
        &plugin,
        "integration.installed",
    )
    .await?;
    state.events.commit(tx).await?;
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
    let events = subscription(&plugin.manifest.0, &req)?;
    let Settled {
        config,
        sealed,
        http_hosts,
    } = settle_config(&state, &plugin.manifest.0, &req, Some(&current))?;
    let (approved, capabilities) = if req.approve {
        (
            plugin.sha256.clone(),
            plugin.manifest.0.capabilities.clone(),
        )
    } else {
        (current.approved_sha256, current.approved_capabilities.0)
    };
    state
        .db
        .execute(
            "UPDATE plugin_installations SET config = $1, secrets = $2, http_hosts = $3,
                approved_sha256 = $4, approved_capabilities = $5, updated_at = $6,
                events = COALESCE($8, events) WHERE id = $7",
            args![
                Value::Object(config),
                sealed,
                json!(http_hosts),
                approved,
                json!(capabilities),
                now(),
                current.installation_id,
                events.map(|e| json!(e))
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
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn uninstall(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
) -> AppResult<StatusCode> {
    let (workspace_id, plugin) = admin_scope(&state, &auth, q.workspace_id, &plugin_id).await?;
    let mut tx = state.db.begin().await?;
    let removed = tx
        .execute(
            "DELETE FROM plugin_installations WHERE workspace_id = $1 AND plugin_id = $2",
            args![workspace_id, plugin_id.clone()],
        )
        .await?;
    if removed == 0 {
        return Err(AppError::NotFound("installation"));
    }
    tx.execute(
        "DELETE FROM plugin_kv WHERE workspace_id = $1 AND plugin_id = $2",
        args![workspace_id, plugin_id.clone()],
    )
    .await?;
    record_event(&mut tx, &auth, workspace_id, &plugin, "integration.removed").await?;
    state.events.commit(tx).await?;
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
    let (workspace_id, plugin) = admin_scope(state, auth, asked, plugin_id).await?;
    let changed = state
        .db
        .execute(
            "UPDATE plugin_installations SET enabled = $1, updated_at = $2
             WHERE workspace_id = $3 AND plugin_id = $4",
            args![enabled, now(), workspace_id, plugin_id],
        )
        .await?;
    if changed == 0 {
        // A built-in that runs by default has no installation yet: one is made to hold the
        // admin's choice.
        if !(plugin.builtin && super::on_by_default(&plugin.manifest.0)) {
            return Err(AppError::NotFound("installation"));
        }
        let settled = settle_config(state, &plugin.manifest.0, &InstallRequest::default(), None)?;
        let mut tx = state.db.begin().await?;
        insert_installation(
            &mut tx,
            auth,
            workspace_id,
            &plugin,
            (settled, vec![]),
            enabled,
        )
        .await?;
        tx.commit().await?;
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
    responses((status = 200, body = PluginView), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
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
    responses((status = 200, body = PluginView), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn disable(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(plugin_id): AppPath<String>,
    AppQuery(q): AppQuery<WorkspaceQuery>,
) -> AppResult<Json<PluginView>> {
    set_enabled(&state, &auth, &plugin_id, q.workspace_id, false).await
}
