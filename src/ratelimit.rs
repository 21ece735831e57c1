//! Per-client request limits: a fixed one-minute window per client address and kind of
//! request, counted in the ticket store so that a fleet of instances shares one count.
//!
//! Limits guard what costs us something: stored QR codes, calls to WeChat, and guesses at
//! exchange tickets. Reading a status is not limited; it is what a waiting page does.

use std::time::Duration;

use crate::app::AppState;
use crate::error::{AppError, AppResult};

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub enum Limit {
    QrCodes,
    Sessions,
    Exchanges,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::QrCodes => "qrcodes",
            Limit::Sessions => "sessions",
            Limit::Exchanges => "exchanges",
        }
    }

    fn per_minute(self, state: &AppState) -> u64 {
        let limits = &state.config.rate_limits;
        match self {
            Limit::QrCodes => limits.qrcodes_per_minute,
            Limit::Sessions => limits.sessions_per_minute,
            Limit::Exchanges => limits.exchanges_per_minute,
        }
    }
}

/// Counts one request of `limit` from `client` (an address); `rate_limited` once over.
pub async fn check(state: &AppState, limit: Limit, client: &str) -> AppResult<()> {
    let max = limit.per_minute(state);
    if max == 0 {
        return Ok(());
    }
    let key = format!("{}:{client}", limit.name());
    let count = state.tickets.hit(&key, WINDOW, state.clock.now()).await?;
    if count > max {
        return Err(AppError::RateLimited(format!(
            "too many {} requests from this address; try again in a minute",
            limit.name()
        )));
    }
    Ok(())
}
