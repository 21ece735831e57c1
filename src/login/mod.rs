//! The hosted login page: the face of the authorization endpoint (OIDC Core §3.1.2).
//!
//! `GET {issuer}/auth`, or `POST` with the same parameters as a form (OIDC Core §3.1.2.1),
//! validates the request (`oauth::request`). A live browser session
//! answers at once (single sign-on); otherwise the page shows a QR code bound to this browser.
//! On a phone's browser, which cannot scan its own screen, the page also offers "Open in
//! WeChat": WeChat's link to the Mini Program's confirm page at the same code, rendered into
//! the page (so it works without JavaScript); when WeChat makes none, the page says so and
//! shows the QR code alone.
//! When the phone confirms, the page's script moves on to `{issuer}/auth/continue`
//! (`finish`), which takes the exchange ticket (only this browser can), completes the login,
//! starts the browser session and redirects to `redirect_uri?code=…&state=…&iss=…`.
//!
//! The device grant's verification pages (`{issuer}/device`, `/q/d/{random}`) are `device`.
//!
//! The request travels from the page to the continue URL sealed with the server's secret
//! (AES-256-GCM), so it cannot be altered and needs no server-side storage.

mod device;
mod finish;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use crate::clock::Millis;
use crate::domain::Random;
use crate::error::AppError;
use crate::extract::{browser_cookie, Requester};
use crate::oauth::request::{bad_client, AuthRequest, Prompt, Validated};
use crate::oauth::session::SESSION_COOKIE;
use crate::oauth::{codes, session, Issuer};
use crate::openapi::ApiRouter;
use crate::pages::{page, see_other, Lang};
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::{self, apps::App, audit};
use crate::tickets::TICKET_TTL;

/// The routes of one issuer's login: mounted under each issuer's path.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(auth_get, auth_post))
        .routes(routes!(finish::continue_get))
        .merge(device::router())
}

/// What the login serves outside any issuer: a device request's link opened in a browser.
pub fn link_router() -> ApiRouter {
    device::link_router()
}

/// The hosted login page.
#[derive(Template)]
#[template(path = "login/page.html")]
pub struct LoginPage {
    pub lang: Lang,
    /// `ui_locales` chose the language: the page keeps it whatever the browser prefers.
    pub pinned: bool,
    pub app_name: String,
    pub app_logo: Option<String>,
    pub app_initial: String,
    pub random: String,
    pub image_url: String,
    pub events_url: String,
    pub status_url: String,
    pub continue_url: String,
    pub cancel_url: String,
    pub expires_in: i64,
    /// "Open in WeChat" for a browser on a phone: WeChat's link to the Mini Program's confirm
    /// page at this code.
    pub open_link: Option<String>,
    /// Open the link in a new tab (a URL Link is a web page of WeChat's, which would otherwise
    /// take this page's place; a URL Scheme hands over to WeChat and leaves the page be).
    pub open_link_new_tab: bool,
    /// On a phone, WeChat made no link: the page says so and shows the QR code alone.
    pub open_link_unavailable: bool,
}

/// What the page carries to the continue URL, sealed: the request and its QR code.
#[derive(Serialize, Deserialize)]
struct Pending {
    request: AuthRequest,
    random: Random,
    /// After this (ms), the continue URL is refused.
    expires_at: Millis,
}

/// The authorization endpoint (OIDC Core §3.1.2.1): the hosted login page.
#[utoipa::path(get, path = "/auth", tag = "oidc",
    params(("client_id" = String, Query, description = "The app's client id."),
        ("redirect_uri" = String, Query, description = "One of the app's registered callback URLs, exactly."),
        ("response_type" = String, Query, description = "`code`."),
        ("scope" = String, Query, description = "`openid`, and any of `profile`, `phone`, `unionid`, `offline_access`."),
        ("state" = Option<String>, Query, description = "Returned to the callback as sent."),
        ("nonce" = Option<String>, Query, description = "Put in the ID token as sent."),
        ("code_challenge" = Option<String>, Query, description = "PKCE (RFC 7636); required for public clients."),
        ("code_challenge_method" = Option<String>, Query, description = "`S256`."),
        ("prompt" = Option<String>, Query, description = "`none`, `login` or `consent`."),
        ("max_age" = Option<i64>, Query, description = "Seconds since the last sign-in beyond which the person scans again."),
        ("ui_locales" = Option<String>, Query, description = "`zh-CN` or `en`."),),
    responses((status = 200, description = "The login page with its QR code.", content_type = "text/html", body = String),
        (status = 302, description = "To the callback: `code`, `state` and `iss`, or an error (single sign-on, `prompt=none`)."),
        (status = 400, description = "A page saying what is wrong, when the callback itself cannot be trusted.", content_type = "text/html", body = String),))]
async fn auth_get(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    requester: Requester,
    RawQuery(query): RawQuery,
) -> Response {
    let accept = accept_language(&headers);
    let query = query.unwrap_or_default();
    let validated =
        match crate::oauth::request::validate(&state.apps, &issuer, &query, accept).await {
            Ok(v) => v,
            Err(refusal) => return refusal,
        };
    authorize(&state, &issuer, jar, &requester, validated).await
}

/// The same request as a form (OIDC Core §3.1.2.1: the endpoint MUST support GET and POST),
/// with the same checks, errors, page and single sign-on.
///
/// The session cookie is `SameSite=Lax`, so a browser leaves it out of a form posted from
/// another site. Such a POST, once valid, is sent on as the equivalent GET (`303`): a
/// top-level GET carries the cookie, so single sign-on and `prompt=none` answer as they
/// would have. A POST from ScanGate's own site, or one that brought the cookie, is answered
/// at once.
#[utoipa::path(post, path = "/auth", tag = "oidc",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "The parameters of `GET`."),
    responses(
        (status = 200, description = "The login page with its QR code.", content_type = "text/html", body = String),
        (status = 302, description = "To the callback: `code`, `state` and `iss`, or an error (single sign-on, `prompt=none`)."),
        (status = 400, description = "A page saying what is wrong, when the callback itself cannot be trusted.", content_type = "text/html", body = String),
        (status = 303, description = "A form from another site goes on as the same `GET`."),
    ))]
async fn auth_post(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    requester: Requester,
    body: Bytes,
) -> Response {
    let accept = accept_language(&headers);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        let (lang, _) = Lang::choose(None, accept);
        return bad_client(
            lang,
            "A POSTed authorization request must be a form (Content-Type: application/x-www-form-urlencoded).".into(),
            "以 POST 发送的登录请求必须是表单（Content-Type: application/x-www-form-urlencoded）。".into(),
        );
    }
    let Ok(form) = std::str::from_utf8(&body) else {
        let (lang, _) = Lang::choose(None, accept);
        return bad_client(
            lang,
            "The form is not valid UTF-8.".into(),
            "表单不是有效的 UTF-8 文本。".into(),
        );
    };
    let validated = match crate::oauth::request::validate(&state.apps, &issuer, form, accept).await
    {
        Ok(v) => v,
        Err(refusal) => return refusal,
    };
    let same_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "same-origin" || v == "same-site");
    if jar.get(SESSION_COOKIE).is_none() && !same_site {
        // Re-encoded from the parsed form, so the Location is plain ASCII whatever was posted.
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(url::form_urlencoded::parse(form.as_bytes()))
            .finish();
        return see_other(&format!("{}/auth?{query}", issuer.path()));
    }
    authorize(&state, &issuer, jar, &requester, validated).await
}

fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// A valid request, by either method: single sign-on, `prompt=none`, or the page.
async fn authorize(
    state: &AppState,
    issuer: &Issuer,
    jar: CookieJar,
    requester: &Requester,
    validated: Validated,
) -> Response {
    let Validated {
        request,
        app,
        prompt,
        max_age,
    } = validated;
    match try_session(state, issuer, &jar, &request, &prompt, max_age).await {
        Ok(Some(res)) => return res,
        Ok(None) => {}
        Err(e) => return e.into_page(request.lang),
    }
    if prompt.none {
        return request.error(
            issuer,
            "login_required",
            "there is no ScanGate session in this browser; the user must scan",
        );
    }
    let lang = request.lang;
    match show_page(state, issuer, jar, requester, &app, request).await {
        Ok(res) => res,
        Err(e) => e.into_page(lang),
    }
}

/// Answers from the browser session when it may (single sign-on): not with `prompt=login`,
/// not when older than `max_age`.
async fn try_session(
    state: &AppState,
    issuer: &Issuer,
    jar: &CookieJar,
    request: &AuthRequest,
    prompt: &Prompt,
    max_age: Option<i64>,
) -> Result<Option<Response>, AppError> {
    if prompt.login {
        return Ok(None);
    }
    let now = state.clock.now();
    let Some(session) = session::current(&state.db, now, issuer, jar).await? else {
        return Ok(None);
    };
    if max_age.is_some_and(|m| now - session.auth_time > m) {
        return Ok(None);
    }
    let user = store::users::get(&state.db.pool, &session.user_id).await?;
    let Some(user) = crate::accounts::active(user) else {
        return Ok(None);
    };
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&issuer.pool),
            actor: Some(&user.id),
            action: "login.sso",
            subject: Some(&request.client_id),
            ip: None,
            detail: None,
        },
        now,
    )
    .await?;
    let (code, _) = codes::issue(&state.db, now, request, &user.id, session.auth_time).await?;
    Ok(Some(codes::redirect(issuer, request, &code)))
}

async fn show_page(
    state: &AppState,
    issuer: &Issuer,
    jar: CookieJar,
    requester: &Requester,
    app: &App,
    request: AuthRequest,
) -> Result<Response, AppError> {
    state.limiter.check(Limit::QrCodes, &requester.ip).await?;
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
        match_step: app.match_number,
    };
    let (qr, _) = crate::tickets::create_bound(state.tickets.as_ref(), app, new, now).await?;
    state
        .funnel
        .step(&qr.client_id, crate::funnel::Step::Created)
        .await;
    let pending = Pending {
        random: qr.random.clone(),
        expires_at: qr.expires_at + TICKET_TTL.as_millis() as i64,
        request,
    };
    let sealed = state
        .secrets
        .seal(&serde_json::to_vec(&pending).map_err(|e| AppError::Internal(e.into()))?);
    let open_link = open_in_wechat(state, &qr, requester, now).await;
    let base = issuer.path();
    let qr_path = format!("/api/v1/qrcodes/{}", qr.random);
    let continue_url = format!("{base}/auth/continue?req={sealed}");
    let page_view = LoginPage {
        lang: pending.request.lang,
        pinned: pending.request.pinned,
        app_name: app.name.clone(),
        app_logo: app.logo.clone().filter(|l| is_image_url(l)),
        app_initial: app
            .name
            .chars()
            .next()
            .unwrap_or('S')
            .to_uppercase()
            .collect(),
        random: qr.random.to_string(),
        image_url: format!("{qr_path}/image.svg"),
        events_url: format!("{qr_path}/events"),
        status_url: qr_path,
        cancel_url: format!("{continue_url}&cancel=1"),
        continue_url,
        expires_in: ((qr.expires_at - now) / 1000).max(0),
        open_link_new_tab: open_link
            .as_ref()
            .and_then(Option::as_ref)
            .is_some_and(|l| l.kind == crate::config::LinkKind::UrlLink),
        open_link_unavailable: matches!(open_link, Some(None)),
        open_link: open_link.flatten().map(|l| l.url),
    };
    Ok((jar, page(&page_view)).into_response())
}

/// "Open in WeChat" for a page on a phone: `None` elsewhere; on a phone, the code's link, or
/// `Some(None)` when WeChat made none. The page waits for WeChat at most one call's timeout,
/// then shows the QR code alone.
async fn open_in_wechat(
    state: &AppState,
    qr: &crate::tickets::QrCode,
    requester: &Requester,
    now: Millis,
) -> Option<Option<crate::wechat::OpenLink>> {
    if !state.links.enabled() || !crate::requesters::is_phone(&requester.user_agent) {
        return None;
    }
    let asked = state
        .links
        .for_code(qr.appid.as_str(), qr.random.as_str(), qr.expires_at, now);
    match tokio::time::timeout(state.config.wechat_timeout(), asked).await {
        Ok(Ok(link)) => Some(Some(link)),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "no Open in WeChat link on the hosted page");
            Some(None)
        }
        Err(_) => {
            tracing::info!("WeChat took too long to make an Open in WeChat link");
            Some(None)
        }
    }
}

/// Logos are shown only from web or same-origin URLs.
fn is_image_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://") || s.starts_with('/')
}
