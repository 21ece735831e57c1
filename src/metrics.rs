//! Prometheus metrics: what an operator graphs and alerts on, kept per process in one registry
//! (no global recorder, so tests that run several instances in one process stay apart).
//!
//! Recorded: HTTP requests by matched route and status with a latency histogram; QR codes by
//! app and outcome (created, scanned, confirmed, cancelled, exchanged — an expiry is no event
//! and is not counted); open event streams and long polls; WeChat calls by endpoint and errcode
//! with latency; token grants by type; database and Redis failures; build info. Every label
//! takes its values from a small fixed set (routes are the router's patterns, never raw paths),
//! so the series stay few. With `metrics = false` nothing is recorded and `/metrics` is a 404.
//! The HTTP endpoint is `ops::metrics`.

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The media type of the OpenMetrics text format, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QrLabels {
    app: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaitLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WechatLabels {
    endpoint: String,
    errcode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.25 ms to about 8 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// What a QR code went through, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrOutcome {
    Created,
    Scanned,
    Confirmed,
    Cancelled,
    Exchanged,
}

impl QrOutcome {
    fn as_str(self) -> &'static str {
        match self {
            QrOutcome::Created => "created",
            QrOutcome::Scanned => "scanned",
            QrOutcome::Confirmed => "confirmed",
            QrOutcome::Cancelled => "cancelled",
            QrOutcome::Exchanged => "exchanged",
        }
    }
}

/// What became of one ask for an "Open in WeChat" link, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// WeChat made a link (one call per code).
    Issued,
    /// The link already made for the code was handed out again.
    Reused,
    /// WeChat refused (or had refused, or links are paused): the page shows the QR code alone.
    Refused,
    /// WeChat was busy or unreachable.
    Failed,
}

impl LinkOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LinkOutcome::Issued => "issued",
            LinkOutcome::Reused => "reused",
            LinkOutcome::Refused => "refused",
            LinkOutcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// One route's series: its latency histogram and its counter for each status seen. Handles
/// share their values with the families' series, which are what is scraped.
struct RouteSeries {
    seconds: Histogram,
    statuses: Vec<(u16, Counter)>,
}

/// Set on an error response by `AppError` when the database or Redis failed, for the envelope
/// to count.
#[derive(Clone, Copy, Debug)]
pub struct StorageFailure(pub &'static str);

pub struct Metrics {
    enabled: bool,
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histograms<RouteLabels>,
    /// The series of each route already answered, so that a request adds to them without
    /// building and hashing two label sets (the route's `String` twice) in the families.
    http_routes: std::sync::RwLock<HashMap<String, RouteSeries>>,
    qr_codes: Family<QrLabels, Counter>,
    waiting: Family<WaitLabels, Gauge>,
    wechat_calls: Family<WechatLabels, Counter>,
    wechat_seconds: Histograms<EndpointLabels>,
    token_grants: Family<GrantLabels, Counter>,
    storage_errors: Family<BackendLabels, Counter>,
    scanner_events: Family<EventLabels, Counter>,
    device_events: Family<EventLabels, Counter>,
    open_links: Family<OutcomeLabels, Counter>,
}

/// What the phone's protections did, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScannerEvent {
    /// The phone was warned (country or datacenter) before confirming.
    MismatchWarned,
    /// A wrong match number cancelled a code.
    WrongMatchNumber,
    /// WeChat's phone number quota was exhausted; the login went on without the phone.
    PhoneQuotaExhausted,
    /// A person reported a login as not theirs.
    LoginReported,
}

impl ScannerEvent {
    fn as_str(self) -> &'static str {
        match self {
            ScannerEvent::MismatchWarned => "mismatch_warned",
            ScannerEvent::WrongMatchNumber => "wrong_match_number",
            ScannerEvent::PhoneQuotaExhausted => "phone_quota_exhausted",
            ScannerEvent::LoginReported => "login_reported",
        }
    }
}

/// What happened to a device authorization request (RFC 8628), as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A device asked for a code.
    Authorized,
    /// The person approved it on the phone.
    Approved,
    /// The person declined it on the phone.
    Denied,
    /// Wrong user codes locked it.
    Locked,
    /// The device got its tokens.
    Redeemed,
    /// The device polled too fast and was told to slow down.
    SlowDown,
}

impl DeviceEvent {
    fn as_str(self) -> &'static str {
        match self {
            DeviceEvent::Authorized => "authorized",
            DeviceEvent::Approved => "approved",
            DeviceEvent::Denied => "denied",
            DeviceEvent::Locked => "locked",
            DeviceEvent::Redeemed => "redeemed",
            DeviceEvent::SlowDown => "slow_down",
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(enabled: bool) -> Self {
        let mut registry = Registry::with_prefix("scangate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route and status",
            http_requests.clone(),
        );
        let http_seconds = Histograms::<RouteLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: until its head), by matched route",
            http_seconds.clone(),
        );
        let qr_codes = Family::<QrLabels, Counter>::default();
        registry.register(
            "qr_codes",
            "QR codes by app (client_id) and outcome",
            qr_codes.clone(),
        );
        let waiting = Family::<WaitLabels, Gauge>::default();
        registry.register(
            "waiting_browsers",
            "Open event streams (kind=sse) and long polls (kind=long_poll)",
            waiting.clone(),
        );
        let wechat_calls = Family::<WechatLabels, Counter>::default();
        registry.register(
            "wechat_calls",
            "Calls to WeChat's API by endpoint and errcode (0: success, transport: no answer)",
            wechat_calls.clone(),
        );
        let wechat_seconds = Histograms::<EndpointLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "wechat_call_duration_seconds",
            "Time of one call to WeChat's API, by endpoint",
            wechat_seconds.clone(),
        );
        let token_grants = Family::<GrantLabels, Counter>::default();
        registry.register(
            "token_grants",
            "Tokens issued by the token endpoint, by grant type",
            token_grants.clone(),
        );
        let storage_errors = Family::<BackendLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Requests that failed because the database or Redis did",
            storage_errors.clone(),
        );
        let scanner_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "scanner_events",
            "What the phone's protections did: mismatch_warned, wrong_match_number, \
             phone_quota_exhausted, login_reported",
            scanner_events.clone(),
        );
        let device_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "device_authorizations",
            "Device authorization requests (RFC 8628) by event: authorized, approved, denied, \
             locked, redeemed, slow_down",
            device_events.clone(),
        );
        let open_links = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "open_links",
            "Asks for an Open in WeChat link, by outcome: issued (WeChat made one), reused, \
             refused, failed",
            open_links.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("name", env!("CARGO_PKG_NAME")),
            ]),
        );
        Self {
            enabled,
            registry,
            http_requests,
            http_seconds,
            http_routes: std::sync::RwLock::default(),
            qr_codes,
            waiting,
            wechat_calls,
            wechat_seconds,
            token_grants,
            storage_errors,
            scanner_events,
            device_events,
            open_links,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// One answered request; `route` is the matched pattern (`/api/v1/qrcodes/{random}`).
    pub fn http(&self, route: &str, status: u16, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let seconds = elapsed.as_secs_f64();
        {
            let routes = self.http_routes.read().unwrap_or_else(|p| p.into_inner());
            if let Some(series) = routes.get(route) {
                if let Some((_, counter)) = series.statuses.iter().find(|(s, _)| *s == status) {
                    counter.inc();
                    series.seconds.observe(seconds);
                    return;
                }
            }
        }
        // A route or status not seen before: its series are made once, under the write lock.
        let mut routes = self.http_routes.write().unwrap_or_else(|p| p.into_inner());
        let series = routes
            .entry(route.to_owned())
            .or_insert_with(|| RouteSeries {
                seconds: self
                    .http_seconds
                    .get_or_create(&RouteLabels {
                        route: route.to_owned(),
                    })
                    .clone(),
                statuses: Vec::new(),
            });
        let counter = match series.statuses.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.clone(),
            None => {
                let counter = self
                    .http_requests
                    .get_or_create(&HttpLabels {
                        route: route.to_owned(),
                        status,
                    })
                    .clone();
                series.statuses.push((status, counter.clone()));
                counter
            }
        };
        counter.inc();
        series.seconds.observe(seconds);
    }

    pub fn qr(&self, app: &str, outcome: QrOutcome) {
        if !self.enabled {
            return;
        }
        self.qr_codes
            .get_or_create(&QrLabels {
                app: app.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts an open event stream or long poll until the returned guard is dropped.
    pub fn waiting(&self, kind: WaitKind) -> Waiting {
        if !self.enabled {
            return Waiting(None);
        }
        let gauge = self
            .waiting
            .get_or_create(&WaitLabels {
                kind: kind.as_str(),
            })
            .clone();
        gauge.inc();
        Waiting(Some(gauge))
    }

    /// One call to WeChat; `errcode` is `None` when no answer came (timeout, connection).
    pub fn wechat(&self, endpoint: &str, errcode: Option<i64>, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let errcode = errcode.map_or_else(|| "transport".to_owned(), |c| c.to_string());
        self.wechat_calls
            .get_or_create(&WechatLabels {
                endpoint: endpoint.to_owned(),
                errcode,
            })
            .inc();
        self.wechat_seconds
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A grant the token endpoint issued: `authorization_code`, `refresh_token` or `device_code`.
    pub fn token_grant(&self, grant_type: &'static str) {
        if self.enabled {
            self.token_grants
                .get_or_create(&GrantLabels { grant_type })
                .inc();
        }
    }

    /// One thing the phone's protections did.
    pub fn scanner_event(&self, event: ScannerEvent) {
        if self.enabled {
            self.scanner_events
                .get_or_create(&EventLabels {
                    event: event.as_str(),
                })
                .inc();
        }
    }

    /// One event of a device authorization request.
    pub fn device_event(&self, event: DeviceEvent) {
        if self.enabled {
            self.device_events
                .get_or_create(&EventLabels {
                    event: event.as_str(),
                })
                .inc();
        }
    }

    /// One ask for an "Open in WeChat" link.
    pub fn open_link(&self, outcome: LinkOutcome) {
        if self.enabled {
            self.open_links
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.as_str(),
                })
                .inc();
        }
    }

    pub fn storage_error(&self, failure: StorageFailure) {
        if self.enabled {
            self.storage_errors
                .get_or_create(&BackendLabels { backend: failure.0 })
                .inc();
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    Sse,
    LongPoll,
}

impl WaitKind {
    fn as_str(self) -> &'static str {
        match self {
            WaitKind::Sse => "sse",
            WaitKind::LongPoll => "long_poll",
        }
    }
}

/// Holds one count of `scangate_waiting_browsers` while it lives.
pub struct Waiting(Option<Gauge>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_registry_records_nothing() {
        let m = Metrics::new(false);
        m.http("/healthz", 200, Duration::from_millis(1));
        m.qr("web", QrOutcome::Created);
        let _open = m.waiting(WaitKind::Sse);
        assert!(!m.encode().contains("route=\"/healthz\""));
    }

    #[test]
    fn a_waiter_counts_while_it_waits() {
        let m = Metrics::new(true);
        let open = m.waiting(WaitKind::Sse);
        assert!(m
            .encode()
            .contains("scangate_waiting_browsers{kind=\"sse\"} 1"));
        drop(open);
        assert!(m
            .encode()
            .contains("scangate_waiting_browsers{kind=\"sse\"} 0"));
    }
}
