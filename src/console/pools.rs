//! Pools: list, create, rename, delete (owners; a pool that still holds anything is refused
//! by the management layer, and the page says so).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{form_error, with_status, Chrome, ConfirmPage, Form, FormView, Signed};
use crate::error::AppResult;
use crate::extract::Path;
use crate::pages::{page, see_other};
use crate::state::AppState;
use crate::store::pools::Pool;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/pools", get(pools_get).post(pools_post))
        .route("/admin/pools/new", get(pool_new_get))
        .route("/admin/pools/{slug}", get(pool_get).post(pool_post))
        .route(
            "/admin/pools/{slug}/delete",
            get(pool_delete_get).post(pool_delete_post),
        )
}

#[derive(Template)]
#[template(path = "console/pools.html")]
struct PoolsPage {
    c: Chrome,
    pools: Vec<Pool>,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/pool.html")]
struct PoolPage {
    c: Chrome,
    /// `None` for a new pool.
    pool: Option<Pool>,
    form: FormView,
    saved: bool,
}

#[derive(serde::Deserialize, Default)]
struct Notice {
    done: Option<String>,
}

/// `GET /admin/pools`
async fn pools_get(
    State(state): State<AppState>,
    signed: Signed,
    crate::extract::Query(q): crate::extract::Query<Notice>,
) -> Response {
    match state.admin.list_pools(signed.actor()).await {
        Ok(pools) => page(&PoolsPage {
            notice: match q.done.as_deref() {
                Some("deleted") => {
                    Some(signed.lang.pick("用户池已删除。", "The pool was deleted."))
                }
                _ => None,
            },
            c: signed.chrome("pools"),
            pools,
        }),
        Err(e) => signed.error(e),
    }
}

/// `GET /admin/pools/new`
async fn pool_new_get(signed: Signed) -> Response {
    page(&PoolPage {
        c: signed.chrome("pools"),
        pool: None,
        form: FormView::default(),
        saved: false,
    })
}

/// `POST /admin/pools` (`slug`, `name`)
async fn pools_post(State(state): State<AppState>, signed: Signed, form: Form) -> Response {
    let mut view = form.view();
    let slug = form.text("slug");
    let name = form.text("name");
    match state.admin.create_pool(signed.actor(), &slug, &name).await {
        Ok(pool) => see_other(&format!("/admin/pools/{}?saved=1", pool.slug)),
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => with_status(
                status,
                page(&PoolPage {
                    c: signed.chrome("pools"),
                    pool: None,
                    form: view,
                    saved: false,
                }),
            ),
            Err(e) => signed.error(e),
        },
    }
}

#[derive(serde::Deserialize, Default)]
struct Saved {
    saved: Option<String>,
}

/// `GET /admin/pools/{slug}`
async fn pool_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(slug): Path<String>,
    crate::extract::Query(q): crate::extract::Query<Saved>,
) -> Response {
    match state.admin.pool(signed.actor(), &slug).await {
        Ok(pool) => page(&PoolPage {
            c: signed.chrome("pools"),
            form: FormView::with(&[
                ("name", pool.name.clone()),
                ("version", pool.version.to_string()),
            ]),
            pool: Some(pool),
            saved: q.saved.is_some(),
        }),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/pools/{slug}` (`name`, `version`): rename.
async fn pool_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(slug): Path<String>,
    form: Form,
) -> Response {
    let mut view = form.view();
    let version = form.text("version").parse().ok();
    let result = state
        .admin
        .rename_pool(signed.actor(), &slug, &form.text("name"), version)
        .await;
    match result {
        Ok(pool) => see_other(&format!("/admin/pools/{}?saved=1", pool.slug)),
        Err(e) => match (
            form_error(e, &mut view),
            state.admin.pool(signed.actor(), &slug).await,
        ) {
            (Ok(status), Ok(pool)) => with_status(
                status,
                page(&PoolPage {
                    c: signed.chrome("pools"),
                    pool: Some(pool),
                    form: view,
                    saved: false,
                }),
            ),
            (Err(e), _) | (_, Err(e)) => signed.error(e),
        },
    }
}

/// `GET /admin/pools/{slug}/delete`: asks first.
async fn pool_delete_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(slug): Path<String>,
) -> Response {
    match state.admin.pool(signed.actor(), &slug).await {
        Ok(pool) => page(&ConfirmPage::delete(
            signed.chrome("pools"),
            format!("/admin/pools/{}/delete", pool.slug),
            format!("/admin/pools/{}", pool.slug),
            pool.name,
            pool.version,
        )),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/pools/{slug}/delete` (`version`)
async fn pool_delete_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(slug): Path<String>,
    form: Form,
) -> Response {
    let version = form.text("version").parse().ok();
    match delete(&state, &signed, &slug, version).await {
        Ok(()) => see_other("/admin/pools?done=deleted"),
        Err(e) => signed.error(e),
    }
}

async fn delete(
    state: &AppState,
    signed: &Signed,
    slug: &str,
    version: Option<i64>,
) -> AppResult<()> {
    state.admin.delete_pool(signed.actor(), slug, version).await
}
