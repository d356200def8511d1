//! Fixed-window rate limits: in-process by default, shared through Redis when `REDIS_URL` is
//! set, so that several replicas count one user's requests together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::ConnectionManager;

use crate::error::AppError;

#[derive(Clone)]
pub enum RateLimiter {
    InProcess(Arc<Mutex<HashMap<String, (Instant, u32)>>>),
    Redis(ConnectionManager),
}

impl RateLimiter {
    pub fn in_process() -> RateLimiter {
        RateLimiter::InProcess(Arc::default())
    }

    pub async fn redis(url: &str) -> anyhow::Result<RateLimiter> {
        let client = redis::Client::open(url).context("REDIS_URL")?;
        let manager = ConnectionManager::new(client)
            .await
            .context("REDIS_URL: cannot connect")?;
        Ok(RateLimiter::Redis(manager))
    }

    /// Counts one hit on `key` against `limit` a minute.
    pub async fn per_minute(&self, key: &str, limit: u32) -> Result<(), AppError> {
        self.hit(key, limit, Duration::from_secs(60)).await
    }

    /// Counts one hit on `key`; past `limit` hits within `window` it answers 429 with the
    /// time until the window ends.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), AppError> {
        let (count, remaining) = match self {
            RateLimiter::InProcess(windows) => {
                let now = Instant::now();
                let mut windows = windows
                    .lock()
                    .map_err(|_| anyhow::anyhow!("rate limiter lock poisoned"))?;
                // Forget finished windows now and then so the map stays small.
                if windows.len() > 10_000 {
                    windows.retain(|_, (start, _)| now.duration_since(*start) < window);
                }
                let entry = windows.entry(key.to_owned()).or_insert((now, 0));
                if now.duration_since(entry.0) >= window {
                    *entry = (now, 0);
                }
                entry.1 += 1;
                (entry.1, window.saturating_sub(now.duration_since(entry.0)))
            }
            RateLimiter::Redis(conn) => {
                let mut conn = conn.clone();
                let key = format!("nova:ratelimit:{key}");
                let (count, ttl_ms): (u32, i64) = redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(window.as_millis() as u64)
                    .arg("NX")
                    .ignore()
                    .pttl(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| anyhow::anyhow!("redis rate limit: {e}"))?;
                (count, Duration::from_millis(ttl_ms.max(0) as u64))
            }
        };
        if count > limit {
            Err(AppError::TooManyRequests {
                retry_after: remaining.max(Duration::from_secs(1)),
            })
        } else {
            Ok(())
        }
    }
}
