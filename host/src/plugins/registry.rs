//! `/api/plugins`: instance admins upload plugin packages and remove them; admins read the
//! invocation log.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Manifest;
use super::marketplace::{PluginView, plugin_view};
use crate::access::{Role, require_role};
use crate::args;
use crate::auth::{AuthUser, InstanceAdmin};
use crate::db::{Arg, Page, PageQuery};
use crate::error::{AppError, AppPath, AppQuery, AppResult};
use crate::infra::hashing::hash_bytes;
use crate::infra::sandbox::manifest::version_parts;
use crate::state::AppState;

/// The largest component accepted.
const MAX_WASM_BYTES: usize = 20 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_plugin))
        .layer(DefaultBodyLimit::max(MAX_WASM_BYTES + 256 * 1024))
        .routes(routes!(delete_plugin))
        .routes(routes!(list_invocations))
}

/// An upgrade must say what it is: other bytes under the version already stored, or an older
/// version, replace the package only with `force=true` (a 409 says which).
fn refuse_silent_replacement(
    new: &Manifest,
    new_digest: &str,
    stored: &Manifest,
    stored_digest: &str,
) -> AppResult<()> {
    let (new_version, stored_version) =
        (version_parts(&new.version), version_parts(&stored.version));
    if new_version < stored_version {
        return Err(AppError::Conflict(format!(
            "version {} is older than the stored {}: send `force=true` to downgrade",
            new.version, stored.version
        )));
    }
    if new_version == stored_version && new_digest != stored_digest {
        return Err(AppError::Conflict(format!(
            "version {} is already stored with other bytes: raise the version, or send `force=true`",
            new.version
        )));
    }
    Ok(())
}

/// Records `action` in the audit log of every workspace that has `plugin_id` installed.
async fn audit_installations(
    state: &AppState,
    auth: &AuthUser,
    plugin_id: &str,
    action: &str,
    details: serde_json::Value,
) -> AppResult<()> {
    let workspaces: Vec<(Uuid,)> = state
        .db
        .fetch_all(
            "SELECT workspace_id FROM plugin_installations WHERE plugin_id = $1",
            args![plugin_id],
        )
        .await?;
    let workspaces: Vec<Uuid> = workspaces.into_iter().map(|(w,)| w).collect();
    super::audit(&state.db, auth.id, &workspaces, plugin_id, action, details).await
}

/// Uploads a plugin package (instance admins): a multipart form with `manifest` (the
/// `nova-plugin.toml` text), `wasm` (the component) and optionally `sha256` (the digest the
/// uploader expects; a package whose digest differs is refused). Uploading an id again
/// upgrades the plugin; installations keep running the version their admin approved until
/// they approve the new one.
#[utoipa::path(post, path = "/api/plugins", tag = "plugins", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "`manifest`, `wasm`, optional `sha256`, optional `force` (`true` replaces a stored version with other bytes, or downgrades)"),
    responses((status = 201, body = UploadedPlugin), (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 413, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
async fn upload_plugin(
    State(state): State<AppState>,
    InstanceAdmin(auth): InstanceAdmin,
    mut form: Multipart,
) -> AppResult<(StatusCode, Json<UploadedPlugin>)> {
    let (mut manifest_text, mut wasm, mut expected, mut force) = (None, None, None, false);
    while let Some(mut field) = form.next_field().await? {
        match field.name().unwrap_or_default() {
            "wasm" => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await? {
                    if bytes.len() + chunk.len() > MAX_WASM_BYTES {
                        return Err(AppError::PayloadTooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                wasm = Some(bytes);
            }
            "manifest" => manifest_text = Some(field.text().await?),
            "sha256" => expected = Some(field.text().await?),
            "force" => force = field.text().await?.trim() == "true",
            other => {
                return Err(AppError::invalid(
                    other,
                    "is not a field of a plugin upload",
                ));
            }
        }
    }
    let manifest_text =
        manifest_text.ok_or_else(|| AppError::invalid("manifest", "is required"))?;
    let wasm = wasm.ok_or_else(|| AppError::invalid("wasm", "is required"))?;
    let manifest = Manifest::parse(&manifest_text).map_err(AppError::fields)?;
    let digest = hash_bytes(&wasm);
    if let Some(expected) = expected.map(|e| e.trim().to_lowercase())
        && expected != digest
    {
        return Err(AppError::invalid(
            "sha256",
            format!("the package's digest is {digest}, not {expected}: refused as tampered"),
        ));
    }
    let previous: Option<(bool, String, SqlJson<Manifest>)> = state
        .db
        .fetch_optional(
            "SELECT builtin, sha256, manifest FROM plugins WHERE id = $1",
            args![manifest.id.clone()],
        )
        .await?;
    if previous.as_ref().is_some_and(|(builtin, _, _)| *builtin) {
        return Err(AppError::Conflict(format!(
            "`{}` is a built-in plugin; choose another id",
            manifest.id
        )));
    }
    if let Some((_, old_digest, old)) = &previous
        && !force
    {
        refuse_silent_replacement(&manifest, &digest, &old.0, old_digest)?;
    }
    state
        .plugins
        .prepare(&digest, manifest.kind, manifest.format, &wasm)
        .map_err(|e| AppError::invalid("wasm", e.to_string()))?;
    let warnings = undeclared_imports(&state, &manifest, &digest);
    super::store_package(&state.db, &manifest, &digest, &wasm, Some(auth.id)).await?;
    if let Some((_, old, _)) = &previous
        && *old != digest
    {
        state.plugins.evict(old);
        audit_installations(
            &state,
            &auth,
            &manifest.id,
            "plugin.upgrade",
            serde_json::json!({"version": manifest.version, "sha256": digest}),
        )
        .await?;
    }
    // As the marketplace shows it by default: in the uploader's own workspace.
    let personal = crate::access::personal_workspace(&state.db, auth.id).await?;
    let plugin = plugin_view(&state, &manifest.id, personal).await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadedPlugin { plugin, warnings }),
    ))
}

/// An uploaded plugin as the marketplace shows it, and what the author should look at.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedPlugin {
    #[serde(flatten)]
    pub plugin: PluginView,
    /// E.g. host capabilities the component imports that its manifest does not declare:
    /// their calls will be refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Removes an uploaded plugin and every installation of it (instance admins).
#[utoipa::path(delete, path = "/api/plugins/{id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin's id")),
    responses((status = 204), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn delete_plugin(
    State(state): State<AppState>,
    InstanceAdmin(auth): InstanceAdmin,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    let (builtin, digest): (bool, String) = state
        .db
        .fetch_optional(
            "SELECT builtin, sha256 FROM plugins WHERE id = $1",
            args![id.clone()],
        )
        .await?
        .ok_or(AppError::NotFound("plugin"))?;
    if builtin {
        return Err(AppError::Conflict(
            "built-in plugins cannot be removed; disable or uninstall them instead".into(),
        ));
    }
    audit_installations(&state, &auth, &id, "plugin.remove", serde_json::json!({})).await?;
    state
        .db
        .execute("DELETE FROM plugins WHERE id = $1", args![id])
        .await?;
    state.plugins.evict(&digest);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvocationQuery {
    /// The workspace whose calls to list (its owners and admins); instance admins may leave
    /// it out to see every workspace's.
    pub workspace_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Invocation {
    pub id: Uuid,
    pub plugin_id: String,
    pub workspace_id: Option<Uuid>,
    /// e.g. `test`, `auto-tag`, `export`.
    pub operation: String,
    /// `ok` or `error`.
    pub status: String,
    pub duration_us: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The lines the plugin logged (a component's; at most 100 lines or 16 KiB).
    #[schema(value_type = Option<Vec<String>>)]
    pub logs: Option<SqlJson<Vec<String>>>,
    /// What it returned, as JSON (up to 16 KiB; else `{truncated, size_bytes}`).
    #[schema(value_type = Option<Object>)]
    pub output: Option<SqlJson<serde_json::Value>>,
}

/// A plugin's recent calls, newest first: status, duration and error. The log keeps a plugin's
/// latest `NOVA_PLUGIN_LOG_KEEP` calls (10,000 unless configured).
#[utoipa::path(get, path = "/api/plugins/{id}/invocations", tag = "plugins", security(("bearer" = [])),
    params(("id" = String, Path, description = "The plugin's id"), InvocationQuery),
    responses((status = 200, body = Page<Invocation>), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem)))]
async fn list_invocations(
    State(state): State<AppState>,
    auth: AuthUser,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<InvocationQuery>,
) -> AppResult<Json<Page<Invocation>>> {
    let known: Option<(String,)> = state
        .db
        .fetch_optional("SELECT id FROM plugins WHERE id = $1", args![id.clone()])
        .await?;
    if known.is_none() {
        return Err(AppError::NotFound("plugin"));
    }
    let mut binds: Vec<Arg> = args![id];
    let mut select =
        "SELECT id, plugin_id, workspace_id, operation, status, duration_us, error, created_at,
            logs, output
         FROM plugin_invocations WHERE plugin_id = $1"
            .to_owned();
    match q.workspace_id {
        Some(workspace) => {
            if !auth.is_instance_admin {
                require_role(&state.db, workspace, auth.id, Role::Admin).await?;
            }
            binds.push(workspace.into());
            select += " AND workspace_id = $2";
        }
        None => auth.require_instance_admin()?,
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(Json(
        state
            .db
            .page_newest_first(&select, "id", binds, &page, |i: &Invocation| i.id)
            .await?,
    ))
}

/// A warning for host capabilities the component imports that its manifest does not ask
/// for: their calls will be refused. Not a refusal, because toolchains such as
/// componentize-py import every interface of the world whether the code calls it or not.
fn undeclared_imports(state: &AppState, manifest: &Manifest, digest: &str) -> Vec<String> {
    let undeclared: Vec<String> = state
        .plugins
        .imported_capabilities(digest)
        .into_iter()
        .filter(|c| !manifest.capabilities.iter().any(|d| d.as_str() == c))
        .map(|c| format!("`{c}`"))
        .collect();
    if undeclared.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "the component imports {}, which the manifest's capabilities do not declare: its calls to them will be refused",
        undeclared.join(", ")
    )]
}
