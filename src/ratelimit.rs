//! Per-client request limits: a fixed one-minute window per client address and kind of
//! request, counted in the ticket store so that a fleet of instances shares one count.
//!
//! Limits guard what costs us something: stored QR codes and avatars, calls to WeChat, Argon2
//! checks of client secrets, and guesses at exchange tickets and secrets. Reading a status is
//! not limited; it is what a waiting page does. On the phone's side, per Mini Program user:
//! approvals, and scans of codes that are not pending (guessing, replayed photos). Besides
//! these rates, one cap: how many QR codes an address may have pending at once.

use std::sync::Arc;
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
    /// Confirmed logins, per Mini Program user.
    Approvals,
    /// Scans of codes that are not pending, per Mini Program user.
    StaleScans,
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
            Limit::Approvals => "approvals",
            Limit::StaleScans => "stale_scans",
        }
    }
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
            Limit::Approvals => self.limits.approvals_per_minute,
            Limit::StaleScans => self.limits.stale_scans_per_minute,
        }
    }

    /// Counts one request of `limit` from `client` (an address, or for a per-client limit a
    /// client id); `rate_limited` once over.
    pub async fn check(&self, limit: Limit, client: &str) -> AppResult<()> {
        let max = self.per_minute(limit);
        if max == 0 {
            return Ok(());
        }
        let key = format!("{}:{client}", limit.name());
        let count = self.counts.hit(&key, WINDOW, self.clock.now()).await?;
        if count > max {
            let whose = match limit {
                Limit::ClientAuthFailuresPerClient => "for this client",
                Limit::AvatarUploads | Limit::Approvals | Limit::StaleScans => "by this user",
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
        let key = format!("pending_qrcodes:{ip}");
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
        let key = format!("pending_qrcodes:{ip}");
        Ok(self.counts.release(&key, random).await?)
    }
}
