//! The response cache: in-process by default, Redis with `REDIS_URL` (so replicas share it and
//! its generation). Keys carry the current generation, so a bump retires every entry.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;

use crate::error::AppResult;

const GENERATION_KEY: &str = "nova:cache:generation";

/// How long an answer stays cached (a bump retires it sooner).
pub const TTL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Cache {
    ttl: Duration,
    local: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    generation: Arc<AtomicU64>,
    redis: Option<ConnectionManager>,
}

impl Cache {
    pub fn in_process(ttl: Duration) -> Cache {
        Cache {
            ttl,
            local: Arc::default(),
            generation: Arc::default(),
            redis: None,
        }
    }

    pub async fn redis(url: &str, ttl: Duration) -> anyhow::Result<Cache> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Cache {
            redis: Some(conn),
            ..Cache::in_process(ttl)
        })
    }

    async fn current_generation(&self) -> u64 {
        match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                redis::cmd("GET")
                    .arg(GENERATION_KEY)
                    .query_async::<Option<u64>>(&mut conn)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            }
            None => self.generation.load(Ordering::SeqCst),
        }
    }

    /// Retires every cached answer.
    pub async fn bump(&self) {
        match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                let bumped: Result<u64, _> = redis::cmd("INCR")
                    .arg(GENERATION_KEY)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = bumped {
                    tracing::warn!(error = %e, "cache generation bump failed");
                }
            }
            None => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut map) = self.local.lock() {
                    map.clear();
                }
            }
        }
    }

    /// The cached JSON under `key`, or `compute`'s (then cached).
    pub async fn get_or<T, F>(&self, key: &str, compute: F) -> AppResult<Value>
    where
        T: Serialize,
        F: Future<Output = AppResult<T>>,
    {
        let key = format!("nova:cache:{}:{key}", self.current_generation().await);
        let hit: Option<String> = match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
                    .ok()
                    .flatten()
            }
            None => self.local.lock().ok().and_then(|map| {
                map.get(&key)
                    .filter(|(at, _)| at.elapsed() < self.ttl)
                    .map(|(_, v)| v.clone())
            }),
        };
        if let Some(v) = hit.and_then(|text| serde_json::from_str(&text).ok()) {
            return Ok(v);
        }
        let value = serde_json::to_value(compute.await?).map_err(anyhow::Error::from)?;
        let text = value.to_string();
        match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                let _: Result<(), _> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&text)
                    .arg("EX")
                    .arg(self.ttl.as_secs().max(1))
                    .query_async(&mut conn)
                    .await;
            }
            None => {
                if let Ok(mut map) = self.local.lock() {
                    if map.len() > 10_000 {
                        map.retain(|_, (at, _)| at.elapsed() < self.ttl);
                    }
                    map.insert(key, (Instant::now(), text));
                }
            }
        }
        Ok(value)
    }
}
