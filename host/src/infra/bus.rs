//! The event bus: in-process by default; with `REDIS_URL`, every publish goes through Redis
//! pub/sub so that an event raised on one replica reaches sockets held by any replica.
//!
//! Subscribers always listen on the local channels; with Redis, one task per host relays the
//! Redis messages into them (and a publish reaches local subscribers only through that relay,
//! so ordering is the same for everyone).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

/// How many events a channel holds for a subscriber that has not read them yet. A socket
/// that falls further behind is dropped as a slow consumer: memory stays bounded.
pub const CHANNEL_CAPACITY: usize = 512;

const REDIS_PREFIX: &str = "nova:events:";

#[derive(Clone)]
pub struct EventBus {
    local: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>>,
    redis: Option<ConnectionManager>,
}

impl EventBus {
    pub fn in_process() -> EventBus {
        EventBus {
            local: Arc::default(),
            redis: None,
        }
    }

    /// A bus over Redis pub/sub; starts the relay task.
    pub async fn redis(url: &str) -> anyhow::Result<EventBus> {
        let client = redis::Client::open(url)?;
        let publisher = ConnectionManager::new(client.clone()).await?;
        let bus = EventBus {
            local: Arc::default(),
            redis: Some(publisher),
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(relay(client, bus.clone(), ready_tx));
        // Subscribed before the host serves, so no event published after start is missed.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        Ok(bus)
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
        match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                let sent: Result<i64, _> = redis::cmd("PUBLISH")
                    .arg(format!("{REDIS_PREFIX}{channel}"))
                    .arg(&payload)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, channel, "redis publish failed; delivering locally");
                    self.deliver(channel, payload.into());
                }
            }
            None => self.deliver(channel, payload.into()),
        }
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

/// Relays Redis messages into local channels, reconnecting with a back-off.
async fn relay(client: redis::Client, bus: EventBus, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.psubscribe(format!("{REDIS_PREFIX}*")).await {
                    tracing::warn!(error = %e, "redis psubscribe failed");
                } else {
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
                    tracing::warn!("redis event relay disconnected; reconnecting");
                }
            }
            Err(e) => tracing::warn!(error = %e, "redis event relay cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
