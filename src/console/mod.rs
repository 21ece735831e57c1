//! The admin console at `/admin`: server-rendered pages over the management layer (`admin`),
//! for operators in a browser. Every page works without JavaScript; `static/console.js` only
//! enhances (live QR preview, copy buttons).
//!
//! One middleware ([`guard`]) stands in front of every console route:
//! - the language: `?lang=` (remembered in a cookie), the cookie, else `Accept-Language`;
//! - the session: every page but the sign-in page needs one; without it a browser is sent to
//!   the sign-in page (`303`), and the signed-in [`ConsoleSession`] is handed to the handler
//!   ([`Signed`]);
//! - every state-changing request (any method but `GET`/`HEAD`) must carry the session's CSRF
//!   token, as the form field `csrf` or the header `x-csrf-token`; otherwise it is refused with
//!   `403` before any handler runs. Its body (a urlencoded or multipart form) is read once
//!   here and handed to the handler as a [`Form`].
//!
//! A page is a template whose struct holds a [`Chrome`] (`c`: language, who is signed in, the
//! CSRF token, the current section) and extends `console/layout.html`; its handler takes
//! [`Signed`] (and [`Form`] for a post) and calls the management layer with `signed.actor()`.

mod admins;
mod apps;
mod audit;
mod charts;
mod dashboard;
mod diagnostics;
mod form;
mod keys;
mod miniprograms;
pub(crate) mod ops;
mod pools;
mod session;
mod users;

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

pub use form::{Form, FormView};

use crate::admin::console::ConsoleSession;
use crate::admin::{Actor, Role};
use crate::error::AppError;
use crate::extract::Requester;
use crate::pages::{see_other, Lang};
use crate::state::AppState;

/// The largest request body a console form may send: room for a logo far over the limit, so
/// that it is refused beside its field rather than by a cut connection.
pub const MAX_FORM_BYTES: usize = 16 * 1024 * 1024;

/// The session cookie, on plain http and on https (`__Secure-`: browsers refuse it unless
/// Secure).
const SESSION_COOKIE: &str = "scangate_admin";
const SECURE_SESSION_COOKIE: &str = "__Secure-scangate_admin";
/// The language chosen with `?lang=`.
const LANG_COOKIE: &str = "scangate_admin_lang";

/// Every console route, behind [`guard`].
/// `dev`: `scangate dev` is running, so the app page can point at the phone simulator.
pub fn router(state: &AppState, dev: bool) -> Router<AppState> {
    let guarded = Guard {
        state: state.clone(),
        dev,
    };
    Router::new()
        .route("/admin", get(dashboard::dashboard_get))
        .merge(session::router())
        .merge(pools::router())
        .merge(miniprograms::router())
        .merge(apps::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(keys::router())
        .merge(admins::router())
        .merge(diagnostics::router())
        .route_layer(axum::middleware::from_fn_with_state(guarded, guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// A section of the console in the navigation: its key, path, names, and the role it needs.
pub struct NavItem {
    pub key: &'static str,
    pub href: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    /// Who sees it: API keys and admin accounts are an owner's (admin accounts an owner's of
    /// every pool), so the others are not shown a section that would refuse them.
    needs: Role,
    every_pool: bool,
}

/// The navigation, in order. A new section adds its line here.
pub const NAV: &[NavItem] = &[
    NavItem {
        key: "dashboard",
        href: "/admin",
        zh: "概览",
        en: "Dashboard",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "apps",
        href: "/admin/apps",
        zh: "应用",
        en: "Apps",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "miniprograms",
        href: "/admin/miniprograms",
        zh: "小程序",
        en: "Mini Programs",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "pools",
        href: "/admin/pools",
        zh: "用户池",
        en: "Pools",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "users",
        href: "/admin/users",
        zh: "用户",
        en: "Users",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "audit",
        href: "/admin/audit",
        zh: "审计",
        en: "Audit",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "keys",
        href: "/admin/keys",
        zh: "签名密钥",
        en: "Keys",
        needs: Role::Viewer,
        every_pool: false,
    },
    NavItem {
        key: "api-keys",
        href: "/admin/api-keys",
        zh: "API 密钥",
        en: "API keys",
        needs: Role::Owner,
        every_pool: false,
    },
    NavItem {
        key: "admins",
        href: "/admin/admins",
        zh: "管理员",
        en: "Admins",
        needs: Role::Owner,
        every_pool: true,
    },
];

/// What the layout shows around every signed-in page.
pub struct Chrome {
    pub lang: Lang,
    /// The section shown, as in [`NAV`].
    pub section: &'static str,
    pub username: String,
    pub role: Role,
    /// The pool the admin is limited to, if any.
    pub pool: Option<String>,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// This page's path and query (without `lang`), for the language links.
    pub path: String,
    /// Whether `scangate dev` is running (the phone simulator exists).
    pub dev: bool,
}

impl Chrome {
    /// `zh` or `en`, in the page's language.
    pub fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(zh, en)
    }

    /// This page in `lang` (`zh` or `en`), its query kept.
    pub fn lang_href(&self, lang: &str) -> String {
        let sep = if self.path.contains('?') { '&' } else { '?' };
        format!("{}{sep}lang={lang}", self.path)
    }

    /// The sections this admin may open.
    pub fn nav(&self) -> Vec<&'static NavItem> {
        NAV.iter()
            .filter(|item| self.role >= item.needs && !(item.every_pool && self.pool.is_some()))
            .collect()
    }

    /// Whether the admin may make changes of `role` (templates hide what they may not do).
    pub fn can(&self, role: &str) -> bool {
        Role::parse(role).is_some_and(|r| self.role >= r)
    }

    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Owner => self.t("所有者", "owner"),
            Role::Admin => self.t("管理员", "admin"),
            Role::Viewer => self.t("只读", "viewer"),
        }
    }
}

/// The console's language, chosen by [`guard`].
#[derive(Clone, Copy, Debug)]
pub struct ConsoleLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for ConsoleLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ConsoleLang>()
            .copied()
            .unwrap_or(ConsoleLang(Lang::of_request(&parts.headers))))
    }
}

/// The signed-in admin of a console request (put there by [`guard`]).
#[derive(Clone)]
pub struct Signed {
    pub session: ConsoleSession,
    pub lang: Lang,
    pub path: String,
    pub dev: bool,
}

impl Signed {
    pub fn actor(&self) -> &Actor {
        &self.session.actor
    }

    /// The layout's view of this request, showing `section`.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            lang: self.lang,
            section,
            username: self.session.username.clone(),
            role: self.session.actor.role,
            pool: self.session.actor.pool.as_ref().map(|p| p.to_string()),
            csrf: self.session.csrf.clone(),
            path: self.path.clone(),
            dev: self.dev,
        }
    }

    /// An error of the management layer as a page in the admin's language.
    pub fn error(&self, e: AppError) -> Response {
        e.into_page(self.lang)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Signed>()
            .cloned()
            .ok_or_else(|| see_other("/admin/sign-in"))
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Signed>().cloned())
    }
}

/// "Delete this?" before a delete: a form that posts to `action`, or back to `back`.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub c: Chrome,
    pub action: String,
    pub back: String,
    /// What is deleted, as the operator knows it.
    pub name: String,
    /// The version seen, so that a delete of something changed meanwhile is refused.
    pub version: i64,
}

impl ConfirmPage {
    pub fn delete(c: Chrome, action: String, back: String, name: String, version: i64) -> Self {
        Self {
            c,
            action,
            back,
            name,
            version,
        }
    }
}

/// What [`guard`] works with.
#[derive(Clone)]
struct Guard {
    state: AppState,
    dev: bool,
}

/// Whether a path is reachable without a session.
fn is_public(path: &str) -> bool {
    path == "/admin/sign-in" || path.starts_with("/admin/set-password/")
}

/// The language, the session and the CSRF check of every console request (see the module
/// documentation).
async fn guard(State(guarded): State<Guard>, req: Request, next: Next) -> Response {
    let Guard { state, dev } = guarded;
    let (mut parts, body) = req.into_parts();
    let jar = CookieJar::from_headers(&parts.headers);
    let requester = match Requester::from_request_parts(&mut parts, &state).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let path = parts.uri.path().to_owned();
    let kept: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "lang")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let here = if kept.is_empty() {
        path.clone()
    } else {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        format!("{path}?{query}")
    };
    let asked = parts
        .uri
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "lang"))
        .map(|(_, v)| v.into_owned())
        .filter(|v| v == "zh" || v == "en");
    let remembered = jar.get(LANG_COOKIE).map(|c| c.value().to_owned());
    let accept = parts
        .headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let (lang, _) = Lang::choose(asked.as_deref().or(remembered.as_deref()), accept);
    parts.extensions.insert(ConsoleLang(lang));

    let token = jar
        .get(session_cookie_name(state.secure()))
        .map(|c| c.value().to_owned());
    let session = match token {
        Some(t) => match state.admin.console_session(&t, &requester.ip).await {
            Ok(s) => s,
            Err(e) => return e.into_page(lang),
        },
        None => None,
    };
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD);
    match &session {
        Some(session) => {
            parts.extensions.insert(Signed {
                session: session.clone(),
                lang,
                path: here,
                dev,
            });
        }
        None if is_public(&path) => {}
        None if unsafe_method => {
            return refused(lang, "the console session has ended; sign in again");
        }
        None => {
            let next = parts.uri.path_and_query().map_or("/admin", |p| p.as_str());
            return see_other(&format!(
                "/admin/sign-in?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            ));
        }
    }

    let req = if unsafe_method {
        let expected = match &session {
            Some(s) => s.csrf.clone(),
            // The sign-in form: the token of the pre-session cookie it was given with.
            None => session::pre_token(&jar).unwrap_or_default(),
        };
        let header_token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return AppError::PayloadTooLarge(format!(
                    "a console form is at most {MAX_FORM_BYTES} bytes"
                ))
                .into_page(lang)
            }
        };
        let form = match form::parse(&parts, bytes.clone()).await {
            Ok(f) => f,
            Err(e) => return e.into_page(lang),
        };
        let sent = header_token.or_else(|| form.get("csrf").map(str::to_owned));
        let good = !expected.is_empty()
            && sent.is_some_and(|s| crate::crypto::constant_time_eq(&s, &expected));
        if !good {
            return refused(
                lang,
                "the form's security token is missing or wrong; reload the page and try again",
            );
        }
        parts.extensions.insert(form);
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };

    let mut res = next.run(req).await;
    if let Some(lang) = asked {
        let cookie = Cookie::build((LANG_COOKIE, lang))
            .path("/admin")
            .http_only(true)
            .secure(state.secure())
            .same_site(SameSite::Strict)
            .max_age(time::Duration::days(365))
            .build();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// `403` as a page: a state-changing request without a valid session or token.
fn refused(lang: Lang, why: &str) -> Response {
    AppError::Forbidden(why.into()).into_page(lang)
}

fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// A page answered with `status`.
pub fn with_status(status: StatusCode, res: Response) -> Response {
    let mut res = res;
    if res.status() == StatusCode::OK {
        *res.status_mut() = status;
    }
    res
}

/// Where an error of the management layer belongs when a form was sent: its fields beside
/// them, anything else above the form; and the status the page is answered with.
pub fn form_error(e: AppError, view: &mut FormView) -> Result<StatusCode, AppError> {
    let status = e.status();
    match e {
        AppError::Fields(fields) => view.add_fields(&fields),
        AppError::Unavailable(_) | AppError::Internal(_) => return Err(e),
        other => view.general = Some(other.message()),
    }
    Ok(status)
}
