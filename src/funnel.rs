//! The scan funnel of each app: how many QR codes were created, scanned, confirmed,
//! cancelled and exchanged per hour, how long people took from scan to confirm, and how many
//! phone numbers were looked up (WeChat charges for each).
//!
//! Each step of a login adds one to an hourly tally in the ticket store (Redis when there is
//! one, so every instance counts into the same figures); a status poll counts nothing. Tallies
//! are kept eight days. The same steps feed the Prometheus counters (`metrics`), so the two
//! never disagree about what a step is.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, Millis};
use crate::error::AppResult;
use crate::metrics::{Metrics, QrOutcome};
use crate::tickets::TicketStore;

/// One hour, the finest bucket.
const HOUR_MS: i64 = 3_600_000;
/// How long tallies are kept: a week of days, and the day in progress.
const KEEP: Duration = Duration::from_secs(8 * 24 * 3600);
/// The longest a code lives: a bucket is closed (its `expired` known) this long after it ends.
const LONGEST_QR_MS: i64 = 3600 * 1000;
/// Upper bounds (seconds) of the scan-to-confirm buckets; the last catches everything longer.
const TIMING_BOUNDS: [u64; 9] = [2, 5, 10, 20, 30, 60, 120, 300, u64::MAX];

/// A step of a QR login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Created,
    Scanned,
    Confirmed,
    Cancelled,
    Exchanged,
    /// A phone number obtained from WeChat at confirm.
    PhoneLookup,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::Created,
        Step::Scanned,
        Step::Confirmed,
        Step::Cancelled,
        Step::Exchanged,
        Step::PhoneLookup,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Step::Created => "created",
            Step::Scanned => "scanned",
            Step::Confirmed => "confirmed",
            Step::Cancelled => "cancelled",
            Step::Exchanged => "exchanged",
            Step::PhoneLookup => "phone_lookups",
        }
    }

    fn outcome(self) -> Option<QrOutcome> {
        Some(match self {
            Step::Created => QrOutcome::Created,
            Step::Scanned => QrOutcome::Scanned,
            Step::Confirmed => QrOutcome::Confirmed,
            Step::Cancelled => QrOutcome::Cancelled,
            Step::Exchanged => QrOutcome::Exchanged,
            Step::PhoneLookup => return None,
        })
    }
}

/// How a report groups hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    fn hours(self) -> i64 {
        match self {
            Bucket::Hour => 1,
            Bucket::Day => 24,
        }
    }
}

/// One bucket of a report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Milliseconds: where the bucket starts.
    pub start: Millis,
    pub created: u64,
    pub scanned: u64,
    pub confirmed: u64,
    pub cancelled: u64,
    pub exchanged: u64,
    /// Codes that ended unconfirmed and uncancelled; `None` until every code of the bucket
    /// has had its whole life.
    pub expired: Option<u64>,
    pub phone_lookups: u64,
    /// Median seconds from scan to confirm, as the upper bound of the timing bucket it falls
    /// in (2, 5, 10, 20, 30, 60, 120 or 300; `None` beyond or without confirmations).
    pub median_scan_to_confirm_secs: Option<u64>,
}

/// Counts the steps and reads them back.
pub struct Funnel {
    store: Arc<dyn TicketStore>,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl Funnel {
    pub fn new(store: Arc<dyn TicketStore>, clock: Clock, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            clock,
            metrics,
        }
    }

    /// Counts one step of `client_id`. A failure to count is logged, never the login's.
    pub async fn step(&self, client_id: &str, step: Step) {
        if let Some(outcome) = step.outcome() {
            self.metrics.qr(client_id, outcome);
        }
        let hour = self.clock.now().div_euclid(HOUR_MS);
        let key = format!("funnel:{client_id}:{}", step.as_str());
        if let Err(e) = self.store.tally(&key, hour, KEEP).await {
            tracing::warn!(error = %e, "counting a funnel step failed");
        }
    }

    /// Counts a scan and notes when it happened, for the scan-to-confirm time.
    pub async fn scanned(&self, client_id: &str, random: &str) {
        self.step(client_id, Step::Scanned).await;
        let now = self.clock.now().to_string();
        let ttl = Duration::from_millis(LONGEST_QR_MS as u64);
        if let Err(e) = self.store.cache_set(&scan_key(random), &now, ttl).await {
            tracing::warn!(error = %e, "noting a scan time failed");
        }
    }

    /// Counts a confirmation and how long it came after the scan.
    pub async fn confirmed(&self, client_id: &str, random: &str) {
        self.step(client_id, Step::Confirmed).await;
        let scanned = match self.store.cache_get(&scan_key(random)).await {
            Ok(v) => v.and_then(|v| v.parse::<Millis>().ok()),
            Err(e) => {
                tracing::warn!(error = %e, "reading a scan time failed");
                None
            }
        };
        let Some(scanned) = scanned else { return };
        let secs = (self.clock.now() - scanned).max(0) as u64 / 1000;
        let slot = TIMING_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(TIMING_BOUNDS.len() - 1);
        let hour = self.clock.now().div_euclid(HOUR_MS);
        let key = format!("funnel:{client_id}:t{slot}");
        if let Err(e) = self.store.tally(&key, hour, KEEP).await {
            tracing::warn!(error = %e, "counting a confirm time failed");
        }
    }

    /// The funnel of `client_id` from `since` to `until` (milliseconds), bucket by bucket.
    pub async fn report(
        &self,
        client_id: &str,
        since: Millis,
        until: Millis,
        bucket: Bucket,
    ) -> AppResult<Vec<Row>> {
        let per = bucket.hours();
        let first = since.div_euclid(HOUR_MS * per) * per;
        let last = (until - 1).div_euclid(HOUR_MS * per) * per;
        let hours: Vec<i64> = (first..last + per).collect();
        let read = |key: String| {
            let hours = hours.clone();
            async move { self.store.tallies(&key, &hours).await }
        };
        let mut steps = Vec::new();
        for step in Step::ALL {
            steps.push(read(format!("funnel:{client_id}:{}", step.as_str())).await?);
        }
        let mut timings = Vec::new();
        for slot in 0..TIMING_BOUNDS.len() {
            timings.push(read(format!("funnel:{client_id}:t{slot}")).await?);
        }
        let now = self.clock.now();
        let rows = hours
            .chunks(per as usize)
            .enumerate()
            .map(|(i, chunk)| {
                let span = i * per as usize..i * per as usize + chunk.len();
                let sum = |counts: &Vec<u64>| counts[span.clone()].iter().sum::<u64>();
                let start = chunk[0] * HOUR_MS;
                let end = start + per * HOUR_MS;
                let (created, confirmed, cancelled) =
                    (sum(&steps[0]), sum(&steps[2]), sum(&steps[3]));
                let closed = end + LONGEST_QR_MS <= now;
                let histogram: Vec<u64> = timings.iter().map(sum).collect();
                Row {
                    start,
                    created,
                    scanned: sum(&steps[1]),
                    confirmed,
                    cancelled,
                    exchanged: sum(&steps[4]),
                    expired: closed.then(|| created.saturating_sub(confirmed + cancelled)),
                    phone_lookups: sum(&steps[5]),
                    median_scan_to_confirm_secs: median_bound(&histogram),
                }
            })
            .collect();
        Ok(rows)
    }
}

fn scan_key(random: &str) -> String {
    format!("funnel:scanned:{random}")
}

/// The upper bound of the bucket holding the median, if it is a finite one.
fn median_bound(histogram: &[u64]) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let mut seen = 0;
    for (slot, n) in histogram.iter().enumerate() {
        seen += n;
        if seen * 2 >= total {
            return Some(TIMING_BOUNDS[slot]).filter(|b| *b != u64::MAX);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_bound_of_the_middle_bucket() {
        assert_eq!(median_bound(&[0; 9]), None);
        assert_eq!(median_bound(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), Some(2));
        assert_eq!(median_bound(&[1, 1, 3, 0, 0, 0, 0, 0, 0]), Some(10));
        assert_eq!(median_bound(&[0, 0, 0, 0, 0, 0, 0, 0, 4]), None);
    }
}
