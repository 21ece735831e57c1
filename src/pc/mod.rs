//! The PC side's native API (`/api/v1/qrcodes`): create a QR code bound to its browser, follow
//! its status by poll, long-poll or Server-Sent Events, fetch its image, and exchange the
//! one-time ticket for the user and tokens.

mod exchange;
mod image;
mod status;

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::clock::rfc3339;
use crate::crypto::{random_token, sha256_hex};
use crate::domain::Random;
use crate::error::{AppError, AppResult};
use crate::extract::{Json, Requester};
use crate::tickets::{Binding, QrCode, QrStatus};

pub use exchange::{issue_tokens, redeem, user_json, IssuedTokens};
pub use status::{status_view, StatusView};

/// The browser cookie a QR code is bound to.
pub const BROWSER_COOKIE: &str = "scangate_browser";
/// The header a server-side caller proves binding with.
pub const BIND_HEADER: &str = "x-scangate-bind";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/qrcodes", post(qrcode_post))
        .route("/api/v1/qrcodes/exchange", post(exchange::exchange_post))
        .route("/api/v1/qrcodes/{random}", get(status::qrcode_get))
        .route("/api/v1/qrcodes/{random}/events", get(status::events_get))
        .route(
            "/api/v1/qrcodes/{random}/image.png",
            get(image::image_png_get),
        )
        .route(
            "/api/v1/qrcodes/{random}/image.svg",
            get(image::image_svg_get),
        )
        .route("/q/{random}", get(scan_landing_get))
}

#[derive(Deserialize)]
pub struct CreateQrRequest {
    pub app_id: String,
}

#[derive(Serialize)]
pub struct CreateQrResponse {
    pub random: String,
    pub expires_at: String,
    pub expires_in: i64,
    pub image_url: String,
    pub scan_url: String,
    pub status_url: String,
    pub events_url: String,
    pub bind_token: String,
}

/// A freshly created code and the secret that binds it to its creator.
pub struct Created {
    pub qr: QrCode,
    pub bind_token: String,
    pub jar: CookieJar,
}

/// Creates a pending QR code for `client_id`, bound to the caller's browser cookie (set here if
/// absent) and to a fresh bind token.
pub async fn create_qrcode(
    state: &AppState,
    client_id: &str,
    jar: CookieJar,
    requester: &Requester,
) -> AppResult<Created> {
    crate::ratelimit::check(state, crate::ratelimit::Limit::QrCodes, &requester.ip).await?;
    let app = state.apps.get(client_id).await?.ok_or_else(|| {
        AppError::NotFound(format!("unknown app_id `{}`", truncate(client_id, 64)))
    })?;
    let (jar, browser) = browser_cookie(state, jar);
    let bind_token = random_token(24);
    let now = state.clock.now();
    let qr = QrCode {
        random: Random::generate().as_str().to_owned(),
        pool_id: app.pool.clone(),
        client_id: app.client_id.clone(),
        appid: app.miniprogram.clone(),
        status: QrStatus::Pending,
        created_at: now,
        expires_at: now + app.qr_ttl_secs * 1000,
        bind_hash: sha256_hex(bind_token.as_bytes()),
        browser_hash: Some(sha256_hex(browser.as_bytes())),
        require_binding: app.require_binding,
        requester_ip: requester.ip.clone(),
        requester_user_agent: requester.user_agent.clone(),
        scanner: None,
        ticket: None,
    };
    state.tickets.insert(&qr).await?;
    state
        .metrics
        .qr(&qr.client_id, crate::metrics::QrOutcome::Created);
    Ok(Created {
        qr,
        bind_token,
        jar,
    })
}

/// `POST /api/v1/qrcodes`
async fn qrcode_post(
    State(state): State<AppState>,
    jar: CookieJar,
    requester: Requester,
    Json(req): Json<CreateQrRequest>,
) -> AppResult<Response> {
    let created = create_qrcode(&state, &req.app_id, jar, &requester).await?;
    let qr = &created.qr;
    let base = state.config.url(&format!("/api/v1/qrcodes/{}", qr.random));
    let body = CreateQrResponse {
        random: qr.random.clone(),
        expires_at: rfc3339(qr.expires_at),
        expires_in: (qr.expires_at - state.clock.now()).div_euclid(1000),
        image_url: format!("{base}/image.png"),
        scan_url: scan_url(&state, &qr.random),
        status_url: base.clone(),
        events_url: format!("{base}/events"),
        bind_token: created.bind_token,
    };
    Ok((
        StatusCode::CREATED,
        created.jar,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Extension(crate::cors::ForApp(qr.client_id.clone())),
        axum::Json(body),
    )
        .into_response())
}

/// What the QR code encodes: a URL WeChat's "scan an ordinary QR code to open the Mini Program"
/// rule matches by prefix (`{public_url}/q/`), delivered to the Mini Program as `options.q`.
pub fn scan_url(state: &AppState, random: &str) -> String {
    state.config.url(&format!("/q/{random}"))
}

/// The browser id cookie: reused when present, else minted. Returns the jar to send back and
/// the id.
fn browser_cookie(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar
        .get(BROWSER_COOKIE)
        .filter(|c| c.value().len() >= 22 && c.value().len() <= 64)
    {
        let v = c.value().to_owned();
        return (jar, v);
    }
    let id = random_token(32);
    let secure = state.config.public_url.scheme() == "https";
    let cookie = Cookie::build((BROWSER_COOKIE, id.clone()))
        .path("/")
        .http_only(true)
        .secure(secure)
        // Cross-site XHR with credentials (an embedding site) needs None, which browsers
        // accept only with Secure; on plain http (development) Lax still covers same-site
        // origins such as two localhost ports.
        .same_site(if secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .max_age(time::Duration::days(365))
        .build();
    (jar.add(cookie), id)
}

/// The caller's proof of binding: its bind header and its browser cookie, hashed.
pub fn binding(headers: &HeaderMap, jar: &CookieJar) -> Binding {
    Binding {
        bind_hash: headers
            .get(BIND_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|t| sha256_hex(t.as_bytes())),
        browser_hash: jar
            .get(BROWSER_COOKIE)
            .map(|c| sha256_hex(c.value().as_bytes())),
    }
}

/// The same, read straight from the request's headers (no cookie jar, no header map copy):
/// the extractor of the status endpoints, which every waiting page calls.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Binding {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let browser = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == BROWSER_COOKIE)
            .map(|(_, value)| value.trim_matches('"'));
        Ok(Binding {
            bind_hash: headers
                .get(BIND_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|t| sha256_hex(t.as_bytes())),
            browser_hash: browser.map(|c| sha256_hex(c.as_bytes())),
        })
    }
}

/// Parses a path random; anything malformed cannot name a code.
pub fn parse_random(random: &str) -> AppResult<Random> {
    Random::parse(random).map_err(|_| AppError::NotFound("no such QR code".into()))
}

/// Loads a code or fails with `not_found`.
pub async fn load(state: &AppState, random: &str) -> AppResult<QrCode> {
    let random = parse_random(random)?;
    state
        .tickets
        .get(random.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound("no such QR code".into()))
}

/// `GET /q/{random}`: what a QR code's URL shows when scanned by something other than WeChat.
/// The page behind a QR code's `scan_url`, for a phone that opened it with something other
/// than WeChat.
#[derive(askama::Template)]
#[template(path = "scan.html")]
struct ScanPage {
    /// The phone simulator for this code, in `dev` mode only.
    phone_url: Option<String>,
}

async fn scan_landing_get(State(state): State<AppState>, Path(random): Path<String>) -> Response {
    let phone_url = state.config.dev_mode.then(|| {
        let random = parse_random(&random)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        format!("/_dev/phone?random={random}")
    });
    crate::oidc::page(&ScanPage { phone_url })
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Long-poll ceiling in seconds.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
