//! Reading an app's scan funnel.

use super::{Actor, Admin};
use crate::clock::Millis;
use crate::error::{AppError, AppResult};
use crate::funnel::{Bucket, Row};

/// The longest range a report covers: what the tallies keep.
const MAX_RANGE_MS: i64 = 8 * 24 * 3_600_000;

impl Admin {
    /// The funnel of an app in the actor's scope, by hour or by day; by default the last 24
    /// hours (hourly) or the last 7 days (daily).
    pub async fn funnel(
        &self,
        actor: &Actor,
        client_id: &str,
        bucket: Bucket,
        since: Option<Millis>,
        until: Option<Millis>,
    ) -> AppResult<Vec<Row>> {
        self.app(actor, client_id).await?;
        let until = until.unwrap_or_else(|| self.clock.now());
        let default_span = match bucket {
            Bucket::Hour => 24 * 3_600_000,
            Bucket::Day => 7 * 24 * 3_600_000,
        };
        let since = since.unwrap_or(until - default_span);
        if since >= until {
            return Err(AppError::invalid("since must be before until"));
        }
        if until - since > MAX_RANGE_MS {
            return Err(AppError::invalid(
                "a funnel covers at most 8 days: the tallies are kept that long",
            ));
        }
        self.funnel.report(client_id, since, until, bucket).await
    }
}
