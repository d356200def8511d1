//! API requests counted per caller (user and token) and day, for `GET /api/usage/metrics`.
//! Requests are counted in memory and added to `api_usage_daily` every second, so a request
//! costs no write of its own; replicas each add their own counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::args;
use crate::db::{Db, now};

const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Who made the request, filled in by authentication (the request's extension).
#[derive(Clone, Default)]
pub struct CallerSlot(pub Arc<OnceLock<Caller>>);

/// The user and token a request was made with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    pub user_id: Uuid,
    pub token_id: Uuid,
    pub api_key: bool,
}

impl CallerSlot {
    /// Notes the authenticated user and token.
    pub fn fill(&self, user_id: Uuid, token_id: Uuid, api_key: bool) {
        let _ = self.0.set(Caller {
            user_id,
            token_id,
            api_key,
        });
    }
}

/// Requests and errors (4xx and 5xx) by (day, user, token), not yet written.
#[derive(Default)]
pub struct ApiUsage {
    counts: Mutex<HashMap<(NaiveDate, Caller), (i64, i64)>>,
}

impl ApiUsage {
    pub fn count(&self, slot: &CallerSlot, status: u16) {
        let Some(caller) = slot.0.get().copied() else {
            return;
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counts.entry((now().date_naive(), caller)).or_default();
        entry.0 += 1;
        entry.1 += i64::from(status >= 400);
    }

    fn take(&self) -> HashMap<(NaiveDate, Caller), (i64, i64)> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds what was counted to the table; counts that could not be written are kept.
    async fn flush(&self, db: &Db) {
        for ((date, caller), (requests, errors)) in self.take() {
            let written = db
                .execute(
                    "INSERT INTO api_usage_daily (date, user_id, token_id, api_key, requests, errors)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (date, user_id, token_id) DO UPDATE SET
                        requests = api_usage_daily.requests + excluded.requests,
                        errors = api_usage_daily.errors + excluded.errors",
                    args![
                        date,
                        caller.user_id,
                        caller.token_id,
                        caller.api_key,
                        requests,
                        errors
                    ],
                )
                .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "could not write API usage; keeping it for the next try");
                let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                let entry = counts.entry((date, caller)).or_default();
                entry.0 += requests;
                entry.1 += errors;
            }
        }
    }
}

/// Writes the counts every second until shutdown, and once more then.
pub fn spawn_flush(usage: Arc<ApiUsage>, db: Db, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => usage.flush(&db).await,
                _ = shutdown.changed() => {
                    usage.flush(&db).await;
                    return;
                }
            }
        }
    });
}
