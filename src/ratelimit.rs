//! Per-client request limits: a fixed one-minute window per client address and kind of
//! request, counted in the ticket store so that a fleet of instances shares one count.
//!
//! Limits guard what costs us something: stored QR codes and avatars, calls to WeChat, Argon2
//! checks of client secrets, and guesses at exchange tickets and secrets. Reading a status is
//! not limited; it is what a waiting page does. On the phone's side, per Mini Program user:
//! approvals, and scans of codes that are not pending (guessing, replayed photos). For the
//! device grant: device authorizations and user codes typed, per address. Besides these
//! rates, two caps: how many QR codes an address may have pending at once, and how many wrong
//! user codes one device request takes before it is denied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, Millis};
use crate::config::RateLimits;
use crate::error::{AppError, AppResult};
use crate::tickets::TicketStore;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub enum Limit {
    QrCodes,
    Sessions,
    Exchanges,
    /// Failed management API authentications.
    AdminAuthFailures,
    /// Client secrets that needed an Argon2 check, per address.
    ClientAuthFailures,
    /// Client secrets that needed an Argon2 check, per client id.
    ClientAuthFailuresPerClient,
    /// Avatar uploads, per user.
    AvatarUploads,
    /// Images drawn (not served from the cache), per QR code.
    ImageRenders,
    /// "Open in WeChat" links asked for, per QR code.
    OpenLinks,
    /// Confirmed logins, per Mini Program user.
    Approvals,
    /// Scans of codes that are not pending, per Mini Program user.
    StaleScans,
    /// Device authorization requests, per address.
    DeviceAuthorizations,
    /// User codes typed on the device verification pages, per address.
    UserCodes,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::QrCodes => "qrcodes",
            Limit::Sessions => "sessions",
            Limit::Exchanges => "exchanges",
            Limit::AdminAuthFailures => "admin_auth_failures",
            Limit::ClientAuthFailures => "client_auth_failures",
            Limit::ClientAuthFailuresPerClient => "client_auth_failures_per_client",
            Limit::AvatarUploads => "avatar_uploads",
            Limit::ImageRenders => "image_renders",
            Limit::OpenLinks => "open_links",
            Limit::Approvals => "approvals",
            Limit::StaleScans => "stale_scans",
            Limit::DeviceAuthorizations => "device_authorizations",
            Limit::UserCodes => "user_codes",
        }
    }
}

/// What a request is counted against: an IPv6 address by its /64 (one subscriber's network
/// holds 2^64 addresses, all as easy to use as one), anything else as it is.
fn counted_as(client: &str) -> std::borrow::Cow<'_, str> {
    match client
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_canonical())
    {
        Ok(std::net::IpAddr::V6(v6)) => {
            let network = std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
            format!("{network}/64").into()
        }
        Ok(v4) if client.contains(':') => v4.to_string().into(),
        _ => client.into(),
    }
}

/// The set of codes `ip` has pending, in the ticket store.
fn pending_key(ip: &str) -> String {
    format!("pending_qrcodes:{}", counted_as(ip))
}

/// The configured limits and the shared counts they are checked against.
#[derive(Clone)]
pub struct RateLimiter {
    limits: RateLimits,
    counts: Arc<dyn TicketStore>,
    clock: Clock,
}

impl RateLimiter {
    pub fn new(limits: RateLimits, counts: Arc<dyn TicketStore>, clock: Clock) -> Self {
        Self {
            limits,
            counts,
            clock,
        }
    }

    fn per_minute(&self, limit: Limit) -> u64 {
        match limit {
            Limit::QrCodes => self.limits.qrcodes_per_minute,
            Limit::Sessions => self.limits.sessions_per_minute,
            Limit::Exchanges => self.limits.exchanges_per_minute,
            Limit::AdminAuthFailures => self.limits.admin_auth_failures_per_minute,
            Limit::ClientAuthFailures => self.limits.client_auth_failures_per_minute,
            Limit::ClientAuthFailuresPerClient => {
                self.limits.client_auth_failures_per_client_per_minute
            }
            Limit::AvatarUploads => self.limits.avatar_uploads_per_minute,
            Limit::ImageRenders => self.limits.image_renders_per_code_per_minute,
            Limit::OpenLinks => self.limits.open_links_per_code_per_minute,
            Limit::Approvals => self.limits.approvals_per_minute,
            Limit::StaleScans => self.limits.stale_scans_per_minute,
            Limit::DeviceAuthorizations => self.limits.device_authorizations_per_minute,
            Limit::UserCodes => self.limits.user_codes_per_minute,
        }
    }

    /// Wrong user codes that deny a device request for good (`wrong_user_codes_per_device`);
    /// 0 turns the lock off.
    pub fn wrong_user_codes_per_device(&self) -> u32 {
        u32::try_from(self.limits.wrong_user_codes_per_device).unwrap_or(u32::MAX)
    }

    /// Counts one request of `limit` from `client` (an address, or for a per-client limit a
    /// client id); `rate_limited` once over.
    pub async fn check(&self, limit: Limit, client: &str) -> AppResult<()> {
        let max = self.per_minute(limit);
        if max == 0 {
            return Ok(());
        }
        let key = format!("{}:{}", limit.name(), counted_as(client));
        let count = self.counts.hit(&key, WINDOW, self.clock.now()).await?;
        if count > max {
            let whose = match limit {
                Limit::ClientAuthFailuresPerClient => "for this client",
                Limit::AvatarUploads | Limit::Approvals | Limit::StaleScans => "by this user",
                Limit::ImageRenders => "of this QR code (sizes and formats)",
                Limit::OpenLinks => "for this QR code",
                _ => "from this address",
            };
            return Err(AppError::RateLimited(format!(
                "too many {} requests {whose}; try again in a minute",
                limit.name()
            )));
        }
        Ok(())
    }

    /// Counts a new pending QR code `random` of the address `ip` until it stops being pending
    /// (see [`RateLimiter::release_pending`]) or `until` (its expiry); `rate_limited` when the
    /// address already has `pending_qrcodes_per_address` of them.
    pub async fn hold_pending(&self, ip: &str, random: &str, until: Millis) -> AppResult<()> {
        let cap = self.limits.pending_qrcodes_per_address;
        if cap == 0 {
            return Ok(());
        }
        let key = pending_key(ip);
        if !self
            .counts
            .hold(&key, random, until, cap, self.clock.now())
            .await?
        {
            return Err(AppError::RateLimited(
                "too many QR codes waiting to be scanned from this address; let some expire \
                 and try again in a minute"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The code `random` of `ip` is pending no more (scanned or cancelled).
    pub async fn release_pending(&self, ip: &str, random: &str) -> AppResult<()> {
        if self.limits.pending_qrcodes_per_address == 0 {
            return Ok(());
        }
        let key = pending_key(ip);
        Ok(self.counts.release(&key, random).await?)
    }
}

/// What one client address holds at once on this instance — open connections, open event
/// streams — against a cap. Unlike the per-minute limits this is not shared between
/// instances: what it bounds (sockets, memory) is each instance's own.
pub struct Occupancy {
    /// Most held at once by one client; 0 = no cap.
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One hold of an [`Occupancy`], given back when dropped.
pub struct Held {
    occupancy: Option<Arc<Occupancy>>,
    client: String,
}

impl Occupancy {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// One more hold for `client` (an address: IPv6 by its /64), or `None` at the cap.
    pub fn hold(self: &Arc<Self>, client: &str) -> Option<Held> {
        if self.max == 0 {
            return Some(Held {
                occupancy: None,
                client: String::new(),
            });
        }
        let client = counted_as(client).into_owned();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(client.clone()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            occupancy: Some(Arc::clone(self)),
            client,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(occupancy) = &self.occupancy else {
            return;
        };
        let mut held = occupancy.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{counted_as, Occupancy};

    #[test]
    fn a_client_holds_up_to_the_cap_and_gets_back_what_it_drops() {
        let occupancy = Occupancy::new(2);
        let a = occupancy.hold("203.0.113.7").expect("first");
        let _b = occupancy.hold("203.0.113.7").expect("second");
        assert!(
            occupancy.hold("203.0.113.7").is_none(),
            "third is over the cap"
        );
        assert!(
            occupancy.hold("2001:db8::1").is_some(),
            "another client is not"
        );
        drop(a);
        assert!(
            occupancy.hold("203.0.113.7").is_some(),
            "a dropped hold is given back"
        );
        let uncapped = Occupancy::new(0);
        let all: Vec<_> = (0..100).filter_map(|_| uncapped.hold("x")).collect();
        assert_eq!(all.len(), 100);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_everything_else_as_it_is() {
        assert_eq!(counted_as("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(counted_as("2001:db8:1:2:ffff:0:0:9"), "2001:db8:1:2::/64");
        assert_ne!(counted_as("2001:db8:1:3::1"), "2001:db8:1:2::/64");
        assert_eq!(counted_as("203.0.113.7"), "203.0.113.7");
        assert_eq!(counted_as("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(counted_as("web"), "web");
        assert_eq!(counted_as("unknown"), "unknown");
    }
}
