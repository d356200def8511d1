//! Plugins: sandboxed WASM components (`wit/`) for integrations, automation actions, webhook
//! handlers, auto-taggers and analytics exporters. Instance admins upload packages
//! (`/api/plugins`); workspace admins install, configure, enable and test them
//! (`/api/integrations/*`); the rest of the host calls them through [`invoke`].

mod events;
mod inbound;
mod installations;
mod marketplace;
mod registry;
mod subscriptions;
mod testing;

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json as SqlJson;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

pub use crate::infra::sandbox::{
    Call, Called, Capability, Kind, Manifest, Outcome, Output, PluginError,
};
pub use events::notification_audience;
pub use subscriptions::IntegrationSubscriptions;
pub use testing::output_json;

use crate::args;
use crate::db::{Db, new_id, now};
use crate::error::{AppError, AppResult};
use crate::infra::eventlog::Cause;
use crate::infra::hashing::hash_bytes;
use crate::infra::sandbox;
use crate::infra::secrets::SecretBox;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(registry::router())
        .merge(marketplace::router())
        .merge(installations::router())
        .merge(testing::router())
        .merge(inbound::router())
}

/// The plugins built into this host (`plugins/*`): (crate, manifest, component), embedded by
/// the build script.
const BUILT_IN: &[(&str, &str, &[u8])] = &include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Records the built-in plugins in the plugins table at start (new ones, or changed ones:
/// installations of a built-in follow its new digest, as the host binary is trusted).
pub async fn sync_builtins(db: &Db) -> anyhow::Result<()> {
    for (crate_name, manifest_text, wasm) in BUILT_IN {
        let manifest = Manifest::parse(manifest_text)
            .map_err(|e| anyhow::anyhow!("the manifest of plugins/{crate_name}: {e:?}"))?;
        let digest = hash_bytes(wasm);
        let known: Option<(String,)> = db
            .fetch_optional(
                "SELECT sha256 FROM plugins WHERE id = $1",
                args![manifest.id.clone()],
            )
            .await?;
        if known.as_ref().is_some_and(|(d,)| *d == digest) {
            continue;
        }
        store_package(db, &manifest, &digest, wasm, None).await?;
        db.execute(
            "UPDATE plugin_installations SET approved_sha256 = $1, approved_capabilities = $2
             WHERE plugin_id = $3",
            args![
                digest,
                serde_json::json!(manifest.capabilities),
                manifest.id.clone()
            ],
        )
        .await?;
    }
    Ok(())
}

/// Records a package (new, or replacing the one of the same id): built in when `uploaded_by`
/// is `None`.
pub(crate) async fn store_package(
    db: &Db,
    manifest: &Manifest,
    digest: &str,
    wasm: &[u8],
    uploaded_by: Option<Uuid>,
) -> AppResult<()> {
    db.execute(
        "INSERT INTO plugins (id, name, version, kind, manifest, sha256, wasm, builtin, uploaded_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,
            kind = excluded.kind, manifest = excluded.manifest, sha256 = excluded.sha256,
            wasm = excluded.wasm, builtin = excluded.builtin, uploaded_by = excluded.uploaded_by,
            updated_at = excluded.updated_at",
        args![
            manifest.id.clone(),
            manifest.name.clone(),
            manifest.version.clone(),
            manifest.kind.as_str(),
            serde_json::to_value(manifest).map_err(anyhow::Error::from)?,
            digest,
            wasm.to_vec(),
            uploaded_by.is_none(),
            uploaded_by,
            now()
        ],
    )
    .await?;
    Ok(())
}

/// Records `action` on `plugin_id` by `actor` in the audit log of each of `workspaces`.
pub(crate) async fn audit(
    db: &Db,
    actor: Uuid,
    workspaces: &[Uuid],
    plugin_id: &str,
    action: &str,
    details: Value,
) -> AppResult<()> {
    let mut tx = db.begin().await?;
    for workspace_id in workspaces {
        crate::team::audit::record(
            &mut tx,
            *workspace_id,
            actor,
            action,
            "plugin",
            Some(plugin_id.to_owned()),
            details.clone(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An installation of a plugin in a workspace, with what a call needs of its plugin.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Installed {
    pub installation_id: Uuid,
    pub plugin_id: String,
    pub workspace_id: Uuid,
    pub enabled: bool,
    pub config: SqlJson<Map<String, Value>>,
    pub secrets: Option<String>,
    pub http_hosts: SqlJson<Vec<String>>,
    pub approved_sha256: String,
    /// The capabilities the admin approved; a manifest asking for more waits for approval.
    pub approved_capabilities: SqlJson<Vec<Capability>>,
    pub sha256: String,
    pub manifest: SqlJson<Manifest>,
    /// The event types an integration is subscribed to.
    pub events: SqlJson<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Installed {
    /// Whether the admin approved the package as it is now: its digest, and every capability
    /// its manifest asks for.
    pub fn is_approved(&self) -> bool {
        self.approved_sha256 == self.sha256
            && self
                .manifest
                .0
                .capabilities
                .iter()
                .all(|c| self.approved_capabilities.0.contains(c))
    }
}

const INSTALLED: &str = "SELECT i.id AS installation_id, i.plugin_id, i.workspace_id, i.enabled,
        i.config, i.secrets, i.http_hosts, i.approved_sha256, i.approved_capabilities,
        p.sha256, p.manifest, i.events,
        i.created_at, i.updated_at
     FROM plugin_installations i JOIN plugins p ON p.id = i.plugin_id";

/// An installation's secret settings, decrypted (none when it has none).
pub(crate) fn open_secrets(
    secrets: &SecretBox,
    sealed: Option<&str>,
) -> AppResult<Map<String, Value>> {
    match sealed {
        Some(sealed) => {
            Ok(serde_json::from_str(&secrets.decrypt(sealed)?).map_err(anyhow::Error::from)?)
        }
        None => Ok(Map::new()),
    }
}

/// A workspace's installation of `plugin_id`.
pub async fn installed(
    db: &Db,
    workspace_id: Uuid,
    plugin_id: &str,
) -> AppResult<Option<Installed>> {
    Ok(db
        .fetch_optional(
            &format!("{INSTALLED} WHERE i.workspace_id = $1 AND i.plugin_id = $2"),
            args![workspace_id, plugin_id],
        )
        .await?)
}

/// All of a workspace's installations.
pub async fn installed_in(db: &Db, workspace_id: Uuid) -> AppResult<Vec<Installed>> {
    Ok(db
        .fetch_all(
            &format!("{INSTALLED} WHERE i.workspace_id = $1"),
            args![workspace_id],
        )
        .await?)
}

/// An installation by its id.
pub async fn installation(db: &Db, id: Uuid) -> AppResult<Option<Installed>> {
    Ok(db
        .fetch_optional(&format!("{INSTALLED} WHERE i.id = $1"), args![id])
        .await?)
}

/// The plugins of `kind` a workspace runs: its enabled installations, and the built-ins that
/// are on by default and not installed there.
pub async fn enabled_of_kind(db: &Db, workspace_id: Uuid, kind: Kind) -> AppResult<Vec<Installed>> {
    let mut enabled: Vec<Installed> = db
        .fetch_all(
            &format!(
                "{INSTALLED} WHERE i.workspace_id = $1 AND i.enabled = $2 AND p.kind = $3
                 ORDER BY i.plugin_id"
            ),
            args![workspace_id, true, kind.as_str()],
        )
        .await?;
    let defaults: Vec<(String, String, SqlJson<Manifest>)> = db
        .fetch_all(
            "SELECT p.id, p.sha256, p.manifest FROM plugins p
             WHERE p.builtin = $2 AND p.kind = $3 AND NOT EXISTS (SELECT 1 FROM plugin_installations i
                WHERE i.plugin_id = p.id AND i.workspace_id = $1)
             ORDER BY p.id",
            args![workspace_id, true, kind.as_str()],
        )
        .await?;
    enabled.extend(
        defaults
            .into_iter()
            .filter(|(_, _, manifest)| on_by_default(&manifest.0))
            .map(|(id, sha256, manifest)| as_shipped(workspace_id, &id, sha256, manifest)),
    );
    enabled.sort_by(|a, b| a.plugin_id.cmp(&b.plugin_id));
    Ok(enabled)
}

/// Whether a built-in plugin runs in every workspace without being installed (until an admin
/// disables it there): it needs no settings and no capability beyond `log` and `config` (and,
/// for the automation actions, `events`, which act only inside the workspace), so running it
/// grants nothing an admin would have to approve.
pub fn on_by_default(manifest: &Manifest) -> bool {
    let needs_settings = manifest
        .config_schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    let acts_in_workspace = manifest.kind == Kind::AutomationAction;
    !needs_settings
        && manifest.http_hosts.is_empty()
        && manifest.capabilities.iter().all(|c| match c {
            Capability::Log | Capability::Config => true,
            Capability::Events => acts_in_workspace,
            _ => false,
        })
}

/// A built-in plugin as shipped, standing in for an installation in `workspace_id`.
fn as_shipped(
    workspace_id: Uuid,
    plugin_id: &str,
    sha256: String,
    manifest: SqlJson<Manifest>,
) -> Installed {
    Installed {
        installation_id: Uuid::nil(),
        plugin_id: plugin_id.to_owned(),
        workspace_id,
        enabled: true,
        config: SqlJson(Map::new()),
        secrets: None,
        http_hosts: SqlJson(manifest.0.http_hosts.clone()),
        approved_sha256: sha256.clone(),
        approved_capabilities: SqlJson(manifest.0.capabilities.clone()),
        sha256,
        manifest,
        events: SqlJson(Vec::new()),
        created_at: now(),
        updated_at: now(),
    }
}

/// The plugin a workspace runs for `plugin_id`: its installation, or for a built-in plugin not
/// installed there, the plugin as shipped (built-ins need no installation to be used).
pub async fn usable(
    db: &Db,
    workspace_id: Uuid,
    plugin_id: &str,
    kind: Kind,
) -> AppResult<Installed> {
    if let Some(found) = installed(db, workspace_id, plugin_id).await? {
        if found.manifest.0.kind != kind {
            return Err(AppError::invalid(
                "plugin_id",
                format!("is not an {} plugin", kind.as_str()),
            ));
        }
        if !found.enabled {
            return Err(AppError::Conflict(format!(
                "the plugin `{plugin_id}` is disabled in this workspace"
            )));
        }
        return Ok(found);
    }
    let shipped: Option<(String, SqlJson<Manifest>, bool)> = db
        .fetch_optional(
            "SELECT sha256, manifest, builtin FROM plugins WHERE id = $1",
            args![plugin_id],
        )
        .await?;
    match shipped {
        Some((sha256, manifest, true)) if manifest.0.kind == kind => {
            Ok(as_shipped(workspace_id, plugin_id, sha256, manifest))
        }
        Some((_, manifest, _)) if manifest.0.kind != kind => Err(AppError::invalid(
            "plugin_id",
            format!("is not an {} plugin", kind.as_str()),
        )),
        Some(_) => Err(AppError::invalid(
            "plugin_id",
            "is not installed in this workspace: install it from the marketplace first",
        )),
        None => Err(AppError::invalid("plugin_id", "is not a known plugin")),
    }
}

/// Calls an installed plugin once and records the call in its invocation log. The outer
/// error is the host's (storage); the inner one the plugin's, which the caller reports.
pub async fn invoke(
    state: &AppState,
    installed: &Installed,
    operation: &str,
    call: Call,
) -> AppResult<Result<Outcome, PluginError>> {
    let cause = Cause::plugin(&installed.plugin_id);
    invoke_for(state, &cause, installed, operation, call).await
}

/// [`invoke`] on behalf of `cause` (a rule): the changes the plugin's events make are
/// recorded as caused by it, one rule firing deeper.
pub async fn invoke_for(
    state: &AppState,
    cause: &Cause,
    installed: &Installed,
    operation: &str,
    call: Call,
) -> AppResult<Result<Outcome, PluginError>> {
    let logged = invoke_logged(state, cause, installed, operation, call, false).await?;
    Ok(logged.result)
}

/// [`invoke_for`], keeping what the plugin logged (for a test call's report). A dry run
/// writes `kv` to a scratch layer and reports the plugin's events without acting on them.
pub async fn invoke_logged(
    state: &AppState,
    cause: &Cause,
    installed: &Installed,
    operation: &str,
    call: Call,
    dry_run: bool,
) -> AppResult<Called> {
    let started = Instant::now();
    let Called { mut result, logs } = match prepare(state, installed).await? {
        Ok(grants) => {
            let grants = sandbox::Grants { dry_run, ..grants };
            state.plugins.call(&installed.sha256, grants, call).await
        }
        Err(refused) => Called::without_logs(Err(refused)),
    };
    if let Ok(outcome) = &result
        && !dry_run
        && let Err(refused) = events::apply(
            state,
            cause,
            installed.workspace_id,
            &installed.plugin_id,
            &outcome.events,
        )
        .await
    {
        result = Err(PluginError::Refused(refused));
    }
    let (status, error) = match &result {
        Ok(_) => ("ok", None),
        Err(e) => ("error", Some(e.to_string())),
    };
    if let Some(e) = &error {
        tracing::warn!(
            plugin = installed.plugin_id,
            operation,
            "plugin call failed: {e}"
        );
    }
    let output = result
        .as_ref()
        .ok()
        .map(|outcome| bounded_output(output_json(&outcome.output)));
    state
        .db
        .execute(
            "INSERT INTO plugin_invocations (id, plugin_id, workspace_id, operation, status,
                duration_us, error, created_at, logs, output)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            args![
                new_id(),
                installed.plugin_id.clone(),
                installed.workspace_id,
                operation,
                status,
                started.elapsed().as_micros() as i64,
                error,
                now(),
                serde_json::json!(logs),
                output
            ],
        )
        .await?;
    if let Err(e) = trim_invocation_log(state, installed).await {
        tracing::warn!(
            plugin = installed.plugin_id,
            "could not trim the invocation log: {e}"
        );
    }
    Ok(Called { result, logs })
}

/// The most of a call's output its invocation record keeps.
const MAX_KEPT_OUTPUT: usize = 16 * 1024;

/// An output as its invocation record keeps it: whole up to 16 KiB, else its size.
fn bounded_output(output: serde_json::Value) -> serde_json::Value {
    let size = output.to_string().len();
    if size <= MAX_KEPT_OUTPUT {
        output
    } else {
        serde_json::json!({"truncated": true, "size_bytes": size})
    }
}

/// Keeps the latest `NOVA_PLUGIN_LOG_KEEP` invocations of an installation (a plugin in one
/// workspace: a busy tenant never trims another's log). Trimming after every tenth of that
/// many calls (of this process) bounds the log at about 1.1 times the figure while keeping the
/// cost off most calls.
async fn trim_invocation_log(state: &AppState, installed: &Installed) -> AppResult<()> {
    let keep = state.config.plugin_log_keep;
    let logged = state
        .plugins
        .logged
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !(logged + 1).is_multiple_of(keep.div_ceil(10)) {
        return Ok(());
    }
    state
        .db
        .execute(
            "DELETE FROM plugin_invocations WHERE plugin_id = $1 AND workspace_id = $2 AND id < (
                SELECT id FROM plugin_invocations WHERE plugin_id = $1 AND workspace_id = $2
                ORDER BY id DESC LIMIT 1 OFFSET $3)",
            args![
                installed.plugin_id.clone(),
                installed.workspace_id,
                keep as i64 - 1
            ],
        )
        .await?;
    Ok(())
}

/// Loads the component (checking its bytes against the recorded digest) and the grants of the
/// installation, or says why the plugin may not run.
async fn prepare(
    state: &AppState,
    installed: &Installed,
) -> AppResult<Result<sandbox::Grants, PluginError>> {
    if !installed.is_approved() {
        return Ok(Err(PluginError::Unapproved));
    }
    let manifest = &installed.manifest.0;
    if !state.plugins.is_loaded(&installed.sha256) {
        let (wasm,): (Vec<u8>,) = state
            .db
            .fetch_one(
                "SELECT wasm FROM plugins WHERE id = $1",
                args![installed.plugin_id.clone()],
            )
            .await?;
        if hash_bytes(&wasm) != installed.sha256 {
            return Ok(Err(PluginError::Tampered));
        }
        if let Err(e) =
            state
                .plugins
                .prepare(&installed.sha256, manifest.kind, manifest.format, &wasm)
        {
            return Ok(Err(e));
        }
    }
    let mut config: HashMap<String, String> = installed
        .config
        .0
        .iter()
        .map(|(k, v)| (k.clone(), setting_text(v)))
        .collect();
    let secrets = open_secrets(&state.secrets, installed.secrets.as_deref())?;
    config.extend(secrets.iter().map(|(k, v)| (k.clone(), setting_text(v))));
    Ok(Ok(sandbox::Grants {
        plugin_id: installed.plugin_id.clone(),
        workspace_id: Some(installed.workspace_id),
        capabilities: manifest.capabilities.clone(),
        http_hosts: installed.http_hosts.0.clone(),
        config,
        dry_run: false,
    }))
}

/// A setting as the plugin's `config.get` returns it: strings as they are, the rest as JSON.
fn setting_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
