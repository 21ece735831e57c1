//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the browser session of
//! single sign-on (`oauth::session`) and goes back to a registered URI of the app.

use axum::extract::{RawForm, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::error::AppError;
use crate::oauth::request::explain_mismatch;
use crate::oauth::{parse_params, session, with_query, Issuer, Params};
use crate::pages::{see_other, Lang, MessagePage};
use crate::state::AppState;

/// The claims of an `id_token_hint` that matter here.
#[derive(Deserialize)]
struct HintClaims {
    aud: serde_json::Value,
}

/// `GET {issuer}/session/end` (RP-Initiated Logout §2).
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

/// `POST {issuer}/session/end` with the same parameters as a form.
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
    let refuse = |lang: Lang, en: String, zh: String| {
        MessagePage::error(
            lang,
            "invalid_request",
            ("无法退出登录", &zh),
            ("This sign-out request cannot be used", &en),
        )
        .respond(StatusCode::BAD_REQUEST)
    };
    let params: Params = match parse_params(raw) {
        Ok(p) => p,
        Err(why) => return refuse(Lang::choose(None, accept).0, why.clone(), why),
    };
    let (lang, _) = Lang::choose(params.get("ui_locales"), accept);
    let mut client_id = params.get("client_id").map(str::to_owned);
    if let Some(hint) = params.get("id_token_hint") {
        // An expired hint is still a good hint: logout often comes after the token's life.
        let aud = match state
            .keys
            .verify::<HintClaims>(&issuer.pool, hint, &issuer.url)
            .await
        {
            Ok((_, claims)) => match claims.aud {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Array(a) => {
                    a.first().and_then(|v| v.as_str()).map(str::to_owned)
                }
                _ => None,
            },
            Err(_) => None,
        };
        let Some(aud) = aud else {
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
    }
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let app = match &client_id {
                Some(c) => match state.apps.get(c).await {
                    Ok(a) => a.filter(|a| a.pool == issuer.pool),
                    Err(e) => return AppError::from(e).into_response(),
                },
                None => None,
            };
            let Some(app) = app else {
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
            Some(uri.to_owned())
        }
    };
    let jar = match session::end(&state.db, state.clock.now(), issuer, jar).await {
        Ok(jar) => jar,
        Err(e) => return e.into_page(lang),
    };
    match target {
        Some(uri) => {
            let with_state = match params.get("state") {
                Some(s) => with_query(&uri, &[("state", s)]),
                None => uri,
            };
            (jar, see_other(&with_state)).into_response()
        }
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
