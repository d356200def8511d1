//! The sandbox: wasmtime components (wasm32-wasip2) compiled once per digest and instantiated
//! per call from a pool, with an epoch deadline, a memory limit and instance/table limits.
//! Calls run on the async runtime itself (wasmtime fibers): a plugin yields at every epoch tick
//! and its host calls (store, HTTP) await instead of blocking a thread. Host imports are
//! capabilities checked against the plugin's grants; WASI gives no files, sockets or
//! environment. A trap, timeout or limit becomes a `PluginError` for that call only.

mod engine;
mod extism;
mod host;
pub mod manifest;
mod output;
mod store;

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

pub use engine::Runtime;
pub use host::http::host_allowed;
pub use manifest::{Capability, Kind, Manifest, PackageFormat};
pub use wit::types::{
    Event, File, HttpRequest, HttpResponse, Notification, Report, Scored, Tagging,
};

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
    /// A dry run: `kv` writes go to a scratch layer over the installation's store (reads see
    /// both), so the real store never changes.
    pub dry_run: bool,
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

/// One call: how it went, and what the plugin logged meanwhile (components only; an Extism
/// plugin's log goes to the host's log alone).
pub struct Called {
    pub result: Result<Outcome, PluginError>,
    pub logs: Vec<String>,
}

impl Called {
    pub fn without_logs(result: Result<Outcome, PluginError>) -> Called {
        Called {
            result,
            logs: Vec::new(),
        }
    }
}

pub enum Output {
    Done,
    Json(String),
    Response(HttpResponse),
    Tagging(Tagging),
    File(File),
}
