//! Following a QR code: status, long-poll and Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::MAX_WAIT;
use crate::clock::rfc3339;
use crate::clock::{Clock, Millis};
use crate::domain::Random;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::extract::{Path, Query, Requester};
use crate::ratelimit::Held;
use crate::server::Draining;
use crate::state::AppState;
use crate::tickets::{Binding, QrCode, QrStatus, Rendered, Subscription, TicketStore};

#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ScannedBy {
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

/// What a PC page may see of a code.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct StatusView {
    #[schema(value_type = String)]
    pub random: Random,
    pub status: QrStatus,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned_by: Option<ScannedBy>,
    /// Revealed only to the creator (or to anyone when the app turned binding off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// While scanned, the number the person taps on the phone (the app's match step); shown
    /// to the creator only, as the ticket is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_number: Option<u8>,
    /// Why a cancelled code was cancelled: `declined`, `wrong_match_number`, `page`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

pub fn status_view(qr: &QrCode, now: i64, binding: &Binding) -> StatusView {
    view_as(qr, Seen::of(qr, now, binding))
}

/// What a view of a code depends on besides the code itself: the status it has at the moment,
/// and whether the caller is the browser it is bound to. A view is made from these two and the
/// code alone, so a view made once is right for every caller who sees the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    status: QrStatus,
    bound: bool,
}

impl Seen {
    pub fn of(qr: &QrCode, now: Millis, binding: &Binding) -> Seen {
        Seen {
            status: qr.status_at(now),
            bound: !qr.require_binding
                || binding.matches(&qr.bind_hash, qr.browser_hash.as_deref()),
        }
    }

    /// The variant of an answer of `kind` (one number per endpoint) made from what is seen,
    /// for [`Rendered`].
    pub fn variant(self, kind: u8) -> u16 {
        (u16::from(kind) << 8) | ((self.status as u16) << 1) | u16::from(self.bound)
    }
}

/// The view of `qr` for a caller who sees `seen`.
pub fn view_as(qr: &QrCode, seen: Seen) -> StatusView {
    let Seen { status, bound } = seen;
    StatusView {
        random: qr.random.clone(),
        status,
        expires_at: rfc3339(qr.expires_at),
        scanned_by: qr
            .scanner
            .as_ref()
            .filter(|_| matches!(status, QrStatus::Scanned | QrStatus::Confirmed))
            .map(|s| ScannedBy {
                nickname: s.nickname.clone(),
                avatar_url: s.avatar_url.clone(),
            }),
        ticket: qr
            .ticket
            .clone()
            .filter(|_| bound && status == QrStatus::Confirmed),
        match_number: qr
            .match_number
            .filter(|_| bound && status == QrStatus::Scanned),
        cancel_reason: qr
            .cancel_reason
            .clone()
            .filter(|_| status == QrStatus::Cancelled),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Long-poll: hold the request up to this many seconds for a change.
    wait: Option<u64>,
    /// The status the caller already knows; a different current status answers at once.
    #[param(value_type = Option<QrStatus>)]
    status: Option<String>,
}

/// The code's status; with `wait`, a long-poll that answers as soon as the status differs
/// from `status` (or the current one), or when `wait` seconds have passed.
#[utoipa::path(get, path = "/api/v1/qrcodes/{random}", tag = "pc",
    params(("random" = String, Path, description = "The code's id."), StatusQuery),
    responses(
        (status = 200, description = "The status; `ticket` and `match_number` only for the creator.", body = StatusView),
        (status = 400, description = "`wait` over 30 or an unknown `status`.", body = ErrorBody),
        (status = 404, description = "No such code.", body = ErrorBody),
    ))]
pub async fn qrcode_get(
    State(state): State<AppState>,
    Path(random): Path<Random>,
    Query(q): Query<StatusQuery>,
    binding: Binding,
) -> AppResult<Response> {
    let wait = match q.wait {
        Some(w) if w > MAX_WAIT.as_secs() => {
            return Err(AppError::invalid("wait must be at most 30 seconds"))
        }
        Some(w) => Duration::from_secs(w),
        None => Duration::ZERO,
    };
    let known = match q.status.as_deref() {
        None => None,
        Some(s) => Some(QrStatus::parse(s).ok_or_else(|| AppError::invalid("unknown status"))?),
    };
    // Subscribe before reading so no change can slip between the read and the wait.
    let mut sub = (!wait.is_zero()).then(|| state.tickets.subscribe(random.as_str()));
    let _waiting = sub
        .is_some()
        .then(|| state.metrics.waiting(crate::metrics::WaitKind::LongPoll));
    let mut qr = crate::tickets::load_shared(state.tickets.as_ref(), &random).await?;
    let mut now = state.clock.now();
    if let Some(sub) = sub.as_mut() {
        let current = qr.status_at(now);
        let seen = known.unwrap_or(current);
        if current == seen && !current.is_final() {
            let until = tokio::time::Instant::now() + wait.min(until_expiry(now, &qr));
            loop {
                let draining = tokio::select! {
                    _ = sub.changed() => false,
                    _ = tokio::time::sleep_until(until) => false,
                    _ = state.draining.started() => true,
                };
                qr = crate::tickets::load_shared(state.tickets.as_ref(), &random).await?;
                now = state.clock.now();
                if draining || qr.status_at(now) != seen || tokio::time::Instant::now() >= until {
                    break;
                }
            }
        }
    }
    Ok(status_answer(&state.rendered, &qr, now, &binding))
}

/// Which endpoint an answer kept in [`Rendered`] is for.
pub const NATIVE_ANSWER: u8 = 0;

/// The status answer: the view as JSON, made once for each code and what its callers see, and
/// then answered with the bytes already made until the code changes.
fn status_answer(
    rendered: &Rendered,
    qr: &Arc<QrCode>,
    now: Millis,
    binding: &Binding,
) -> Response {
    let seen = Seen::of(qr, now, binding);
    let body = rendered.get_or_make(qr, seen.variant(NATIVE_ANSWER), || {
        json_bytes(&view_as(qr, seen))
    });
    json_response(body)
}

/// A value as JSON bytes.
pub fn json_bytes(value: &impl Serialize) -> Bytes {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_default()
}

/// Room for every header a JSON answer ends up with: its own two, the CORS `Vary`, the request
/// id and the envelope's defaults (HSTS included), so that its map is allocated once instead of
/// growing twice on the way out.
const JSON_ANSWER_HEADERS: usize = 10;

/// JSON bytes as an uncacheable answer, with the headers `axum::Json` and the endpoint set.
pub fn json_response(body: Bytes) -> Response {
    let mut headers = axum::http::HeaderMap::with_capacity(JSON_ANSWER_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut res = Response::new(axum::body::Body::from(body));
    *res.headers_mut() = headers;
    res
}

/// Time left until the code expires by itself (no notification marks that moment).
fn until_expiry(now: Millis, qr: &QrCode) -> Duration {
    Duration::from_millis((qr.expires_at - now).max(0) as u64)
}

/// Server-Sent Events: one `status` event (the status view as JSON) now and at each change;
/// the stream closes after a final state.
#[utoipa::path(get, path = "/api/v1/qrcodes/{random}/events", tag = "pc",
    params(("random" = String, Path, description = "The code's id.")),
    responses(
        (status = 200, description = "An event stream of `status` events, each a status view.", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such code.", body = ErrorBody),
        (status = 429, description = "Too many open streams from this address.", body = ErrorBody),
    ))]
pub async fn events_get(
    State(state): State<AppState>,
    Path(random): Path<Random>,
    binding: Binding,
    requester: Requester,
) -> AppResult<Response> {
    let held = state.event_streams.hold(&requester.ip).ok_or_else(|| {
        AppError::RateLimited("too many open event streams from this address".into())
    })?;
    let sub = state.tickets.subscribe(random.as_str());
    // Fail fast with a proper status if the code does not exist.
    crate::tickets::load(state.tickets.as_ref(), &random).await?;
    let stream = status_events(state, binding, sub, held);
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res.headers_mut()
        .insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    Ok(res)
}

/// What one event stream keeps while it waits; ten thousand of these may be open at once, so
/// it holds only what it needs, and no code record across a wait.
struct Follow {
    tickets: Arc<dyn TicketStore>,
    clock: Clock,
    draining: Draining,
    binding: Binding,
    sub: Subscription,
    last: Option<QrStatus>,
    done: bool,
    /// Counts this stream among the open ones while it lives.
    _open: crate::metrics::Waiting,
    /// Counts it against its client's cap while it lives.
    _held: Held,
}

/// What one look at the code calls for: an event to send, or a wait of at most this long.
enum Next {
    Send(Event),
    Wait(Duration),
}

impl Follow {
    async fn look(&mut self) -> Next {
        let qr = match self.tickets.get(self.sub.random()).await {
            Ok(Some(qr)) => qr,
            Ok(None) => {
                self.done = true;
                return Next::Send(
                    Event::default()
                        .event("error")
                        .data(r#"{"error":"not_found","message":"no such QR code"}"#),
                );
            }
            Err(_) => {
                self.done = true;
                return Next::Send(Event::default().event("error").data(
                    r#"{"error":"unavailable","message":"service temporarily unavailable"}"#,
                ));
            }
        };
        let now = self.clock.now();
        let view = status_view(&qr, now, &self.binding);
        if self.last == Some(view.status) {
            return Next::Wait(until_expiry(now, &qr));
        }
        self.last = Some(view.status);
        self.done = view.status.is_final();
        let data = serde_json::to_string(&view).unwrap_or_default();
        Next::Send(Event::default().event("status").data(data))
    }
}

/// The stream of status views: the current one first, then one per change.
pub fn status_events(
    state: AppState,
    binding: Binding,
    sub: Subscription,
    held: Held,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let open = state.metrics.waiting(crate::metrics::WaitKind::Sse);
    let follow = Follow {
        _open: open,
        _held: held,
        tickets: state.tickets,
        clock: state.clock,
        draining: state.draining,
        binding,
        sub,
        last: None,
        done: false,
    };
    futures::stream::unfold(follow, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            let expiry = match f.look().await {
                Next::Send(event) => return Some((Ok(event), f)),
                Next::Wait(expiry) => expiry,
            };
            tokio::select! {
                _ = f.sub.changed() => {}
                _ = tokio::time::sleep(expiry + Duration::from_millis(5)) => {}
                // The stream ends; the browser's EventSource reconnects, to another instance.
                _ = f.draining.started() => return None,
            }
        }
    })
}
