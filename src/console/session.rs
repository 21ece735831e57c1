//! Signing in and out of the console.
//!
//! The sign-in form is protected against login CSRF by a pre-session cookie: the form carries
//! the cookie's random value, which another site can neither read nor set (`SameSite=Strict`,
//! scoped to `/admin`). The session cookie is `HttpOnly`, `SameSite=Strict`, scoped to
//! `/admin`, `Secure` on https; the session behind it lives in the database, so signing out
//! ends it on every instance.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;

use super::{session_cookie_name, ConsoleLang, Form, FormView, Signed};
use crate::admin::console::ABSOLUTE_MS;
use crate::error::AppError;
use crate::extract::Requester;
use crate::pages::{page, see_other, Lang};
use crate::state::AppState;

/// The pre-session cookie of the forms posted without a session (sign-in, set password).
pub const PRE_COOKIE: &str = "scangate_admin_pre";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/sign-in", get(sign_in_get).post(sign_in_post))
        .route("/admin/sign-out", post(sign_out_post))
        .route("/admin/sign-out-everywhere", post(sign_out_everywhere_post))
}

/// The pre-session token the sign-in form must carry.
pub fn pre_token(jar: &CookieJar) -> Option<String> {
    jar.get(PRE_COOKIE).map(|c| c.value().to_owned())
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    lang: Lang,
    csrf: String,
    next: String,
    form: FormView,
    /// Shown after signing out.
    signed_out: bool,
}

impl SignInPage {
    fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(zh, en)
    }
}

#[derive(Deserialize)]
struct SignInQuery {
    next: Option<String>,
    #[serde(default)]
    out: Option<String>,
}

/// Where to go after signing in: a console path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/admin" || n.starts_with("/admin/") || n.starts_with("/admin?"))
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

/// A sign-in form with a fresh pre-session cookie.
fn sign_in_form(
    state: &AppState,
    jar: CookieJar,
    lang: Lang,
    next: String,
    form: FormView,
    signed_out: bool,
    status: StatusCode,
) -> Response {
    let csrf = crate::crypto::random_token(24);
    let cookie = Cookie::build((PRE_COOKIE, csrf.clone()))
        .path("/admin")
        .http_only(true)
        .secure(state.secure())
        .same_site(SameSite::Strict)
        .max_age(time::Duration::hours(1))
        .build();
    let view = SignInPage {
        lang,
        csrf,
        next,
        form,
        signed_out,
    };
    let mut res = page(&view);
    *res.status_mut() = status;
    (jar.add(cookie), res).into_response()
}

/// `GET /admin/sign-in`
async fn sign_in_get(
    State(state): State<AppState>,
    jar: CookieJar,
    ConsoleLang(lang): ConsoleLang,
    signed: Option<Signed>,
    Query(q): Query<SignInQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if signed.is_some() {
        return see_other(&next);
    }
    sign_in_form(
        &state,
        jar,
        lang,
        next,
        FormView::default(),
        q.out.is_some(),
        StatusCode::OK,
    )
}

/// `POST /admin/sign-in` (`username`, `password`, `next`)
async fn sign_in_post(
    State(state): State<AppState>,
    jar: CookieJar,
    ConsoleLang(lang): ConsoleLang,
    requester: Requester,
    form: Form,
) -> Response {
    let next = safe_next(form.get("next"));
    let username = form.text("username");
    let password = form.get("password").unwrap_or("").to_owned();
    let mut view = FormView::with(&[("username", username.clone())]);
    if username.is_empty() {
        view.add("username", lang.pick("请输入用户名", "enter your username"));
    }
    if password.is_empty() {
        view.add("password", lang.pick("请输入密码", "enter your password"));
    }
    if view.has_errors() {
        return sign_in_form(
            &state,
            jar,
            lang,
            next,
            view,
            false,
            StatusCode::BAD_REQUEST,
        );
    }
    match state
        .admin
        .sign_in(&username, &password, &requester.ip, &requester.user_agent)
        .await
    {
        Ok(signed) => {
            let cookie = Cookie::build((session_cookie_name(state.secure()), signed.token))
                .path("/admin")
                .http_only(true)
                .secure(state.secure())
                .same_site(SameSite::Strict)
                .max_age(time::Duration::milliseconds(ABSOLUTE_MS))
                .build();
            let jar = jar
                .add(cookie)
                .remove(Cookie::build(PRE_COOKIE).path("/admin").build());
            (jar, see_other(&next)).into_response()
        }
        Err(e @ (AppError::Unauthorized(_) | AppError::RateLimited(_))) => {
            let status = e.status();
            view.general = Some(match e {
                AppError::RateLimited(_) => lang
                    .pick(
                        "登录失败次数过多，请 15 分钟后再试。",
                        "Too many failed sign-ins: wait 15 minutes and try again.",
                    )
                    .to_owned(),
                _ => lang
                    .pick("用户名或密码不正确。", "Wrong username or password.")
                    .to_owned(),
            });
            let mut res = sign_in_form(&state, jar, lang, next, view, false, status);
            if status == StatusCode::TOO_MANY_REQUESTS {
                res.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("900"),
                );
            }
            res
        }
        Err(e) => e.into_page(lang),
    }
}

/// `POST /admin/sign-out`: ends this session everywhere it could be used.
async fn sign_out_post(State(state): State<AppState>, jar: CookieJar, signed: Signed) -> Response {
    if let Err(e) = state.admin.sign_out(&signed.session).await {
        return signed.error(e);
    }
    signed_out(&state, jar)
}

/// `POST /admin/sign-out-everywhere`: ends every session of this account, on every browser.
async fn sign_out_everywhere_post(
    State(state): State<AppState>,
    jar: CookieJar,
    signed: Signed,
) -> Response {
    if let Err(e) = state.admin.sign_out_everywhere(&signed.session).await {
        return signed.error(e);
    }
    signed_out(&state, jar)
}

fn signed_out(state: &AppState, jar: CookieJar) -> Response {
    let jar = jar.remove(
        Cookie::build(session_cookie_name(state.secure()))
            .path("/admin")
            .build(),
    );
    (jar, see_other("/admin/sign-in?out=1")).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_sign_in_only_console_paths_are_followed() {
        assert_eq!(safe_next(Some("/admin/apps?x=1")), "/admin/apps?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/admin//evil.example",
            "/adminx",
            "/admin\\..",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin");
    }
}
