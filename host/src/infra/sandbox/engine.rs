//! The engine: the pooling allocator, the epoch ticker, the linker with the host's
//! capabilities, compiled components by digest, and one call on a fresh instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
    UpdateDeadline,
};
use wasmtime_wasi::WasiCtx;

use super::extism::ExtismPlugins;
use super::output::Captured;
use super::store::PluginState;
use super::{
    Call, Called, Grants, Kind, Limits, Outcome, Output, PackageFormat, PluginError, bindings,
};
use crate::db::Db;
use crate::infra::outbound::Outbound;

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
    http: Outbound,
    slots: Arc<tokio::sync::Semaphore>,
    extism: ExtismPlugins,
    /// Invocation-log rows this process wrote: every so many, the log is trimmed.
    pub logged: Arc<std::sync::atomic::AtomicU64>,
}

/// Plugin instances alive at once; more calls wait for a slot.
const POOL_SLOTS: u32 = 64;

/// Epochs tick every this often: at each tick a running plugin yields to the other tasks, and
/// is stopped once its deadline has passed.
const TICK: Duration = Duration::from_millis(5);

impl Runtime {
    pub fn new(limits: Limits, db: Db, http: Outbound) -> anyhow::Result<Runtime> {
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
        // wasmtime and Extism would also compile the text format: a package is a binary.
        if !wasm.starts_with(b"\0asm") {
            return Err(PluginError::Invalid {
                kind: kind.as_str(),
                reason: "not a WebAssembly binary (the text format is not accepted)".into(),
            });
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

    /// The host capabilities (`log`, `kv`, `config`, `http`, `events`) a prepared component
    /// imports; none for an Extism plugin (its host functions are granted by name).
    pub fn imported_capabilities(&self, digest: &str) -> Vec<String> {
        let Some(prepared) = self.lookup(digest) else {
            return Vec::new();
        };
        let component = match &prepared {
            Prepared::Integration(pre) => pre.instance_pre().component(),
            Prepared::AutomationAction(pre) => pre.instance_pre().component(),
            Prepared::WebhookHandler(pre) => pre.instance_pre().component(),
            Prepared::AutoTagger(pre) => pre.instance_pre().component(),
            Prepared::AnalyticsExporter(pre) => pre.instance_pre().component(),
        };
        let mut found: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .filter_map(|(name, _)| capability_of_import(name))
            .collect();
        found.sort();
        found.dedup();
        found
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

    /// Runs one call on a fresh instance (waiting for a free slot of the pool first): how it
    /// went, and the lines the plugin logged (whether it succeeded or not).
    pub async fn call(&self, digest: &str, grants: Grants, call: Call) -> Called {
        // Extism plugins take a slot too: one limit on plugin instances alive at once.
        let _slot = match self.slots.acquire().await {
            Ok(slot) => slot,
            Err(e) => {
                let closed = PluginError::Trap(format!("the plugin pool is closed: {e}"));
                return Called::without_logs(Err(closed));
            }
        };
        let Some(prepared) = self.lookup(digest) else {
            let result = self.extism.call(digest, self.limits, grants, call).await;
            return Called::without_logs(result);
        };
        let deadline = self.limits.deadline;
        let stop_at = Instant::now() + deadline;
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let state = PluginState {
            wasi: WasiCtx::builder()
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .build(),
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
            logs: Default::default(),
            scratch: Default::default(),
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
        let output = self.dispatch(&prepared, &mut store, call).await;
        let result = match output {
            Ok(Ok(output)) => Ok(Outcome {
                output,
                events: std::mem::take(&mut store.data_mut().events),
            }),
            Ok(Err(reported)) => Err(PluginError::Reported(reported)),
            Err(e) => Err(
                if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                    PluginError::Timeout(deadline.as_millis() as u64)
                } else if format!("{e:#}").contains("forcing trap when growing memory") {
                    PluginError::Memory(self.limits.memory_bytes as u64 >> 20)
                } else {
                    PluginError::Trap(format!("{e:#}"))
                },
            ),
        };
        let mut logs = std::mem::take(&mut store.data_mut().logs);
        for line in stdout
            .lines("stdout: ")
            .into_iter()
            .chain(stderr.lines("stderr: "))
        {
            logs.push(line);
        }
        Called {
            result,
            logs: logs.into_lines(),
        }
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

/// The capability an import names (`nova:plugin/http@0.1.0` → `http`), if it is one.
fn capability_of_import(name: &str) -> Option<String> {
    let interface = name.strip_prefix("nova:plugin/")?;
    let interface = interface.split('@').next().unwrap_or(interface);
    super::manifest::Capability::parse(interface).map(|c| c.as_str().to_owned())
}
