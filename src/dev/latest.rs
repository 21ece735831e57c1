//! The latest code the demo Mini Program can scan, so that the phone simulator opened on its
//! own (`/_dev/phone`, no `?random=`) offers the code a page is showing: the demo page's, or
//! the hosted login page's after "Try the hosted login".
//!
//! In dev mode the ticket store is wrapped: inserting a code for the demo Mini Program also
//! notes its random in the store's shared cache, for as long as the code's record is kept.
//! Wrapping the store rather than a handler covers every place a code is created, and the note
//! lives where the code does (in Redis too, when the dev server is given one).
//! `GET /_dev/latest-code` reads it back with the code's status as the public status API would
//! give it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::DEMO_APPID;
use crate::clock::{rfc3339, Millis};
use crate::domain::UserCode;
use crate::error::AppError;
use crate::state::AppState;
use crate::tickets::{
    Binding, DeviceRequest, ExchangeTicket, Poll, QrCode, Scanner, StoreError, Subscription, Take,
    TicketStore, TransitionError, WrongCode, RETAIN_AFTER_EXPIRY,
};

/// The cache key of the note; under the store's own prefix like every other key.
const KEY: &str = "dev:latest-code";

/// `inner`, noting each new code of the demo Mini Program.
pub fn noting(inner: Arc<dyn TicketStore>) -> Arc<dyn TicketStore> {
    Arc::new(Noting { inner })
}

struct Noting {
    inner: Arc<dyn TicketStore>,
}

#[async_trait]
impl TicketStore for Noting {
    async fn insert(&self, qr: &QrCode) -> Result<(), StoreError> {
        self.inner.insert(qr).await?;
        if qr.appid == DEMO_APPID {
            // As long as the code's own record: its expiry is shown too, not a 404.
            let lifetime = qr.expires_at.saturating_sub(qr.created_at).max(0) as u64;
            let ttl = Duration::from_millis(lifetime) + RETAIN_AFTER_EXPIRY;
            // The code is stored; a lost note only means the simulator offers nothing.
            if let Err(e) = self.inner.cache_set(KEY, &qr.random, ttl).await {
                tracing::warn!(error = %e.0, "noting the latest demo code failed");
            }
        }
        Ok(())
    }

    async fn get(&self, random: &str) -> Result<Option<QrCode>, StoreError> {
        self.inner.get(random).await
    }

    async fn get_fresh(&self, random: &str) -> Result<Option<QrCode>, StoreError> {
        self.inner.get_fresh(random).await
    }

    async fn scan(
        &self,
        random: &str,
        scanner: &Scanner,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.inner.scan(random, scanner, now).await
    }

    async fn confirm(
        &self,
        random: &str,
        ticket: &ExchangeTicket,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.inner.confirm(random, ticket, now).await
    }

    async fn cancel(
        &self,
        random: &str,
        user_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.inner.cancel(random, user_id, reason, now).await
    }

    async fn take_ticket(
        &self,
        ticket: &str,
        binding: &Binding,
        now: Millis,
    ) -> Result<Take, StoreError> {
        self.inner.take_ticket(ticket, binding, now).await
    }

    fn subscribe(&self, random: &str) -> Subscription {
        self.inner.subscribe(random)
    }

    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.cache_get(key).await
    }

    async fn cache_set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.inner.cache_set(key, value, ttl).await
    }

    async fn cache_remove(&self, key: &str, expected: &str) -> Result<(), StoreError> {
        self.inner.cache_remove(key, expected).await
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        self.inner.lock(key, ttl).await
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<(), StoreError> {
        self.inner.unlock(key, token).await
    }

    async fn hit(&self, key: &str, window: Duration, now: Millis) -> Result<u64, StoreError> {
        self.inner.hit(key, window, now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: Millis,
        cap: u64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.inner.hold(key, member, until, cap, now).await
    }

    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.inner.release(key, member).await
    }

    async fn tally(&self, key: &str, bucket: i64, keep: Duration) -> Result<(), StoreError> {
        self.inner.tally(key, bucket, keep).await
    }

    async fn tallies(&self, key: &str, buckets: &[i64]) -> Result<Vec<u64>, StoreError> {
        self.inner.tallies(key, buckets).await
    }

    async fn announce_config_change(&self) -> Result<(), StoreError> {
        self.inner.announce_config_change().await
    }

    async fn device_insert(&self, req: &DeviceRequest) -> Result<bool, StoreError> {
        self.inner.device_insert(req).await
    }

    async fn device_get(&self, random: &str) -> Result<Option<DeviceRequest>, StoreError> {
        self.inner.device_get(random).await
    }

    async fn device_by_user_code(
        &self,
        user_code: &UserCode,
    ) -> Result<Option<DeviceRequest>, StoreError> {
        self.inner.device_by_user_code(user_code).await
    }

    async fn device_decide(
        &self,
        random: &str,
        user_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<DeviceRequest, TransitionError> {
        self.inner
            .device_decide(random, user_id, approve, now)
            .await
    }

    async fn device_wrong_code(
        &self,
        random: &str,
        limit: u32,
        now: Millis,
    ) -> Result<WrongCode, StoreError> {
        self.inner.device_wrong_code(random, limit, now).await
    }

    async fn device_poll(&self, random: &str, now: Millis) -> Result<Poll, StoreError> {
        self.inner.device_poll(random, now).await
    }

    fn config_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.config_changes()
    }
}

/// `GET /_dev/latest-code`: `{random, client_id, status, expires_at, scan_url}` of the latest
/// code the demo Mini Program can scan; `404 not_found` before the first one and once it has
/// left the store.
pub async fn latest_code_get(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let gone = || AppError::NotFound("no code to scan yet: open the demo page, /_dev/".into());
    let random = state.tickets.cache_get(KEY).await?.ok_or_else(gone)?;
    let qr = state.tickets.get(&random).await?.ok_or_else(gone)?;
    Ok(Json(json!({
        "random": qr.random,
        "client_id": qr.client_id,
        "status": qr.status_at(state.clock.now()).as_str(),
        "expires_at": rfc3339(qr.expires_at),
        "scan_url": state.config.url(&format!("/q/{}", qr.random)),
    })))
}
