//! The connection loop: accepts TCP connections and serves the application on each with hyper
//! (HTTP/1.1, a 30 s limit on reading a request's head, a configurable one on its body, and a
//! cap on the connections one address holds open).
//!
//! `axum::serve` does the same but fixes hyper's settings. One of them matters here: a
//! connection that is mid-response (an SSE stream, a long poll) keeps reading its socket to
//! notice the client leaving, and every such read reserves a fresh 8 KiB buffer while the
//! request's head still holds the first one. With half-close allowed, hyper does not read until
//! the response is done, so an idle waiter costs one read buffer instead of two; a client that
//! left is noticed at the next write instead (SSE sends a keep-alive comment every 15 s, and a
//! long poll answers within its wait).
//!
//! Shutting down stops accepting, tells long-lived responses to end ([`Draining`]) and waits for
//! in-flight requests, at most [`SHUTDOWN_GRACE`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::proxies::TrustedProxies;
use crate::ratelimit::Occupancy;

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Whether the server is shutting down; SSE streams and long polls end early when it is, so a
/// browser reconnects to another instance instead of holding this one open.
#[derive(Clone)]
pub struct Draining(watch::Receiver<bool>);

/// The other end of [`Draining`], held by whoever decides to shut down.
pub struct DrainSignal(watch::Sender<bool>);

pub fn draining() -> (DrainSignal, Draining) {
    let (tx, rx) = watch::channel(false);
    (DrainSignal(tx), Draining(rx))
}

impl DrainSignal {
    pub fn start(&self) {
        self.0.send_replace(true);
    }
}

impl Draining {
    /// Resolves once shutdown has begun (never, if the signal was dropped without it).
    pub async fn started(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What bounds one client's connections.
pub struct ConnectionPolicy {
    /// Open connections per address; a trusted proxy (which carries many clients) is exempt.
    pub per_address: Arc<Occupancy>,
    pub proxies: TrustedProxies,
    /// How long a request may take to send its body.
    pub body_read_timeout: Duration,
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the open connections to finish their in-flight requests.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    policy: ConnectionPolicy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let ip = peer.ip().to_canonical();
        let held = if policy.proxies.trusts(ip) {
            None
        } else {
            match policy.per_address.hold(&ip.to_string()) {
                Some(held) => Some(held),
                None => {
                    tokio::spawn(refuse(stream));
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let body_timeout = policy.body_read_timeout;
        let service = service.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let service = service.clone();
            async move {
                let mut req = prefetched(req, body_timeout).await;
                req.extensions_mut().insert(ConnectInfo(peer));
                service.oneshot(req).await
            }
        });
        let watcher = graceful.watcher();
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        tokio::spawn(async move {
            if let Err(e) = watcher.watch(conn).await {
                tracing::trace!(error = %e, %peer, "connection ended with an error");
            }
            drop(held);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
}

/// Answers a connection over its address's cap with a `429` and closes it, without reading
/// what it sent.
async fn refuse(mut stream: tokio::net::TcpStream) {
    const BODY: &str =
        r#"{"error":"rate_limited","message":"too many open connections from this address"}"#;
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// The largest body read in full before its handler runs.
const PREFETCH_LIMIT: u64 = 64 * 1024;

/// The request with its body under a deadline, and a small body (`Content-Length` of at most
/// [`PREFETCH_LIMIT`]) already read off the connection. A handler that takes no body (`scan`,
/// `cancel`) would otherwise answer while the last bytes of one are still in flight; hyper
/// then cannot reuse the connection and closes it right after the response, and the client's
/// next request on that keep-alive connection is lost. Read first, the body is always gone
/// from the socket before any response is written. A body that fails to arrive reaches the
/// handler as an unreadable body, which it answers in its own error format.
async fn prefetched(req: Request<Incoming>, timeout: Duration) -> Request {
    let (parts, body) = req.into_parts();
    let body = Deadline::new(body, timeout);
    let small = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= PREFETCH_LIMIT);
    if !small {
        return Request::from_parts(parts, Body::new(body));
    }
    let body = match axum::body::to_bytes(Body::new(body), PREFETCH_LIMIT as usize).await {
        Ok(bytes) => Body::from(bytes),
        Err(e) => Body::from_stream(futures::stream::iter([Err::<axum::body::Bytes, _>(e)])),
    };
    Request::from_parts(parts, body)
}

/// A request body that fails once its deadline has passed, so a client trickling an upload
/// cannot hold a connection and a handler for ever. The clock starts when the head has been
/// read; the timer is only made if the body is ever waited for.
struct Deadline {
    body: Incoming,
    until: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

/// The error a body past its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
struct BodyTimedOut;

impl Deadline {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            until: Instant::now() + timeout,
            timer: None,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let until = this.until;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Per-connection failures (the peer reset before we accepted) are not worth a pause; running
/// out of file descriptors is, or the loop would spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
