//! Per-client request limits: a fixed one-minute window per client address and kind of
//! request, counted in the ticket store so that a fleet of instances shares one count.
//!
//! Limits guard what costs us something: stored QR codes and avatars, calls to WeChat, Argon2
//! checks of client secrets, and guesses at exchange tickets and secrets. Reading a status is not limited; it is what a waiting page does.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
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
                Limit::AvatarUploads => "by this user",
                _ => "from this address",
            };
            return Err(AppError::RateLimited(format!(
                "too many {} requests {whose}; try again in a minute",
                limit.name()
            )));
        }
        Ok(())
    }
}
