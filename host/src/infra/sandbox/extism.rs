//! Extism plugins, the second format: a core wasm module from an Extism PDK exporting the
//! kind's function (`notify`, `run`, `handle`, `suggest`, `render`), JSON in and out. They get
//! no WASI, the installation's settings as Extism config, Extism's timeout (the same deadline)
//! and a memory limit; `kv`, `http` and `events` are for component plugins only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use extism::{CompiledPlugin, Manifest as ExtismManifest, Plugin, PluginBuilder, Wasm};
use serde_json::{Value, json};

use super::manifest::Kind;
use super::{
    Call, File, Grants, HttpResponse, Limits, Outcome, Output, PluginError, Scored, Tagging,
};

/// The function an Extism plugin of `kind` exports.
fn export_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Integration => "notify",
        Kind::AutomationAction => "run",
        Kind::WebhookHandler => "handle",
        Kind::AutoTagger => "suggest",
        Kind::AnalyticsExporter => "render",
    }
}

/// Compiled Extism plugins, by digest and settings (Extism bakes its config into the
/// compiled plugin).
#[derive(Clone, Default)]
pub struct ExtismPlugins {
    modules: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    compiled: Arc<Mutex<HashMap<String, Arc<CompiledPlugin>>>>,
}

fn compile(
    wasm: &[u8],
    limits: Limits,
    config: &HashMap<String, String>,
) -> Result<CompiledPlugin, String> {
    let manifest = ExtismManifest::new([Wasm::data(wasm.to_vec())])
        .with_timeout(limits.deadline)
        .with_memory_max((limits.memory_bytes / 65_536) as u32)
        .with_config(config.clone().into_iter());
    CompiledPlugin::new(PluginBuilder::new(manifest).with_wasi(false)).map_err(|e| format!("{e:#}"))
}

impl ExtismPlugins {
    pub fn is_loaded(&self, digest: &str) -> bool {
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(digest)
    }

    /// Checks that `wasm` is an Extism plugin exporting `kind`'s function, and keeps it.
    pub fn prepare(
        &self,
        digest: &str,
        kind: Kind,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<(), PluginError> {
        let invalid = |reason: String| PluginError::Invalid {
            kind: kind.as_str(),
            reason,
        };
        let compiled = compile(wasm, limits, &HashMap::new()).map_err(invalid)?;
        let plugin = Plugin::new_from_compiled(&compiled).map_err(|e| invalid(format!("{e:#}")))?;
        if !plugin.function_exists(export_name(kind)) {
            return Err(invalid(format!(
                "an Extism {} plugin exports `{}`",
                kind.as_str(),
                export_name(kind)
            )));
        }
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_owned(), Arc::new(wasm.to_vec()));
        Ok(())
    }

    pub fn evict(&self, digest: &str) {
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| !key.starts_with(digest));
    }

    /// Runs one call on a fresh instance, on a blocking thread (Extism calls are synchronous).
    pub async fn call(
        &self,
        digest: &str,
        limits: Limits,
        grants: Grants,
        call: Call,
    ) -> Result<Outcome, PluginError> {
        let kind = call.kind();
        let wasm = self
            .modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
            .ok_or_else(|| PluginError::Invalid {
                kind: kind.as_str(),
                reason: "the module is not loaded".into(),
            })?;
        let mut settings: Vec<(&String, &String)> = grants.config.iter().collect();
        settings.sort();
        let key = format!(
            "{digest}:{}",
            crate::infra::hashing::hash_bytes(format!("{settings:?}").as_bytes())
        );
        let cache = self.compiled.clone();
        let input = input_of(&call).to_string();
        tokio::task::spawn_blocking(move || {
            let cached = cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned();
            let compiled = match cached {
                Some(c) => c,
                None => {
                    let c = Arc::new(
                        compile(&wasm, limits, &grants.config).map_err(PluginError::Trap)?,
                    );
                    cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, c.clone());
                    c
                }
            };
            let mut plugin = Plugin::new_from_compiled(&compiled)
                .map_err(|e| PluginError::Trap(format!("{e:#}")))?;
            let output: String = plugin.call(export_name(kind), input).map_err(|e| {
                let message = format!("{e:#}");
                if message.starts_with("timeout") {
                    PluginError::Timeout(limits.deadline.as_millis() as u64)
                } else if message.starts_with("oom") {
                    PluginError::Memory(limits.memory_bytes as u64 >> 20)
                } else {
                    PluginError::Reported(message)
                }
            })?;
            Ok(Outcome {
                output: output_of(kind, &output).map_err(|e| {
                    PluginError::Reported(format!(
                        "its output is not what a {} returns: {e}",
                        kind.as_str()
                    ))
                })?,
                events: Vec::new(),
            })
        })
        .await
        .map_err(|e| PluginError::Trap(format!("the call's thread failed: {e}")))?
    }
}

fn input_of(call: &Call) -> Value {
    match call {
        Call::Notify(n) => {
            json!({"title": n.title, "text": n.text, "url": n.url, "severity": n.severity})
        }
        Call::Run { params, event } => json!({
            "params": serde_json::from_str::<Value>(params).unwrap_or(Value::Null),
            "event": {"kind": event.kind, "payload": serde_json::from_str::<Value>(&event.payload).unwrap_or(Value::Null)},
        }),
        Call::Handle(r) => json!({
            "method": r.method, "url": r.url, "headers": r.headers,
            "body": String::from_utf8_lossy(&r.body),
        }),
        Call::Suggest { title, text } => json!({"title": title, "text": text}),
        Call::Render(report) => json!({
            "title": report.title,
            "data": serde_json::from_str::<Value>(&report.data).unwrap_or(Value::Null),
        }),
    }
}

fn scored(list: &Value) -> Vec<Scored> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(Scored {
                name: s["name"].as_str()?.to_owned(),
                confidence: s["confidence"].as_f64().unwrap_or(0.0) as f32,
            })
        })
        .collect()
}

fn output_of(kind: Kind, output: &str) -> Result<Output, String> {
    let parsed = || serde_json::from_str::<Value>(output).map_err(|e| e.to_string());
    Ok(match kind {
        Kind::Integration => Output::Done,
        Kind::AutomationAction => Output::Json(output.to_owned()),
        Kind::WebhookHandler => {
            let v = parsed()?;
            Output::Response(HttpResponse {
                status: v["status"].as_u64().unwrap_or(200) as u16,
                headers: v["headers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned())))
                    .collect(),
                body: v["body"].as_str().unwrap_or_default().as_bytes().to_vec(),
            })
        }
        Kind::AutoTagger => {
            let v = parsed()?;
            Output::Tagging(Tagging {
                tags: scored(&v["tags"]),
                categories: scored(&v["categories"]),
            })
        }
        Kind::AnalyticsExporter => {
            let v = parsed()?;
            Output::File(File {
                content_type: v["content_type"]
                    .as_str()
                    .ok_or("no content_type")?
                    .to_owned(),
                file_name: v["file_name"].as_str().unwrap_or("report").to_owned(),
                bytes: STANDARD
                    .decode(v["base64"].as_str().ok_or("no base64")?)
                    .map_err(|e| e.to_string())?,
            })
        }
    })
}
