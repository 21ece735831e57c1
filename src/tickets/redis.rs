//! Redis ticket store: shared state for a fleet of instances.
//!
//! This module owns every Redis key, TTL and script the ticket store uses. All keys live under
//! the configured prefix, so tests (and several deployments sharing one server) never collide:
//!
//! | key | type | lives until |
//! |---|---|---|
//! | `{prefix}:qr:{random}` | hash: `body` (the code as inserted, JSON), `status`, `expires_at`, `scanner` (JSON), `scanner_id`, `ticket`, `cancel_reason` | `expires_at + RETAIN_AFTER_EXPIRY` |
//! | `{prefix}:ticket:{ticket}` | hash: `body` (JSON), `bind_hash`, `browser_hash`, `require_binding`, `expires_at` | the ticket's `expires_at` |
//! | `{prefix}:cache:{key}` | string | the TTL given to `cache_set` |
//! | `{prefix}:lock:{key}` | string: the holder's random token | the TTL given to `lock` |
//! | `{prefix}:rate:{key}:{window}` | integer: events counted by `hit` in that window | the window's end |
//! | `{prefix}:held:{key}` | sorted set: members held by `hold`, scored by when each lets go | its latest member's time |
//! | `{prefix}:tally:{key}:{bucket}` | integer: events counted by `tally` in that bucket | the `keep` given at its first count |
//! | `{prefix}:device:{random}` | hash: `body` (the device request as inserted, JSON), `status`, `expires_at`, `interval`, `last_poll`, `wrong_codes`, `decided_by`, `decided_at`, `deny_reason` | `expires_at + RETAIN_AFTER_EXPIRY` |
//! | `{prefix}:user_code:{code}` | string: `{random} {expires_at}` of the device request the user code names | the request's `expires_at` |
//! | `{prefix}:events` | pub/sub channel: the `random` of each changed code, or `config:` after an operator changed configuration | — |
//!
//! The hash keeps the fields a transition reads or writes apart from the immutable rest of the
//! record, so the scripts compare and set plain strings and never parse JSON. Each transition
//! (`scan`, `confirm`, `cancel`, `take_ticket`) is one Lua script that checks the state, writes
//! and publishes the change atomically; the caller passes `now`, so expiry follows the injected
//! clock exactly as in the in-process backend. TTLs are relative (`PEXPIRE expires_at - now`), so
//! clock skew between instances only matters through `now` itself.
//!
//! Connections: one multiplexed [`ConnectionManager`] for commands, established lazily on first
//! use and re-established by the manager after a failure. Every attempt is bounded (connect
//! and response timeouts, and an overall deadline per operation), so a dead Redis turns into a
//! prompt [`StoreError`] (HTTP 503) instead of a hung request, and start-up never blocks on it.
//! A background task holds a dedicated pub/sub connection to the events channel and bumps the
//! local [`Hub`] for every message; after a lost connection it reconnects with bounded backoff
//! and wakes every local waiter, since messages may have been missed meanwhile.
//!
//! Reads of a code are served from a near cache ([`NearCache`]) that the same listener keeps
//! coherent, so a status poll usually costs no round trip at all.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use futures::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::{RedisResult, Script};
use tokio::sync::{watch, OnceCell};
use tokio::task::JoinHandle;

use super::device::{DeviceRequest, DeviceStatus, Poll, WrongCode, SLOW_DOWN_STEP_SECS};
use super::near::NearCache;
use super::{
    Binding, ExchangeTicket, Hub, QrCode, QrStatus, Scanner, StoreError, Subscription, Take,
    TicketStore, TransitionError, RETAIN_AFTER_EXPIRY,
};
use crate::clock::{Clock, Millis};
use crate::domain::UserCode;

/// How long to wait for a TCP connection (and handshake) to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the answer to one command.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound on one store operation, connecting included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// First and longest pause between attempts to restore the pub/sub connection.
const LISTEN_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// The event that announces a configuration change; no code's random contains a `:`.
const CONFIG_EVENT: &str = "config:";

/// How often the listener pings its connection: a silent channel cannot tell a quiet fleet
/// from a dead socket.
const LISTEN_PING_EVERY: Duration = Duration::from_secs(15);

/// Statuses the scripts return; the Lua below spells the same numbers as literals.
mod status {
    pub const OK: i64 = 0;
    pub const NOT_FOUND: i64 = 1;
    pub const EXPIRED: i64 = 2;
    pub const SCANNED_BY_OTHER: i64 = 3;
    pub const USED: i64 = 4;
    pub const NOT_THE_SCANNER: i64 = 5;
    pub const NOT_SCANNED: i64 = 6;
    pub const NOT_BOUND: i64 = 7;
}

/// Helpers shared by the transition scripts. Calling convention: `KEYS[1]` is the code's hash,
/// `ARGV[1]` is `now`, `ARGV[2]` the events channel, `ARGV[3]` the code's random. A script
/// returns `{status, fields}` where `fields` is the code's hash after a successful write.
const TRANSITION_PRELUDE: &str = r#"
local now = tonumber(ARGV[1])

-- The code's mutable fields, or nil and a status when it is missing or expired at `now`.
local function live()
  local f = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'scanner_id')
  if not f[1] then return nil, 1 end
  local status = f[1]
  if status == 'expired' then return nil, 2 end
  if (status == 'pending' or status == 'scanned') and now >= tonumber(f[2]) then return nil, 2 end
  return { status = status, scanner_id = f[3] }, 0
end

-- 0 when the code is scanned by `user`, else why not.
local function scanned_by(qr, user)
  if qr.status == 'scanned' then
    if qr.scanner_id == user then return 0 end
    return 5
  end
  if qr.status == 'pending' then return 6 end
  return 4
end

local function changed()
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return { 0, redis.call('HGETALL', KEYS[1]) }
end

local function failed(status)
  return { status, {} }
end
"#;

/// pending → scanned. `ARGV[4]` user id, `ARGV[5]` scanner JSON.
const SCAN: &str = r#"
local qr, err = live()
if not qr then return failed(err) end
if qr.status == 'pending' or (qr.status == 'scanned' and qr.scanner_id == ARGV[4]) then
  redis.call('HSET', KEYS[1], 'status', 'scanned', 'scanner', ARGV[5], 'scanner_id', ARGV[4])
  return changed()
end
if qr.status == 'scanned' then return failed(3) end
return failed(4)
"#;

/// scanned → confirmed, creating the ticket hash `KEYS[2]`. `ARGV[4]` user id, `ARGV[5]` the
/// ticket, `ARGV[6]` its JSON, `ARGV[7]` bind hash, `ARGV[8]` browser hash or '' when
/// `ARGV[9]` is '0', `ARGV[10]` require_binding '1'/'0', `ARGV[11]` the ticket's expires_at.
const CONFIRM: &str = r#"
local qr, err = live()
if not qr then return failed(err) end
local by = scanned_by(qr, ARGV[4])
if by ~= 0 then return failed(by) end
redis.call('HSET', KEYS[1], 'status', 'confirmed', 'ticket', ARGV[5])
redis.call('DEL', KEYS[2])
local ttl = tonumber(ARGV[11]) - now
if ttl > 0 then
  redis.call('HSET', KEYS[2], 'body', ARGV[6], 'bind_hash', ARGV[7], 'require_binding', ARGV[10],
    'expires_at', ARGV[11])
  if ARGV[9] == '1' then redis.call('HSET', KEYS[2], 'browser_hash', ARGV[8]) end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return changed()
"#;

/// pending (by anyone) or scanned (by its scanner) → cancelled. `ARGV[4]` user id, `ARGV[5]`
/// the reason.
const CANCEL: &str = r#"
local qr, err = live()
if not qr then return failed(err) end
if qr.status ~= 'pending' then
  local by = scanned_by(qr, ARGV[4])
  if by ~= 0 then return failed(by) end
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancel_reason', ARGV[5])
return changed()
"#;

/// Consumes the ticket hash `KEYS[1]` if the caller is bound to it, as `Binding::matches`
/// decides. `ARGV[1]` now, `ARGV[2]`/`ARGV[3]` whether the caller has a bind hash and the hash,
/// `ARGV[4]`/`ARGV[5]` the same for a browser hash. Returns `{status, body}`.
const TAKE: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'body', 'expires_at', 'require_binding', 'bind_hash',
  'browser_hash')
if not f[1] then return { 1, '' } end
if tonumber(f[2]) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return { 1, '' }
end
if f[3] == '1' then
  local by_token = ARGV[2] == '1' and f[4] ~= false and ARGV[3] == f[4]
  local by_cookie = ARGV[4] == '1' and f[5] ~= false and ARGV[5] == f[5]
  if not (by_token or by_cookie) then return { 7, '' } end
end
redis.call('DEL', KEYS[1])
return { 0, f[1] }
"#;

/// Stores a device request `KEYS[1]` and its user code index `KEYS[2]`, unless the user code
/// names a request still live at `ARGV[1]`: then 0 and nothing is written. `ARGV[2]` the
/// random, `ARGV[3]` the body, `ARGV[4]` the status, `ARGV[5]` expires_at, `ARGV[6]` the
/// interval, `ARGV[7]` the record's TTL.
const DEVICE_INSERT: &str = r#"
local now = tonumber(ARGV[1])
local held = redis.call('GET', KEYS[2])
if held then
  local until_ms = tonumber(string.match(held, ' (%d+)$'))
  if until_ms and until_ms > now then return 0 end
end
local code_ttl = tonumber(ARGV[5]) - now
if code_ttl < 1 then code_ttl = 1 end
redis.call('SET', KEYS[2], ARGV[2] .. ' ' .. ARGV[5], 'PX', code_ttl)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'status', ARGV[4], 'expires_at', ARGV[5],
  'interval', ARGV[6], 'wrong_codes', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
"#;

/// What the device scripts share: `KEYS[1]` is the request's hash, `ARGV[1]` is `now`.
const DEVICE_PRELUDE: &str = r#"
local now = tonumber(ARGV[1])

-- The status seen at `now`, or nil when there is no such request.
local function current()
  local f = redis.call('HMGET', KEYS[1], 'status', 'expires_at')
  if not f[1] then return nil end
  if (f[1] == 'pending' or f[1] == 'approved') and now >= tonumber(f[2]) then return 'expired' end
  return f[1]
end
"#;

/// pending → approved (`ARGV[3]` '1') or denied by the user `ARGV[2]`; `{status, fields}`.
const DEVICE_DECIDE: &str = r#"
local s = current()
if not s then return { 1, {} } end
if s == 'expired' then return { 2, {} } end
if s ~= 'pending' then return { 4, {} } end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'status', 'approved', 'decided_by', ARGV[2], 'decided_at', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'status', 'denied', 'deny_reason', 'declined', 'decided_by', ARGV[2],
    'decided_at', ARGV[1])
end
return { 0, redis.call('HGETALL', KEYS[1]) }
"#;

/// One more wrong user code for a pending request; the `ARGV[2]`-th locks it.
/// `{0, count}` counted, `{1, count}` locked, `{2, 0}` not pending.
const DEVICE_WRONG_CODE: &str = r#"
if current() ~= 'pending' then return { 2, 0 } end
local n = redis.call('HINCRBY', KEYS[1], 'wrong_codes', 1)
if n >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'status', 'denied', 'deny_reason', 'locked')
  return { 1, n }
end
return { 0, n }
"#;

/// A device's poll, as `device::poll` decides it; `ARGV[2]` the slow-down step in seconds.
/// `{outcome, interval, fields}`: 0 pending, 1 slow down, 2 denied, 3 expired, 4 redeemed now
/// (with the fields), 5 redeemed before, 6 unknown.
const DEVICE_POLL: &str = r#"
local s = current()
if not s then return { 6, 0, {} } end
if s == 'expired' then return { 3, 0, {} } end
if s == 'denied' then return { 2, 0, {} } end
if s == 'redeemed' then return { 5, 0, {} } end
if s == 'approved' then
  redis.call('HSET', KEYS[1], 'status', 'redeemed', 'last_poll', ARGV[1])
  return { 4, 0, redis.call('HGETALL', KEYS[1]) }
end
local f = redis.call('HMGET', KEYS[1], 'interval', 'last_poll')
local interval = tonumber(f[1])
local too_soon = f[2] and (now - tonumber(f[2]) < interval * 1000)
redis.call('HSET', KEYS[1], 'last_poll', ARGV[1])
if too_soon then
  interval = interval + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'interval', interval)
  return { 1, interval, {} }
end
return { 0, interval, {} }
"#;

/// Deletes `KEYS[1]` only if it still holds `ARGV[1]` (cache entries and locks).
const DELETE_IF_EQUAL: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Counts one event; the first of a window sets the counter to vanish when the window ends.
const HIT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"#;

/// Holds `ARGV[4]` until `ARGV[2]` in the sorted set `KEYS[1]` unless `ARGV[3]` members are
/// already held at `ARGV[1]`; 1 when held. The set lives as long as its latest member.
const HOLD: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[1])
if ttl > redis.call('PTTL', KEYS[1]) then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"#;

/// The loaded scripts; each is sent by `EVALSHA`, falling back to `EVAL` after a Redis restart.
struct Scripts {
    scan: Script,
    confirm: Script,
    cancel: Script,
    take: Script,
    delete_if_equal: Script,
    hit: Script,
    hold: Script,
    device_insert: Script,
    device_decide: Script,
    device_wrong_code: Script,
    device_poll: Script,
}

impl Scripts {
    fn new() -> Self {
        let transition = |body: &str| Script::new(&format!("{TRANSITION_PRELUDE}{body}"));
        Self {
            scan: transition(SCAN),
            confirm: transition(CONFIRM),
            cancel: transition(CANCEL),
            take: Script::new(TAKE),
            delete_if_equal: Script::new(DELETE_IF_EQUAL),
            hit: Script::new(HIT),
            hold: Script::new(HOLD),
            device_insert: Script::new(DEVICE_INSERT),
            device_decide: Script::new(&format!("{DEVICE_PRELUDE}{DEVICE_DECIDE}")),
            device_wrong_code: Script::new(&format!("{DEVICE_PRELUDE}{DEVICE_WRONG_CODE}")),
            device_poll: Script::new(&format!("{DEVICE_PRELUDE}{DEVICE_POLL}")),
        }
    }
}

/// Names of every key and channel, all under one prefix.
#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn qr(&self, random: &str) -> String {
        format!("{}:qr:{random}", self.prefix)
    }

    fn ticket(&self, ticket: &str) -> String {
        format!("{}:ticket:{ticket}", self.prefix)
    }

    fn cache(&self, key: &str) -> String {
        format!("{}:cache:{key}", self.prefix)
    }

    fn lock(&self, key: &str) -> String {
        format!("{}:lock:{key}", self.prefix)
    }

    fn rate(&self, key: &str, window: i64) -> String {
        format!("{}:rate:{key}:{window}", self.prefix)
    }

    fn held(&self, key: &str) -> String {
        format!("{}:held:{key}", self.prefix)
    }

    fn tally(&self, key: &str, bucket: i64) -> String {
        format!("{}:tally:{key}:{bucket}", self.prefix)
    }

    fn device(&self, random: &str) -> String {
        format!("{}:device:{random}", self.prefix)
    }

    fn user_code(&self, code: &str) -> String {
        format!("{}:user_code:{code}", self.prefix)
    }

    fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
}

/// The ticket store shared by every instance pointed at the same Redis and prefix.
pub struct RedisStore {
    /// Kept to open the command connection lazily.
    client: redis::Client,
    /// The command connection, created on first use; it then reconnects by itself.
    conn: OnceCell<ConnectionManager>,
    keys: Keys,
    scripts: Scripts,
    /// Local waiters, woken by the listener task.
    hub: Arc<Hub>,
    /// Codes read recently, kept coherent by the listener task.
    near: Arc<NearCache>,
    /// Reads the time for TTLs of records inserted without a caller-supplied `now`.
    clock: Clock,
    /// Whether the listener is currently subscribed to the events channel.
    listening: watch::Receiver<bool>,
    /// The listener task, stopped when the store is dropped.
    listener: JoinHandle<()>,
}

impl RedisStore {
    /// Builds the store and starts its event listener.
    ///
    /// Connecting is lazy: only a malformed URL fails here. If Redis cannot be reached yet, a
    /// warning is logged and every operation fails promptly with a [`StoreError`] (and
    /// `/readyz` reports it) until Redis answers; the instance then recovers by itself.
    pub async fn connect(url: &str, prefix: &str, clock: Clock) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("redis_url is not a valid Redis URL")?;
        let keys = Keys {
            prefix: prefix.to_owned(),
        };
        let hub = Hub::new();
        let near = Arc::new(NearCache::default());
        let (listening_tx, listening) = watch::channel(false);
        let listener = tokio::spawn(listen(
            client.clone(),
            keys.events(),
            Arc::clone(&hub),
            Arc::clone(&near),
            listening_tx,
        ));
        let store = Self {
            client,
            conn: OnceCell::new(),
            keys,
            scripts: Scripts::new(),
            hub,
            near,
            clock,
            listening,
            listener,
        };
        if let Err(e) = store.ping().await {
            tracing::warn!(error = %e, "Redis is not reachable yet; QR logins fail until it is");
        }
        Ok(store)
    }

    /// Whether cross-instance notifications are flowing (the listener is subscribed).
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }

    /// The command connection, opened on first use.
    async fn conn(&self) -> RedisResult<ConnectionManager> {
        let manager = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT)
                    // One attempt per request: a request waiting out a backoff schedule would
                    // outlive any sensible HTTP timeout. The manager tries again on the next one.
                    .set_number_of_retries(0);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }

    /// Runs one command on the shared connection within [`OPERATION_TIMEOUT`].
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let op = async {
            let conn = self.conn().await?;
            f(conn).await
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, op).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError(anyhow!(
                "Redis did not answer within {OPERATION_TIMEOUT:?}"
            ))),
        }
    }

    /// Like [`RedisStore::run`] for a read, retried once if the connection turned out to be
    /// dead: the first command after Redis restarts meets the old socket, and a read is safe
    /// to repeat.
    async fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let op = async {
            let conn = self.conn().await?;
            match f(conn).await {
                Err(e) if e.is_connection_dropped() => f(self.conn().await?).await,
                other => other,
            }
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, op).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError(anyhow!(
                "Redis did not answer within {OPERATION_TIMEOUT:?}"
            ))),
        }
    }

    /// Runs a transition script on the code `random` and maps its status.
    async fn transition(
        &self,
        script: &Script,
        random: &str,
        now: Millis,
        extra_keys: &[String],
        args: &[&str],
    ) -> Result<QrCode, TransitionError> {
        let mut call = script.prepare_invoke();
        call.key(self.keys.qr(random));
        for key in extra_keys {
            call.key(key);
        }
        call.arg(now).arg(self.keys.events()).arg(random);
        for arg in args {
            call.arg(*arg);
        }
        let (code, fields): (i64, HashMap<String, String>) = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        // Read our own writes at once, before the published change comes back.
        self.near.invalidate(random);
        if code != status::OK {
            return Err(transition_error(code));
        }
        decode_qr(fields)?.ok_or_else(|| {
            TransitionError::Store(StoreError(anyhow!("a transition returned no record")))
        })
    }

    /// Key names, for tests that inspect TTLs.
    #[cfg(test)]
    pub(crate) fn qr_key(&self, random: &str) -> String {
        self.keys.qr(random)
    }

    #[cfg(test)]
    pub(crate) fn ticket_key(&self, ticket: &str) -> String {
        self.keys.ticket(ticket)
    }

    #[cfg(test)]
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Follows the listener's state; closed once the listener task has stopped.
    #[cfg(test)]
    pub(crate) fn listening_watch(&self) -> watch::Receiver<bool> {
        self.listening.clone()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// The status code of a failed transition script, as the in-process backend reports it.
fn transition_error(code: i64) -> TransitionError {
    match code {
        status::NOT_FOUND => TransitionError::NotFound,
        status::EXPIRED => TransitionError::Expired,
        status::SCANNED_BY_OTHER => {
            TransitionError::Conflict("another user has scanned this QR code")
        }
        status::USED => TransitionError::Conflict("this QR code has already been used"),
        status::NOT_THE_SCANNER => {
            TransitionError::Forbidden("this QR code was scanned by another user")
        }
        status::NOT_SCANNED => TransitionError::Conflict("the QR code has not been scanned"),
        other => {
            TransitionError::Store(StoreError(anyhow!("unexpected transition status {other}")))
        }
    }
}

/// The hash fields of a new code.
fn encode_qr(qr: &QrCode) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut fields = vec![
        (
            "body",
            serde_json::to_string(qr).context("encoding a QR code")?,
        ),
        ("status", qr.status.as_str().to_owned()),
        ("expires_at", qr.expires_at.to_string()),
    ];
    if let Some(scanner) = &qr.scanner {
        fields.push((
            "scanner",
            serde_json::to_string(scanner).context("encoding a scanner")?,
        ));
        fields.push(("scanner_id", scanner.user_id.clone()));
    }
    if let Some(ticket) = &qr.ticket {
        fields.push(("ticket", ticket.clone()));
    }
    Ok(fields)
}

/// A code from its hash fields: the inserted body with the mutable fields laid over it.
fn decode_qr(mut fields: HashMap<String, String>) -> Result<Option<QrCode>, StoreError> {
    let Some(body) = fields.remove("body") else {
        return Ok(None);
    };
    let mut qr: QrCode = serde_json::from_str(&body).context("decoding a stored QR code")?;
    let status = fields.remove("status").unwrap_or_default();
    qr.status = QrStatus::parse(&status)
        .ok_or_else(|| StoreError(anyhow!("unknown stored QR status {status:?}")))?;
    qr.scanner = match fields.remove("scanner") {
        Some(json) => Some(serde_json::from_str(&json).context("decoding a stored scanner")?),
        None => None,
    };
    qr.ticket = fields.remove("ticket");
    qr.cancel_reason = fields.remove("cancel_reason");
    Ok(Some(qr))
}

/// A device request from its hash fields: the inserted body with the mutable fields over it.
fn decode_device(mut fields: HashMap<String, String>) -> Result<Option<DeviceRequest>, StoreError> {
    let Some(body) = fields.remove("body") else {
        return Ok(None);
    };
    let mut req: DeviceRequest =
        serde_json::from_str(&body).context("decoding a stored device request")?;
    let status = fields.remove("status").unwrap_or_default();
    req.status = DeviceStatus::parse(&status)
        .ok_or_else(|| StoreError(anyhow!("unknown stored device status {status:?}")))?;
    let number = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    if let Some(interval) = number(fields.remove("interval")) {
        req.interval_secs = interval;
    }
    req.last_poll_at = number(fields.remove("last_poll"));
    req.wrong_codes = number(fields.remove("wrong_codes"))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    req.decided_by = fields.remove("decided_by");
    req.decided_at = number(fields.remove("decided_at"));
    req.deny_reason = fields.remove("deny_reason");
    Ok(Some(req))
}

/// A TTL in milliseconds for something that ends at `until`, never zero or negative (Redis
/// rejects those).
fn ttl_until(until: Millis, now: Millis) -> i64 {
    (until - now).max(1)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl TicketStore for RedisStore {
    async fn insert(&self, qr: &QrCode) -> Result<(), StoreError> {
        let key = self.keys.qr(&qr.random);
        let fields = encode_qr(qr)?;
        let ttl = ttl_until(
            qr.expires_at + millis(RETAIN_AFTER_EXPIRY),
            self.clock.now(),
        );
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &fields)
            .ignore()
            .pexpire(&key, ttl)
            .ignore();
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    async fn get(&self, random: &str) -> Result<Option<QrCode>, StoreError> {
        Ok(self.get_shared(random).await?.map(Arc::unwrap_or_clone))
    }

    async fn get_shared(&self, random: &str) -> Result<Option<Arc<QrCode>>, StoreError> {
        let now = self.clock.now();
        let retained = |qr: &Arc<QrCode>| qr.expires_at + millis(RETAIN_AFTER_EXPIRY) > now;
        if let Some(qr) = self.near.get(random).filter(retained) {
            return Ok(Some(qr));
        }
        let generation = self.near.generation();
        let key = self.keys.qr(random);
        let fields: HashMap<String, String> = self
            .read(|mut conn| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(key).query_async(&mut conn).await }
            })
            .await?;
        let qr = decode_qr(fields)?.map(Arc::new);
        if let Some(qr) = &qr {
            self.near.fill(generation, qr);
        }
        Ok(qr)
    }

    async fn get_fresh(&self, random: &str) -> Result<Option<QrCode>, StoreError> {
        let key = self.keys.qr(random);
        let fields: HashMap<String, String> = self
            .read(|mut conn| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(key).query_async(&mut conn).await }
            })
            .await?;
        decode_qr(fields)
    }

    async fn scan(
        &self,
        random: &str,
        scanner: &Scanner,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        let json = serde_json::to_string(scanner)
            .context("encoding a scanner")
            .map_err(StoreError)?;
        self.transition(
            &self.scripts.scan,
            random,
            now,
            &[],
            &[scanner.user_id.as_str(), json.as_str()],
        )
        .await
    }

    async fn confirm(
        &self,
        random: &str,
        ticket: &ExchangeTicket,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        let json = serde_json::to_string(ticket)
            .context("encoding an exchange ticket")
            .map_err(StoreError)?;
        let expires_at = ticket.expires_at.to_string();
        let args: [&str; 8] = [
            &ticket.user_id,
            &ticket.ticket,
            &json,
            &ticket.bind_hash,
            ticket.browser_hash.as_deref().unwrap_or(""),
            if ticket.browser_hash.is_some() {
                "1"
            } else {
                "0"
            },
            if ticket.require_binding { "1" } else { "0" },
            &expires_at,
        ];
        let keys = [self.keys.ticket(&ticket.ticket)];
        self.transition(&self.scripts.confirm, random, now, &keys, &args)
            .await
    }

    async fn cancel(
        &self,
        random: &str,
        user_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.transition(&self.scripts.cancel, random, now, &[], &[user_id, reason])
            .await
    }

    async fn take_ticket(
        &self,
        ticket: &str,
        binding: &Binding,
        now: Millis,
    ) -> Result<Take, StoreError> {
        let flag = |h: &Option<String>| if h.is_some() { "1" } else { "0" };
        let mut call = self.scripts.take.prepare_invoke();
        call.key(self.keys.ticket(ticket))
            .arg(now)
            .arg(flag(&binding.bind_hash))
            .arg(binding.bind_hash.as_deref().unwrap_or(""))
            .arg(flag(&binding.browser_hash))
            .arg(binding.browser_hash.as_deref().unwrap_or(""));
        let (code, body): (i64, String) = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        match code {
            status::OK => Ok(Take::Taken(
                serde_json::from_str(&body).context("decoding a stored exchange ticket")?,
            )),
            status::NOT_FOUND => Ok(Take::Missing),
            status::NOT_BOUND => Ok(Take::NotBound),
            other => Err(StoreError(anyhow!("unexpected take status {other}"))),
        }
    }

    fn subscribe(&self, random: &str) -> Subscription {
        self.hub.subscribe(random)
    }

    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = self.keys.cache(key);
        self.read(|mut conn| {
            let key = key.clone();
            async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
        })
        .await
    }

    async fn cache_set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.keys.cache(key);
        let ttl = millis(ttl);
        let mut cmd;
        if ttl > 0 {
            cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("PX").arg(ttl);
        } else {
            // Already expired: the same as setting it and never seeing it again.
            cmd = redis::cmd("DEL");
            cmd.arg(key);
        }
        self.run(|mut conn| async move { cmd.query_async::<()>(&mut conn).await })
            .await
    }

    async fn cache_remove(&self, key: &str, expected: &str) -> Result<(), StoreError> {
        let mut call = self.scripts.delete_if_equal.prepare_invoke();
        call.key(self.keys.cache(key)).arg(expected);
        self.run(|mut conn| async move { call.invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let token = crate::crypto::random_token(16);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.keys.lock(key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl).max(1));
        let taken: Option<String> = self
            .run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        Ok(taken.map(|_| token))
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let mut call = self.scripts.delete_if_equal.prepare_invoke();
        call.key(self.keys.lock(key)).arg(token);
        self.run(|mut conn| async move { call.invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    async fn hit(&self, key: &str, window: Duration, now: Millis) -> Result<u64, StoreError> {
        let (index, end) = super::window_of(window, now);
        let mut call = self.scripts.hit.prepare_invoke();
        call.key(self.keys.rate(key, index)).arg((end - now).max(1));
        self.run(|mut conn| async move { call.invoke_async::<u64>(&mut conn).await })
            .await
    }

    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: Millis,
        cap: u64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut call = self.scripts.hold.prepare_invoke();
        call.key(self.keys.held(key))
            .arg(now)
            .arg(until)
            .arg(cap)
            .arg(member);
        let held: i64 = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        Ok(held == 1)
    }

    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let key = self.keys.held(key);
        let member = member.to_owned();
        self.run(|mut conn| async move {
            redis::cmd("ZREM")
                .arg(key)
                .arg(member)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(drop)
    }

    async fn tally(&self, key: &str, bucket: i64, keep: Duration) -> Result<(), StoreError> {
        let mut call = self.scripts.hit.prepare_invoke();
        call.key(self.keys.tally(key, bucket))
            .arg(millis(keep).max(1));
        self.run(|mut conn| async move { call.invoke_async::<u64>(&mut conn).await })
            .await?;
        Ok(())
    }

    async fn tallies(&self, key: &str, buckets: &[i64]) -> Result<Vec<u64>, StoreError> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = buckets.iter().map(|b| self.keys.tally(key, *b)).collect();
        let values: Vec<Option<u64>> = self
            .read(|mut conn| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await }
            })
            .await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn announce_config_change(&self) -> Result<(), StoreError> {
        // Our own caches move now; the others when the message comes round.
        self.hub.config_changed();
        let channel = self.keys.events();
        self.run(|mut c| {
            let channel = channel.clone();
            async move {
                redis::AsyncCommands::publish::<_, _, i64>(&mut c, channel, CONFIG_EVENT).await
            }
        })
        .await?;
        Ok(())
    }

    fn config_changes(&self) -> watch::Receiver<u64> {
        self.hub.config_changes()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(drop)
    }

    async fn device_insert(&self, req: &DeviceRequest) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let body = serde_json::to_string(req).context("encoding a device request")?;
        let ttl = ttl_until(req.expires_at + millis(RETAIN_AFTER_EXPIRY), now);
        let mut call = self.scripts.device_insert.prepare_invoke();
        call.key(self.keys.device(&req.random))
            .key(self.keys.user_code(&req.user_code))
            .arg(now)
            .arg(req.random.as_str())
            .arg(body)
            .arg(req.status.as_str())
            .arg(req.expires_at)
            .arg(req.interval_secs)
            .arg(ttl);
        let stored: i64 = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        Ok(stored == 1)
    }

    async fn device_get(&self, random: &str) -> Result<Option<DeviceRequest>, StoreError> {
        let key = self.keys.device(random);
        let fields: HashMap<String, String> = self
            .read(|mut conn| {
                let key = key.clone();
                async move { redis::cmd("HGETALL").arg(key).query_async(&mut conn).await }
            })
            .await?;
        decode_device(fields)
    }

    async fn device_by_user_code(
        &self,
        user_code: &UserCode,
    ) -> Result<Option<DeviceRequest>, StoreError> {
        let key = self.keys.user_code(user_code);
        let held: Option<String> = self
            .read(|mut conn| {
                let key = key.clone();
                async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }
            })
            .await?;
        let Some(random) = held.as_deref().and_then(|h| h.split(' ').next()) else {
            return Ok(None);
        };
        let now = self.clock.now();
        Ok(self
            .device_get(random)
            .await?
            .filter(|d| d.expires_at > now && d.user_code == *user_code))
    }

    async fn device_decide(
        &self,
        random: &str,
        user_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<DeviceRequest, TransitionError> {
        let mut call = self.scripts.device_decide.prepare_invoke();
        call.key(self.keys.device(random))
            .arg(now)
            .arg(user_id)
            .arg(if approve { "1" } else { "0" });
        let (code, fields): (i64, HashMap<String, String>) = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        match code {
            status::OK => decode_device(fields)?.ok_or_else(|| {
                TransitionError::Store(StoreError(anyhow!("a decision returned no record")))
            }),
            status::NOT_FOUND => Err(TransitionError::NotFound),
            status::EXPIRED => Err(TransitionError::Expired),
            status::USED => Err(TransitionError::Conflict(super::device::ALREADY_DECIDED)),
            other => Err(TransitionError::Store(StoreError(anyhow!(
                "unexpected decision status {other}"
            )))),
        }
    }

    async fn device_wrong_code(
        &self,
        random: &str,
        limit: u32,
        now: Millis,
    ) -> Result<WrongCode, StoreError> {
        let mut call = self.scripts.device_wrong_code.prepare_invoke();
        call.key(self.keys.device(random)).arg(now).arg(limit);
        let (code, count): (i64, u32) = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        Ok(match code {
            0 => WrongCode::Counted(count),
            1 => WrongCode::Locked,
            _ => WrongCode::NotPending,
        })
    }

    async fn device_poll(&self, random: &str, now: Millis) -> Result<Poll, StoreError> {
        let mut call = self.scripts.device_poll.prepare_invoke();
        call.key(self.keys.device(random))
            .arg(now)
            .arg(SLOW_DOWN_STEP_SECS);
        let (code, interval_secs, fields): (i64, i64, HashMap<String, String>) = self
            .run(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        Ok(match code {
            0 => Poll::Pending { interval_secs },
            1 => Poll::SlowDown { interval_secs },
            2 => Poll::Denied,
            3 => Poll::Expired,
            4 => {
                Poll::Redeemed(Box::new(decode_device(fields)?.ok_or_else(|| {
                    StoreError(anyhow!("a redemption returned no record"))
                })?))
            }
            5 => Poll::Used,
            6 => Poll::Unknown,
            other => return Err(StoreError(anyhow!("unexpected poll outcome {other}"))),
        })
    }
}

/// The listener task: keeps one pub/sub connection subscribed to the events channel and wakes
/// local waiters for every published change, until the store aborts it.
async fn listen(
    client: redis::Client,
    channel: String,
    hub: Arc<Hub>,
    near: Arc<NearCache>,
    listening: watch::Sender<bool>,
) {
    let (first, longest) = LISTEN_BACKOFF;
    let mut backoff = first;
    loop {
        match subscribe(&client, &channel).await {
            Ok((sink, stream)) => {
                backoff = first;
                // Changes published while we were away were missed: have everyone re-read.
                near.set_active(true);
                hub.notify_all();
                hub.config_changed();
                listening.send_replace(true);
                follow(sink, stream, &hub, &near).await;
                near.set_active(false);
                listening.send_replace(false);
                tracing::warn!("lost the Redis events connection; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe to Redis events");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(longest);
            }
        }
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> anyhow::Result<(PubSubSink, PubSubStream)> {
    let attempt = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(channel).await?;
        RedisResult::Ok((sink, stream))
    };
    tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, attempt)
        .await
        .context("timed out")?
        .context("subscribing")
}

/// Relays messages until the connection is lost.
async fn follow(mut sink: PubSubSink, mut stream: PubSubStream, hub: &Hub, near: &NearCache) {
    let mut ping = tokio::time::interval(LISTEN_PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(msg) => match msg.get_payload::<String>() {
                    Ok(event) if event == CONFIG_EVENT => hub.config_changed(),
                    Ok(random) => {
                        near.invalidate(&random);
                        hub.notify(&random);
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed Redis event"),
                },
                None => return,
            },
            _ = ping.tick() => {
                let pong = tokio::time::timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_record_takes_its_mutable_fields_from_the_hash() {
        let qr = QrCode {
            random: "rrrrrrrrrrrrrrrrrrrrrr".into(),
            pool_id: "p".into(),
            client_id: "c".into(),
            appid: "wx0123456789abcdef".into(),
            status: QrStatus::Pending,
            created_at: 1,
            expires_at: 2,
            bind_hash: "b".into(),
            browser_hash: None,
            require_binding: true,
            requester_ip: "ip".into(),
            requester_user_agent: "ua".into(),
            scanner: None,
            ticket: None,
            match_number: Some(42),
            cancel_reason: None,
        };
        let mut fields: HashMap<String, String> = encode_qr(&qr)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        fields.insert("status".into(), "confirmed".into());
        fields.insert(
            "scanner".into(),
            r#"{"user_id":"u","nickname":null,"avatar_url":null}"#.into(),
        );
        fields.insert("ticket".into(), "t".into());
        fields.insert("cancel_reason".into(), "declined".into());
        let decoded = decode_qr(fields).unwrap().unwrap();
        assert_eq!(decoded.match_number, Some(42));
        assert_eq!(decoded.cancel_reason.as_deref(), Some("declined"));
        assert_eq!(decoded.status, QrStatus::Confirmed);
        assert_eq!(decoded.scanner.unwrap().user_id, "u");
        assert_eq!(decoded.ticket.as_deref(), Some("t"));
        assert_eq!(decoded.expires_at, 2);
    }

    #[test]
    fn an_empty_hash_is_no_record() {
        assert_eq!(decode_qr(HashMap::new()).unwrap(), None);
    }
}
