//! The PC side's native API (`/api/v1/qrcodes`): create a QR code bound to its browser, follow
//! its status by poll, long-poll or Server-Sent Events, fetch its image, hand a phone's browser
//! the link that opens the Mini Program at it ("Open in WeChat"), and exchange the one-time
//! ticket for the user and tokens.

mod compat;
mod exchange;
mod image;
mod open_link;
mod status;

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::cors::Cors;
use crate::domain::ClientId;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::extract::{browser_cookie, Json, Requester};
use crate::openapi::ApiRouter;
use crate::pages::{page, ScanPage};
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::tickets::QrCode;

pub use exchange::{issue_tokens, user_json, IssuedTokens};
pub use status::{status_view, StatusView};

/// The native and the Authing-compatible routes, with cross-origin grants for the origins
/// apps allow. The landing page of `/q/{random}` is mounted by the router, which knows the
/// mode.
pub fn router(cors: &Cors) -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(qrcode_post))
        .routes(routes!(exchange::exchange_post))
        .routes(routes!(status::qrcode_get))
        .routes(routes!(status::events_get))
        .routes(routes!(image::image_png_get))
        .routes(routes!(image::image_svg_get))
        .routes(routes!(open_link::open_link_get))
        .routes(routes!(image::logo_get))
        .merge(compat::router())
        .layer(cors.clone())
}

#[derive(Deserialize, ToSchema)]
pub struct CreateQrRequest {
    /// Kept as sent: an id that is not a well-formed client id names no app (`not_found`).
    pub app_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreateQrResponse {
    /// The code's id: 32 random characters.
    pub random: String,
    pub expires_at: String,
    pub expires_in: i64,
    pub image_url: String,
    pub scan_url: String,
    pub status_url: String,
    pub events_url: String,
    pub bind_token: String,
    /// Where this browser gets the link that opens the Mini Program at the code ("Open in
    /// WeChat"): present when the request's user agent is a phone's and links are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_link_url: Option<String>,
}

/// A freshly created code and the secret that binds it to its creator.
pub struct Created {
    pub qr: QrCode,
    pub bind_token: String,
    pub jar: CookieJar,
}

/// Creates a pending QR code for `client_id`, bound to the caller's browser cookie (set here if
/// absent) and to a fresh bind token. `compat`: for the Authing-compatible API, whose pages
/// cannot show a match number, so the match step is off.
pub async fn create_qrcode(
    state: &AppState,
    client_id: &str,
    jar: CookieJar,
    requester: &Requester,
    compat: bool,
) -> AppResult<Created> {
    state.limiter.check(Limit::QrCodes, &requester.ip).await?;
    let unknown = || {
        let shown: String = client_id.chars().take(64).collect();
        AppError::NotFound(format!("unknown app_id `{shown}`"))
    };
    let client_id = ClientId::parse(client_id).map_err(|_| unknown())?;
    let app = state.apps.get(&client_id).await?.ok_or_else(unknown)?;
    let (jar, browser) = browser_cookie(jar, state.secure(), &state.secrets);
    let now = state.clock.now();
    let random = crate::domain::Random::generate();
    state
        .limiter
        .hold_pending(&requester.ip, random.as_str(), now + app.qr_ttl_secs * 1000)
        .await?;
    let new = crate::tickets::NewCode {
        random,
        browser: &browser,
        requester,
        match_step: app.match_number && !compat,
    };
    let (qr, bind_token) = crate::tickets::create(state.tickets.as_ref(), &app, new, now).await?;
    state
        .funnel
        .step(&qr.client_id, crate::funnel::Step::Created)
        .await;
    Ok(Created {
        qr,
        bind_token,
        jar,
    })
}

/// Creates a QR code for an app, bound to this browser (a cookie) and to the returned
/// `bind_token`; either proves the creator when the ticket is read and exchanged.
#[utoipa::path(post, path = "/api/v1/qrcodes", tag = "pc",
    request_body = CreateQrRequest,
    responses(
        (status = 201, description = "The new code.", body = CreateQrResponse),
        (status = 400, description = "The body is not a JSON object with `app_id`.", body = ErrorBody),
        (status = 404, description = "No app has this `app_id` (`not_found`).", body = ErrorBody),
        (status = 429, description = "Too many codes from this address (`rate_limited`).", body = ErrorBody),
    ))]
async fn qrcode_post(
    State(state): State<AppState>,
    jar: CookieJar,
    requester: Requester,
    Json(req): Json<CreateQrRequest>,
) -> AppResult<Response> {
    let created = create_qrcode(&state, &req.app_id, jar, &requester, false).await?;
    let qr = &created.qr;
    let base = state.config.url(&format!("/api/v1/qrcodes/{}", qr.random));
    let body = CreateQrResponse {
        random: qr.random.to_string(),
        expires_at: rfc3339(qr.expires_at),
        expires_in: (qr.expires_at - state.clock.now()).div_euclid(1000),
        image_url: format!("{base}/image.png"),
        scan_url: scan_url(&state, &qr.random),
        status_url: base.clone(),
        events_url: format!("{base}/events"),
        bind_token: created.bind_token,
        open_link_url: (state.links.enabled()
            && crate::requesters::is_phone(&requester.user_agent))
        .then(|| format!("{base}/open_link")),
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

/// `GET /q/{random}`: what a QR code's URL shows when opened by something other than WeChat.
pub async fn scan_landing_get() -> Response {
    page(&ScanPage { phone_url: None })
}

/// Long-poll ceiling in seconds.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
