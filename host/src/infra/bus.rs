//! The event bus: in-process by default; with `REDIS_URL`, every publish goes through Redis
//! pub/sub so that an event raised on one replica reaches sockets held by any replica.
//!
//! Subscribers always listen on the local channels; with Redis, one task per host relays the
//! Redis messages into them (and a publish reaches local subscribers only through that relay,
//! so ordering is the same for everyone). While Redis is unreachable, or the relay is not
//! subscribed, events are delivered on this host directly: sockets held here still hear
//! everything raised here, and cross-replica delivery resumes when the relay is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::redis::{CONNECT_DEADLINE, RedisLink};

/// How many events a channel holds for a subscriber that has not read them yet. A socket
/// that falls further behind is dropped as a slow consumer: memory stays bounded.
pub const CHANNEL_CAPACITY: usize = 512;

const REDIS_PREFIX: &str = "nova:events:";

#[derive(Clone)]
pub struct EventBus {
    local: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>>,
    redis: Option<RedisLink>,
    /// Whether this host's relay is subscribed to Redis right now.
    relaying: Arc<AtomicBool>,
}

impl EventBus {
    pub fn in_process() -> EventBus {
        EventBus {
            local: Arc::default(),
            redis: None,
            relaying: Arc::default(),
        }
    }

    /// A bus over Redis pub/sub; starts the relay task.
    pub async fn redis(link: RedisLink) -> EventBus {
        let bus = EventBus {
            redis: Some(link),
            ..EventBus::in_process()
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(relay(bus.clone(), ready_tx));
        // Subscribed before the host serves (when Redis is up), so no event published after
        // start is missed.
        let _ = tokio::time::timeout(CONNECT_DEADLINE * 3, ready_rx).await;
        bus
    }

    /// Subscribes to `channel` (e.g. `chat:<session id>`, `user:<user id>`).
    pub fn subscribe(&self, channel: &str) -> broadcast::Receiver<Arc<str>> {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Publishes a JSON event to everyone subscribed to `channel`, on every replica.
    pub async fn publish(&self, channel: &str, event: &serde_json::Value) {
        let payload = event.to_string();
        let published = match &self.redis {
            Some(link) => {
                let key = format!("{REDIS_PREFIX}{channel}");
                let message = payload.clone();
                link.run("publish", |mut conn| async move {
                    redis::cmd("PUBLISH")
                        .arg(key)
                        .arg(message)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await
                .is_some()
            }
            None => false,
        };
        // Without a live relay, what was published would not come back to this host.
        if !published || !self.relaying.load(Ordering::SeqCst) {
            self.deliver(channel, payload.into());
        }
    }

    /// Whether events reach other replicas right now (always true without Redis).
    pub fn shared(&self) -> bool {
        self.redis.is_none() || self.relaying.load(Ordering::SeqCst)
    }

    fn deliver(&self, channel: &str, payload: Arc<str>) {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = map.get(channel)
            && sender.send(payload).is_err()
        {
            // Nobody listens any more: forget the channel.
            map.remove(channel);
        }
    }
}

/// Relays Redis messages into local channels, reconnecting with a back-off. `ready` is told
/// after the first attempt, whether it subscribed or not.
async fn relay(bus: EventBus, ready: tokio::sync::oneshot::Sender<()>) {
    let Some(link) = bus.redis.clone() else {
        return;
    };
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        let subscribed = tokio::time::timeout(CONNECT_DEADLINE, async {
            let mut pubsub = link.client().get_async_pubsub().await?;
            pubsub.psubscribe(format!("{REDIS_PREFIX}*")).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(mut pubsub)) => {
                bus.relaying.store(true, Ordering::SeqCst);
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                backoff = Duration::from_millis(100);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let channel = msg.get_channel_name().to_owned();
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if let Some(name) = channel.strip_prefix(REDIS_PREFIX) {
                        bus.deliver(name, payload.into());
                    }
                }
                bus.relaying.store(false, Ordering::SeqCst);
                tracing::warn!("redis event relay disconnected; reconnecting");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "redis event relay cannot subscribe"),
            Err(_) => tracing::debug!("redis event relay: no answer within the deadline"),
        }
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
