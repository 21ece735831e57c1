//! The conformance suite every ticket backend passes.
//!
//! Each check is an async function over a [`Backend`]; `conformance_suite!` runs every one of
//! them against the in-process store and against Redis, so both backends are held to the same
//! observable behaviour, error for error. Expiry is driven by a manual clock, never by sleeping;
//! waits for notifications are bounded, and running out of time fails the test.
//!
//! Redis tests connect to `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) with a fresh key
//! prefix per test, and fail (rather than skip) when Redis is unreachable. The Redis-only
//! checks at the bottom cover what only a fleet has: notifications across instances, lost
//! connections and an unreachable server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::{
    Binding, DeviceRequest, DeviceStatus, ExchangeTicket, Hub, Poll, QrCode, QrStatus, Scanner,
    Subscription, Take, TicketStore, TransitionError, WrongCode, TICKET_TTL,
};
use crate::clock::{Clock, Millis};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::UserCode;

/// The longest a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(5);
const QR_TTL: Duration = Duration::from_secs(120);

const SCANNED_BY_OTHER: &str = "another user has scanned this QR code";
const USED: &str = "this QR code has already been used";
const NOT_SCANNED: &str = "the QR code has not been scanned";
const NOT_THE_SCANNER: &str = "this QR code was scanned by another user";

/// A store under test with the clock it was built on.
struct Backend {
    store: Arc<dyn TicketStore>,
    clock: Clock,
    /// The store's local waiters, to check that subscriptions are freed.
    hub: Arc<Hub>,
}

impl Backend {
    fn memory() -> Self {
        let clock = Clock::manual();
        let store = MemoryStore::new(clock.clone());
        let hub = Arc::clone(store.hub());
        Self {
            store: Arc::new(store),
            clock,
            hub,
        }
    }

    async fn redis() -> Self {
        let clock = Clock::manual();
        let store = redis_store(&test_prefix(), clock.clone()).await;
        let hub = Arc::clone(store.hub());
        Self {
            store: Arc::new(store),
            clock,
            hub,
        }
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    /// A new pending code, stored.
    async fn pending(&self) -> QrCode {
        let qr = new_qr(&self.clock);
        self.store.insert(&qr).await.unwrap();
        qr
    }

    /// A new code scanned by `user`.
    async fn scanned_by(&self, user: &str) -> QrCode {
        let qr = self.pending().await;
        self.store
            .scan(&qr.random, &scanner(user), self.now())
            .await
            .unwrap()
    }

    /// A new code confirmed by `user`, with its ticket.
    async fn confirmed_by(&self, user: &str) -> (QrCode, ExchangeTicket) {
        let qr = self.scanned_by(user).await;
        let ticket = exchange_ticket(&qr, user, self.now());
        let qr = self
            .store
            .confirm(&qr.random, &ticket, self.now())
            .await
            .unwrap();
        (qr, ticket)
    }

    async fn status(&self, random: &str) -> QrStatus {
        let qr = self
            .store
            .get(random)
            .await
            .unwrap()
            .expect("the code is stored");
        qr.status_at(self.now())
    }
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn test_prefix() -> String {
    format!("scangate-test:{}", random_token(9))
}

/// A Redis store whose server answers and whose listener is subscribed.
async fn redis_store(prefix: &str, clock: Clock) -> RedisStore {
    let url = redis_url();
    let store = RedisStore::connect(&url, prefix, clock)
        .await
        .unwrap_or_else(|e| panic!("cannot build a Redis store for {url}: {e:#}"));
    if let Err(e) = store.ping().await {
        panic!("Redis at {url} is unreachable ({e}); start redis-server or set TEST_REDIS_URL");
    }
    let mut listening = store.listening_watch();
    within(
        "the events listener to subscribe",
        listening.wait_for(|on| *on),
    )
    .await
    .expect("the listener is running");
    store
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

async fn woken(sub: &mut Subscription, what: &str) {
    within(what, sub.changed()).await;
}

fn new_qr(clock: &Clock) -> QrCode {
    let now = clock.now();
    let random = random_token(16);
    QrCode {
        pool_id: "pool-default".into(),
        client_id: "demo".into(),
        appid: "wx0123456789abcdef".into(),
        status: QrStatus::Pending,
        created_at: now,
        expires_at: now + QR_TTL.as_millis() as i64,
        bind_hash: sha256_hex(format!("bind:{random}").as_bytes()),
        browser_hash: Some(sha256_hex(format!("cookie:{random}").as_bytes())),
        require_binding: true,
        requester_ip: "203.0.113.7".into(),
        requester_user_agent: "Mozilla/5.0 (conformance)".into(),
        scanner: None,
        ticket: None,
        match_number: Some(42),
        cancel_reason: None,
        random: random.as_str().into(),
    }
}

fn scanner(user: &str) -> Scanner {
    Scanner {
        user_id: user.into(),
        nickname: Some(format!("{user} nickname")),
        avatar_url: Some(format!("https://img.example/{user}.png")),
    }
}

fn exchange_ticket(qr: &QrCode, user: &str, now: Millis) -> ExchangeTicket {
    ExchangeTicket {
        ticket: random_token(24),
        random: qr.random.clone(),
        pool_id: qr.pool_id.clone(),
        client_id: qr.client_id.clone(),
        user_id: user.into(),
        bind_hash: qr.bind_hash.clone(),
        browser_hash: qr.browser_hash.clone(),
        require_binding: qr.require_binding,
        confirmed_at: now,
        expires_at: now + TICKET_TTL.as_millis() as i64,
        login_id: Some("login-1".into()),
    }
}

/// The binding of the code's creator: both its bind token and its cookie.
fn creator(qr: &QrCode) -> Binding {
    Binding {
        bind_hash: Some(qr.bind_hash.clone()),
        browser_hash: qr.browser_hash.clone(),
    }
}

fn stranger() -> Binding {
    Binding {
        bind_hash: Some(sha256_hex(b"someone else's token")),
        browser_hash: Some(sha256_hex(b"someone else's cookie")),
    }
}

fn err(result: Result<QrCode, TransitionError>) -> TransitionError {
    match result {
        Ok(qr) => panic!("expected the transition to fail, but it gave {qr:?}"),
        Err(e) => e,
    }
}

fn assert_conflict(result: Result<QrCode, TransitionError>, message: &str) {
    let e = err(result);
    assert!(
        matches!(e, TransitionError::Conflict(m) if m == message),
        "expected Conflict({message:?}), got {e:?}"
    );
}

fn assert_forbidden(result: Result<QrCode, TransitionError>, message: &str) {
    let e = err(result);
    assert!(
        matches!(e, TransitionError::Forbidden(m) if m == message),
        "expected Forbidden({message:?}), got {e:?}"
    );
}

fn assert_expired(result: Result<QrCode, TransitionError>) {
    let e = err(result);
    assert!(
        matches!(e, TransitionError::Expired),
        "expected Expired, got {e:?}"
    );
}

fn assert_not_found(result: Result<QrCode, TransitionError>) {
    let e = err(result);
    assert!(
        matches!(e, TransitionError::NotFound),
        "expected NotFound, got {e:?}"
    );
}

fn taken(take: Take) -> ExchangeTicket {
    match take {
        Take::Taken(t) => t,
        other => panic!("expected the ticket to be taken, got {other:?}"),
    }
}

// ---- records ------------------------------------------------------------------------------

async fn an_inserted_code_reads_back_unchanged(b: Backend) {
    let qr = b.pending().await;
    assert_eq!(b.store.get(&qr.random).await.unwrap(), Some(qr));

    let mut full = new_qr(&b.clock);
    full.status = QrStatus::Scanned;
    full.browser_hash = None;
    full.require_binding = false;
    full.scanner = Some(Scanner {
        user_id: "u1".into(),
        nickname: None,
        avatar_url: None,
    });
    full.ticket = Some("t1".into());
    b.store.insert(&full).await.unwrap();
    assert_eq!(b.store.get(&full.random).await.unwrap(), Some(full));
}

async fn an_unknown_code_is_not_found(b: Backend) {
    let random = random_token(16);
    let now = b.now();
    assert_eq!(b.store.get(&random).await.unwrap(), None);
    assert_not_found(b.store.scan(&random, &scanner("alice"), now).await);
    let qr = new_qr(&b.clock);
    assert_not_found(
        b.store
            .confirm(&random, &exchange_ticket(&qr, "alice", now), now)
            .await,
    );
    assert_not_found(b.store.cancel(&random, "alice", "declined", now).await);
    assert_eq!(
        b.store
            .take_ticket(&random_token(24), &Binding::default(), now)
            .await
            .unwrap(),
        Take::Missing
    );
}

// ---- scan ---------------------------------------------------------------------------------

async fn a_scan_moves_a_pending_code_to_scanned_by_that_user(b: Backend) {
    let qr = b.pending().await;
    let scanned = b
        .store
        .scan(&qr.random, &scanner("alice"), b.now())
        .await
        .unwrap();
    assert_eq!(scanned.status, QrStatus::Scanned);
    assert_eq!(scanned.scanner, Some(scanner("alice")));
    assert_eq!(scanned.ticket, None);
    assert_eq!(b.store.get(&qr.random).await.unwrap(), Some(scanned));
}

async fn a_rescan_by_the_same_user_is_allowed_and_refreshes_the_profile(b: Backend) {
    let qr = b.scanned_by("alice").await;
    let renamed = Scanner {
        nickname: Some("Alice, renamed".into()),
        ..scanner("alice")
    };
    let again = b.store.scan(&qr.random, &renamed, b.now()).await.unwrap();
    assert_eq!(again.status, QrStatus::Scanned);
    assert_eq!(again.scanner, Some(renamed.clone()));
    assert_eq!(
        b.store.get(&qr.random).await.unwrap().unwrap().scanner,
        Some(renamed)
    );
}

async fn a_scan_by_another_user_is_a_conflict(b: Backend) {
    let qr = b.scanned_by("alice").await;
    assert_conflict(
        b.store.scan(&qr.random, &scanner("bob"), b.now()).await,
        SCANNED_BY_OTHER,
    );
    let stored = b.store.get(&qr.random).await.unwrap().unwrap();
    assert_eq!(stored.scanner, Some(scanner("alice")));
}

// ---- confirm ------------------------------------------------------------------------------

async fn a_confirm_by_the_scanner_issues_the_ticket(b: Backend) {
    let qr = b.scanned_by("alice").await;
    let ticket = exchange_ticket(&qr, "alice", b.now());
    let confirmed = b.store.confirm(&qr.random, &ticket, b.now()).await.unwrap();
    assert_eq!(confirmed.status, QrStatus::Confirmed);
    assert_eq!(confirmed.ticket.as_deref(), Some(ticket.ticket.as_str()));
    assert_eq!(confirmed.scanner, Some(scanner("alice")));
    assert_eq!(b.store.get(&qr.random).await.unwrap(), Some(confirmed));
}

async fn a_confirm_by_another_user_is_forbidden(b: Backend) {
    let qr = b.scanned_by("alice").await;
    let ticket = exchange_ticket(&qr, "bob", b.now());
    assert_forbidden(
        b.store.confirm(&qr.random, &ticket, b.now()).await,
        NOT_THE_SCANNER,
    );
    assert_eq!(b.status(&qr.random).await, QrStatus::Scanned);
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &creator(&qr), b.now())
            .await
            .unwrap(),
        Take::Missing
    );
}

async fn a_confirm_of_a_pending_code_is_a_conflict(b: Backend) {
    let qr = b.pending().await;
    let ticket = exchange_ticket(&qr, "alice", b.now());
    assert_conflict(
        b.store.confirm(&qr.random, &ticket, b.now()).await,
        NOT_SCANNED,
    );
    assert_eq!(b.status(&qr.random).await, QrStatus::Pending);
}

async fn a_second_confirm_is_a_conflict(b: Backend) {
    let (qr, first) = b.confirmed_by("alice").await;
    let second = exchange_ticket(&qr, "alice", b.now());
    assert_conflict(b.store.confirm(&qr.random, &second, b.now()).await, USED);
    let stored = b.store.get(&qr.random).await.unwrap().unwrap();
    assert_eq!(stored.ticket.as_deref(), Some(first.ticket.as_str()));
    assert_eq!(
        b.store
            .take_ticket(&second.ticket, &creator(&qr), b.now())
            .await
            .unwrap(),
        Take::Missing
    );
}

// ---- cancel -------------------------------------------------------------------------------

async fn anyone_may_cancel_a_pending_code(b: Backend) {
    let qr = b.pending().await;
    let cancelled = b
        .store
        .cancel(&qr.random, "mallory", "declined", b.now())
        .await
        .unwrap();
    assert_eq!(cancelled.status, QrStatus::Cancelled);
    assert_eq!(cancelled.scanner, None);
    assert_eq!(b.status(&qr.random).await, QrStatus::Cancelled);
}

async fn only_the_scanner_may_cancel_a_scanned_code(b: Backend) {
    let qr = b.scanned_by("alice").await;
    assert_forbidden(
        b.store.cancel(&qr.random, "bob", "declined", b.now()).await,
        NOT_THE_SCANNER,
    );
    assert_eq!(b.status(&qr.random).await, QrStatus::Scanned);
    let cancelled = b
        .store
        .cancel(&qr.random, "alice", "wrong_match_number", b.now())
        .await
        .unwrap();
    assert_eq!(cancelled.status, QrStatus::Cancelled);
    assert_eq!(cancelled.scanner, Some(scanner("alice")));
    assert_eq!(
        cancelled.cancel_reason.as_deref(),
        Some("wrong_match_number")
    );
    let read = b.store.get_fresh(&qr.random).await.unwrap().unwrap();
    assert_eq!(read.cancel_reason.as_deref(), Some("wrong_match_number"));
    assert_eq!(read.match_number, Some(42));
}

async fn nothing_moves_a_code_out_of_a_final_state(b: Backend) {
    let now = b.now();
    let (confirmed, _) = b.confirmed_by("alice").await;
    assert_conflict(
        b.store
            .scan(&confirmed.random, &scanner("alice"), now)
            .await,
        USED,
    );
    assert_conflict(
        b.store
            .cancel(&confirmed.random, "alice", "declined", now)
            .await,
        USED,
    );
    assert_conflict(
        b.store
            .cancel(&confirmed.random, "bob", "declined", now)
            .await,
        USED,
    );

    let cancelled = b.scanned_by("alice").await;
    b.store
        .cancel(&cancelled.random, "alice", "declined", now)
        .await
        .unwrap();
    assert_conflict(
        b.store
            .scan(&cancelled.random, &scanner("alice"), now)
            .await,
        USED,
    );
    assert_conflict(
        b.store.scan(&cancelled.random, &scanner("bob"), now).await,
        USED,
    );
    let ticket = exchange_ticket(&cancelled, "alice", now);
    assert_conflict(b.store.confirm(&cancelled.random, &ticket, now).await, USED);
    assert_conflict(
        b.store
            .cancel(&cancelled.random, "alice", "declined", now)
            .await,
        USED,
    );
    assert_eq!(b.status(&cancelled.random).await, QrStatus::Cancelled);
}

// ---- expiry -------------------------------------------------------------------------------

async fn codes_expire_at_their_ttl_by_the_injected_clock(b: Backend) {
    let pending = b.pending().await;
    let scanned = b.scanned_by("alice").await;
    let (confirmed, _) = b.confirmed_by("alice").await;
    let mut stored_expired = new_qr(&b.clock);
    stored_expired.status = QrStatus::Expired;
    b.store.insert(&stored_expired).await.unwrap();

    let remaining = pending.expires_at - b.now();
    b.clock.advance(Duration::from_millis(remaining as u64 - 1));
    assert_eq!(b.status(&pending.random).await, QrStatus::Pending);
    assert_eq!(b.status(&scanned.random).await, QrStatus::Scanned);

    b.clock.advance(Duration::from_millis(1));
    let now = b.now();
    assert_eq!(now, pending.expires_at);
    assert_eq!(b.status(&pending.random).await, QrStatus::Expired);
    assert_eq!(b.status(&scanned.random).await, QrStatus::Expired);
    assert_eq!(b.status(&confirmed.random).await, QrStatus::Confirmed);

    assert_expired(b.store.scan(&pending.random, &scanner("alice"), now).await);
    assert_expired(
        b.store
            .cancel(&pending.random, "alice", "declined", now)
            .await,
    );
    assert_expired(b.store.scan(&scanned.random, &scanner("alice"), now).await);
    let ticket = exchange_ticket(&scanned, "alice", now);
    assert_expired(b.store.confirm(&scanned.random, &ticket, now).await);
    assert_expired(
        b.store
            .cancel(&scanned.random, "alice", "declined", now)
            .await,
    );
    assert_expired(
        b.store
            .scan(&stored_expired.random, &scanner("alice"), now)
            .await,
    );
    // A final state outlives the TTL.
    assert_conflict(
        b.store
            .cancel(&confirmed.random, "alice", "declined", now)
            .await,
        USED,
    );
    // Expired records stay readable, so late pollers see `expired` rather than nothing.
    assert_eq!(
        b.store.get(&pending.random).await.unwrap().unwrap().status,
        QrStatus::Pending
    );
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &creator(&scanned), now)
            .await
            .unwrap(),
        Take::Missing
    );
}

// ---- tickets ------------------------------------------------------------------------------

async fn a_ticket_is_taken_only_once(b: Backend) {
    let (qr, ticket) = b.confirmed_by("alice").await;
    let got = taken(
        b.store
            .take_ticket(&ticket.ticket, &creator(&qr), b.now())
            .await
            .unwrap(),
    );
    assert_eq!(got, ticket);
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &creator(&qr), b.now())
            .await
            .unwrap(),
        Take::Missing
    );
}

async fn a_ticket_past_its_expiry_is_missing(b: Backend) {
    let (qr1, early) = b.confirmed_by("alice").await;
    let (qr2, late) = b.confirmed_by("alice").await;
    b.clock.advance(TICKET_TTL - Duration::from_millis(1));
    taken(
        b.store
            .take_ticket(&early.ticket, &creator(&qr1), b.now())
            .await
            .unwrap(),
    );
    b.clock.advance(Duration::from_millis(1));
    assert_eq!(b.now(), late.expires_at);
    assert_eq!(
        b.store
            .take_ticket(&late.ticket, &creator(&qr2), b.now())
            .await
            .unwrap(),
        Take::Missing
    );
    assert_eq!(
        b.store
            .take_ticket(&late.ticket, &creator(&qr2), b.now())
            .await
            .unwrap(),
        Take::Missing
    );
}

async fn a_wrong_binding_leaves_the_ticket_for_its_creator(b: Backend) {
    let (qr, ticket) = b.confirmed_by("alice").await;
    let now = b.now();
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &stranger(), now)
            .await
            .unwrap(),
        Take::NotBound
    );
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &Binding::default(), now)
            .await
            .unwrap(),
        Take::NotBound
    );
    let half = Binding {
        bind_hash: None,
        browser_hash: stranger().browser_hash,
    };
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &half, now)
            .await
            .unwrap(),
        Take::NotBound
    );
    assert_eq!(
        taken(
            b.store
                .take_ticket(&ticket.ticket, &creator(&qr), now)
                .await
                .unwrap()
        ),
        ticket
    );
}

async fn the_browser_cookie_alone_binds(b: Backend) {
    let (qr, ticket) = b.confirmed_by("alice").await;
    let cookie = Binding {
        bind_hash: None,
        browser_hash: qr.browser_hash.clone(),
    };
    assert_eq!(
        taken(
            b.store
                .take_ticket(&ticket.ticket, &cookie, b.now())
                .await
                .unwrap()
        ),
        ticket
    );
}

async fn the_bind_token_alone_binds(b: Backend) {
    let (qr, ticket) = b.confirmed_by("alice").await;
    let token = Binding {
        bind_hash: Some(qr.bind_hash.clone()),
        browser_hash: stranger().browser_hash,
    };
    assert_eq!(
        taken(
            b.store
                .take_ticket(&ticket.ticket, &token, b.now())
                .await
                .unwrap()
        ),
        ticket
    );
}

async fn a_cookie_never_matches_a_code_created_without_one(b: Backend) {
    let mut qr = new_qr(&b.clock);
    qr.browser_hash = None;
    b.store.insert(&qr).await.unwrap();
    b.store
        .scan(&qr.random, &scanner("alice"), b.now())
        .await
        .unwrap();
    let ticket = exchange_ticket(&qr, "alice", b.now());
    b.store.confirm(&qr.random, &ticket, b.now()).await.unwrap();
    let cookie_only = Binding {
        bind_hash: None,
        browser_hash: Some(String::new()),
    };
    assert_eq!(
        b.store
            .take_ticket(&ticket.ticket, &cookie_only, b.now())
            .await
            .unwrap(),
        Take::NotBound
    );
    let token = Binding {
        bind_hash: Some(qr.bind_hash.clone()),
        browser_hash: None,
    };
    assert_eq!(
        taken(
            b.store
                .take_ticket(&ticket.ticket, &token, b.now())
                .await
                .unwrap()
        ),
        ticket
    );
}

async fn anyone_may_take_a_ticket_when_binding_is_off(b: Backend) {
    let mut qr = new_qr(&b.clock);
    qr.require_binding = false;
    b.store.insert(&qr).await.unwrap();
    b.store
        .scan(&qr.random, &scanner("alice"), b.now())
        .await
        .unwrap();
    let ticket = exchange_ticket(&qr, "alice", b.now());
    b.store.confirm(&qr.random, &ticket, b.now()).await.unwrap();
    assert_eq!(
        taken(
            b.store
                .take_ticket(&ticket.ticket, &Binding::default(), b.now())
                .await
                .unwrap()
        ),
        ticket
    );
}

// ---- races --------------------------------------------------------------------------------

async fn exactly_one_of_many_concurrent_confirms_succeeds(b: Backend) {
    const N: usize = 50;
    let qr = b.scanned_by("alice").await;
    let now = b.now();
    let start = Arc::new(Barrier::new(N));
    let attempts: Vec<_> = (0..N)
        .map(|_| {
            let (store, start) = (Arc::clone(&b.store), Arc::clone(&start));
            let (random, ticket) = (qr.random.clone(), exchange_ticket(&qr, "alice", now));
            tokio::spawn(async move {
                start.wait().await;
                let result = store.confirm(&random, &ticket, now).await;
                (ticket, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        match attempt.unwrap() {
            (ticket, Ok(_)) => winners.push(ticket),
            (ticket, result) => {
                assert_conflict(result, USED);
                losers.push(ticket);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one confirm succeeds");
    let winner = &winners[0];
    let stored = b.store.get(&qr.random).await.unwrap().unwrap();
    assert_eq!(stored.ticket.as_deref(), Some(winner.ticket.as_str()));
    for loser in &losers {
        assert_eq!(
            b.store
                .take_ticket(&loser.ticket, &creator(&qr), now)
                .await
                .unwrap(),
            Take::Missing
        );
    }
    assert_eq!(
        &taken(
            b.store
                .take_ticket(&winner.ticket, &creator(&qr), now)
                .await
                .unwrap()
        ),
        winner
    );
}

async fn exactly_one_of_many_concurrent_takes_succeeds(b: Backend) {
    const N: usize = 20;
    let (qr, ticket) = b.confirmed_by("alice").await;
    let now = b.now();
    let start = Arc::new(Barrier::new(N));
    let attempts: Vec<_> = (0..N)
        .map(|_| {
            let (store, start) = (Arc::clone(&b.store), Arc::clone(&start));
            let (ticket, binding) = (ticket.ticket.clone(), creator(&qr));
            tokio::spawn(async move {
                start.wait().await;
                store.take_ticket(&ticket, &binding, now).await.unwrap()
            })
        })
        .collect();
    let mut taken_count = 0;
    for take in futures::future::join_all(attempts).await {
        match take.unwrap() {
            Take::Taken(t) => {
                assert_eq!(t, ticket);
                taken_count += 1;
            }
            Take::Missing => {}
            Take::NotBound => panic!("the creator's binding was refused"),
        }
    }
    assert_eq!(taken_count, 1, "exactly one take succeeds");
}

async fn exactly_one_of_several_users_scanning_at_once_wins(b: Backend) {
    const N: usize = 5;
    let qr = b.pending().await;
    let now = b.now();
    let start = Arc::new(Barrier::new(N));
    let attempts: Vec<_> = (0..N)
        .map(|i| {
            let (store, start, random) =
                (Arc::clone(&b.store), Arc::clone(&start), qr.random.clone());
            let user = format!("user-{i}");
            tokio::spawn(async move {
                start.wait().await;
                let result = store.scan(&random, &scanner(&user), now).await;
                (user, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        match attempt.unwrap() {
            (user, Ok(qr)) => {
                assert_eq!(qr.scanner, Some(scanner(&user)));
                winners.push(user);
            }
            (_, result) => assert_conflict(result, SCANNED_BY_OTHER),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one scan succeeds");
    let stored = b.store.get(&qr.random).await.unwrap().unwrap();
    assert_eq!(stored.scanner, Some(scanner(&winners[0])));
}

// ---- notifications ------------------------------------------------------------------------

async fn a_subscription_wakes_on_each_transition(b: Backend) {
    let qr = b.pending().await;
    let mut sub = b.store.subscribe(&qr.random);
    b.store
        .scan(&qr.random, &scanner("alice"), b.now())
        .await
        .unwrap();
    woken(&mut sub, "the scan to be announced").await;
    assert_eq!(b.status(&qr.random).await, QrStatus::Scanned);
    let ticket = exchange_ticket(&qr, "alice", b.now());
    b.store.confirm(&qr.random, &ticket, b.now()).await.unwrap();
    woken(&mut sub, "the confirmation to be announced").await;
    assert_eq!(b.status(&qr.random).await, QrStatus::Confirmed);

    let other = b.pending().await;
    let mut sub = b.store.subscribe(&other.random);
    b.store
        .cancel(&other.random, "alice", "declined", b.now())
        .await
        .unwrap();
    woken(&mut sub, "the cancellation to be announced").await;
    assert_eq!(b.status(&other.random).await, QrStatus::Cancelled);
}

async fn dropped_subscriptions_are_freed(b: Backend) {
    assert_eq!(b.hub.len(), 0);
    let (one, two) = (random_token(16), random_token(16));
    let first = b.store.subscribe(&one);
    let second = b.store.subscribe(&one);
    let third = b.store.subscribe(&two);
    assert_eq!(b.hub.len(), 2);
    drop(first);
    assert_eq!(b.hub.len(), 2);
    drop(second);
    assert_eq!(b.hub.len(), 1);
    drop(third);
    assert!(b.hub.is_empty());
}

// ---- cache, locks, health -----------------------------------------------------------------

async fn cache_entries_are_removed_only_while_they_hold_the_expected_value(b: Backend) {
    let ttl = Duration::from_secs(60);
    assert_eq!(b.store.cache_get("token").await.unwrap(), None);
    b.store.cache_set("token", "v1", ttl).await.unwrap();
    assert_eq!(
        b.store.cache_get("token").await.unwrap().as_deref(),
        Some("v1")
    );
    b.store.cache_set("token", "v2", ttl).await.unwrap();
    assert_eq!(
        b.store.cache_get("token").await.unwrap().as_deref(),
        Some("v2")
    );
    b.store.cache_remove("token", "v1").await.unwrap();
    assert_eq!(
        b.store.cache_get("token").await.unwrap().as_deref(),
        Some("v2")
    );
    b.store.cache_remove("token", "v2").await.unwrap();
    assert_eq!(b.store.cache_get("token").await.unwrap(), None);
    b.store.cache_remove("token", "v2").await.unwrap();
}

async fn a_lock_is_exclusive_and_released_only_by_its_token(b: Backend) {
    let ttl = Duration::from_secs(60);
    let first = b
        .store
        .lock("refresh", ttl)
        .await
        .unwrap()
        .expect("a free lock is taken");
    assert_eq!(b.store.lock("refresh", ttl).await.unwrap(), None);
    assert!(
        b.store.lock("another", ttl).await.unwrap().is_some(),
        "locks are per key"
    );
    b.store.unlock("refresh", "not-the-token").await.unwrap();
    assert_eq!(b.store.lock("refresh", ttl).await.unwrap(), None);
    b.store.unlock("refresh", &first).await.unwrap();
    let second = b
        .store
        .lock("refresh", ttl)
        .await
        .unwrap()
        .expect("a released lock is free");
    assert_ne!(first, second);
    b.store.unlock("refresh", &first).await.unwrap();
    assert_eq!(
        b.store.lock("refresh", ttl).await.unwrap(),
        None,
        "a stale token does not unlock"
    );
}

async fn hits_count_per_key_within_a_window_and_restart_with_the_next(b: Backend) {
    let minute = Duration::from_secs(60);
    let now = b.clock.now();
    for expected in 1..=3 {
        assert_eq!(
            b.store.hit("qr:203.0.113.9", minute, now).await.unwrap(),
            expected
        );
    }
    assert_eq!(
        b.store.hit("qr:198.51.100.1", minute, now).await.unwrap(),
        1,
        "another key counts apart"
    );
    let next = super::window_of(minute, now).1;
    assert_eq!(
        b.store.hit("qr:203.0.113.9", minute, next).await.unwrap(),
        1,
        "the next window starts again"
    );
}

async fn concurrent_hits_are_all_counted(b: Backend) {
    let minute = Duration::from_secs(60);
    let now = b.clock.now();
    let hits = (0..40).map(|_| {
        let store = Arc::clone(&b.store);
        tokio::spawn(async move { store.hit("burst", minute, now).await.unwrap() })
    });
    let mut counts: Vec<u64> = futures::future::join_all(hits)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u64>>());
}

async fn holds_are_capped_per_key_and_let_go_by_release_or_time(b: Backend) {
    let now = b.now();
    let until = now + 60_000;
    for member in ["a", "b"] {
        assert!(b.store.hold("k", member, until, 2, now).await.unwrap());
    }
    assert!(!b.store.hold("k", "c", until, 2, now).await.unwrap());
    assert!(b.store.hold("other", "c", until, 2, now).await.unwrap());
    b.store.release("k", "a").await.unwrap();
    b.store.release("k", "never-held").await.unwrap();
    assert!(b
        .store
        .hold("k", "c", until + 60_000, 2, now)
        .await
        .unwrap());
    assert!(!b.store.hold("k", "d", until, 2, now).await.unwrap());
    // "b" lets go at `until`; "c" is held a minute longer.
    assert!(b
        .store
        .hold("k", "d", until + 1000, 2, until)
        .await
        .unwrap());
    assert!(!b
        .store
        .hold("k", "e", until + 1000, 2, until)
        .await
        .unwrap());
}

async fn a_reachable_backend_answers_ping(b: Backend) {
    b.store.ping().await.unwrap();
}

async fn a_configuration_change_moves_the_counter_at_once(b: Backend) {
    let mut changes = b.store.config_changes();
    let before = *changes.borrow_and_update();
    b.store.announce_config_change().await.unwrap();
    assert!(
        changes.has_changed().unwrap(),
        "the announcing store sees it at once"
    );
    assert_ne!(*changes.borrow(), before);
}

async fn tallies_count_per_key_and_bucket_until_they_are_dropped(b: Backend) {
    let key = format!("funnel:{}", random_token(6));
    for bucket in [7, 7, 7, 8] {
        b.store
            .tally(&key, bucket, Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let counts = b.store.tallies(&key, &[6, 7, 8]).await.unwrap();
    assert_eq!(counts, [0, 3, 1]);
    assert_eq!(b.store.tallies("other", &[7]).await.unwrap(), [0]);
    assert!(b.store.tallies(&key, &[]).await.unwrap().is_empty());
}

// ---- device authorization requests (RFC 8628) ----

const DEVICE_TTL: Duration = Duration::from_secs(600);

fn new_device(clock: &Clock) -> DeviceRequest {
    let now = clock.now();
    DeviceRequest {
        random: random_token(18).as_str().into(),
        code_hash: sha256_hex(random_token(32).as_bytes()),
        user_code: UserCode::generate(),
        pool_id: "pool-default".into(),
        client_id: "tv".into(),
        appid: "wx0123456789abcdef".into(),
        scope: "openid".into(),
        status: DeviceStatus::Pending,
        created_at: now,
        expires_at: now + DEVICE_TTL.as_millis() as i64,
        interval_secs: 5,
        last_poll_at: None,
        requester_ip: "203.0.113.8".into(),
        requester_user_agent: "curl/8.5.0".into(),
        decided_by: None,
        decided_at: None,
        deny_reason: None,
        wrong_codes: 0,
    }
}

impl Backend {
    async fn device(&self) -> DeviceRequest {
        let req = new_device(&self.clock);
        assert!(self.store.device_insert(&req).await.unwrap());
        req
    }

    async fn device_status(&self, random: &str) -> DeviceStatus {
        let req = self
            .store
            .device_get(random)
            .await
            .unwrap()
            .expect("stored");
        req.status_at(self.now())
    }
}

async fn a_device_request_reads_back_and_is_found_by_its_user_code(b: Backend) {
    let req = b.device().await;
    assert_eq!(
        b.store.device_get(&req.random).await.unwrap().as_ref(),
        Some(&req)
    );
    assert_eq!(
        b.store
            .device_by_user_code(&req.user_code)
            .await
            .unwrap()
            .as_ref(),
        Some(&req)
    );
    assert_eq!(b.store.device_get("unknown-random").await.unwrap(), None);
    let other = UserCode::parse("BCDF-GHJK").unwrap();
    if other != req.user_code {
        assert_eq!(b.store.device_by_user_code(&other).await.unwrap(), None);
    }
}

async fn a_live_requests_user_code_is_not_given_to_another(b: Backend) {
    let first = b.device().await;
    let mut clash = new_device(&b.clock);
    clash.user_code = first.user_code.clone();
    assert!(!b.store.device_insert(&clash).await.unwrap(), "refused");
    assert_eq!(b.store.device_get(&clash.random).await.unwrap(), None);
    // Once the first has expired, its code is free again.
    b.clock.advance(DEVICE_TTL);
    let mut later = new_device(&b.clock);
    later.user_code = first.user_code.clone();
    assert!(b.store.device_insert(&later).await.unwrap());
    assert_eq!(
        b.store
            .device_by_user_code(&first.user_code)
            .await
            .unwrap()
            .map(|r| r.random),
        Some(later.random)
    );
}

async fn a_poll_sooner_than_the_interval_slows_down_and_the_interval_grows(b: Backend) {
    let req = b.device().await;
    let poll = |at: Millis| b.store.device_poll(&req.random, at);
    let t = b.now();
    assert_eq!(poll(t).await.unwrap(), Poll::Pending { interval_secs: 5 });
    assert_eq!(
        poll(t + 4_999).await.unwrap(),
        Poll::SlowDown { interval_secs: 10 }
    );
    // Counted from the last poll, at the grown interval.
    assert_eq!(
        poll(t + 14_000).await.unwrap(),
        Poll::SlowDown { interval_secs: 15 }
    );
    assert_eq!(
        poll(t + 29_000).await.unwrap(),
        Poll::Pending { interval_secs: 15 }
    );
    let stored = b.store.device_get(&req.random).await.unwrap().unwrap();
    assert_eq!(
        (stored.interval_secs, stored.last_poll_at),
        (15, Some(t + 29_000))
    );
}

async fn an_approved_request_is_redeemed_by_one_poll_only(b: Backend) {
    let req = b.device().await;
    let now = b.now();
    let approved = b
        .store
        .device_decide(&req.random, "alice", true, now)
        .await
        .unwrap();
    assert_eq!(approved.status, DeviceStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("alice"));
    const N: usize = 40;
    let start = Arc::new(Barrier::new(N));
    let polls: Vec<_> = (0..N)
        .map(|_| {
            let (store, start, random) =
                (Arc::clone(&b.store), Arc::clone(&start), req.random.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.device_poll(&random, now).await.unwrap()
            })
        })
        .collect();
    let mut redeemed = Vec::new();
    for poll in futures::future::join_all(polls).await {
        match poll.unwrap() {
            Poll::Redeemed(r) => redeemed.push(r),
            other => assert_eq!(other, Poll::Used),
        }
    }
    assert_eq!(redeemed.len(), 1, "exactly one poll redeems");
    assert_eq!(redeemed[0].decided_by.as_deref(), Some("alice"));
    assert_eq!(redeemed[0].decided_at, Some(now));
    assert_eq!(b.device_status(&req.random).await, DeviceStatus::Redeemed);
}

async fn a_request_is_decided_once(b: Backend) {
    let req = b.device().await;
    let now = b.now();
    let denied = b
        .store
        .device_decide(&req.random, "bob", false, now)
        .await
        .unwrap();
    assert_eq!(denied.status, DeviceStatus::Denied);
    assert_eq!(denied.deny_reason.as_deref(), Some("declined"));
    for approve in [true, false] {
        assert_conflict_device(
            b.store
                .device_decide(&req.random, "bob", approve, now)
                .await,
        );
    }
    assert_eq!(
        b.store.device_poll(&req.random, now).await.unwrap(),
        Poll::Denied
    );
    assert!(matches!(
        b.store
            .device_decide("unknown-random", "bob", true, now)
            .await,
        Err(TransitionError::NotFound)
    ));
    assert_eq!(
        b.store.device_poll("unknown-random", now).await.unwrap(),
        Poll::Unknown
    );
}

fn assert_conflict_device(result: Result<DeviceRequest, TransitionError>) {
    match result {
        Err(TransitionError::Conflict(m)) => assert_eq!(m, super::device::ALREADY_DECIDED),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn device_requests_expire_by_the_injected_clock(b: Backend) {
    let pending = b.device().await;
    let approved = b.device().await;
    b.store
        .device_decide(&approved.random, "carol", true, b.now())
        .await
        .unwrap();
    b.clock.advance(DEVICE_TTL);
    let now = b.now();
    for req in [&pending, &approved] {
        assert_eq!(b.device_status(&req.random).await, DeviceStatus::Expired);
        assert_eq!(
            b.store.device_poll(&req.random, now).await.unwrap(),
            Poll::Expired
        );
    }
    assert!(matches!(
        b.store
            .device_decide(&pending.random, "carol", true, now)
            .await,
        Err(TransitionError::Expired)
    ));
    assert_eq!(
        b.store
            .device_wrong_code(&pending.random, 5, now)
            .await
            .unwrap(),
        WrongCode::NotPending
    );
    assert_eq!(
        b.store
            .device_by_user_code(&pending.user_code)
            .await
            .unwrap(),
        None
    );
}

async fn wrong_user_codes_deny_a_request_at_the_limit(b: Backend) {
    let req = b.device().await;
    let now = b.now();
    for n in 1..=4 {
        assert_eq!(
            b.store
                .device_wrong_code(&req.random, 5, now)
                .await
                .unwrap(),
            WrongCode::Counted(n)
        );
    }
    assert_eq!(
        b.store
            .device_wrong_code(&req.random, 5, now)
            .await
            .unwrap(),
        WrongCode::Locked
    );
    let stored = b.store.device_get(&req.random).await.unwrap().unwrap();
    assert_eq!(stored.status, DeviceStatus::Denied);
    assert_eq!(stored.deny_reason.as_deref(), Some("locked"));
    assert_eq!(stored.wrong_codes, 5);
    assert_eq!(
        b.store
            .device_wrong_code(&req.random, 5, now)
            .await
            .unwrap(),
        WrongCode::NotPending
    );
    assert_conflict_device(b.store.device_decide(&req.random, "dave", true, now).await);
    assert_eq!(
        b.store.device_poll(&req.random, now).await.unwrap(),
        Poll::Denied
    );
}

macro_rules! conformance_suite {
    ($($check:ident),+ $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $check() {
                    super::$check(super::Backend::memory()).await;
                }
            )+
        }

        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $check() {
                    super::$check(super::Backend::redis().await).await;
                }
            )+
        }
    };
}

conformance_suite!(
    an_inserted_code_reads_back_unchanged,
    an_unknown_code_is_not_found,
    a_scan_moves_a_pending_code_to_scanned_by_that_user,
    a_rescan_by_the_same_user_is_allowed_and_refreshes_the_profile,
    a_scan_by_another_user_is_a_conflict,
    a_confirm_by_the_scanner_issues_the_ticket,
    a_confirm_by_another_user_is_forbidden,
    a_confirm_of_a_pending_code_is_a_conflict,
    a_second_confirm_is_a_conflict,
    anyone_may_cancel_a_pending_code,
    only_the_scanner_may_cancel_a_scanned_code,
    nothing_moves_a_code_out_of_a_final_state,
    codes_expire_at_their_ttl_by_the_injected_clock,
    a_ticket_is_taken_only_once,
    a_ticket_past_its_expiry_is_missing,
    a_wrong_binding_leaves_the_ticket_for_its_creator,
    the_browser_cookie_alone_binds,
    the_bind_token_alone_binds,
    a_cookie_never_matches_a_code_created_without_one,
    anyone_may_take_a_ticket_when_binding_is_off,
    exactly_one_of_many_concurrent_confirms_succeeds,
    exactly_one_of_many_concurrent_takes_succeeds,
    exactly_one_of_several_users_scanning_at_once_wins,
    a_subscription_wakes_on_each_transition,
    dropped_subscriptions_are_freed,
    cache_entries_are_removed_only_while_they_hold_the_expected_value,
    a_lock_is_exclusive_and_released_only_by_its_token,
    hits_count_per_key_within_a_window_and_restart_with_the_next,
    concurrent_hits_are_all_counted,
    a_reachable_backend_answers_ping,
    a_configuration_change_moves_the_counter_at_once,
    tallies_count_per_key_and_bucket_until_they_are_dropped,
    holds_are_capped_per_key_and_let_go_by_release_or_time,
    a_device_request_reads_back_and_is_found_by_its_user_code,
    a_live_requests_user_code_is_not_given_to_another,
    a_poll_sooner_than_the_interval_slows_down_and_the_interval_grows,
    an_approved_request_is_redeemed_by_one_poll_only,
    a_request_is_decided_once,
    device_requests_expire_by_the_injected_clock,
    wrong_user_codes_deny_a_request_at_the_limit,
);

/// What only the Redis backend has: a fleet sharing one server, and a server that can be away.
mod redis_only {
    use std::sync::Mutex;
    use std::time::Instant;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;

    /// The longest any one operation may take against a dead server: the store's own bound
    /// plus scheduling slack.
    const PROMPT: Duration = Duration::from_secs(6);

    async fn raw_connection() -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(redis_url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    async fn pttl(key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut raw_connection().await)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_confirmation_on_one_instance_wakes_waiters_on_another() {
        let prefix = test_prefix();
        let clock = Clock::manual();
        let a = redis_store(&prefix, clock.clone()).await;
        let b = redis_store(&prefix, clock.clone()).await;
        let qr = new_qr(&clock);
        a.insert(&qr).await.unwrap();
        b.scan(&qr.random, &scanner("alice"), clock.now())
            .await
            .unwrap();

        let mut sub = a.subscribe(&qr.random);
        let ticket = exchange_ticket(&qr, "alice", clock.now());
        b.confirm(&qr.random, &ticket, clock.now()).await.unwrap();
        woken(&mut sub, "instance A to hear B's confirmation").await;
        let seen = a.get(&qr.random).await.unwrap().unwrap();
        assert_eq!(seen.status_at(clock.now()), QrStatus::Confirmed);
        assert_eq!(seen.ticket.as_deref(), Some(ticket.ticket.as_str()));
        drop(sub);
        assert!(a.hub().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_code_read_on_one_instance_is_read_afresh_once_another_changes_it() {
        let prefix = test_prefix();
        let clock = Clock::manual();
        let a = redis_store(&prefix, clock.clone()).await;
        let b = redis_store(&prefix, clock.clone()).await;
        let qr = new_qr(&clock);
        a.insert(&qr).await.unwrap();
        eventually_listening(&a).await;
        for _ in 0..3 {
            let seen = a.get(&qr.random).await.unwrap().unwrap();
            assert_eq!(seen.status, QrStatus::Pending);
        }

        let mut sub = a.subscribe(&qr.random);
        b.scan(&qr.random, &scanner("alice"), clock.now())
            .await
            .unwrap();
        woken(&mut sub, "instance A to hear B's scan").await;
        let seen = a.get(&qr.random).await.unwrap().unwrap();
        assert_eq!(
            seen.status,
            QrStatus::Scanned,
            "A's earlier read is not served"
        );
        assert_eq!(seen.scanner.map(|s| s.user_id).as_deref(), Some("alice"));

        // And an instance reads its own writes at once.
        let ticket = exchange_ticket(&qr, "alice", clock.now());
        a.confirm(&qr.random, &ticket, clock.now()).await.unwrap();
        let seen = a.get(&qr.random).await.unwrap().unwrap();
        assert_eq!(seen.status, QrStatus::Confirmed);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_configuration_change_on_one_instance_reaches_another() {
        let prefix = test_prefix();
        let clock = Clock::manual();
        let a = redis_store(&prefix, clock.clone()).await;
        let b = redis_store(&prefix, clock.clone()).await;
        eventually_listening(&b).await;
        let mut changes = b.config_changes();
        changes.borrow_and_update();
        a.announce_config_change().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("instance B hears A's announcement within 5 s")
            .unwrap();
    }

    /// Waits until the store's listener has subscribed (its cache is on from then).
    async fn eventually_listening(store: &RedisStore) {
        let mut watch = store.listening_watch();
        tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|on| *on))
            .await
            .expect("the listener subscribes")
            .expect("the listener runs");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn records_carry_ttls_relative_to_the_injected_clock() {
        let clock = Clock::manual();
        let store = redis_store(&test_prefix(), clock.clone()).await;
        let qr = new_qr(&clock);
        store.insert(&qr).await.unwrap();
        let expected = (QR_TTL + super::super::RETAIN_AFTER_EXPIRY).as_millis() as i64;
        let ttl = pttl(&store.qr_key(&qr.random)).await;
        assert!(
            ttl <= expected && ttl > expected - 5_000,
            "QR ttl {ttl} ms, expected about {expected}"
        );

        // An instance whose clock runs ahead still gives the ticket its full lifetime.
        clock.advance(Duration::from_secs(30));
        store
            .scan(&qr.random, &scanner("alice"), clock.now())
            .await
            .unwrap();
        let ticket = exchange_ticket(&qr, "alice", clock.now());
        store
            .confirm(&qr.random, &ticket, clock.now())
            .await
            .unwrap();
        let expected = TICKET_TTL.as_millis() as i64;
        let ttl = pttl(&store.ticket_key(&ticket.ticket)).await;
        assert!(
            ttl <= expected && ttl > expected - 5_000,
            "ticket ttl {ttl} ms, expected about {expected}"
        );

        taken(
            store
                .take_ticket(&ticket.ticket, &creator(&qr), clock.now())
                .await
                .unwrap(),
        );
        assert_eq!(
            pttl(&store.ticket_key(&ticket.ticket)).await,
            -2,
            "a taken ticket is deleted"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refused_ticket_keeps_its_key_until_taken() {
        let clock = Clock::manual();
        let store = redis_store(&test_prefix(), clock.clone()).await;
        let qr = new_qr(&clock);
        store.insert(&qr).await.unwrap();
        store
            .scan(&qr.random, &scanner("alice"), clock.now())
            .await
            .unwrap();
        let ticket = exchange_ticket(&qr, "alice", clock.now());
        store
            .confirm(&qr.random, &ticket, clock.now())
            .await
            .unwrap();
        assert_eq!(
            store
                .take_ticket(&ticket.ticket, &stranger(), clock.now())
                .await
                .unwrap(),
            Take::NotBound
        );
        assert!(pttl(&store.ticket_key(&ticket.ticket)).await > 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dropping_the_store_stops_its_listener() {
        let store = redis_store(&test_prefix(), Clock::manual()).await;
        let mut listening = store.listening_watch();
        drop(store);
        within("the listener to stop", async {
            while listening.changed().await.is_ok() {}
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_server_fails_every_operation_promptly() {
        let clock = Clock::manual();
        let started = Instant::now();
        let store = tokio::time::timeout(
            PROMPT,
            RedisStore::connect("redis://127.0.0.1:1", &test_prefix(), clock.clone()),
        )
        .await
        .expect("connect returns promptly")
        .expect("connecting is lazy");
        assert!(!store.is_listening());

        async fn prompt<T>(what: &str, fut: impl Future<Output = T>) -> T {
            let started = Instant::now();
            let out = tokio::time::timeout(PROMPT, fut)
                .await
                .unwrap_or_else(|_| panic!("{what} hung against an unreachable server"));
            assert!(started.elapsed() < PROMPT);
            out
        }
        let qr = new_qr(&clock);
        let now = clock.now();
        let ticket = exchange_ticket(&qr, "alice", now);
        assert!(prompt("insert", store.insert(&qr)).await.is_err());
        assert!(prompt("get", store.get(&qr.random)).await.is_err());
        for (what, result) in [
            (
                "scan",
                prompt("scan", store.scan(&qr.random, &scanner("alice"), now)).await,
            ),
            (
                "confirm",
                prompt("confirm", store.confirm(&qr.random, &ticket, now)).await,
            ),
            (
                "cancel",
                prompt("cancel", store.cancel(&qr.random, "alice", "declined", now)).await,
            ),
        ] {
            let e = err(result);
            assert!(matches!(e, TransitionError::Store(_)), "{what} gave {e:?}");
        }
        assert!(prompt(
            "take",
            store.take_ticket(&ticket.ticket, &creator(&qr), now)
        )
        .await
        .is_err());
        assert!(prompt("cache_get", store.cache_get("k")).await.is_err());
        assert!(prompt(
            "cache_set",
            store.cache_set("k", "v", Duration::from_secs(1))
        )
        .await
        .is_err());
        assert!(prompt("cache_remove", store.cache_remove("k", "v"))
            .await
            .is_err());
        assert!(prompt("lock", store.lock("k", Duration::from_secs(1)))
            .await
            .is_err());
        assert!(prompt("unlock", store.unlock("k", "t")).await.is_err());
        let e = prompt("ping", store.ping()).await.unwrap_err();
        assert!(!e.to_string().is_empty());
        assert!(
            started.elapsed() < PROMPT * 2,
            "a refused connection fails at once, not after timeouts"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_silent_server_fails_operations_within_the_timeouts() {
        // Accepts connections and never answers: what a hung or partitioned Redis looks like.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let store = tokio::time::timeout(
            PROMPT,
            RedisStore::connect(&url, &test_prefix(), Clock::manual()),
        )
        .await
        .expect("connect returns promptly")
        .expect("connecting is lazy");
        let started = Instant::now();
        let (ping, get) = tokio::join!(store.ping(), store.get("r"));
        assert!(ping.is_err() && get.is_err());
        assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
        hold.abort();
    }

    /// A TCP relay to the test Redis whose connections can be cut, as a restart or a network
    /// blip would.
    struct Proxy {
        url: String,
        links: Arc<Mutex<Vec<JoinHandle<()>>>>,
        accept: JoinHandle<()>,
    }

    impl Proxy {
        async fn start() -> Self {
            let mut url = url::Url::parse(&redis_url()).unwrap();
            let target = format!(
                "{}:{}",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port().unwrap_or(6379)
            );
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            url.set_host(Some("127.0.0.1")).unwrap();
            url.set_port(Some(port)).unwrap();
            let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
            let accept = tokio::spawn({
                let links = Arc::clone(&links);
                async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let target = target.clone();
                        let link = tokio::spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                        links.lock().unwrap().push(link);
                    }
                }
            });
            Self {
                url: url.to_string(),
                links,
                accept,
            }
        }

        /// Drops every open connection; new ones are still accepted.
        fn sever(&self) {
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.accept.abort();
            self.sever();
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn after_a_lost_connection_the_store_reconnects_and_wakes_its_waiters() {
        let proxy = Proxy::start().await;
        let prefix = test_prefix();
        let clock = Clock::manual();
        let a = RedisStore::connect(&proxy.url, &prefix, clock.clone())
            .await
            .unwrap();
        let mut listening = a.listening_watch();
        within("A's listener to subscribe", listening.wait_for(|on| *on))
            .await
            .unwrap();
        let b = redis_store(&prefix, clock.clone()).await;
        let qr = new_qr(&clock);
        b.insert(&qr).await.unwrap();
        assert_eq!(a.get(&qr.random).await.unwrap().as_ref(), Some(&qr));

        let mut sub = a.subscribe(&qr.random);
        proxy.sever();
        woken(
            &mut sub,
            "A's waiters to be told to re-read after reconnecting",
        )
        .await;
        within(
            "A's listener to subscribe again",
            listening.wait_for(|on| *on),
        )
        .await
        .unwrap();

        b.scan(&qr.random, &scanner("alice"), clock.now())
            .await
            .unwrap();
        woken(&mut sub, "A to hear B's scan on the new connection").await;
        assert_eq!(
            a.get(&qr.random).await.unwrap().unwrap().status,
            QrStatus::Scanned
        );
        let ticket = exchange_ticket(&qr, "alice", clock.now());
        a.confirm(&qr.random, &ticket, clock.now()).await.unwrap();
        a.ping().await.unwrap();
    }
}
