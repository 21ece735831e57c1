//! Users: search (id, nickname, phone, openid, unionid) and list a pool a page at a time; a
//! user's page with identities, recent logins, sessions and grants; block / unblock, sign out
//! everywhere, delete and merge — each a form, the destructive ones asked first.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::ops::{pick_pool, ActionPage, Kind, Notice};
use super::{form_error, with_status, Chrome, Form, FormView, Signed};
use crate::admin::users::UserDetail;
use crate::admin::PageRequest;
use crate::extract::{Path, Query};
use crate::pages::{page, see_other};
use crate::state::AppState;
use crate::store::pools::Pool;
use crate::store::users::User;

/// Users per page of the list.
const PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users_get))
        .route("/admin/users/{id}", get(user_get))
        .route("/admin/users/{id}/block", get(block_get).post(block_post))
        .route(
            "/admin/users/{id}/unblock",
            axum::routing::post(unblock_post),
        )
        .route(
            "/admin/users/{id}/sign-out",
            get(sign_out_get).post(sign_out_post),
        )
        .route(
            "/admin/users/{id}/delete",
            get(delete_get).post(delete_post),
        )
        .route("/admin/users/{id}/merge", get(merge_get).post(merge_post))
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    c: Chrome,
    pools: Vec<Pool>,
    pool: String,
    q: String,
    users: Vec<User>,
    /// The link to the next page, when there is one.
    next: Option<String>,
    /// Whether this is a later page (offer the first again).
    later: bool,
    error: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    pool: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `GET /admin/users?pool=&q=&cursor=`
async fn users_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let pools = match state.admin.list_pools(signed.actor()).await {
        Ok(p) => p,
        Err(e) => return signed.error(e),
    };
    let pool = pick_pool(&signed, &pools, q.pool.as_deref());
    let search = q.q.unwrap_or_default().trim().to_owned();
    let request = PageRequest {
        limit: Some(PAGE),
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    };
    let prefix = Some(search.as_str()).filter(|s| !s.is_empty());
    let (users, next, error) = match state
        .admin
        .list_users(signed.actor(), &pool, prefix, &request)
        .await
    {
        Ok(found) => (found.items, found.next_cursor, None),
        Err(e @ crate::error::AppError::InvalidRequest(_)) => (Vec::new(), None, Some(e.message())),
        Err(e) => return signed.error(e),
    };
    page(&UsersPage {
        next: next.map(|cursor| {
            format!(
                "/admin/users?pool={}&q={}&cursor={}",
                encode(&pool),
                encode(&search),
                encode(&cursor)
            )
        }),
        later: request.cursor.is_some(),
        c: signed.chrome("users"),
        pools,
        pool,
        q: search,
        users,
        error,
    })
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    c: Chrome,
    d: UserDetail,
    notice: Option<&'static str>,
}

/// `GET /admin/users/{id}`
async fn user_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Response {
    match state.admin.user(signed.actor(), &id).await {
        Ok(d) => page(&UserPage {
            notice: match q.done.as_deref() {
                Some("blocked") => Some(signed.lang.pick(
                    "已封禁该用户，并结束其所有会话。",
                    "The user is blocked and signed out everywhere.",
                )),
                Some("unblocked") => {
                    Some(signed.lang.pick("已解除封禁。", "The user is unblocked."))
                }
                Some("signed-out") => Some(signed.lang.pick(
                    "已结束该用户的所有会话和令牌。",
                    "Every session and token of the user has ended.",
                )),
                Some("merged") => Some(signed.lang.pick("已合并。", "The users were merged.")),
                _ => None,
            },
            c: signed.chrome("users"),
            d,
        }),
        Err(e) => signed.error(e),
    }
}

/// The confirmation page of an action on user `id`.
async fn ask(state: &AppState, signed: &Signed, id: &str, what: Kind) -> Response {
    match state.admin.user(signed.actor(), id).await {
        Ok(d) => page(&ActionPage::new(
            signed.chrome("users"),
            what,
            format!("/admin/users/{}/{}", encode_path(id), what.path()),
            format!("/admin/users/{}", encode_path(id)),
            display_name(&d.user),
        )),
        Err(e) => signed.error(e),
    }
}

fn encode_path(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// How the console names a user: nickname and id.
fn display_name(user: &User) -> String {
    match &user.nickname {
        Some(n) => format!("{n} ({})", user.id),
        None => user.id.clone(),
    }
}

async fn block_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    ask(&state, &signed, &id, Kind::Block).await
}

async fn sign_out_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    ask(&state, &signed, &id, Kind::SignOut).await
}

async fn delete_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    ask(&state, &signed, &id, Kind::Delete).await
}

/// `POST /admin/users/{id}/block`
async fn block_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match state.admin.set_blocked(signed.actor(), &id, true).await {
        Ok(_) => see_other(&format!("/admin/users/{}?done=blocked", encode_path(&id))),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/users/{id}/unblock`: not destructive, so not asked first.
async fn unblock_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match state.admin.set_blocked(signed.actor(), &id, false).await {
        Ok(_) => see_other(&format!("/admin/users/{}?done=unblocked", encode_path(&id))),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/users/{id}/sign-out`
async fn sign_out_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match state.admin.sign_out_user(signed.actor(), &id).await {
        Ok(_) => see_other(&format!(
            "/admin/users/{}?done=signed-out",
            encode_path(&id)
        )),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/users/{id}/delete`
async fn delete_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let pool = match state.admin.user(signed.actor(), &id).await {
        Ok(d) => d.user.pool,
        Err(e) => return signed.error(e),
    };
    match state.admin.delete_user(signed.actor(), &id).await {
        Ok(()) => see_other(&format!("/admin/users?pool={}&done=deleted", encode(&pool))),
        Err(e) => signed.error(e),
    }
}

#[derive(Template)]
#[template(path = "console/merge.html")]
struct MergePage {
    c: Chrome,
    kept: User,
    /// The user to be absorbed, once chosen: the page then asks for confirmation.
    absorbed: Option<User>,
    form: FormView,
}

/// `GET /admin/users/{id}/merge`: choose the user to absorb.
async fn merge_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match state.admin.user(signed.actor(), &id).await {
        Ok(d) => page(&MergePage {
            c: signed.chrome("users"),
            kept: d.user,
            absorbed: None,
            form: FormView::default(),
        }),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/users/{id}/merge` (`absorbed`, and `confirm=1` the second time): first
/// shows who would be merged, then merges.
async fn merge_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let kept = match state.admin.user(signed.actor(), &id).await {
        Ok(d) => d.user,
        Err(e) => return signed.error(e),
    };
    let mut view = form.view();
    let other = form.text("absorbed");
    let back = |view: FormView, status| {
        with_status(
            status,
            page(&MergePage {
                c: signed.chrome("users"),
                kept: kept.clone(),
                absorbed: None,
                form: view,
            }),
        )
    };
    if other.is_empty() {
        view.add(
            "absorbed",
            signed.lang.pick(
                "请填写要并入的用户 ID。",
                "Enter the id of the user to merge in.",
            ),
        );
        return back(view, axum::http::StatusCode::BAD_REQUEST);
    }
    let absorbed = match state.admin.user(signed.actor(), &other).await {
        Ok(d) => d.user,
        Err(crate::error::AppError::NotFound(_)) => {
            view.add(
                "absorbed",
                signed.lang.pick("没有这个用户。", "No such user."),
            );
            return back(view, axum::http::StatusCode::BAD_REQUEST);
        }
        Err(e) => return signed.error(e),
    };
    if !form.checked("confirm") {
        return page(&MergePage {
            c: signed.chrome("users"),
            kept,
            absorbed: Some(absorbed),
            form: view,
        });
    }
    match state.admin.merge_users(signed.actor(), &id, &other).await {
        Ok(_) => see_other(&format!("/admin/users/{}?done=merged", encode_path(&id))),
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => {
                let _ = absorbed;
                back(view, status)
            }
            Err(e) => signed.error(e),
        },
    }
}
