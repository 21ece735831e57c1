//! Building and running the application: state, start-up bootstrap, router and middleware.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::FutureExt as _;
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::error::AppError;
use crate::published::Published;
use crate::server::{DrainSignal, Draining};
use crate::store::{self, Db};
use crate::tickets::memory::MemoryStore;
use crate::tickets::TicketStore;
use crate::tokens::Keys;
use crate::wechat::{Simulator, WechatClient};

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub tickets: Arc<dyn TicketStore>,
    pub wechat: Arc<WechatClient>,
    pub keys: Arc<Keys>,
    /// The OpenID Connect provider's in-memory state: serialised discovery documents and
    /// client secrets already checked against their Argon2 hash.
    pub oidc: Arc<crate::oidc::OidcState>,
    pub secrets: SecretBox,
    pub clock: Clock,
    /// Apps' QR branding and the rendered-image cache.
    pub qr: Arc<crate::qr::QrImages>,
    /// The WeChat simulator, in `dev` mode only.
    pub simulator: Option<Simulator>,
    /// Set once shutdown begins.
    pub draining: Draining,
    /// Apps, read through a short-lived copy in memory.
    pub apps: Arc<store::apps::Cache>,
    /// Responses kept whole and answered before routing.
    pub published: Arc<Published>,
    /// Prometheus metrics of this process.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A built application: a bound listener and the router to serve on it.
pub struct App {
    listener: TcpListener,
    /// The `metrics_listen` listener, bound at build so a taken address stops start-up.
    metrics_listener: Option<TcpListener>,
    router: Front,
    state: AppState,
    drain: DrainSignal,
}

impl App {
    /// Connects storage, applies migrations, upserts the configured Mini Programs and apps,
    /// loads signing keys and binds the listener (port 0 picks a free port).
    pub async fn build(mut config: Config) -> anyhow::Result<App> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let port = listener.local_addr()?.port();
        if config.public_url.port() == Some(0) {
            let _ = config.public_url.set_port(Some(port));
        }
        let simulator = config.dev_mode.then(Simulator::new);
        if config.dev_mode {
            crate::dev::prepare_config(&mut config);
        }
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics_listen {addr}"))?,
            ),
            None => None,
        };
        let (drain, draining) = crate::server::draining();
        let state = build_state(config, simulator, draining).await?;
        let router = front(state.clone());
        Ok(App {
            listener,
            metrics_listener,
            router,
            state,
            drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tokio::spawn(housekeeping(self.state.clone()));
        if let Some(listener) = self.metrics_listener {
            let router = crate::ops::metrics::listener_router(self.state.clone());
            let draining = self.state.draining.clone();
            tokio::spawn(async move {
                let stopped = async move { draining.started().await };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }
        let drain = self.drain;
        let shutdown = async move {
            shutdown.await;
            drain.start();
        };
        crate::server::serve(self.listener, self.router, shutdown).await;
        Ok(())
    }

    /// Serves until SIGTERM or ctrl-c.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// How often expired rows are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired sessions, codes and tokens now and every [`PURGE_EVERY`] until shutdown.
/// Several instances may do this at once; the deletes do not conflict.
async fn housekeeping(state: AppState) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = state.draining.started() => return,
        }
        match store::purge_expired(&state.db, state.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "purged expired rows"),
            Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
        }
    }
}

/// Resolves on SIGTERM or ctrl-c. The SIGTERM handler is installed here, before serving, so a
/// SIGTERM that arrives right after start-up drains like any other.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down");
    }
}

/// The key that seals secrets: configured, or for the embedded default generated once and kept
/// beside the SQLite database.
pub fn secret_box(config: &Config) -> anyhow::Result<SecretBox> {
    if let Some(key) = &config.secret_key {
        return Ok(SecretBox::from_base64(key.expose())?);
    }
    let dir = config
        .data_dir()
        .filter(|_| config.database_url.starts_with("sqlite"))
        .context(
            "configuration key `secret_key` is required unless the database is a SQLite file",
        )?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("secret.key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k,
        Err(_) => {
            let k = SecretBox::generate_key();
            write_private(&path, &k)?;
            tracing::warn!(path = %path.display(), "generated a new secret_key; back it up with the database");
            k
        }
    };
    Ok(SecretBox::from_base64(&key)?)
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn connect_tickets(config: &Config) -> anyhow::Result<Arc<dyn TicketStore>> {
    Ok(if config.uses_redis() {
        Arc::new(
            crate::tickets::redis::RedisStore::connect(
                &config.redis_url,
                &config.redis_prefix,
                config.clock.clone(),
            )
            .await?,
        )
    } else {
        Arc::new(MemoryStore::new(config.clock.clone()))
    })
}

async fn build_state(
    config: Config,
    simulator: Option<Simulator>,
    draining: Draining,
) -> anyhow::Result<AppState> {
    // Logos are read and checked before anything else starts.
    let qr = Arc::new(crate::qr::QrImages::from_config(&config)?);
    let secrets = secret_box(&config)?;
    let db = Db::connect(&config.database_url, config.database_max_connections).await?;
    db.migrate().await.context("applying database migrations")?;
    let tickets = connect_tickets(&config).await?;
    let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics));
    let wechat = Arc::new(
        WechatClient::new(
            config.wechat.api_base.clone(),
            config.wechat_timeout(),
            Arc::clone(&tickets),
        )
        .with_metrics(Arc::clone(&metrics)),
    );
    let clock = config.clock.clone();
    let published = Arc::new(Published::new(clock.clone()));
    let keys = Arc::new(Keys::new(
        db.clone(),
        secrets.clone(),
        clock.clone(),
        Arc::clone(&published),
    ));
    let apps = Arc::new(store::apps::Cache::new(db.clone()));
    let state = AppState {
        config: Arc::new(config),
        db,
        tickets,
        wechat,
        keys,
        oidc: Arc::default(),
        secrets,
        clock,
        qr,
        simulator,
        draining,
        apps,
        published,
        metrics,
    };
    bootstrap(&state).await?;
    Ok(state)
}

/// Upserts the configured pools, Mini Programs and apps, and makes sure the default pool has a
/// signing key.
async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let db = &state.db;
    store::pools::ensure(db, "default", "Default", now).await?;
    for mp in &state.config.miniprograms {
        store::pools::ensure(db, &mp.pool, &mp.pool, now).await?;
        let record = store::miniprograms::MiniProgram {
            appid: mp.appid.clone(),
            pool: mp.pool.clone(),
            name: mp.name.clone(),
            secret_enc: state.secrets.seal(mp.secret.expose().as_bytes()),
        };
        store::miniprograms::upsert(db, &record, now).await?;
        if let Some(sim) = &state.simulator {
            sim.register_app(&mp.appid, mp.secret.expose());
        }
    }
    for app in &state.config.apps {
        let record = app_record(db, &state.secrets, app, now).await?;
        store::apps::upsert(db, &record, now).await?;
    }
    // Existing keys load now, so a wrong `secret_key` stops start-up. The very first start
    // generates the key (RSA: most of a second) in the background instead, so the instance
    // answers at once; a token request meanwhile waits for that same generation.
    let has_key = store::keys::list(db, "default")
        .await?
        .iter()
        .any(|k| k.active);
    if has_key {
        state
            .keys
            .for_pool("default")
            .await
            .context("loading signing keys")?;
    } else {
        let keys = Arc::clone(&state.keys);
        tokio::spawn(async move {
            if let Err(e) = keys.for_pool("default").await {
                tracing::error!(error = %format!("{e:#}"), "generating the first signing key");
            }
        });
    }
    Ok(())
}

/// The stored form of a configured app: its Mini Program must already be stored and serve the
/// app's pool (created here if new); a client secret is hashed with Argon2id, unless the stored
/// app has this very secret already (its keyed fingerprint matches), so a restart does not pay
/// tens of milliseconds per app again. Shared by start-up (which upserts the configured apps,
/// leaving every other app alone) and `scangate app create`.
pub async fn app_record(
    db: &Db,
    secrets: &SecretBox,
    app: &crate::config::AppConfig,
    now: i64,
) -> anyhow::Result<store::apps::App> {
    let mp = store::miniprograms::get(db, &app.miniprogram)
        .await?
        .with_context(|| {
            format!(
                "app `{}`: Mini Program {} is not configured",
                app.client_id, app.miniprogram
            )
        })?;
    if mp.pool != app.pool {
        anyhow::bail!(
            "app `{}` is in pool `{}` but its Mini Program serves pool `{}`",
            app.client_id,
            app.pool,
            mp.pool
        );
    }
    store::pools::ensure(db, &app.pool, &app.pool, now).await?;
    let fingerprint = app
        .client_secret
        .as_ref()
        .map(|s| secrets.fingerprint(s.expose().as_bytes()));
    let client_secret_hash = match &app.client_secret {
        None => None,
        Some(secret) => {
            let stored = store::apps::get(db, &app.client_id)
                .await?
                .filter(|stored| stored.client_secret_fingerprint == fingerprint)
                .and_then(|stored| stored.client_secret_hash);
            match stored {
                Some(hash) => Some(hash),
                None => {
                    let secret = secret.expose().to_owned();
                    Some(
                        tokio::task::spawn_blocking(move || crate::crypto::hash_password(&secret))
                            .await??,
                    )
                }
            }
        }
    };
    Ok(store::apps::App {
        client_id: app.client_id.clone(),
        pool: app.pool.clone(),
        name: app.name.clone(),
        logo: app.logo.clone(),
        client_secret_hash,
        client_secret_fingerprint: fingerprint,
        redirect_uris: app.redirect_uris.clone(),
        post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
        allowed_origins: app.allowed_origins.clone(),
        miniprogram: app.miniprogram.clone(),
        qr_ttl_secs: app.qr_ttl_secs as i64,
        require_binding: app.require_binding,
    })
}

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

/// The whole HTTP surface: published documents first, then the router.
pub fn front(state: AppState) -> Front {
    let ids = RequestIds::new();
    let published = Arc::clone(&state.published);
    let metrics = Arc::clone(&state.metrics);
    Front {
        router: router(state, ids.clone()),
        published,
        ids,
        metrics,
    }
}

fn router(state: AppState, ids: RequestIds) -> Router {
    let mut app = Router::new()
        .merge(crate::ops::router())
        .merge(crate::cors::apply(crate::pc::router(), &state))
        .merge(crate::cors::apply(crate::compat::router(), &state))
        .merge(crate::mp::router())
        .merge(crate::oidc::router(&state))
        .merge(crate::assets::router());
    if state.config.dev_mode {
        app = app.merge(crate::dev::router(&state));
    }
    let metrics = Arc::clone(&state.metrics);
    app.fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            (ids, metrics),
            envelope,
        ))
}

/// Answers a `GET` of a published document (see [`crate::published`]) itself, with the same
/// envelope as a routed response; passes everything else to the router.
#[derive(Clone)]
pub struct Front {
    router: Router,
    published: Arc<Published>,
    ids: RequestIds,
    metrics: Arc<crate::metrics::Metrics>,
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
                let id = self.ids.of(&req);
                let span = request_span(&req, req.uri().path(), &id);
                span.in_scope(|| tracing::debug!(status = 200, latency_us = 0, "response"));
                self.metrics
                    .http(req.uri().path(), 200, std::time::Duration::ZERO);
                finish(&mut res, id);
                return futures::future::Either::Left(std::future::ready(Ok(res)));
            }
        }
        futures::future::Either::Right(self.router.call(req))
    }
}

/// What every routed request and response passes through, in one step: a request id (the
/// caller's `x-request-id`, or a new one) on both, a tracing span naming the method, the
/// matched route and the id, a panic turned into a 500 error, and the default security headers.
async fn envelope(
    State((ids, metrics)): State<(RequestIds, Arc<crate::metrics::Metrics>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = ids.of(&req);
    req.headers_mut().insert(X_REQUEST_ID, id.clone());
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    let span = request_span(&req, path, &id);
    let route = metrics.enabled().then(|| path.to_owned());
    let mut res = async move {
        let start = Instant::now();
        let res = match AssertUnwindSafe(next.run(req)).catch_unwind().await {
            Ok(res) => res,
            Err(_) => AppError::Internal(anyhow::anyhow!("handler panicked")).into_response(),
        };
        let elapsed = start.elapsed();
        tracing::debug!(
            status = res.status().as_u16(),
            latency_us = elapsed.as_micros() as u64,
            "response"
        );
        if let Some(route) = route {
            metrics.http(&route, res.status().as_u16(), elapsed);
            if let Some(failure) = res.extensions().get::<crate::metrics::StorageFailure>() {
                metrics.storage_error(*failure);
            }
        }
        res
    }
    .instrument(span)
    .await;
    finish(&mut res, id);
    res
}

fn request_span(req: &Request, path: &str, id: &HeaderValue) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = req.method().as_str(),
        path,
        request_id = id.to_str().unwrap_or(""),
    )
}

/// The request id and the default headers, where the handler set none.
fn finish(res: &mut Response, id: HeaderValue) {
    let headers = res.headers_mut();
    headers.entry(X_REQUEST_ID).or_insert(id);
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

    /// The caller's request id, or a new one.
    fn of(&self, req: &Request) -> HeaderValue {
        match req.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => self.next(),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
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
            .layer(axum::middleware::from_fn_with_state(
                (
                    RequestIds::new(),
                    Arc::new(crate::metrics::Metrics::new(true)),
                ),
                envelope,
            ))
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
