//! A store's data: what one call's instance may reach.

use std::time::Instant;

use uuid::Uuid;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{Capability, Event, Grants};
use crate::db::Db;
use crate::infra::outbound::Outbound;

/// A store's data: WASI (nothing granted), limits, and what the capabilities need.
pub struct PluginState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) grants: Grants,
    pub(super) db: Db,
    pub(super) http: Outbound,
    /// When the call's deadline passes.
    pub(super) stop_at: Instant,
    pub(super) events: Vec<Event>,
    /// The call's log lines (`level: message`), kept for its invocation record.
    pub(super) logs: CallLog,
    /// A dry run's writes to `kv` (`None`: deleted), over the installation's store.
    pub(super) scratch: std::collections::HashMap<String, Option<Vec<u8>>>,
}

/// A call's log lines, bounded: at most [`CallLog::LINES`] lines and [`CallLog::BYTES`]
/// bytes; what comes after is counted, not kept.
#[derive(Debug, Default)]
pub struct CallLog {
    pub lines: Vec<String>,
    pub dropped: usize,
    bytes: usize,
}

impl CallLog {
    pub const LINES: usize = 100;
    pub const BYTES: usize = 16 * 1024;

    pub fn push(&mut self, line: String) {
        if self.lines.len() >= Self::LINES || self.bytes + line.len() > Self::BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }

    /// The lines, with a last one saying how many were left out.
    pub fn into_lines(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.lines
                .push(format!("… {} more lines were not kept", self.dropped));
        }
        self.lines
    }
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
    pub(super) fn require(&self, capability: Capability) -> Result<(), String> {
        if self.grants.capabilities.contains(&capability) {
            Ok(())
        } else {
            Err(format!(
                "the `{}` capability was not granted to this plugin",
                capability.as_str()
            ))
        }
    }

    pub(super) fn kv_scope(&self) -> Result<Uuid, String> {
        self.require(Capability::Kv)?;
        self.grants
            .workspace_id
            .ok_or_else(|| "the key-value store needs an installation".to_owned())
    }
}
