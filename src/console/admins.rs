//! Admin accounts (owners of every pool): list, invite, disable / enable, reset, role and
//! scope, each account's sign-in history; and the set-password page an invitation or reset
//! link opens, reached without a session.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::ops::{ActionPage, Kind, Notice};
use super::{form_error, with_status, Chrome, ConsoleLang, Form, FormView, Signed};
use crate::admin::admins::{Invitation, NewAdmin};
use crate::error::AppError;
use crate::extract::{Path, Query};
use crate::pages::{page, see_other, Lang};
use crate::state::AppState;
use crate::store::admin_accounts::Account;
use crate::store::admins::SignIn;
use crate::store::pools::Pool;

/// Sign-in attempts shown per account.
const HISTORY: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/admins", get(admins_get).post(admins_post))
        .route("/admin/admins/{username}", get(admin_get).post(admin_post))
        .route(
            "/admin/admins/{username}/disable",
            get(disable_get).post(disable_post),
        )
        .route("/admin/admins/{username}/enable", post(enable_post))
        .route(
            "/admin/admins/{username}/reset",
            get(reset_get).post(reset_post),
        )
        .route(
            "/admin/set-password/{token}",
            get(set_password_get).post(set_password_post),
        )
}

#[derive(Template)]
#[template(path = "console/admins.html")]
struct AdminsPage {
    c: Chrome,
    admins: Vec<Account>,
    pools: Vec<Pool>,
    form: FormView,
    /// An invitation just made: the account and its link, shown once.
    invited: Option<(String, String)>,
}

/// The absolute link of a set-password token.
fn link(state: &AppState, token: &str) -> String {
    let base = state.config.public_url.as_str().trim_end_matches('/');
    format!("{base}/admin/set-password/{token}")
}

async fn admins_page(
    state: &AppState,
    signed: &Signed,
    form: FormView,
    invited: Option<(String, String)>,
) -> Response {
    let admins = match state.admin.list_admins(signed.actor()).await {
        Ok(a) => a,
        Err(e) => return signed.error(e),
    };
    let pools = match state.admin.list_pools(signed.actor()).await {
        Ok(p) => p,
        Err(e) => return signed.error(e),
    };
    page(&AdminsPage {
        c: signed.chrome("admins"),
        admins,
        pools,
        form,
        invited,
    })
}

/// `GET /admin/admins`
async fn admins_get(State(state): State<AppState>, signed: Signed) -> Response {
    let form = FormView::with(&[("role", "viewer".into())]);
    admins_page(&state, &signed, form, None).await
}

/// `POST /admin/admins` (`username`, `role`, `pool`): invites; the link is shown once.
async fn admins_post(State(state): State<AppState>, signed: Signed, form: Form) -> Response {
    let mut view = form.view();
    let new = NewAdmin {
        username: form.text("username"),
        role: form.text("role"),
        pool: Some(form.text("pool")),
    };
    match state.admin.invite_admin(signed.actor(), new).await {
        Ok(Invitation { account, token }) => {
            let form = FormView::with(&[("role", "viewer".into())]);
            let invited = Some((account.username, link(&state, &token)));
            admins_page(&state, &signed, form, invited).await
        }
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => with_status(status, admins_page(&state, &signed, view, None).await),
            Err(e) => signed.error(e),
        },
    }
}

#[derive(Template)]
#[template(path = "console/admin.html")]
struct AdminPage {
    c: Chrome,
    account: Account,
    pools: Vec<Pool>,
    history: Vec<SignIn>,
    form: FormView,
    notice: Option<&'static str>,
    /// A reset link just made, shown once.
    reset_link: Option<String>,
}

async fn admin_page(
    state: &AppState,
    signed: &Signed,
    username: &str,
    form: Option<FormView>,
    notice: Option<&'static str>,
    reset_link: Option<String>,
) -> Response {
    let account = match state.admin.admin_account(signed.actor(), username).await {
        Ok(a) => a,
        Err(e) => return signed.error(e),
    };
    let history = match state
        .admin
        .sign_in_history(signed.actor(), username, HISTORY)
        .await
    {
        Ok(h) => h,
        Err(e) => return signed.error(e),
    };
    let pools = match state.admin.list_pools(signed.actor()).await {
        Ok(p) => p,
        Err(e) => return signed.error(e),
    };
    let form = form.unwrap_or_else(|| {
        FormView::with(&[
            ("role", account.role.clone()),
            ("pool", account.pool.clone().unwrap_or_default()),
        ])
    });
    page(&AdminPage {
        c: signed.chrome("admins"),
        account,
        pools,
        history,
        form,
        notice,
        reset_link,
    })
}

/// `GET /admin/admins/{username}`
async fn admin_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    Query(q): Query<Notice>,
) -> Response {
    let notice = match q.done.as_deref() {
        Some("saved") => Some(signed.lang.pick("已保存。", "Saved.")),
        Some("disabled") => Some(signed.lang.pick(
            "已停用，其控制台会话已结束。",
            "Disabled; their console sessions have ended.",
        )),
        Some("enabled") => Some(signed.lang.pick("已重新启用。", "Enabled again.")),
        _ => None,
    };
    admin_page(&state, &signed, &username, None, notice, None).await
}

/// `POST /admin/admins/{username}` (`role`, `pool`): a new role and scope.
async fn admin_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    form: Form,
) -> Response {
    let mut view = form.view();
    let pool = form.text("pool");
    match state
        .admin
        .change_admin_role(
            signed.actor(),
            &username,
            &form.text("role"),
            Some(pool.as_str()),
        )
        .await
    {
        Ok(_) => see_other(&format!("/admin/admins/{}?done=saved", enc(&username))),
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => with_status(
                status,
                admin_page(&state, &signed, &username, Some(view), None, None).await,
            ),
            Err(e) => signed.error(e),
        },
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn ask(state: &AppState, signed: &Signed, username: &str, kind: Kind) -> Response {
    match state.admin.admin_account(signed.actor(), username).await {
        Ok(a) => page(&ActionPage::new(
            signed.chrome("admins"),
            kind,
            format!("/admin/admins/{}/{}", enc(&a.username), kind.path()),
            format!("/admin/admins/{}", enc(&a.username)),
            a.username,
        )),
        Err(e) => signed.error(e),
    }
}

async fn disable_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
) -> Response {
    ask(&state, &signed, &username, Kind::DisableAdmin).await
}

async fn reset_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
) -> Response {
    ask(&state, &signed, &username, Kind::ResetAdmin).await
}

/// A refusal of the management layer shown on the account's page, beside nothing.
async fn refused_here(state: &AppState, signed: &Signed, username: &str, e: AppError) -> Response {
    let mut view = FormView::default();
    match form_error(e, &mut view) {
        Ok(status) => with_status(
            status,
            admin_page(state, signed, username, Some(view), None, None).await,
        ),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/admins/{username}/disable`
async fn disable_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
) -> Response {
    match state
        .admin
        .set_admin_disabled(signed.actor(), &username, true)
        .await
    {
        Ok(_) => see_other(&format!("/admin/admins/{}?done=disabled", enc(&username))),
        Err(e) => refused_here(&state, &signed, &username, e).await,
    }
}

/// `POST /admin/admins/{username}/enable`
async fn enable_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
) -> Response {
    match state
        .admin
        .set_admin_disabled(signed.actor(), &username, false)
        .await
    {
        Ok(_) => see_other(&format!("/admin/admins/{}?done=enabled", enc(&username))),
        Err(e) => refused_here(&state, &signed, &username, e).await,
    }
}

/// `POST /admin/admins/{username}/reset`: the new link is shown once.
async fn reset_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
) -> Response {
    match state.admin.reset_admin(signed.actor(), &username).await {
        Ok(Invitation { token, .. }) => {
            let link = link(&state, &token);
            admin_page(&state, &signed, &username, None, None, Some(link)).await
        }
        Err(e) => refused_here(&state, &signed, &username, e).await,
    }
}

#[derive(Template)]
#[template(path = "console/set_password.html")]
struct SetPasswordPage {
    lang: Lang,
    /// The pre-session token the form must carry (the guard checks it like the sign-in's).
    csrf: String,
    account: Option<Account>,
    action: String,
    form: FormView,
    error: Option<String>,
}

impl SetPasswordPage {
    fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(zh, en)
    }
}

/// The set-password form carries no session, so its CSRF check is the token in the path:
/// only the holder of the link can post it, and it is spent at once.
async fn set_password_get(
    State(state): State<AppState>,
    jar: CookieJar,
    ConsoleLang(lang): ConsoleLang,
    Path(token): Path<String>,
) -> Response {
    let (account, error) = match state.admin.admin_for_setup_token(&token).await {
        Ok(a) => (Some(a), None),
        Err(e @ AppError::NotFound(_)) => (None, Some(e.message())),
        Err(e) => return e.into_page(lang),
    };
    let status = if account.is_some() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::NOT_FOUND
    };
    let csrf = crate::crypto::random_token(24);
    let cookie = Cookie::build((super::session::PRE_COOKIE, csrf.clone()))
        .path("/admin")
        .http_only(true)
        .secure(state.secure())
        .same_site(SameSite::Strict)
        .max_age(time::Duration::hours(1))
        .build();
    let res = with_status(
        status,
        page(&SetPasswordPage {
            lang,
            csrf,
            account,
            action: format!("/admin/set-password/{}", enc(&token)),
            form: FormView::default(),
            error,
        }),
    );
    (jar.add(cookie), res).into_response()
}

/// `POST /admin/set-password/{token}` (`password`, `confirm`)
async fn set_password_post(
    State(state): State<AppState>,
    jar: CookieJar,
    ConsoleLang(lang): ConsoleLang,
    requester: crate::extract::Requester,
    Path(token): Path<String>,
    form: Form,
) -> Response {
    let account = match state.admin.admin_for_setup_token(&token).await {
        Ok(a) => a,
        Err(e) => return e.into_page(lang),
    };
    let mut view = FormView::default();
    let password = form.get("password").unwrap_or("").to_owned();
    let again = form.get("confirm").unwrap_or("");
    let back = |view: FormView, status| {
        with_status(
            status,
            page(&SetPasswordPage {
                lang,
                csrf: super::session::pre_token(&jar).unwrap_or_default(),
                account: Some(account.clone()),
                action: format!("/admin/set-password/{}", enc(&token)),
                form: view,
                error: None,
            }),
        )
    };
    if password != again {
        view.add(
            "confirm",
            lang.pick("两次输入的密码不一致。", "The two passwords differ."),
        );
        return back(view, axum::http::StatusCode::BAD_REQUEST);
    }
    match state
        .admin
        .set_admin_password(&token, &password, &requester.ip)
        .await
    {
        Ok(_) => see_other("/admin/sign-in?done=password"),
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => back(view, status),
            Err(e) => e.into_page(lang),
        },
    }
}
