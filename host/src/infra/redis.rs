//! The one link to Redis that the cache, the rate limits and the event bus share. Redis is an
//! accelerator here, never a dependency: every command has a deadline, and a failed command
//! opens a circuit breaker that keeps callers off Redis for a moment — they fall back to
//! in-process state at once instead of each waiting on a dead or stalled server. The host
//! starts with Redis down and reconnects by itself when it is back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one command may take before Redis counts as failing.
const COMMAND_DEADLINE: Duration = Duration::from_millis(500);
/// How long connecting may take.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(1);
/// How long callers stay off Redis after a failure before one tries again.
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    /// Held by the one caller that connects; the others fall back meanwhile.
    connecting: tokio::sync::Mutex<()>,
    /// While set and in the future, the breaker is open.
    open_until: Mutex<Option<Instant>>,
    up: AtomicBool,
}

impl RedisLink {
    /// A link to `url`; nothing is connected until the first command.
    pub fn new(url: &str) -> anyhow::Result<RedisLink> {
        let client = redis::Client::open(url).context("REDIS_URL")?;
        Ok(RedisLink {
            inner: Arc::new(Inner {
                client,
                connection: Mutex::default(),
                connecting: tokio::sync::Mutex::default(),
                open_until: Mutex::default(),
                up: AtomicBool::new(true),
            }),
        })
    }

    /// The client, for connections of their own (the bus's subscriber).
    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// Whether the last command reached Redis.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Runs `command` on the shared connection under the deadline. `None` when Redis is
    /// unreachable, stalled or refused it: the caller falls back.
    pub async fn run<T, F, Fut>(&self, what: &str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match tokio::time::timeout(COMMAND_DEADLINE, command(connection)).await {
            Ok(Ok(value)) => {
                self.reached();
                Some(value)
            }
            Ok(Err(e)) if !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) => {
                // Redis answered, with an error of the command's own: the link is fine.
                tracing::warn!(error = %e, what, "redis refused a command");
                None
            }
            Ok(Err(e)) => {
                self.failed(what, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(what, "no answer within the deadline");
                None
            }
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if self.breaker_open() {
            return None;
        }
        if let Some(connection) = self.shared_connection() {
            return Some(connection);
        }
        let _connecting = self.inner.connecting.try_lock().ok()?;
        if let Some(connection) = self.shared_connection() {
            return Some(connection);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_DEADLINE)
            .set_response_timeout(COMMAND_DEADLINE)
            .set_number_of_retries(0);
        let connected = tokio::time::timeout(
            CONNECT_DEADLINE * 2,
            ConnectionManager::new_with_config(self.inner.client.clone(), config),
        )
        .await;
        match connected {
            Ok(Ok(connection)) => {
                *lock(&self.inner.connection) = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(e)) => {
                self.failed("connect", &e.to_string());
                None
            }
            Err(_) => {
                self.failed("connect", "no answer within the deadline");
                None
            }
        }
    }

    fn shared_connection(&self) -> Option<ConnectionManager> {
        lock(&self.inner.connection).clone()
    }

    fn breaker_open(&self) -> bool {
        lock(&self.inner.open_until).is_some_and(|until| Instant::now() < until)
    }

    fn reached(&self) {
        if !self.inner.up.swap(true, Ordering::Relaxed) {
            tracing::info!("redis answers again: shared state resumes");
        }
    }

    /// Opens the breaker and drops the connection, so the next try starts afresh (a
    /// connection to a restarted server can hang rather than fail).
    fn failed(&self, what: &str, error: &str) {
        *lock(&self.inner.open_until) = Some(Instant::now() + BREAKER_OPEN_FOR);
        *lock(&self.inner.connection) = None;
        if self.inner.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                what,
                error,
                "redis is unavailable: rate limits, cache and events fall back to this host alone"
            );
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
