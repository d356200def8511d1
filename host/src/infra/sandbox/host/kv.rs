//! `kv`: a key-value store per plugin and workspace, within a quota per installation.

use super::super::store::PluginState;
use super::super::wit;
use crate::args;

const KV_MAX_KEY: usize = 256;
const KV_MAX_VALUE: usize = 64 * 1024;
/// What one installation may keep: keys, and bytes of values together.
pub const KV_MAX_KEYS: i64 = 1_000;
pub const KV_MAX_BYTES: i64 = 4 * 1024 * 1024;

#[derive(sqlx::FromRow)]
struct Usage {
    keys: i64,
    bytes: i64,
}

impl wit::kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        let workspace = self.kv_scope()?;
        if let Some(written) = self.scratch.get(&key) {
            return Ok(written.clone());
        }
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
        // The installation's other keys: what it holds once `key` is (re)written.
        let usage: Usage = self
            .db
            .fetch_one(
                "SELECT COUNT(*) AS keys, CAST(COALESCE(SUM(LENGTH(value)), 0) AS BIGINT) AS bytes
                 FROM plugin_kv WHERE plugin_id = $1 AND workspace_id = $2 AND key <> $3",
                args![self.grants.plugin_id.clone(), workspace, key.clone()],
            )
            .await
            .map_err(|e| format!("the store failed: {e}"))?;
        let usage = self.with_scratch(usage, &key);
        if usage.keys + 1 > KV_MAX_KEYS || usage.bytes + value.len() as i64 > KV_MAX_BYTES {
            return Err(format!(
                "the store is full: an installation keeps at most {KV_MAX_KEYS} keys and {} MiB of values",
                KV_MAX_BYTES >> 20
            ));
        }
        if self.grants.dry_run {
            self.scratch.insert(key, Some(value));
            return Ok(());
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
        if self.grants.dry_run {
            self.scratch.insert(key, None);
            return Ok(());
        }
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

impl PluginState {
    /// The store's usage (`key` aside) as a dry run sees it: its scratch writes counted in.
    /// Only keys are adjusted per scratch entry; a scratch value over a stored one counts
    /// both, erring on the side of the quota.
    fn with_scratch(&self, mut usage: Usage, key: &str) -> Usage {
        for (written, value) in &self.scratch {
            if written == key {
                continue;
            }
            if let Some(value) = value {
                usage.keys += 1;
                usage.bytes += value.len() as i64;
            }
        }
        usage
    }
}
