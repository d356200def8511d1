//! `kv`: a key-value store per plugin and workspace.

use super::super::store::PluginState;
use super::super::wit;
use crate::args;

const KV_MAX_KEY: usize = 256;
const KV_MAX_VALUE: usize = 64 * 1024;

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
