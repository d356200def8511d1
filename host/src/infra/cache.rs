//! The response cache: in-process by default, Redis with `REDIS_URL` (so replicas share it and
//! its generation). Keys carry the current generation, so a bump retires every entry.
//!
//! With Redis unreachable, answers are computed and not cached: another replica's bump could
//! not be seen, so nothing cached here could be trusted. A bump that could not reach Redis is
//! owed, and paid before the shared cache is read again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::redis::RedisLink;
use crate::error::AppResult;

const GENERATION_KEY: &str = "nova:cache:generation";

/// How long an answer stays cached (a bump retires it sooner).
pub const TTL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Cache {
    ttl: Duration,
    local: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    generation: Arc<AtomicU64>,
    redis: Option<RedisLink>,
    /// A bump that did not reach Redis.
    bump_owed: Arc<AtomicBool>,
}

impl Cache {
    pub fn in_process(ttl: Duration) -> Cache {
        Cache {
            ttl,
            local: Arc::default(),
            generation: Arc::default(),
            redis: None,
            bump_owed: Arc::default(),
        }
    }

    pub fn redis(link: RedisLink, ttl: Duration) -> Cache {
        Cache {
            redis: Some(link),
            ..Cache::in_process(ttl)
        }
    }

    /// Retires every cached answer.
    pub async fn bump(&self) {
        match &self.redis {
            Some(link) => {
                let bumped = link
                    .run("cache bump", |mut conn| async move {
                        redis::cmd("INCR")
                            .arg(GENERATION_KEY)
                            .query_async::<u64>(&mut conn)
                            .await
                    })
                    .await;
                self.bump_owed.store(bumped.is_none(), Ordering::SeqCst);
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
        let Some(generation) = self.current_generation().await else {
            return Ok(serde_json::to_value(compute.await?).map_err(anyhow::Error::from)?);
        };
        let key = format!("nova:cache:{generation}:{key}");
        if let Some(v) = self
            .lookup(&key)
            .await
            .and_then(|text| serde_json::from_str(&text).ok())
        {
            return Ok(v);
        }
        let value = serde_json::to_value(compute.await?).map_err(anyhow::Error::from)?;
        self.store(key, value.to_string()).await;
        Ok(value)
    }

    /// The generation to key entries with; `None` when the shared one cannot be known.
    async fn current_generation(&self) -> Option<u64> {
        let Some(link) = &self.redis else {
            return Some(self.generation.load(Ordering::SeqCst));
        };
        if self.bump_owed.load(Ordering::SeqCst) {
            self.bump().await;
            if self.bump_owed.load(Ordering::SeqCst) {
                return None;
            }
        }
        link.run("cache generation", |mut conn| async move {
            redis::cmd("GET")
                .arg(GENERATION_KEY)
                .query_async::<Option<u64>>(&mut conn)
                .await
        })
        .await
        .map(Option::unwrap_or_default)
    }

    async fn lookup(&self, key: &str) -> Option<String> {
        match &self.redis {
            Some(link) => link
                .run("cache read", |mut conn| async move {
                    redis::cmd("GET")
                        .arg(key)
                        .query_async::<Option<String>>(&mut conn)
                        .await
                })
                .await
                .flatten(),
            None => self.local.lock().ok().and_then(|map| {
                map.get(key)
                    .filter(|(at, _)| at.elapsed() < self.ttl)
                    .map(|(_, v)| v.clone())
            }),
        }
    }

    async fn store(&self, key: String, text: String) {
        match &self.redis {
            Some(link) => {
                let ttl = self.ttl.as_secs().max(1);
                link.run("cache write", |mut conn| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&text)
                        .arg("EX")
                        .arg(ttl)
                        .query_async::<()>(&mut conn)
                        .await
                })
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
    }
}
