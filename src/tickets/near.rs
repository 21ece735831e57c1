//! The near cache of the Redis store: codes this instance has read, so that a status poll
//! is answered from memory instead of a Redis round trip.
//!
//! It stays coherent through the events channel: every change to a code is published there,
//! and the listener drops the code from here before it wakes local waiters. The cache is used
//! only while the listener is subscribed; when it loses the connection, the cache empties and
//! stays off until it is back, since changes published meanwhile were missed. A read that
//! overlapped any invalidation does not fill the cache (the generation check), so a value read
//! before a change can never outlive that change's notification. What remains is the delay of
//! the notification itself: another instance's change is seen here once it is published, a
//! fraction of a millisecond later, as if the poll had left a moment earlier.
//! Transitions never read from here; they run as scripts in Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::QrCode;

/// Most codes held; past it the cache starts over (it refills from the next reads).
const CAPACITY: usize = 20_000;

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Arc<QrCode>>,
    /// Bumped by every invalidation.
    generation: u64,
    /// Whether invalidations are flowing (the listener is subscribed).
    active: bool,
}

#[derive(Default)]
pub struct NearCache {
    inner: Mutex<Inner>,
}

impl NearCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept copy itself: the same one for every read until the code changes.
    pub fn get(&self, random: &str) -> Option<Arc<QrCode>> {
        let inner = self.inner();
        inner.codes.get(random).filter(|_| inner.active).cloned()
    }

    /// The generation to pass to [`NearCache::fill`] with a value read after this call.
    pub fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// Keeps `qr`, read from Redis after [`NearCache::generation`] returned `generation`,
    /// unless an invalidation happened since.
    pub fn fill(&self, generation: u64, qr: &Arc<QrCode>) {
        let mut inner = self.inner();
        if !inner.active || inner.generation != generation {
            return;
        }
        if inner.codes.len() >= CAPACITY {
            inner.codes.clear();
        }
        inner.codes.insert(qr.random.to_string(), Arc::clone(qr));
    }

    /// Drops a code that has changed.
    pub fn invalidate(&self, random: &str) {
        let mut inner = self.inner();
        inner.codes.remove(random);
        inner.generation += 1;
    }

    /// Turns the cache on (the listener has subscribed) or off (it lost the connection);
    /// either way it starts empty.
    pub fn set_active(&self, active: bool) {
        let mut inner = self.inner();
        inner.codes.clear();
        inner.generation += 1;
        inner.active = active;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::QrStatus;

    fn code(random: &str) -> Arc<QrCode> {
        Arc::new(QrCode {
            random: random.into(),
            pool_id: "default".into(),
            client_id: "web".into(),
            appid: "wx0123456789abcdef".into(),
            status: QrStatus::Pending,
            created_at: 1,
            expires_at: 2,
            bind_hash: "b".into(),
            browser_hash: None,
            require_binding: true,
            requester_ip: "127.0.0.1".into(),
            requester_user_agent: String::new(),
            scanner: None,
            ticket: None,
            match_number: None,
            cancel_reason: None,
        })
    }

    #[test]
    fn nothing_is_kept_or_served_while_inactive() {
        let cache = NearCache::default();
        cache.fill(cache.generation(), &code("a"));
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn a_fill_is_served_until_invalidated() {
        let cache = NearCache::default();
        cache.set_active(true);
        cache.fill(cache.generation(), &code("a"));
        assert_eq!(
            cache.get("a").map(|q| q.random.to_string()),
            Some("a".to_owned())
        );
        cache.invalidate("a");
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn a_read_that_overlapped_an_invalidation_does_not_fill() {
        let cache = NearCache::default();
        cache.set_active(true);
        let before = cache.generation();
        cache.invalidate("a");
        cache.fill(before, &code("a"));
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn losing_the_listener_empties_the_cache_and_rejects_reads_begun_before() {
        let cache = NearCache::default();
        cache.set_active(true);
        cache.fill(cache.generation(), &code("a"));
        let before = cache.generation();
        cache.set_active(false);
        cache.set_active(true);
        assert!(cache.get("a").is_none());
        cache.fill(before, &code("a"));
        assert!(cache.get("a").is_none());
    }
}
