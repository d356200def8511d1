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
