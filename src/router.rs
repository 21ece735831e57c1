//! The HTTP surface: every feature's routes under one middleware, and the published documents
//! answered before routing.
//!
//! [`envelope`] is the one middleware every routed request passes through: a request id, a
//! tracing span, a panic turned into a 500 error, and the default security headers.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::FutureExt as _;
use tracing::Instrument as _;

use crate::error::AppError;
use crate::metrics::Metrics;
use crate::openapi::ApiRouter;
use crate::published::Published;
use crate::state::AppState;
use crate::wechat::Simulator;

/// The security policy of responses that set none: no script, no framing.
const DEFAULT_CSP: &str = "default-src 'none'; img-src 'self' data:; style-src 'self'; \
                           frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Headers every response carries unless its handler set them. Pages set their own policy;
/// everything else (JSON, images, plain pages) gets one that runs no script from anywhere and
/// cannot be framed.
const DEFAULT_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CONTENT_SECURITY_POLICY, DEFAULT_CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
];

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface: published documents first, then the router. `dev`: the WeChat
/// simulator of `scangate dev`, whose `/_dev/` pages are mounted only then.
pub fn front(state: AppState, dev: Option<Simulator>) -> Front {
    let envelope = Envelope {
        ids: RequestIds::new(),
        hsts: state.secure(),
        metrics: Arc::clone(&state.metrics),
    };
    let published = Arc::clone(&state.published);
    Front {
        router: router(state, dev, envelope.clone()),
        published,
        envelope,
    }
}

fn router(state: AppState, dev: Option<Simulator>, envelope_state: Envelope) -> Router {
    let cors = state.cors();
    let issuer = || crate::oidc::router(&cors).merge(crate::login::router());
    let (api, doc) = ApiRouter::new()
        .merge(crate::ops::router())
        .merge(crate::pc::router(&cors))
        .merge(crate::mp::router())
        .merge(crate::api::admin::router())
        .nest("/oidc", issuer())
        .nest("/pools/{slug}/oidc", issuer())
        .merge(crate::login::link_router())
        .split_for_parts();
    let doc = crate::openapi::finish(doc, state.config.public_url.as_str());
    let console = crate::console::router(&state, dev.is_some());
    let mut app = api
        .route(crate::openapi::PATH, crate::openapi::route(&doc))
        .merge(console)
        .merge(crate::assets::router());
    // What a QR code's URL shows a phone that is not WeChat: in dev mode, a way to the
    // phone simulator.
    app = match dev {
        Some(simulator) => app
            .route("/q/{random}", get(crate::dev::scan_landing_get))
            .merge(crate::dev::router(simulator)),
        None => app.route("/q/{random}", get(crate::pc::scan_landing_get)),
    };
    app.fallback(not_found)
        .with_state(state)
        .layer(envelope_state)
}

/// Answers a `GET` of a published document (see [`crate::published`]) itself, with the same
/// envelope as a routed response; passes everything else to the router.
#[derive(Clone)]
pub struct Front {
    router: Router,
    published: Arc<Published>,
    envelope: Envelope,
}

/// What the envelope needs: where request ids come from, whether responses carry
/// `Strict-Transport-Security` (the public URL is https), and the metrics it records.
#[derive(Clone)]
struct Envelope {
    ids: RequestIds,
    hsts: bool,
    metrics: Arc<Metrics>,
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<
        std::future::Ready<Result<Response, std::convert::Infallible>>,
        axum::routing::future::RouteFuture<std::convert::Infallible>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() == axum::http::Method::GET {
            if let Some(mut res) = self.published.response(req.uri().path()) {
                let id = self.envelope.ids.of(&req);
                let span = request_span(&req, req.uri().path(), &id);
                span.in_scope(|| tracing::debug!(status = 200, latency_us = 0, "response"));
                self.envelope
                    .metrics
                    .http(req.uri().path(), 200, std::time::Duration::ZERO);
                finish(&mut res, id, self.envelope.hsts);
                return futures::future::Either::Left(std::future::ready(Ok(res)));
            }
        }
        futures::future::Either::Right(self.router.call(req))
    }
}

/// What every routed request and response passes through, in one step: a request id (the
/// caller's `x-request-id`, or a new one) on both, a tracing span naming the method, the
/// matched route and the id, a panic turned into a 500 error, and the default security headers.
/// A tower layer rather than a function middleware: one boxed future per request and no
/// per-request copy of the inner service.
impl<S> tower::Layer<S> for Envelope {
    type Service = Enveloped<S>;

    fn layer(&self, inner: S) -> Enveloped<S> {
        Enveloped {
            env: self.clone(),
            inner,
        }
    }
}

/// A route inside the [`Envelope`].
#[derive(Clone)]
struct Enveloped<S> {
    env: Envelope,
    inner: S,
}

impl<S> tower::Service<Request> for Enveloped<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let env = &self.env;
        let id = env.ids.of(&req);
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let path = route.as_ref().map_or("-", MatchedPath::as_str);
        let span = request_span(&req, path, &id);
        let metrics = env.metrics.enabled().then(|| Arc::clone(&env.metrics));
        let hsts = env.hsts;
        // The handler's future is made inside the span too, and a panic there caught as well.
        let called =
            span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))));
        let answered = async move {
            let start = Instant::now();
            let res = match called {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            let res = match res {
                Ok(Ok(res)) => res,
                Ok(Err(never)) => match never {},
                Err(_) => AppError::Internal(anyhow::anyhow!("handler panicked")).into_response(),
            };
            let elapsed = start.elapsed();
            tracing::debug!(
                status = res.status().as_u16(),
                latency_us = elapsed.as_micros() as u64,
                "response"
            );
            if let Some(metrics) = metrics {
                let route = route.as_ref().map_or("-", MatchedPath::as_str);
                metrics.http(route, res.status().as_u16(), elapsed);
                if let Some(failure) = res.extensions().get::<crate::metrics::StorageFailure>() {
                    metrics.storage_error(*failure);
                }
            }
            res
        }
        .instrument(span);
        Box::pin(async move {
            let mut res = answered.await;
            finish(&mut res, id, hsts);
            Ok(res)
        })
    }
}

/// The span of one request. Its fields are written as they are (`Display`): the formatter then
/// copies them instead of escaping them character by character, the largest single cost of a
/// status poll before (about 6,000 instructions of its 47,000).
fn request_span(req: &Request, path: &str, id: &HeaderValue) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method().as_str(),
        path = %path,
        request_id = %id.to_str().unwrap_or(""),
    )
}

/// The request id and the default headers, where the handler set none; on https, HSTS
/// (a year, this host only: sibling hosts may not all serve https).
fn finish(res: &mut Response, id: HeaderValue, hsts: bool) {
    let headers = res.headers_mut();
    // Room for what follows at once, rather than growing the map on the way.
    headers.reserve(DEFAULT_HEADERS.len() + 2);
    headers.entry(X_REQUEST_ID).or_insert(id);
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    for (name, value) in DEFAULT_HEADERS {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
}

/// Request ids: a random prefix per process and a counter. Unique across a fleet like a UUID,
/// without a system call for fresh randomness on every request.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: crate::crypto::random_token(9).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The caller's request id when it is a plain token (what load balancers send), or a new
    /// one: the id is logged as it is, so it must not carry spaces, quotes or `=`.
    fn of(&self, req: &Request) -> HeaderValue {
        match req.headers().get(X_REQUEST_ID) {
            Some(id) if is_plain_id(id.as_bytes()) => id.clone(),
            _ => self.next(),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Handed over as it is, not copied again.
        HeaderValue::from_maybe_shared(axum::body::Bytes::from(format!("{}-{n:x}", self.prefix)))
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// 1 to 64 ASCII letters, digits or `-._:`.
fn is_plain_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

async fn not_found() -> Response {
    AppError::NotFound("no such resource".into()).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    fn enveloped() -> Router {
        Router::new()
            .route("/boom", get(boom))
            .route(
                "/page",
                get(|| async {
                    (
                        [(header::CONTENT_SECURITY_POLICY, "default-src 'self'")],
                        "a page",
                    )
                }),
            )
            .layer(Envelope {
                ids: RequestIds::new(),
                hsts: false,
                metrics: Arc::new(Metrics::new(true)),
            })
    }

    async fn get_path(path: &str) -> Response {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        enveloped().oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_error_with_the_envelope() {
        let res = get_path("/boom").await;
        assert_eq!(res.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().contains_key("x-request-id"));
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "internal_error");
    }

    #[tokio::test]
    async fn a_caller_request_id_is_kept_only_when_plain() {
        for (sent, kept) in [
            ("lb-1f2e.3:a_b", true),
            ("abc path=/evil", false),
            ("\"quoted\"", false),
            ("", false),
        ] {
            let req = Request::builder()
                .uri("/page")
                .header("x-request-id", sent)
                .body(Body::empty())
                .unwrap();
            let res = enveloped().oneshot(req).await.unwrap();
            let id = res.headers()["x-request-id"].to_str().unwrap();
            assert_eq!(id == sent, kept, "{sent:?} -> {id}");
            assert!(is_plain_id(id.as_bytes()), "{id}");
        }
        assert!(!is_plain_id("x".repeat(65).as_bytes()));
    }

    #[tokio::test]
    async fn a_handler_policy_is_kept_and_the_rest_filled_in() {
        let res = get_path("/page").await;
        let h = res.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'self'");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            h[header::REFERRER_POLICY],
            "strict-origin-when-cross-origin"
        );
        assert!(h.contains_key("x-request-id"));
    }
}
