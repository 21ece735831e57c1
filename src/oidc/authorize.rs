//! The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1.1, RFC 7636 §4.3) and the hosted
//! login page.
//!
//! `GET {issuer}/auth` validates the request in the order the specifications demand: first the
//! client and its redirect URI — until both are known good, errors show a page and never
//! redirect (RFC 6749 §4.1.2.1) — then everything else, whose errors go back to the redirect
//! URI. A live browser session answers at once (single sign-on); otherwise the page shows a
//! QR code bound to this browser. When the phone confirms, the page's script moves on to
//! `{issuer}/auth/continue`, which takes the exchange ticket (only this browser can), starts
//! the browser session and redirects to `redirect_uri?code=…&state=…&iss=…`.
//!
//! The request travels from the page to the continue URL sealed with the server's secret
//! (AES-256-GCM), so it cannot be altered and needs no server-side storage.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::session;
use super::{grant_scope, has_scope, parse_params, with_query, Issuer, CODE_TTL_SECS};
use crate::app::AppState;
use crate::crypto::{random_token, sha256_hex};
use crate::error::AppError;
use crate::extract::{Query, Requester};
use crate::store::{self, apps::App, audit, grants::Grant};
use crate::tickets::{QrStatus, Take, TICKET_TTL};

/// Pages of the hosted login load only our own script and style; images may come from
/// anywhere because logos and avatars are URLs; nobody may frame them.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data: http: https:; connect-src 'self'; \
                       frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The language of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[serde(rename = "zh")]
    Zh,
    #[serde(rename = "en")]
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    fn of_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag == "zh" || tag.starts_with("zh-") {
            Some(Lang::Zh)
        } else if tag == "en" || tag.starts_with("en-") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// From `ui_locales` (the relying party's explicit wish, OIDC Core §3.1.2.1) if it names
    /// a language we have, else from `Accept-Language`, else Chinese. The flag says whether
    /// the choice was explicit, in which case the page keeps it.
    pub fn choose(ui_locales: Option<&str>, accept_language: Option<&str>) -> (Lang, bool) {
        if let Some(lang) = ui_locales.and_then(|l| l.split(' ').find_map(Lang::of_tag)) {
            return (lang, true);
        }
        let mut ranked: Vec<(f32, Lang)> = accept_language
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let lang = Lang::of_tag(it.next()?)?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((q, lang))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        (ranked.first().map_or(Lang::Zh, |(_, l)| *l), false)
    }
}

/// A message page: an error the browser cannot be redirected with, or a notice.
#[derive(Template)]
#[template(path = "oidc/message.html")]
pub struct MessagePage {
    pub lang: Lang,
    pub error: bool,
    pub title_zh: String,
    pub title_en: String,
    pub text_zh: String,
    pub text_en: String,
    /// The machine-readable reason, shown small.
    pub code: Option<String>,
    pub link: Option<Link>,
}

pub struct Link {
    pub href: String,
    pub zh: &'static str,
    pub en: &'static str,
}

impl MessagePage {
    pub fn error(lang: Lang, code: &str, zh: (&str, &str), en: (&str, &str)) -> Self {
        Self {
            lang,
            error: true,
            title_zh: zh.0.into(),
            title_en: en.0.into(),
            text_zh: zh.1.into(),
            text_en: en.1.into(),
            code: Some(code.into()),
            link: None,
        }
    }

    pub fn with_link(mut self, href: String, zh: &'static str, en: &'static str) -> Self {
        self.link = Some(Link { href, zh, en });
        self
    }

    pub fn respond(&self, status: StatusCode) -> Response {
        let mut res = page(self);
        *res.status_mut() = status;
        res
    }
}

/// The hosted login page.
#[derive(Template)]
#[template(path = "oidc/login.html")]
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
}

/// Renders a page with the hosted login's headers: CSP, no caching, no referrer.
pub fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            [
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// A validated authorization request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthRequest {
    pub pool: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The granted scope (known scopes only).
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub lang: Lang,
    pub pinned: bool,
}

impl AuthRequest {
    /// A redirect back to the app with an error (RFC 6749 §4.1.2.1).
    pub fn error(&self, issuer: &Issuer, error: &str, description: &str) -> Response {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = &self.state {
            params.push(("state", s));
        }
        params.push(("iss", &issuer.url));
        see_other(&with_query(&self.redirect_uri, &params))
    }

    /// The authorization URL that starts this request again (a new QR code).
    fn restart_url(&self, issuer: &Issuer) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope);
        for (k, v) in [("state", &self.state), ("nonce", &self.nonce)] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(c) = &self.code_challenge {
            q.append_pair("code_challenge", c)
                .append_pair("code_challenge_method", "S256");
        }
        if self.pinned {
            q.append_pair("ui_locales", self.lang.html());
        }
        format!("{}/auth?{}", issuer.path(), q.finish())
    }
}

/// What the page carries to the continue URL, sealed: the request and its QR code.
#[derive(Serialize, Deserialize)]
struct Pending {
    request: AuthRequest,
    random: String,
    /// After this (ms), the continue URL is refused.
    expires_at: i64,
}

pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, v),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => AppError::invalid("unusable redirect target").into_response(),
    }
}

/// Why a request was refused before its redirect URI was known to be good.
fn bad_client(lang: Lang, en: String, zh: String) -> Response {
    MessagePage::error(
        lang,
        "invalid_request",
        ("无法登录", &zh),
        ("This sign-in request cannot be used", &en),
    )
    .respond(StatusCode::BAD_REQUEST)
}

/// `GET {issuer}/auth` — the authorization endpoint.
pub async fn auth_get(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    requester: Requester,
    RawQuery(query): RawQuery,
) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let params = match parse_params(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(why) => {
            let (lang, _) = Lang::choose(None, accept);
            return bad_client(lang, why.clone(), format!("请求有误：{why}"));
        }
    };
    let (lang, pinned) = Lang::choose(params.get("ui_locales"), accept);
    let Some(client_id) = params.get("client_id") else {
        return bad_client(
            lang,
            "The request has no client_id.".into(),
            "请求缺少 client_id。".into(),
        );
    };
    let app = match state.apps.get(client_id).await {
        Ok(Some(app)) if app.pool == issuer.pool => app,
        Ok(_) => {
            let shown: String = client_id.chars().take(64).collect();
            return bad_client(
                lang,
                format!("No app with client_id \"{shown}\" is registered with this issuer."),
                format!("此登录入口没有登记 client_id 为“{shown}”的应用。"),
            );
        }
        Err(e) => return AppError::from(e).into_response(),
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return bad_client(
            lang,
            "The request has no redirect_uri.".into(),
            "请求缺少 redirect_uri。".into(),
        );
    };
    if !app.redirect_uris.iter().any(|r| r == redirect_uri) {
        let (en, zh) = explain_mismatch(redirect_uri, &app.redirect_uris);
        return bad_client(lang, en, zh);
    }
    // The redirect URI is registered: from here on, errors go back to the app.
    let mut request = AuthRequest {
        pool: issuer.pool.clone(),
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope: String::new(),
        state: params.get("state").map(str::to_owned),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge: None,
        lang,
        pinned,
    };
    let checked = match check(&params, &app) {
        Ok(c) => c,
        Err((error, description)) => return request.error(&issuer, error, &description),
    };
    request.scope = checked.scope;
    request.code_challenge = checked.code_challenge;

    match try_session(
        &state,
        &issuer,
        &jar,
        &request,
        &checked.prompt,
        checked.max_age,
    )
    .await
    {
        Ok(Some(res)) => return res,
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    if checked.prompt.none {
        return request.error(
            &issuer,
            "login_required",
            "there is no ScanGate session in this browser; the user must scan",
        );
    }
    match show_page(&state, &issuer, jar, &requester, &app, request).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

#[derive(Default)]
struct Prompt {
    none: bool,
    login: bool,
}

struct Checked {
    scope: String,
    code_challenge: Option<String>,
    prompt: Prompt,
    /// Milliseconds.
    max_age: Option<i64>,
}

/// The checks whose failures are reported to the app (OIDC Core §3.1.2.6).
fn check(params: &super::Params, app: &App) -> Result<Checked, (&'static str, String)> {
    let invalid = |m: &str| ("invalid_request", m.to_owned());
    if params.get("request").is_some() {
        return Err((
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    if params.get("request_uri").is_some() {
        return Err((
            "request_uri_not_supported",
            "request_uri is not supported".into(),
        ));
    }
    match params.get("response_type") {
        None => return Err(invalid("response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ))
        }
    }
    if !matches!(params.get("response_mode"), None | Some("query")) {
        return Err(invalid("only response_mode=query is supported"));
    }
    let Some(scope) = params.get("scope") else {
        return Err(invalid("scope is missing"));
    };
    if !has_scope(scope, "openid") {
        return Err(("invalid_scope", "the openid scope is required".into()));
    }
    for (name, limit) in [("state", 2048), ("nonce", 512)] {
        if params.get(name).is_some_and(|v| v.len() > limit) {
            return Err(invalid(&format!(
                "{name} is longer than {limit} characters"
            )));
        }
    }
    let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, Some(_)) => return Err(invalid("code_challenge_method without code_challenge")),
        (Some(_), m) if m != Some("S256") => {
            return Err(invalid("only code_challenge_method=S256 is supported"))
        }
        (Some(c), _) if !is_s256_challenge(c) => {
            return Err(invalid(
                "code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)",
            ))
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, None) if app.client_secret_hash.is_none() => {
            return Err(invalid(
                "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
            ))
        }
        (None, None) => None,
    };
    let mut prompt = Prompt::default();
    for p in params.get("prompt").unwrap_or("").split(' ') {
        match p {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            // consent is given on the phone with every scan; other values ask for nothing
            // ScanGate has.
            _ => {}
        }
    }
    if prompt.none && params.get("prompt").is_some_and(|p| p.trim() != "none") {
        return Err(invalid("prompt=none cannot be combined with other values"));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (0..=10 * 365 * 24 * 3600).contains(&n) => Some(n * 1000),
            _ => return Err(invalid("max_age must be a non-negative number of seconds")),
        },
    };
    Ok(Checked {
        scope: grant_scope(scope),
        code_challenge,
        prompt,
        max_age,
    })
}

/// An S256 challenge is 32 bytes in unpadded base64url: exactly 43 characters.
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    let Some(session) = session::current(state, issuer, jar).await? else {
        return Ok(None);
    };
    if max_age.is_some_and(|m| now - session.auth_time > m) {
        return Ok(None);
    }
    let Some(user) = store::users::get(&state.db.pool, &session.user_id).await? else {
        return Ok(None);
    };
    if user.blocked {
        return Ok(None);
    }
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
    let code = issue_code(state, request, &user.id, session.auth_time).await?;
    Ok(Some(code_redirect(issuer, request, &code)))
}

async fn show_page(
    state: &AppState,
    issuer: &Issuer,
    jar: CookieJar,
    requester: &Requester,
    app: &App,
    request: AuthRequest,
) -> Result<Response, AppError> {
    let created = crate::pc::create_qrcode(state, &app.client_id, jar, requester).await?;
    let qr = &created.qr;
    let now = state.clock.now();
    let pending = Pending {
        random: qr.random.clone(),
        expires_at: qr.expires_at + TICKET_TTL.as_millis() as i64,
        request,
    };
    let sealed = state
        .secrets
        .seal(&serde_json::to_vec(&pending).map_err(|e| AppError::Internal(e.into()))?);
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
        random: qr.random.clone(),
        image_url: format!("{qr_path}/image.svg"),
        events_url: format!("{qr_path}/events"),
        status_url: qr_path,
        cancel_url: format!("{continue_url}&cancel=1"),
        continue_url,
        expires_in: ((qr.expires_at - now) / 1000).max(0),
    };
    Ok((created.jar, page(&page_view)).into_response())
}

/// Logos are shown only from web or same-origin URLs.
fn is_image_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://") || s.starts_with('/')
}

/// Creates a grant and its authorization code for `user_id`; returns the code.
pub async fn issue_code(
    state: &AppState,
    request: &AuthRequest,
    user_id: &str,
    auth_time: i64,
) -> Result<String, AppError> {
    let now = state.clock.now();
    let grant = Grant {
        id: store::new_id(),
        pool: request.pool.clone(),
        client_id: request.client_id.clone(),
        user_id: user_id.to_owned(),
        scope: request.scope.clone(),
        auth_time,
        created_at: now,
        revoked_at: None,
    };
    store::grants::insert(&state.db, &grant).await?;
    let code = random_token(32);
    store::codes::insert(
        &state.db,
        &store::codes::NewCode {
            code_hash: &sha256_hex(code.as_bytes()),
            grant_id: &grant.id,
            redirect_uri: &request.redirect_uri,
            nonce: request.nonce.as_deref(),
            code_challenge: request.code_challenge.as_deref(),
            created_at: now,
            expires_at: now + CODE_TTL_SECS * 1000,
        },
    )
    .await?;
    Ok(code)
}

/// The successful authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`).
fn code_redirect(issuer: &Issuer, request: &AuthRequest, code: &str) -> Response {
    let mut params = vec![("code", code)];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    params.push(("iss", &issuer.url));
    see_other(&with_query(&request.redirect_uri, &params))
}

#[derive(Deserialize)]
pub struct ContinueQuery {
    req: String,
    #[serde(default)]
    cancel: Option<String>,
}

/// `GET {issuer}/auth/continue?req=…[&cancel=1]` — where the hosted page goes once the phone
/// has confirmed (or the person gave up). Only the browser that showed the QR code can take
/// its ticket.
pub async fn continue_get(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    requester: Requester,
    Query(q): Query<ContinueQuery>,
) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let pending = state
        .secrets
        .open(&q.req)
        .ok()
        .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
        .filter(|p| p.request.pool == issuer.pool);
    let Some(pending) = pending else {
        let (lang, _) = Lang::choose(None, accept);
        return MessagePage::error(
            lang,
            "invalid_request",
            ("链接无效", "这个登录链接无效或已被改动。请回到网站重新登录。"),
            (
                "This link is not valid",
                "This sign-in link is invalid or was altered. Go back to the site and sign in again.",
            ),
        )
        .respond(StatusCode::BAD_REQUEST);
    };
    let cancel = q.cancel.is_some();
    match finish(
        &state, &issuer, jar, &headers, &requester, &q.req, pending, cancel,
    )
    .await
    {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &AppState,
    issuer: &Issuer,
    jar: CookieJar,
    headers: &HeaderMap,
    requester: &Requester,
    sealed: &str,
    pending: Pending,
    cancel: bool,
) -> Result<Response, AppError> {
    let request = &pending.request;
    let lang = request.lang;
    let now = state.clock.now();
    // The app may have changed since the page was shown.
    let app = state.apps.get(&request.client_id).await?;
    if !app.is_some_and(|a| a.redirect_uris.contains(&request.redirect_uri)) {
        return Ok(bad_client(
            lang,
            "The app or its redirect_uri is no longer registered.".into(),
            "该应用或其回调地址已不再登记。".into(),
        ));
    }
    if cancel {
        return Ok(request.error(issuer, "access_denied", "the user cancelled the sign-in"));
    }
    let restart = request.restart_url(issuer);
    let expired = || {
        MessagePage::error(
            lang,
            "expired",
            (
                "二维码已过期",
                "这个二维码已经过期。请重新获取二维码并扫码。",
            ),
            (
                "The QR code has expired",
                "This QR code has expired. Get a new one and scan again.",
            ),
        )
        .with_link(restart.clone(), "重新扫码", "Get a new code")
        .respond(StatusCode::GONE)
    };
    let qr = state.tickets.get(&pending.random).await?;
    let Some(qr) = qr.filter(|_| now < pending.expires_at) else {
        return Ok(expired());
    };
    match qr.status_at(now) {
        QrStatus::Confirmed => {}
        QrStatus::Cancelled => {
            return Ok(request.error(issuer, "access_denied", "the user declined on the phone"))
        }
        QrStatus::Expired => return Ok(expired()),
        QrStatus::Pending | QrStatus::Scanned => {
            return Ok(MessagePage::error(
                lang,
                "not_confirmed",
                (
                    "尚未确认",
                    "请先用微信扫码，并在手机上点击“确认登录”，然后再继续。",
                ),
                (
                    "Not confirmed yet",
                    "Scan the code with WeChat and tap Confirm on your phone first, then continue.",
                ),
            )
            .with_link(
                format!("{}/auth/continue?req={sealed}", issuer.path()),
                "继续",
                "Continue",
            )
            .respond(StatusCode::CONFLICT))
        }
    }
    let Some(ticket) = qr.ticket.as_deref() else {
        return Ok(expired());
    };
    let binding = crate::pc::binding(headers, &jar);
    let taken =
        match state.tickets.take_ticket(ticket, &binding, now).await? {
            Take::Taken(t) => {
                state
                    .metrics
                    .qr(&t.client_id, crate::metrics::QrOutcome::Exchanged);
                t
            }
            Take::NotBound => return Ok(MessagePage::error(
                lang,
                "forbidden",
                (
                    "请在原浏览器中继续",
                    "这次登录是在另一个浏览器中发起的，只能在那里完成。",
                ),
                (
                    "Continue in the original browser",
                    "This sign-in was started in another browser and can only be completed there.",
                ),
            )
            .respond(StatusCode::FORBIDDEN)),
            Take::Missing => return Ok(MessagePage::error(
                lang,
                "invalid_request",
                (
                    "登录已完成或已失效",
                    "这次登录已经完成过，或已失效。请重新登录。",
                ),
                (
                    "Already used",
                    "This sign-in has already been completed or is no longer valid. Sign in again.",
                ),
            )
            .with_link(restart, "重新登录", "Sign in again")
            .respond(StatusCode::BAD_REQUEST)),
        };
    if taken.client_id != request.client_id {
        return Err(AppError::Forbidden(
            "the QR code belongs to another app".into(),
        ));
    }
    let user = store::users::get(&state.db.pool, &taken.user_id)
        .await?
        .ok_or_else(|| AppError::NotFound("the user no longer exists".into()))?;
    if user.blocked {
        return Ok(request.error(issuer, "access_denied", "this user is blocked"));
    }
    store::users::record_login(&state.db, &user.id, &requester.ip, now).await?;
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&issuer.pool),
            actor: Some(&user.id),
            action: "login.oidc",
            subject: Some(&request.client_id),
            ip: Some(&requester.ip),
            detail: Some(json!({ "random": taken.random })),
        },
        now,
    )
    .await?;
    let auth_time = taken.confirmed_at;
    let jar = session::start(state, issuer, jar, &user.id, auth_time).await?;
    let code = issue_code(state, request, &user.id, auth_time).await?;
    Ok((jar, code_redirect(issuer, request, &code)).into_response())
}

/// Says exactly how a redirect URI misses the registered ones: (English, Chinese).
pub fn explain_mismatch(requested: &str, registered: &[String]) -> (String, String) {
    let listed = registered.join(", ");
    if registered.is_empty() {
        return (
            "This app has no registered redirect URIs.".into(),
            "该应用没有登记任何回调地址。".into(),
        );
    }
    let Ok(req) = url::Url::parse(requested) else {
        return (
            format!(
                "The redirect_uri \"{requested}\" is not an absolute URL; registered: {listed}."
            ),
            format!("redirect_uri“{requested}”不是完整的网址；已登记：{listed}。"),
        );
    };
    if !req.username().is_empty() || req.password().is_some() {
        return (
            format!("The redirect_uri \"{requested}\" carries user info (user@ or user:password@), which is never allowed; registered: {listed}."),
            format!("redirect_uri“{requested}”带有用户信息（user@ 或 user:password@），这是不允许的；已登记：{listed}。"),
        );
    }
    if req.fragment().is_some() {
        return (
            format!("The redirect_uri \"{requested}\" has a fragment (#…), which is never allowed; registered: {listed}."),
            format!("redirect_uri“{requested}”带有片段（#…），这是不允许的；已登记：{listed}。"),
        );
    }
    // The registered URI differing from the request in the fewest parts.
    let best = registered
        .iter()
        .filter_map(|r| url::Url::parse(r).ok().map(|u| (r, differences(&req, &u))))
        .min_by_key(|(_, d)| d.len());
    if let Some((reg, diffs)) = best {
        match diffs.as_slice() {
            [Part::TrailingSlash] => {
                return (
                    format!("A trailing slash differs from the registered redirect URI \"{reg}\" (requested \"{requested}\"); URIs must match exactly."),
                    format!("末尾斜杠与登记的回调地址“{reg}”不同（请求的是“{requested}”）；回调地址必须完全一致。"),
                )
            }
            [Part::Port] => {
                return (
                    format!("The port differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("端口与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [Part::Scheme] | [Part::Scheme, Part::Port] => {
                return (
                    format!("The scheme differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("协议（http/https）与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [Part::Query] => {
                let en = if reg.contains('?') {
                    format!("The query string differs from the registered redirect URI \"{reg}\" (requested \"{requested}\").")
                } else {
                    format!("The redirect_uri adds a query string the registered redirect URI \"{reg}\" does not have (requested \"{requested}\").")
                };
                return (
                    en,
                    format!("查询串与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                );
            }
            [Part::Host] => {
                return (
                    format!("The host differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("主机名与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [Part::Path] => {
                return (
                    format!("The path differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("路径与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [] => {
                return (
                    format!("The redirect_uri \"{requested}\" is not spelled exactly like the registered \"{reg}\"; URIs are compared character by character."),
                    format!("redirect_uri“{requested}”与登记的“{reg}”写法不完全相同；回调地址逐字比较。"),
                )
            }
            _ => {}
        }
    }
    (
        format!("The redirect_uri \"{requested}\" is not registered for this app; registered: {listed}."),
        format!("redirect_uri“{requested}”没有为该应用登记；已登记：{listed}。"),
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Scheme,
    Host,
    Port,
    TrailingSlash,
    Path,
    Query,
}

fn differences(a: &url::Url, b: &url::Url) -> Vec<Part> {
    let mut d = Vec::new();
    if a.scheme() != b.scheme() {
        d.push(Part::Scheme);
    }
    if a.host_str() != b.host_str() {
        d.push(Part::Host);
    }
    if a.port_or_known_default() != b.port_or_known_default() {
        d.push(Part::Port);
    }
    if a.path() != b.path() {
        if a.path().trim_end_matches('/') == b.path().trim_end_matches('/') {
            d.push(Part::TrailingSlash);
        } else {
            d.push(Part::Path);
        }
    }
    if a.query() != b.query() {
        d.push(Part::Query);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(requested: &str) -> String {
        explain_mismatch(requested, &["http://127.0.0.1:3000/callback".into()]).0
    }

    #[test]
    fn near_misses_are_named() {
        assert!(why("http://127.0.0.1:3000/callback/").contains("trailing slash differs"));
        assert!(why("http://127.0.0.1:3001/callback").contains("port differs"));
        assert!(why("https://127.0.0.1:3000/callback").contains("scheme differs"));
        assert!(why("http://127.0.0.1:3000/callback?x=1").contains("adds a query string"));
        assert!(why("http://u:p@127.0.0.1:3000/callback").contains("user info"));
        assert!(why("http://localhost:3000/callback").contains("host differs"));
        assert!(why("http://evil.example/callback").contains("is not registered"));
        assert!(why("http://127.0.0.1:3000/other").contains("path differs"));
        assert!(why("not a url").contains("not an absolute URL"));
        assert!(why("HTTP://127.0.0.1:3000/callback").contains("character by character"));
    }

    #[test]
    fn ui_locales_wins_over_accept_language() {
        assert_eq!(
            Lang::choose(Some("fr en-US"), Some("zh-CN")),
            (Lang::En, true)
        );
        assert_eq!(
            Lang::choose(None, Some("en;q=0.5, zh-CN")),
            (Lang::Zh, false)
        );
        assert_eq!(
            Lang::choose(None, Some("en-GB,en;q=0.9")),
            (Lang::En, false)
        );
        assert_eq!(Lang::choose(None, None), (Lang::Zh, false));
    }

    #[test]
    fn s256_challenges_are_43_base64url_characters() {
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }
}
