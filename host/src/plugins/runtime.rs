//! The sandbox: wasmtime components (wasm32-wasip2) compiled once per digest and instantiated
//! per call from a pool, with an epoch deadline, a memory limit and instance/table limits.
//! Calls run on the async runtime itself (wasmtime fibers): a plugin yields at every epoch tick
//! and its host calls (store, HTTP) await instead of blocking a thread. Host imports are
//! capabilities checked against the plugin's grants; WASI gives no files, sockets or
//! environment. A trap, timeout or limit becomes a `PluginError` for that call only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::extism::ExtismPlugins;
use super::manifest::{Capability, Kind, PackageFormat};
use crate::args;
use crate::db::Db;

mod bindings {
    pub mod integration {
        wasmtime::component::bindgen!({
            world: "integration",
            path: "../wit",
            imports: { default: async },
            exports: { default: async },
        });
    }
    macro_rules! world {
        ($module:ident, $world:literal) => {
            pub mod $module {
                wasmtime::component::bindgen!({
                    world: $world,
                    path: "../wit",
                    imports: { default: async },
                    exports: { default: async },
                    with: {
                        "nova:plugin/types": super::integration::nova::plugin::types,
                        "nova:plugin/log": super::integration::nova::plugin::log,
                        "nova:plugin/kv": super::integration::nova::plugin::kv,
                        "nova:plugin/config": super::integration::nova::plugin::config,
                        "nova:plugin/http": super::integration::nova::plugin::http,
                        "nova:plugin/events": super::integration::nova::plugin::events,
                    },
                });
            }
        };
    }
    world!(automation_action, "automation-action");
    world!(webhook_handler, "webhook-handler");
    world!(auto_tagger, "auto-tagger");
    world!(analytics_exporter, "analytics-exporter");
}

use bindings::integration::nova::plugin as wit;
pub use wit::types::{
    Event, File, HttpRequest, HttpResponse, Notification, Report, Scored, Tagging,
};

/// Why a call failed. The message is what the admin sees in the invocation log.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin returned an error of its own.
    #[error("the plugin reported: {0}")]
    Reported(String),
    /// The host would not act on what the plugin asked for.
    #[error("{0}")]
    Refused(String),
    #[error("the plugin ran past its {0} ms deadline and was stopped")]
    Timeout(u64),
    #[error("the plugin exceeded its memory limit of {0} MiB")]
    Memory(u64),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error(
        "the plugin changed since the workspace admin approved it: approve the new version (PUT its installation) to run it"
    )]
    Unapproved,
    #[error("the stored package does not match its recorded SHA-256 digest; it was refused")]
    Tampered,
    #[error("the plugin is not a valid {kind} component: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

/// Sandbox limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
}

/// What one installation may do, and the data its host calls need.
#[derive(Clone)]
pub struct Grants {
    pub plugin_id: String,
    pub workspace_id: Option<Uuid>,
    pub capabilities: Vec<Capability>,
    /// Hosts the manifest declares and the admin approved (`*.example.com` allowed).
    pub http_hosts: Vec<String>,
    /// The installation's settings, secrets decrypted.
    pub config: HashMap<String, String>,
}

/// One call into a plugin.
pub enum Call {
    Notify(Notification),
    Run { params: String, event: Event },
    Handle(HttpRequest),
    Suggest { title: String, text: String },
    Render(Report),
}

impl Call {
    pub fn kind(&self) -> Kind {
        match self {
            Call::Notify(_) => Kind::Integration,
            Call::Run { .. } => Kind::AutomationAction,
            Call::Handle(_) => Kind::WebhookHandler,
            Call::Suggest { .. } => Kind::AutoTagger,
            Call::Render(_) => Kind::AnalyticsExporter,
        }
    }
}

/// What a call returned, with the events the plugin emitted.
pub struct Outcome {
    pub output: Output,
    pub events: Vec<Event>,
}

pub enum Output {
    Done,
    Json(String),
    Response(HttpResponse),
    Tagging(Tagging),
    File(File),
}

/// A component ready to instantiate, checked against its kind's world.
#[derive(Clone)]
enum Prepared {
    Integration(bindings::integration::IntegrationPre<PluginState>),
    AutomationAction(bindings::automation_action::AutomationActionPre<PluginState>),
    WebhookHandler(bindings::webhook_handler::WebhookHandlerPre<PluginState>),
    AutoTagger(bindings::auto_tagger::AutoTaggerPre<PluginState>),
    AnalyticsExporter(bindings::analytics_exporter::AnalyticsExporterPre<PluginState>),
}

/// The engine, the linker with the host's capabilities, and the compiled components by digest.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    compiled: Arc<Mutex<HashMap<String, Prepared>>>,
    limits: Limits,
    db: Db,
    http: reqwest::Client,
    slots: Arc<tokio::sync::Semaphore>,
    extism: ExtismPlugins,
    /// Invocation-log rows this process wrote: every so many, the log is trimmed.
    pub(super) logged: Arc<std::sync::atomic::AtomicU64>,
}

/// Plugin instances alive at once; more calls wait for a slot.
const POOL_SLOTS: u32 = 64;

/// Epochs tick every this often: at each tick a running plugin yields to the other tasks, and
/// is stopped once its deadline has passed.
const TICK: Duration = Duration::from_millis(5);

impl Runtime {
    pub fn new(limits: Limits, db: Db, http: reqwest::Client) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 8)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 8)
            .max_core_instances_per_component(16)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .table_elements(100_000)
            .total_stacks(POOL_SLOTS)
            .async_stack_keep_resident(64 << 10)
            .max_memory_size(limits.memory_bytes)
            // A reused slot keeps its first pages mapped (zeroed, not unmapped): a call then
            // does not fault its stack and heap in page by page.
            .linear_memory_keep_resident(512 << 10)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config.epoch_interruption(true);
        // Instances come from a pool of reserved slots: an instantiation reuses a slot's
        // memory (copy-on-write from the compiled image) instead of mapping a fresh one.
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epochs".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::integration::Integration::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            compiled: Arc::default(),
            limits,
            db,
            http,
            slots: Arc::new(tokio::sync::Semaphore::new(POOL_SLOTS as usize)),
            extism: ExtismPlugins::default(),
            logged: Arc::default(),
        })
    }

    /// Compiles `wasm` (once per digest) and checks that it implements `kind`'s world (or,
    /// for Extism, exports `kind`'s function).
    pub fn prepare(
        &self,
        digest: &str,
        kind: Kind,
        format: PackageFormat,
        wasm: &[u8],
    ) -> Result<(), PluginError> {
        if self.is_loaded(digest) {
            return Ok(());
        }
        if format == PackageFormat::Extism {
            return self.extism.prepare(digest, kind, wasm, self.limits);
        }
        let invalid = |reason: String| PluginError::Invalid {
            kind: kind.as_str(),
            reason,
        };
        let component =
            Component::new(&self.engine, wasm).map_err(|e| invalid(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let checked = match kind {
            Kind::Integration => {
                bindings::integration::IntegrationPre::new(pre).map(Prepared::Integration)
            }
            Kind::AutomationAction => bindings::automation_action::AutomationActionPre::new(pre)
                .map(Prepared::AutomationAction),
            Kind::WebhookHandler => {
                bindings::webhook_handler::WebhookHandlerPre::new(pre).map(Prepared::WebhookHandler)
            }
            Kind::AutoTagger => {
                bindings::auto_tagger::AutoTaggerPre::new(pre).map(Prepared::AutoTagger)
            }
            Kind::AnalyticsExporter => bindings::analytics_exporter::AnalyticsExporterPre::new(pre)
                .map(Prepared::AnalyticsExporter),
        }
        .map_err(|e| invalid(format!("{e:#}")))?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_owned(), checked);
        Ok(())
    }

    /// Forgets a compiled plugin (it was removed or replaced).
    pub fn evict(&self, digest: &str) {
        self.extism.evict(digest);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    pub fn is_loaded(&self, digest: &str) -> bool {
        self.lookup(digest).is_some() || self.extism.is_loaded(digest)
    }

    fn lookup(&self, digest: &str) -> Option<Prepared> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// Runs one call on a fresh instance (waiting for a free slot of the pool first).
    pub async fn call(
        &self,
        digest: &str,
        grants: Grants,
        call: Call,
    ) -> Result<Outcome, PluginError> {
        let Some(prepared) = self.lookup(digest) else {
            return self.extism.call(digest, self.limits, grants, call).await;
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| PluginError::Trap(format!("the plugin pool is closed: {e}")))?;
        let deadline = self.limits.deadline;
        let stop_at = Instant::now() + deadline;
        let state = PluginState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .instances(16)
                .tables(16)
                .table_elements(100_000)
                .trap_on_grow_failure(true)
                .build(),
            grants,
            db: self.db.clone(),
            http: self.http.clone(),
            stop_at,
            events: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= stop_at {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let output = self
            .dispatch(&prepared, &mut store, call)
            .await
            .map_err(|e| {
                if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                    PluginError::Timeout(deadline.as_millis() as u64)
                } else if format!("{e:#}").contains("forcing trap when growing memory") {
                    PluginError::Memory(self.limits.memory_bytes as u64 >> 20)
                } else {
                    PluginError::Trap(format!("{e:#}"))
                }
            })?;
        let output = output.map_err(PluginError::Reported)?;
        Ok(Outcome {
            output,
            events: std::mem::take(&mut store.data_mut().events),
        })
    }

    async fn dispatch(
        &self,
        prepared: &Prepared,
        store: &mut Store<PluginState>,
        call: Call,
    ) -> wasmtime::Result<Result<Output, String>> {
        let mismatch = || {
            wasmtime::Error::msg(format!(
                "the plugin is not a {} plugin",
                call.kind().as_str()
            ))
        };
        Ok(match (prepared, &call) {
            (Prepared::Integration(pre), Call::Notify(n)) => pre
                .instantiate_async(&mut *store)
                .await?
                .call_notify(&mut *store, n)
                .await?
                .map(|()| Output::Done),
            (Prepared::AutomationAction(pre), Call::Run { params, event }) => pre
                .instantiate_async(&mut *store)
                .await?
                .call_run(&mut *store, params, event)
                .await?
                .map(Output::Json),
            (Prepared::WebhookHandler(pre), Call::Handle(request)) => pre
                .instantiate_async(&mut *store)
                .await?
                .call_handle(&mut *store, request)
                .await?
                .map(Output::Response),
            (Prepared::AutoTagger(pre), Call::Suggest { title, text }) => pre
                .instantiate_async(&mut *store)
                .await?
                .call_suggest(&mut *store, title, text)
                .await?
                .map(Output::Tagging),
            (Prepared::AnalyticsExporter(pre), Call::Render(report)) => pre
                .instantiate_async(&mut *store)
                .await?
                .call_render(&mut *store, report)
                .await?
                .map(Output::File),
            _ => return Err(mismatch()),
        })
    }
}

/// A store's data: WASI (nothing granted), limits, and what the capabilities need.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    grants: Grants,
    db: Db,
    http: reqwest::Client,
    /// When the call's deadline passes.
    stop_at: Instant,
    events: Vec<Event>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl PluginState {
    fn require(&self, capability: Capability) -> Result<(), String> {
        if self.grants.capabilities.contains(&capability) {
            Ok(())
        } else {
            Err(format!(
                "the `{}` capability was not granted to this plugin",
                capability.as_str()
            ))
        }
    }

    fn kv_scope(&self) -> Result<Uuid, String> {
        self.require(Capability::Kv)?;
        self.grants
            .workspace_id
            .ok_or_else(|| "the key-value store needs an installation".to_owned())
    }
}

/// Hosts are matched exactly, or by a `*.` suffix pattern.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == p,
        }
    })
}

const KV_MAX_KEY: usize = 256;
const KV_MAX_VALUE: usize = 64 * 1024;
const HTTP_MAX_BODY: usize = 1 << 20;

impl wit::types::Host for PluginState {}

impl wit::log::Host for PluginState {
    async fn write(&mut self, level: wit::log::Level, message: String) {
        if self.require(Capability::Log).is_err() {
            return;
        }
        let plugin = &self.grants.plugin_id;
        let message: String = message.chars().take(2_000).collect();
        match level {
            wit::log::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit::log::Level::Info => tracing::info!(plugin, "{message}"),
            wit::log::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit::log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl wit::config::Host for PluginState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.require(Capability::Config).ok()?;
        self.grants.config.get(&key).cloned()
    }
}

impl wit::kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        let workspace = self.kv_scope()?;
        let row: Option<(Vec<u8>,)> = self
            .db
            .fetch_optional(
                "SELECT value FROM plugin_kv WHERE plugin_id = $1 AND workspace_id = $2 AND key = $3",
                args![self.grants.plugin_id.clone(), workspace, key],
            )
            .await
            .map_err(|e| format!("the store failed: {e}"))?;
        Ok(row.map(|(v,)| v))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        let workspace = self.kv_scope()?;
        if key.is_empty() || key.len() > KV_MAX_KEY || value.len() > KV_MAX_VALUE {
            return Err(format!(
                "keys hold 1 to {KV_MAX_KEY} bytes and values at most {KV_MAX_VALUE}"
            ));
        }
        self.db
            .execute(
                "INSERT INTO plugin_kv (plugin_id, workspace_id, key, value, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (plugin_id, workspace_id, key)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                args![
                    self.grants.plugin_id.clone(),
                    workspace,
                    key,
                    value,
                    crate::db::now()
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("the store failed: {e}"))
    }

    async fn delete(&mut self, key: String) -> Result<(), String> {
        let workspace = self.kv_scope()?;
        self.db
            .execute(
                "DELETE FROM plugin_kv WHERE plugin_id = $1 AND workspace_id = $2 AND key = $3",
                args![self.grants.plugin_id.clone(), workspace, key],
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("the store failed: {e}"))
    }
}

impl wit::http::Host for PluginState {
    async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, String> {
        self.require(Capability::Http)?;
        let url = reqwest::Url::parse(&request.url).map_err(|e| format!("bad URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https URLs".into());
        }
        let host = url.host_str().unwrap_or_default();
        if !host_allowed(&self.grants.http_hosts, host) {
            return Err(format!(
                "the host `{host}` is not one this plugin declared and the admin approved"
            ));
        }
        let method = reqwest::Method::from_bytes(request.method.to_uppercase().as_bytes())
            .map_err(|_| format!("bad method `{}`", request.method))?;
        let remaining = self.stop_at.saturating_duration_since(Instant::now());
        let mut builder = self
            .http
            .request(method, url)
            .timeout(remaining.max(Duration::from_millis(1)))
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        async move {
            let response = builder
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("reading the response failed: {e}"))?;
            if body.len() > HTTP_MAX_BODY {
                return Err(format!("the response is over {HTTP_MAX_BODY} bytes"));
            }
            Ok(HttpResponse {
                status,
                headers,
                body: body.to_vec(),
            })
        }
        .await
    }
}

impl wit::events::Host for PluginState {
    async fn emit(&mut self, event: Event) -> Result<(), String> {
        self.require(Capability::Events)?;
        if self.events.len() >= 100 || event.payload.len() > 64 * 1024 {
            return Err("at most 100 events of 64 KiB a call".into());
        }
        serde_json::from_str::<serde_json::Value>(&event.payload)
            .map_err(|e| format!("the payload is not JSON: {e}"))?;
        self.events.push(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_match_exactly_or_by_suffix() {
        let allowed = vec![
            "hooks.slack.com".to_owned(),
            "*.webhook.office.com".to_owned(),
        ];
        assert!(host_allowed(&allowed, "hooks.slack.com"));
        assert!(host_allowed(&allowed, "acme.webhook.office.com"));
        assert!(!host_allowed(&allowed, "webhook.office.com.evil.net"));
        assert!(!host_allowed(&allowed, "evil.net"));
        assert!(!host_allowed(&allowed, "slack.com"));
    }
}
