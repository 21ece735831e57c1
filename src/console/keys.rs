//! Signing keys per pool (rotate with the algorithm chosen, withdraw a retired key) and the
//! management API keys (create — the key shown once with a copy button —, list with last use,
//! revoke). Owners only change them.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::ops::{pick_pool, ActionPage, Kind, Notice};
use super::{form_error, with_status, Chrome, Form, FormView, Signed};
use crate::admin::signing::KeyInfo;
use crate::admin::Role;
use crate::domain::PoolSlug;
use crate::extract::{Path, Query};
use crate::pages::{page, see_other};
use crate::state::AppState;
use crate::store::admin_keys::ApiKey;
use crate::store::pools::Pool;
use crate::tokens::KeyAlg;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(keys_get))
        .route("/admin/keys/{pool}/rotate", post(rotate_post))
        .route(
            "/admin/keys/{pool}/{kid}/retire",
            get(retire_get).post(retire_post),
        )
        .route("/admin/api-keys", get(api_keys_get).post(api_keys_post))
        .route(
            "/admin/api-keys/{id}/revoke",
            get(revoke_get).post(revoke_post),
        )
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    c: Chrome,
    pools: Vec<Pool>,
    pool: String,
    keys: Vec<KeyInfo>,
    notice: Option<&'static str>,
    form: FormView,
}

#[derive(serde::Deserialize, Default)]
struct KeysQuery {
    pool: Option<String>,
    done: Option<String>,
}

async fn keys_page(
    state: &AppState,
    signed: &Signed,
    asked: Option<&str>,
    notice: Option<&'static str>,
    form: FormView,
) -> Response {
    let pools = match state.admin.list_pools(signed.actor()).await {
        Ok(p) => p,
        Err(e) => return signed.error(e),
    };
    let pool = pick_pool(signed, &pools, asked);
    match state.admin.signing_keys(signed.actor(), &pool).await {
        Ok(keys) => page(&KeysPage {
            c: signed.chrome("keys"),
            pools,
            pool,
            keys,
            notice,
            form,
        }),
        Err(e) => signed.error(e),
    }
}

/// `GET /admin/keys?pool=`
async fn keys_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<KeysQuery>,
) -> Response {
    let notice = match q.done.as_deref() {
        Some("rotated") => Some(signed.lang.pick(
            "已轮换：新密钥立即用于签名，旧密钥在宽限期内继续发布。",
            "Rotated: the new key signs at once; the old one stays published for its grace period.",
        )),
        Some("retired") => Some(signed.lang.pick("已撤下该密钥。", "The key was withdrawn.")),
        _ => None,
    };
    let form = FormView::with(&[("alg", "ES256".into())]);
    keys_page(&state, &signed, q.pool.as_deref(), notice, form).await
}

/// `POST /admin/keys/{pool}/rotate` (`alg`)
async fn rotate_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(pool): Path<String>,
    form: Form,
) -> Response {
    let mut view = form.view();
    let Some(alg) = KeyAlg::parse(&form.text("alg")) else {
        view.add(
            "alg",
            signed.lang.pick(
                "请选择 RS256、ES256 或 EdDSA。",
                "Choose RS256, ES256 or EdDSA.",
            ),
        );
        return with_status(
            StatusCode::BAD_REQUEST,
            keys_page(&state, &signed, Some(&pool), None, view).await,
        );
    };
    match state
        .admin
        .rotate_signing_key(signed.actor(), &pool, alg)
        .await
    {
        Ok(_) => see_other(&format!("/admin/keys?pool={}&done=rotated", enc(&pool))),
        Err(e) => signed.error(e),
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /admin/keys/{pool}/{kid}/retire`: asks first.
async fn retire_get(signed: Signed, Path((pool, kid)): Path<(String, String)>) -> Response {
    page(&ActionPage::new(
        signed.chrome("keys"),
        Kind::RetireKey,
        format!("/admin/keys/{}/{}/retire", enc(&pool), enc(&kid)),
        format!("/admin/keys?pool={}", enc(&pool)),
        format!("{kid} ({pool})"),
    ))
}

/// `POST /admin/keys/{pool}/{kid}/retire`
async fn retire_post(
    State(state): State<AppState>,
    signed: Signed,
    Path((pool, kid)): Path<(String, String)>,
) -> Response {
    match state
        .admin
        .retire_signing_key(signed.actor(), &pool, &kid)
        .await
    {
        Ok(()) => see_other(&format!("/admin/keys?pool={}&done=retired", enc(&pool))),
        Err(e) => signed.error(e),
    }
}

#[derive(Template)]
#[template(path = "console/api_keys.html")]
struct ApiKeysPage {
    c: Chrome,
    pools: Vec<Pool>,
    keys: Vec<ApiKey>,
    /// A key just made: its name and, this once, its secret.
    created: Option<(String, String)>,
    notice: Option<&'static str>,
    form: FormView,
}

async fn api_keys_page(
    state: &AppState,
    signed: &Signed,
    created: Option<(String, String)>,
    notice: Option<&'static str>,
    form: FormView,
) -> Response {
    let keys = match state.admin.list_keys(signed.actor()).await {
        Ok(k) => k,
        Err(e) => return signed.error(e),
    };
    let pools = match state.admin.list_pools(signed.actor()).await {
        Ok(p) => p,
        Err(e) => return signed.error(e),
    };
    page(&ApiKeysPage {
        c: signed.chrome("api-keys"),
        pools,
        keys,
        created,
        notice,
        form,
    })
}

/// `GET /admin/api-keys`
async fn api_keys_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<Notice>,
) -> Response {
    let notice = match q.done.as_deref() {
        Some("revoked") => Some(signed.lang.pick("已吊销该密钥。", "The key was revoked.")),
        _ => None,
    };
    let form = FormView::with(&[("role", "viewer".into())]);
    api_keys_page(&state, &signed, None, notice, form).await
}

/// `POST /admin/api-keys` (`name`, `role`, `pool`): the key is shown on the answer, once.
async fn api_keys_post(State(state): State<AppState>, signed: Signed, form: Form) -> Response {
    let mut view = form.view();
    let role = Role::parse(&form.text("role"));
    let pool_text = form.text("pool");
    let pool = if pool_text.is_empty() {
        Ok(None)
    } else {
        PoolSlug::parse(&pool_text).map(Some)
    };
    let (Some(role), Ok(pool)) = (role, pool) else {
        if role.is_none() {
            view.add("role", signed.lang.pick("请选择角色。", "Choose a role."));
        } else {
            view.add(
                "pool",
                signed.lang.pick("没有这个用户池。", "No such pool."),
            );
        }
        return with_status(
            StatusCode::BAD_REQUEST,
            api_keys_page(&state, &signed, None, None, view).await,
        );
    };
    match state
        .admin
        .create_key(signed.actor(), &form.text("name"), role, pool)
        .await
    {
        Ok(created) => {
            let form = FormView::with(&[("role", "viewer".into())]);
            api_keys_page(
                &state,
                &signed,
                Some((created.key.name, created.secret)),
                None,
                form,
            )
            .await
        }
        Err(crate::error::AppError::InvalidRequest(m)) => {
            view.add("name", m);
            with_status(
                StatusCode::BAD_REQUEST,
                api_keys_page(&state, &signed, None, None, view).await,
            )
        }
        Err(crate::error::AppError::NotFound(m)) => {
            view.add("pool", m);
            with_status(
                StatusCode::BAD_REQUEST,
                api_keys_page(&state, &signed, None, None, view).await,
            )
        }
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => with_status(
                status,
                api_keys_page(&state, &signed, None, None, view).await,
            ),
            Err(e) => signed.error(e),
        },
    }
}

/// `GET /admin/api-keys/{id}/revoke`: asks first.
async fn revoke_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let keys = match state.admin.list_keys(signed.actor()).await {
        Ok(k) => k,
        Err(e) => return signed.error(e),
    };
    let Some(key) = keys.into_iter().find(|k| k.id == id) else {
        return signed.error(crate::error::AppError::NotFound("no such API key".into()));
    };
    page(&ActionPage::new(
        signed.chrome("api-keys"),
        Kind::RevokeApiKey,
        format!("/admin/api-keys/{}/revoke", enc(&id)),
        "/admin/api-keys".into(),
        key.name,
    ))
}

/// `POST /admin/api-keys/{id}/revoke`
async fn revoke_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match state.admin.revoke_key(signed.actor(), &id).await {
        Ok(_) => see_other("/admin/api-keys?done=revoked"),
        Err(e) => signed.error(e),
    }
}
