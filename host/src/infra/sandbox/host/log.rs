//! `log`: lines into the host's log, tagged with the plugin.

use super::super::store::PluginState;
use super::super::{Capability, wit};

impl wit::log::Host for PluginState {
    async fn write(&mut self, level: wit::log::Level, message: String) {
        if self.require(Capability::Log).is_err() {
            return;
        }
        let plugin = &self.grants.plugin_id;
        let message: String = message.chars().take(2_000).collect();
        let name = match level {
            wit::log::Level::Debug => "debug",
            wit::log::Level::Info => "info",
            wit::log::Level::Warn => "warn",
            wit::log::Level::Error => "error",
        };
        self.logs.push(format!("{name}: {message}"));
        match level {
            wit::log::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit::log::Level::Info => tracing::info!(plugin, "{message}"),
            wit::log::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit::log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
