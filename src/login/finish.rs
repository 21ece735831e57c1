//! `GET {issuer}/auth/continue`: where the hosted page goes once the phone has confirmed (or
//! the person gave up).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::Pending;
use crate::accounts::Login;
use crate::error::AppError;
use crate::extract::{binding, Query, Requester};
use crate::oauth::request::bad_client;
use crate::oauth::{codes, session, Issuer};
use crate::pages::{Lang, MessagePage};
use crate::state::AppState;
use crate::tickets::{QrStatus, Take, TransitionError};

#[derive(Deserialize)]
pub struct ContinueQuery {
    req: String,
    #[serde(default)]
    cancel: Option<String>,
}

/// Where the hosted page goes once the phone has confirmed (or the person gave up). Only the
/// browser that showed the QR code can take its ticket.
#[utoipa::path(get, path = "/auth/continue", tag = "oidc",
    params(
        ("req" = String, Query, description = "The sealed request the page carried."),
        ("cancel" = Option<String>, Query, description = "`1`: the person gave up."),
    ),
    responses(
        (status = 302, description = "To the callback with `code`, `state` and `iss`, or `error=access_denied`."),
        (status = 400, description = "A page: the request is altered, expired or belongs to another browser.", content_type = "text/html", body = String),
    ))]
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
    let lang = pending.request.lang;
    match finish(
        &state, &issuer, jar, &headers, &requester, &q.req, pending, cancel,
    )
    .await
    {
        Ok(res) => res,
        Err(e) => e.into_page(lang),
    }
}

/// Cancels the page's code on the server when the page's own browser gives up, so that a phone
/// that scanned it is told and nobody can confirm it afterwards. A code already final (or
/// gone) is left as it is.
async fn cancel_code(
    state: &AppState,
    headers: &HeaderMap,
    jar: &CookieJar,
    random: &str,
    now: crate::clock::Millis,
) -> Result<(), AppError> {
    let Some(qr) = state.tickets.get(random).await? else {
        return Ok(());
    };
    if !binding(headers, jar).matches(&qr.bind_hash, qr.browser_hash.as_deref()) {
        return Ok(());
    }
    // The store lets a scanned code be cancelled by its scanner only: the page acts for them.
    let as_user = qr.scanner.as_ref().map_or("", |s| s.user_id.as_str());
    match state
        .tickets
        .cancel(random, as_user, crate::tickets::cancel_reason::PAGE, now)
        .await
    {
        // Cancelled, it no longer counts among the address's pending codes.
        Ok(qr) => Ok(state
            .limiter
            .release_pending(&qr.requester_ip, &qr.random)
            .await?),
        Err(TransitionError::Conflict(_) | TransitionError::Expired) => Ok(()),
        Err(TransitionError::NotFound | TransitionError::Forbidden(_)) => Ok(()),
        Err(TransitionError::Store(e)) => Err(e.into()),
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
        cancel_code(state, headers, &jar, &pending.random, now).await?;
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
    let binding = binding(headers, &jar);
    let taken =
        match state.tickets.take_ticket(ticket, &binding, now).await? {
            Take::Taken(t) => {
                state
                    .funnel
                    .step(&t.client_id, crate::funnel::Step::Exchanged)
                    .await;
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
    let login = Login {
        pool: &issuer.pool,
        client_id: &request.client_id,
        ip: &requester.ip,
        user_agent: &requester.user_agent,
        action: "login.oidc",
        random: &taken.random,
    };
    let user = match crate::accounts::complete_login(&state.db, &taken.user_id, login, now).await {
        Ok(user) => user,
        Err(AppError::Forbidden(_)) => {
            return Ok(request.error(issuer, "access_denied", "this user is blocked"))
        }
        Err(e) => return Err(e),
    };
    let auth_time = taken.confirmed_at;
    let (jar, session_hash) = session::start(
        &state.db,
        now,
        state.secure(),
        issuer,
        jar,
        &user.id,
        auth_time,
    )
    .await?;
    let (code, grant_id) = codes::issue(&state.db, now, request, &user.id, auth_time).await?;
    if let Some(login) = &taken.login_id {
        crate::store::logins::set_minted(&state.db, login, &grant_id, &session_hash).await?;
    }
    Ok((jar, codes::redirect(issuer, request, &code)).into_response())
}
