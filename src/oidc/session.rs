//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the browser session of
//! single sign-on (`oauth::session`) and goes back to a registered URI of the app.
//!
//! Any page on the web can send a browser to `session/end`, so a request alone never signs
//! anyone out (§2: without an `id_token_hint` the OP MUST ask the user). Only a hint this
//! issuer signed for the user of this browser's session ends it at once; otherwise the user is
//! asked on a confirmation page whose form carries a CSRF token: the request, sealed with the
//! server's secret and bound to this browser's session cookie, valid for ten minutes. A form
//! forged elsewhere, or replayed from another browser, is refused.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::crypto::sha256_hex;
use crate::error::AppError;
use crate::oauth::request::explain_mismatch;
use crate::oauth::session::SESSION_COOKIE;
use crate::oauth::{parse_params, session, with_query, Issuer, Params};
use crate::pages::{page, see_other, Lang, MessagePage, CSP};
use crate::state::AppState;

/// How long a confirmation page's form may be sent.
const ASK_TTL_MS: Millis = 10 * 60 * 1000;

/// The claims of an `id_token_hint` that matter here.
#[derive(Deserialize)]
struct HintClaims {
    aud: serde_json::Value,
    sub: String,
}

/// The question RP-Initiated Logout §2 makes the OP ask: sign out of ScanGate, or stay.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub lang: Lang,
    /// `ui_locales` chose the language: the page keeps it whatever the browser prefers.
    pub pinned: bool,
    /// The app that asked, when the request named it.
    pub app_name: Option<String>,
    pub text_zh: String,
    pub text_en: String,
    /// Where the form goes: `{issuer}/session/end/confirm`.
    pub action: String,
    /// The CSRF token: a sealed [`Ask`].
    pub token: String,
}

/// What the confirmation form carries, sealed, so that the answer needs no server-side state
/// and cannot be made up or altered.
#[derive(Serialize, Deserialize)]
struct Ask {
    /// SHA-256 of the session cookie of the browser that was asked: the token is good only
    /// with that cookie, which a page on another site can neither read nor choose.
    session: String,
    /// The registered post-logout URI, `state` included.
    target: Option<String>,
    lang: Lang,
    /// After this (ms), the form is refused.
    expires_at: Millis,
}

/// RP-Initiated Logout 1.0 §2: asks the person to confirm, then ends the browser session and
/// returns to the registered post-logout URI.
#[utoipa::path(get, path = "/session/end", tag = "oidc",
    params(
        ("id_token_hint" = Option<String>, Query, description = "An ID token this provider issued."),
        ("client_id" = Option<String>, Query, description = "The app, when no hint is given."),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "One of the app's registered post-logout URIs."),
        ("state" = Option<String>, Query, description = "Returned as sent."),
        ("ui_locales" = Option<String>, Query, description = "`zh-CN` or `en`."),
    ),
    responses(
        (status = 200, description = "The confirmation page, or the signed-out page.", content_type = "text/html", body = String),
        (status = 302, description = "To the post-logout URI (no session to end)."),
        (status = 400, description = "A page saying what is wrong.", content_type = "text/html", body = String),
    ))]
pub async fn end_session_get(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    end_session(
        &state,
        &issuer,
        jar,
        &headers,
        query.as_deref().unwrap_or(""),
    )
    .await
}

/// The same as `GET`, with the parameters as a form.
#[utoipa::path(post, path = "/session/end", tag = "oidc",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "The parameters of `GET`."),
    responses(
        (status = 200, description = "The confirmation page, or the signed-out page.", content_type = "text/html", body = String),
        (status = 302, description = "To the post-logout URI (no session to end)."),
        (status = 400, description = "A page saying what is wrong.", content_type = "text/html", body = String),
    ))]
pub async fn end_session_post(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Response {
    let body = String::from_utf8_lossy(&form).into_owned();
    end_session(&state, &issuer, jar, &headers, &body).await
}

fn refuse(lang: Lang, en: String, zh: String) -> Response {
    MessagePage::error(
        lang,
        "invalid_request",
        ("无法退出登录", &zh),
        ("This sign-out request cannot be used", &en),
    )
    .respond(StatusCode::BAD_REQUEST)
}

async fn end_session(
    state: &AppState,
    issuer: &Issuer,
    jar: CookieJar,
    headers: &HeaderMap,
    raw: &str,
) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let params: Params = match parse_params(raw) {
        Ok(p) => p,
        Err(why) => return refuse(Lang::choose(None, accept).0, why.clone(), why),
    };
    let (lang, pinned) = Lang::choose(params.get("ui_locales"), accept);
    let mut client_id = params.get("client_id").map(str::to_owned);
    let mut hinted_user = None;
    if let Some(hint) = params.get("id_token_hint") {
        // An expired hint is still a good hint: logout often comes after the token's life.
        let claims = match state
            .keys
            .verify::<HintClaims>(&issuer.pool, hint, &issuer.url)
            .await
        {
            Ok((_, claims)) => Some(claims),
            Err(_) => None,
        };
        let aud = claims.as_ref().and_then(|c| match &c.aud {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
            _ => None,
        });
        let (Some(aud), Some(claims)) = (aud, claims) else {
            return refuse(
                lang,
                "The id_token_hint is not an ID token this issuer signed.".into(),
                "id_token_hint 不是本登录入口签发的 ID 令牌。".into(),
            );
        };
        if client_id.as_deref().is_some_and(|c| c != aud) {
            return refuse(
                lang,
                "The client_id does not match the audience of the id_token_hint.".into(),
                "client_id 与 id_token_hint 的受众不一致。".into(),
            );
        }
        client_id = Some(aud);
        hinted_user = Some(claims.sub);
    }
    let app = match &client_id {
        Some(c) => match state.apps.get(c).await {
            Ok(a) => a.filter(|a| a.pool == issuer.pool),
            Err(e) => return AppError::from(e).into_page(lang),
        },
        None => None,
    };
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(app) = &app else {
                return refuse(
                    lang,
                    "A post_logout_redirect_uri needs the app: send id_token_hint or client_id.".into(),
                    "使用 post_logout_redirect_uri 时需要指明应用：请提供 id_token_hint 或 client_id。".into(),
                );
            };
            if !app.post_logout_redirect_uris.iter().any(|r| r == uri) {
                let (en, zh) = explain_mismatch(uri, &app.post_logout_redirect_uris);
                return refuse(lang, format!("post_logout_redirect_uri: {en}"), zh);
            }
            Some(match params.get("state") {
                Some(s) => with_query(uri, &[("state", s)]),
                None => uri.to_owned(),
            })
        }
    };
    let now = state.clock.now();
    let live = match session::current(&state.db, now, issuer, &jar).await {
        Ok(s) => s,
        Err(e) => return e.into_page(lang),
    };
    // A hint for another user than the signed-in one proves nothing about this browser: ask.
    let ask = live
        .as_ref()
        .is_some_and(|s| hinted_user.as_deref() != Some(s.user_id.as_str()));
    let Some(cookie) = jar.get(SESSION_COOKIE).filter(|_| ask) else {
        return sign_out(state, issuer, jar, lang, target).await;
    };
    let sealed = Ask {
        session: sha256_hex(cookie.value().as_bytes()),
        target,
        lang,
        expires_at: now + ASK_TTL_MS,
    };
    let token = match serde_json::to_vec(&sealed) {
        Ok(bytes) => state.secrets.seal(&bytes),
        Err(e) => return AppError::Internal(e.into()).into_page(lang),
    };
    let app_name = app.map(|a| a.name.clone());
    let (text_zh, text_en) = match &app_name {
        Some(name) => (
            format!("“{name}”请求让你退出 ScanGate。退出后，用 ScanGate 登录的应用都需要重新扫码。"),
            format!("{name} asks to sign you out of ScanGate. Apps you signed in to with ScanGate will ask you to scan again."),
        ),
        None => (
            "有网页请求让你退出 ScanGate。退出后，用 ScanGate 登录的应用都需要重新扫码。".into(),
            "A site asks to sign you out of ScanGate. Apps you signed in to with ScanGate will ask you to scan again.".into(),
        ),
    };
    let view = LogoutPage {
        lang,
        pinned,
        app_name,
        text_zh,
        text_en,
        action: format!("{}/session/end/confirm", issuer.path()),
        token,
    };
    with_form_target(page(&view), sealed.target.as_deref())
}

/// The answer of the confirmation page: `choice` is `logout` or `stay`, `token` the CSRF
/// token the page carried.
#[utoipa::path(post, path = "/session/end/confirm", tag = "oidc",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`choice`, `token`."),
    responses(
        (status = 200, description = "The signed-out (or still signed-in) page.", content_type = "text/html", body = String),
        (status = 302, description = "To the post-logout URI."),
        (status = 403, description = "A page: the form's token is wrong or expired.", content_type = "text/html", body = String),
    ))]
pub async fn end_session_confirm_post(
    State(state): State<AppState>,
    issuer: Issuer,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = Lang::of_request(&headers);
    let forbid = |lang: Lang, en: &str, zh: &str| {
        MessagePage::error(
            lang,
            "forbidden",
            ("无法退出登录", zh),
            ("This sign-out form cannot be used", en),
        )
        .respond(StatusCode::FORBIDDEN)
    };
    let form = match std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(parse_params)
    {
        Ok(f) => f,
        Err(why) => return refuse(lang, why.clone(), why),
    };
    let Some(token) = form.get("token") else {
        return forbid(
            lang,
            "The form has no sign-out token. Start again from the app.",
            "表单缺少退出登录令牌。请从应用重新开始。",
        );
    };
    let Some(ask) = state
        .secrets
        .open(token)
        .ok()
        .and_then(|b| serde_json::from_slice::<Ask>(&b).ok())
    else {
        return forbid(
            lang,
            "The sign-out token was not issued by ScanGate. Start again from the app.",
            "退出登录令牌不是 ScanGate 签发的。请从应用重新开始。",
        );
    };
    let lang = ask.lang;
    if state.clock.now() > ask.expires_at {
        return forbid(
            lang,
            "The sign-out page has expired. Start again from the app.",
            "退出登录页面已过期。请从应用重新开始。",
        );
    }
    let this_browser = jar
        .get(SESSION_COOKIE)
        .is_some_and(|c| sha256_hex(c.value().as_bytes()) == ask.session);
    if !this_browser {
        return forbid(
            lang,
            "The sign-out token was issued to another browser or sign-in. Start again from the app.",
            "退出登录令牌属于其他浏览器或另一次登录。请从应用重新开始。",
        );
    }
    match form.get("choice") {
        Some("logout") => sign_out(&state, &issuer, jar, lang, ask.target).await,
        Some("stay") => {
            let mut page = MessagePage::error(
                lang,
                "still_signed_in",
                ("仍保持登录", "你没有退出 ScanGate。可以关闭此页面。"),
                (
                    "Still signed in",
                    "You are still signed in to ScanGate. You may close this page.",
                ),
            );
            page.error = false;
            if let Some(target) = ask.target {
                page = page.with_link(target, "返回应用", "Back to the app");
            }
            page.respond(StatusCode::OK)
        }
        _ => refuse(
            lang,
            "choice must be logout or stay.".into(),
            "choice 必须是 logout 或 stay。".into(),
        ),
    }
}

/// Ends the session and goes to `target` (registered, `state` included), or says so.
async fn sign_out(
    state: &AppState,
    issuer: &Issuer,
    jar: CookieJar,
    lang: Lang,
    target: Option<String>,
) -> Response {
    let jar = match session::end(&state.db, state.clock.now(), issuer, jar).await {
        Ok(jar) => jar,
        Err(e) => return e.into_page(lang),
    };
    match target {
        Some(uri) => (jar, see_other(&uri)).into_response(),
        None => {
            let mut page = MessagePage::error(
                lang,
                "signed_out",
                ("已退出登录", "你已退出 ScanGate 登录。可以关闭此页面。"),
                (
                    "Signed out",
                    "You are signed out of ScanGate. You may close this page.",
                ),
            );
            page.error = false;
            (jar, page.respond(StatusCode::OK)).into_response()
        }
    }
}

/// The confirmation page's policy with the post-logout URI's origin added to `form-action`:
/// browsers apply it to the redirect that follows the form, which would otherwise be blocked.
fn with_form_target(mut res: Response, target: Option<&str>) -> Response {
    let Some(url) = target.and_then(|t| url::Url::parse(t).ok()) else {
        return res;
    };
    let source = match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        // A native app's custom scheme has no origin; CSP names it by its scheme.
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    let policy = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {source}"),
    );
    if let Ok(v) = HeaderValue::from_str(&policy) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}
