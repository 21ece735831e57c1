//! The only place that reads the wall clock.
//!
//! Expiry logic everywhere takes `clock.now()` so tests can move time forward instead of
//! sleeping. Times are Unix milliseconds: portable across SQLite, PostgreSQL and Redis.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock (production).
    System,
    /// A clock that only moves when a test says so.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at the current system time.
    pub fn manual() -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(system_now())))
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::System => system_now(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Seconds since the epoch, as JWT claims want them.
    pub fn now_secs(&self) -> i64 {
        self.now().div_euclid(1000)
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, by: std::time::Duration) {
        if let Clock::Manual(t) = self {
            t.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }
}

/// The one read of the wall clock (`clippy.toml` forbids it everywhere else).
#[allow(clippy::disallowed_methods)]
fn system_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 text for a millisecond timestamp (UTC).
pub fn rfc3339(at: Millis) -> String {
    let nanos = i128::from(at) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = Clock::manual();
        let t0 = clock.now();
        clock.advance(std::time::Duration::from_secs(3));
        assert_eq!(clock.now() - t0, 3000);
    }

    #[test]
    fn rfc3339_formats_utc_milliseconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
