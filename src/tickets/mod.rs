//! QR tickets: the state machine of a QR login and the one-time exchange ticket.
//!
//! A QR code moves `pending → scanned → confirmed | cancelled`; any non-final state reads as
//! `expired` once its TTL has passed (computed from the injected clock, so records may outlive
//! their TTL in storage without changing what callers see). Confirming issues a single-use
//! exchange ticket. Every transition is atomic: a mutex in the in-process backend, a Lua script
//! in Redis.
//!
//! Waiters subscribe to a [`Hub`] of per-QR change counters. The in-process backend bumps the
//! counter directly; the Redis backend publishes on one channel and every instance's listener
//! bumps its own hub, so a browser waiting on instance A hears a confirmation made on B.
//!
//! The same backend also holds small shared cache entries and locks (the WeChat access token),
//! so that one fetch serves every instance, and the device authorization requests of RFC 8628
//! (`device`), whose polling pace every instance must enforce alike.

#[cfg(test)]
mod conformance;
pub mod device;
pub mod memory;
mod near;
pub mod redis;
mod rendered;

pub use device::{DeviceRequest, DeviceStatus, Poll, WrongCode};
pub use rendered::Rendered;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::Millis;
use crate::crypto::{random_token, sha256_hex};
use crate::domain::{AppId, ClientId, PoolSlug, Random, UserCode};
use crate::error::{AppError, AppResult};
use crate::extract::Requester;
use crate::store::apps::App;

/// How long a record is kept after its QR code expired, so late pollers read `expired` rather
/// than `not_found`.
pub const RETAIN_AFTER_EXPIRY: Duration = Duration::from_secs(600);
/// How long an exchange ticket lives after confirmation.
pub const TICKET_TTL: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QrStatus {
    Pending,
    Scanned,
    Confirmed,
    Cancelled,
    Expired,
}

impl QrStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QrStatus::Pending => "pending",
            QrStatus::Scanned => "scanned",
            QrStatus::Confirmed => "confirmed",
            QrStatus::Cancelled => "cancelled",
            QrStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => QrStatus::Pending,
            "scanned" => QrStatus::Scanned,
            "confirmed" => QrStatus::Confirmed,
            "cancelled" => QrStatus::Cancelled,
            "expired" => QrStatus::Expired,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            QrStatus::Confirmed | QrStatus::Cancelled | QrStatus::Expired
        )
    }
}

/// The Mini Program user who scanned a QR code, as the PC page may show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scanner {
    pub user_id: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

/// One QR login attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrCode {
    /// The public name of the code: ≥128 random bits, URL-safe, ≤32 chars.
    pub random: Random,
    pub pool_id: PoolSlug,
    /// The app (OIDC client id) the login is for.
    pub client_id: ClientId,
    /// The Mini Program that may scan it.
    pub appid: AppId,
    /// Stored status; read [`QrCode::status_at`] for what callers see.
    pub status: QrStatus,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// SHA-256 (hex) of the `bind_token` handed to the creator.
    pub bind_hash: String,
    /// SHA-256 (hex) of the creating browser's cookie, when it had one.
    pub browser_hash: Option<String>,
    /// Whether the exchange ticket is revealed only to the creator.
    pub require_binding: bool,
    pub requester_ip: String,
    pub requester_user_agent: String,
    pub scanner: Option<Scanner>,
    /// The exchange ticket, set on confirmation.
    pub ticket: Option<String>,
    /// The two-digit number the PC page shows once the code is scanned and the person taps
    /// on the phone among three (the app's match step); `None` when the step is off.
    #[serde(default)]
    pub match_number: Option<u8>,
    /// Why a cancelled code was cancelled: `declined` (on the phone), `wrong_match_number`,
    /// `page` (the PC page gave up).
    #[serde(default)]
    pub cancel_reason: Option<String>,
}

impl QrCode {
    /// The status as seen at `now`: a non-final code past its TTL is `expired`.
    pub fn status_at(&self, now: Millis) -> QrStatus {
        if !self.status.is_final() && now >= self.expires_at {
            QrStatus::Expired
        } else {
            self.status
        }
    }
}

/// Why a code was cancelled, as the PC page is told (`cancel_reason`).
pub mod cancel_reason {
    /// The person tapped Decline on the phone.
    pub const DECLINED: &str = "declined";
    /// The person tapped a number the PC page did not show.
    pub const WRONG_MATCH_NUMBER: &str = "wrong_match_number";
    /// The PC page that showed the code gave up.
    pub const PAGE: &str = "page";
}

/// What a new code is made of besides its app: who asked for it, and under which name.
pub struct NewCode<'a> {
    /// Its `random`, chosen beforehand so that a cap on pending codes can hold it first.
    pub random: Random,
    /// The creating browser's id (its cookie).
    pub browser: &'a str,
    pub requester: &'a Requester,
    /// Whether the match step applies (the app's setting, unless the API cannot show it).
    pub match_step: bool,
}

/// Creates and stores a pending code for `app`, bound to the browser id `browser` and to a
/// fresh bind token; returns the code and the token (handed to the creator once).
pub async fn create(
    store: &dyn TicketStore,
    app: &App,
    new: NewCode<'_>,
    now: Millis,
) -> Result<(QrCode, String), StoreError> {
    create_with(store, app, new, now, app.require_binding).await
}

/// As [`create`], but always bound to its browser, whatever the app's `require_binding`: the
/// hosted login page's codes. That setting exists for server-side callers that cannot carry
/// a cookie; a page in a browser always can, and unbound, a photo of its QR code would let
/// anyone read the ticket and take the login.
pub async fn create_bound(
    store: &dyn TicketStore,
    app: &App,
    new: NewCode<'_>,
    now: Millis,
) -> Result<(QrCode, String), StoreError> {
    create_with(store, app, new, now, true).await
}

async fn create_with(
    store: &dyn TicketStore,
    app: &App,
    new: NewCode<'_>,
    now: Millis,
    require_binding: bool,
) -> Result<(QrCode, String), StoreError> {
    let NewCode {
        random,
        browser,
        requester,
        match_step,
    } = new;
    let bind_token = random_token(24);
    let qr = QrCode {
        random,
        pool_id: app.pool.clone(),
        client_id: app.client_id.clone(),
        appid: app.miniprogram.clone(),
        status: QrStatus::Pending,
        created_at: now,
        expires_at: now + app.qr_ttl_secs * 1000,
        bind_hash: sha256_hex(bind_token.as_bytes()),
        browser_hash: Some(sha256_hex(browser.as_bytes())),
        require_binding,
        requester_ip: requester.ip.clone(),
        requester_user_agent: requester.user_agent.clone(),
        scanner: None,
        ticket: None,
        match_number: match_step.then(match_number),
        cancel_reason: None,
    };
    store.insert(&qr).await?;
    Ok((qr, bind_token))
}

/// A two-digit number, 10–99, from the CSPRNG.
pub fn match_number() -> u8 {
    use rand::Rng as _;
    rand::rngs::OsRng.gen_range(10..=99)
}

/// Three distinct two-digit numbers in random order, `right` among them: what the phone
/// offers to tap.
pub fn match_choices(right: u8) -> [u8; 3] {
    use rand::seq::SliceRandom as _;
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    let mut choices = vec![right];
    while choices.len() < 3 {
        let n = rng.gen_range(10..=99);
        if !choices.contains(&n) {
            choices.push(n);
        }
    }
    choices.shuffle(&mut rng);
    [choices[0], choices[1], choices[2]]
}

/// Loads the code a caller named, or fails with `not_found`.
pub async fn load(store: &dyn TicketStore, random: &Random) -> AppResult<QrCode> {
    store
        .get(random.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound("no such QR code".into()))
}

/// As [`load`], shared (see [`TicketStore::get_shared`]).
pub async fn load_shared(store: &dyn TicketStore, random: &Random) -> AppResult<Arc<QrCode>> {
    store
        .get_shared(random.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound("no such QR code".into()))
}

/// The one-time ticket a confirmed QR code yields; exchanged once for the user and tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeTicket {
    pub ticket: String,
    pub random: Random,
    pub pool_id: PoolSlug,
    pub client_id: ClientId,
    pub user_id: String,
    pub bind_hash: String,
    pub browser_hash: Option<String>,
    pub require_binding: bool,
    /// When the user confirmed: the `auth_time` of the tokens.
    pub confirmed_at: Millis,
    pub expires_at: Millis,
    /// The recorded login (`store::logins`) the tokens minted from this ticket belong to, so
    /// that a report of it ends them.
    #[serde(default)]
    pub login_id: Option<String>,
}

/// Proof of binding presented by a caller: hashes of its `X-ScanGate-Bind` header and its
/// browser cookie, either of which may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    pub bind_hash: Option<String>,
    pub browser_hash: Option<String>,
}

impl Binding {
    /// Whether this caller is the creator recorded as (`bind_hash`, `browser_hash`).
    pub fn matches(&self, bind_hash: &str, browser_hash: Option<&str>) -> bool {
        let by_token = self
            .bind_hash
            .as_deref()
            .is_some_and(|h| crate::crypto::constant_time_eq(h, bind_hash));
        let by_cookie = match (self.browser_hash.as_deref(), browser_hash) {
            (Some(a), Some(b)) => crate::crypto::constant_time_eq(a, b),
            _ => false,
        };
        by_token || by_cookie
    }
}

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no such QR code")]
    NotFound,
    #[error("the QR code has expired")]
    Expired,
    /// The code is in a state that does not allow this (already final, or scanned by someone
    /// else when scanning).
    #[error("{0}")]
    Conflict(&'static str),
    /// The caller is not the user this transition belongs to.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of presenting an exchange ticket.
// One per exchange, moved once: boxing the ticket would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Consumed: nobody can take it again.
    Taken(ExchangeTicket),
    /// Unknown, already used or expired.
    Missing,
    /// The ticket exists but the caller is not its QR code's creator; it was left in place.
    NotBound,
}

/// The backend itself failed (Redis unreachable, a script error).
#[derive(Debug, thiserror::Error)]
#[error("ticket store: {0:#}")]
pub struct StoreError(#[from] pub anyhow::Error);

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        StoreError(e.into())
    }
}

impl From<StoreError> for crate::error::AppError {
    fn from(e: StoreError) -> Self {
        crate::error::AppError::Unavailable(e.0)
    }
}

impl From<TransitionError> for crate::error::AppError {
    fn from(e: TransitionError) -> Self {
        use crate::error::AppError;
        match e {
            TransitionError::NotFound => AppError::NotFound("no such QR code".into()),
            TransitionError::Expired => AppError::Expired("the QR code has expired".into()),
            TransitionError::Conflict(m) => AppError::Conflict(m.into()),
            TransitionError::Forbidden(m) => AppError::Forbidden(m.into()),
            TransitionError::Store(s) => s.into(),
        }
    }
}

/// The fixed window of length `window` that holds `now`: its index and when it ends.
pub fn window_of(window: Duration, now: Millis) -> (i64, Millis) {
    let len = (window.as_millis() as i64).max(1);
    let index = now.div_euclid(len);
    (index, (index + 1) * len)
}

/// What every ticket backend provides. Both backends pass the same conformance suite.
#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Stores a new pending code. Its random is fresh, so this never overwrites.
    async fn insert(&self, qr: &QrCode) -> Result<(), StoreError>;

    async fn get(&self, random: &str) -> Result<Option<QrCode>, StoreError>;

    /// As [`TicketStore::get`], shared: a store that keeps codes in memory hands out the copy
    /// it keeps, without copying it (the status poll reads every code this way).
    async fn get_shared(&self, random: &str) -> Result<Option<Arc<QrCode>>, StoreError> {
        Ok(self.get(random).await?.map(Arc::new))
    }

    /// As [`TicketStore::get`], past any near cache: for a decision that a copy lagging another
    /// instance's change (by its notification's delay) would get wrong.
    async fn get_fresh(&self, random: &str) -> Result<Option<QrCode>, StoreError> {
        self.get(random).await
    }

    /// pending → scanned by `scanner`. Scanning again by the same user is allowed (the page may
    /// reload); by another user it is a conflict.
    async fn scan(
        &self,
        random: &str,
        scanner: &Scanner,
        now: Millis,
    ) -> Result<QrCode, TransitionError>;

    /// scanned → confirmed by the user who scanned, issuing `ticket` (its `expires_at` set by
    /// the caller). Exactly one of any number of concurrent confirms succeeds.
    async fn confirm(
        &self,
        random: &str,
        ticket: &ExchangeTicket,
        now: Millis,
    ) -> Result<QrCode, TransitionError>;

    /// pending or scanned (by `user_id`) → cancelled, for `reason` (see [`cancel_reason`]).
    async fn cancel(
        &self,
        random: &str,
        user_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<QrCode, TransitionError>;

    /// Consumes an exchange ticket if `binding` satisfies it. Exactly one of any number of
    /// concurrent takes succeeds.
    async fn take_ticket(
        &self,
        ticket: &str,
        binding: &Binding,
        now: Millis,
    ) -> Result<Take, StoreError>;

    /// A receiver that changes whenever the code's state changes, on any instance.
    fn subscribe(&self, random: &str) -> Subscription;

    /// A shared cache value (e.g. a WeChat access token), if present and unexpired.
    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError>;

    async fn cache_set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Removes a cache entry only if it still holds `expected` (so an instance does not drop a
    /// value another instance has just refreshed).
    async fn cache_remove(&self, key: &str, expected: &str) -> Result<(), StoreError>;

    /// Takes a lock for at most `ttl`; `Some(token)` when taken.
    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError>;

    /// Releases a lock if `token` still holds it.
    async fn unlock(&self, key: &str, token: &str) -> Result<(), StoreError>;

    /// Counts one event under `key` in the fixed window of length `window` that holds `now`
    /// and returns the count so far in that window (1 for the first). Counters vanish with
    /// their window.
    async fn hit(&self, key: &str, window: Duration, now: Millis) -> Result<u64, StoreError>;

    /// Holds `member` under `key` until `until`, if fewer than `cap` members are held there at
    /// `now`; `false` (and nothing held) when the cap is reached. A cap on things alive at once
    /// (pending QR codes per address), where [`TicketStore::hit`] counts a rate.
    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: Millis,
        cap: u64,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Lets go of `member` under `key` before its time (a no-op when not held).
    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError>;

    /// Fails when the backend cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new device request, indexed by its user code; `false` (nothing stored) when a
    /// live request already has that user code, so that the caller draws another.
    async fn device_insert(&self, req: &DeviceRequest) -> Result<bool, StoreError>;

    async fn device_get(&self, random: &str) -> Result<Option<DeviceRequest>, StoreError>;

    /// The live request a user code names, if any.
    async fn device_by_user_code(
        &self,
        user_code: &UserCode,
    ) -> Result<Option<DeviceRequest>, StoreError>;

    /// pending → approved (`approve`) or denied (declined) by `user_id`. Exactly one of any
    /// number of concurrent decisions succeeds; the rest are conflicts.
    async fn device_decide(
        &self,
        random: &str,
        user_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<DeviceRequest, TransitionError>;

    /// Counts a wrong user code typed for a pending request; the `limit`-th denies it
    /// (`locked`).
    async fn device_wrong_code(
        &self,
        random: &str,
        limit: u32,
        now: Millis,
    ) -> Result<WrongCode, StoreError>;

    /// One poll of the token endpoint for the request (RFC 8628 §3.5): records when it came,
    /// grows the interval when it came too soon, and redeems an approved request exactly once.
    async fn device_poll(&self, random: &str, now: Millis) -> Result<Poll, StoreError>;

    /// Adds one to the tally of `key` in `bucket` (an hour, say), kept for `keep` after its
    /// first count: counts for reports, shared by every instance.
    async fn tally(&self, key: &str, bucket: i64, keep: Duration) -> Result<(), StoreError>;

    /// The tallies of `key` in each of `buckets` (0 where none was counted or it is gone).
    async fn tallies(&self, key: &str, buckets: &[i64]) -> Result<Vec<u64>, StoreError>;

    /// Tells every instance (this one included) that configuration changed: apps, pools or
    /// Mini Programs. Their caches drop what they hold.
    async fn announce_config_change(&self) -> Result<(), StoreError>;

    /// A receiver whose value moves at every configuration change announced on any instance,
    /// and whenever announcements may have been missed (a lost Redis connection).
    fn config_changes(&self) -> watch::Receiver<u64>;
}

/// Per-QR change counters for local waiters, and one counter of configuration changes.
///
/// One `watch` channel per code that somebody is waiting on; entries disappear with their last
/// subscriber, so ten thousand idle waiters cost ten thousand small channels and nothing more.
/// The configuration counter moves whenever an operator changes an app, a pool or a Mini
/// Program on any instance; caches of those drop what they hold when it moves.
pub struct Hub {
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
    config: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            config: watch::channel(0).0,
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A receiver of the configuration counter.
    pub fn config_changes(&self) -> watch::Receiver<u64> {
        self.config.subscribe()
    }

    /// Moves the configuration counter: every cache of configuration is now stale.
    pub fn config_changed(&self) {
        self.config.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(self: &Arc<Self>, random: &str) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let rx = match channels.get(random) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                channels.insert(random.to_owned(), tx);
                rx
            }
        };
        Subscription {
            rx,
            hub: Arc::clone(self),
            random: random.to_owned(),
        }
    }

    /// Wakes every local waiter of `random`.
    pub fn notify(&self, random: &str) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(random) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Wakes every local waiter (after a lost pub/sub connection: they re-read their state).
    pub fn notify_all(&self) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for tx in channels.values() {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// How many codes have local waiters (for metrics and tests).
    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A waiter's handle; dropping the last one for a code frees its channel.
pub struct Subscription {
    rx: watch::Receiver<u64>,
    hub: Arc<Hub>,
    random: String,
}

impl Subscription {
    /// The code this follows.
    pub fn random(&self) -> &str {
        &self.random
    }

    /// Resolves at the next change after the last one seen.
    pub async fn changed(&mut self) {
        // The sender lives in the hub until the last subscriber drops, so this cannot fail
        // while we hold `self`; treat a closed channel as "something changed" anyway.
        let _ = self.rx.changed().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(&self.random) {
            // Our receiver is still alive here, so 1 means we are the last.
            if tx.receiver_count() <= 1 {
                channels.remove(&self.random);
            }
        }
    }
}
