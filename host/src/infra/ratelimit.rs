//! Fixed-window rate limits: in-process by default, shared through Redis when `REDIS_URL` is
//! set, so that several replicas count one user's requests together. When Redis cannot be
//! reached, each host counts on its own until it can again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::redis::RedisLink;
use crate::error::AppError;

#[derive(Clone)]
pub struct RateLimiter {
    local: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    redis: Option<RedisLink>,
}

impl RateLimiter {
    pub fn in_process() -> RateLimiter {
        RateLimiter {
            local: Arc::default(),
            redis: None,
        }
    }

    pub fn redis(link: RedisLink) -> RateLimiter {
        RateLimiter {
            redis: Some(link),
            ..RateLimiter::in_process()
        }
    }

    /// Counts one hit on `key` against `limit` a minute.
    pub async fn per_minute(&self, key: &str, limit: u32) -> Result<(), AppError> {
        self.hit(key, limit, Duration::from_secs(60)).await
    }

    /// Counts one hit on `key`; past `limit` hits within `window` it answers 429 with the
    /// time until the window ends.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), AppError> {
        let shared = match &self.redis {
            Some(link) => count_in_redis(link, key, window).await,
            None => None,
        };
        let (count, remaining) = match shared {
            Some(counted) => counted,
            None => self.count_here(key, window),
        };
        if count > limit {
            Err(AppError::TooManyRequests {
                retry_after: remaining.max(Duration::from_secs(1)),
            })
        } else {
            Ok(())
        }
    }

    fn count_here(&self, key: &str, window: Duration) -> (u32, Duration) {
        let now = Instant::now();
        let mut windows = self.local.lock().unwrap_or_else(|e| e.into_inner());
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
}

/// The hit count and the time left in the window, shared by every replica.
async fn count_in_redis(link: &RedisLink, key: &str, window: Duration) -> Option<(u32, Duration)> {
    let key = format!("nova:ratelimit:{key}");
    let (count, ttl_ms): (u32, i64) = link
        .run("rate limit", |mut conn| async move {
            redis::pipe()
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
        })
        .await?;
    Some((count, Duration::from_millis(ttl_ms.max(0) as u64)))
}
