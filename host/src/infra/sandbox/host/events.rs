//! `events`: events the plugin emits, applied by the host after the call.

use super::super::store::PluginState;
use super::super::{Capability, Event, wit};

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
