//! `config`: the installation's settings, secrets decrypted.

use super::super::store::PluginState;
use super::super::{Capability, wit};

impl wit::config::Host for PluginState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.require(Capability::Config).ok()?;
        self.grants.config.get(&key).cloned()
    }
}
