//! The management REST API, `/api/admin/v1`: JSON over the management layer (`admin`), with
//! API keys as bearer tokens.
//!
//! Conventions: `snake_case` JSON and the native error envelope (a form's errors add
//! `fields`); lists take `?limit=&cursor=` and answer `{"items", "next_cursor"}` in a stable
//! order; a single object carries an `ETag`, and a change sent with `If-Match` is refused with
//! `412 precondition_failed` when the object changed since (RFC 9110 §13.1.1). Nothing here is
//! cached and no response carries a secret, except the client secret or API key a create or
//! rotate call returns once.

mod views;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use crate::admin::{self, Actor, PageRequest, Role};
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult};
use crate::extract::{bearer, Json, Path, Query, Requester};
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::audit::Filter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/v1/pools", get(pools_get).post(pools_post))
        .route(
            "/api/admin/v1/pools/{slug}",
            get(pool_get).patch(pool_patch).delete(pool_delete),
        )
        .route(
            "/api/admin/v1/pools/{slug}/users",
            get(users_get).post(users_post),
        )
        .route(
            "/api/admin/v1/pools/{slug}/users/import",
            post(users_import_post),
        )
        .route(
            "/api/admin/v1/pools/{slug}/signing-keys",
            get(signing_keys_get).post(signing_keys_post),
        )
        .route(
            "/api/admin/v1/pools/{slug}/signing-keys/{kid}",
            axum::routing::delete(signing_key_delete),
        )
        .route(
            "/api/admin/v1/miniprograms",
            get(miniprograms_get).post(miniprograms_post),
        )
        .route(
            "/api/admin/v1/miniprograms/{appid}",
            get(miniprogram_get)
                .patch(miniprogram_patch)
                .delete(miniprogram_delete),
        )
        .route(
            "/api/admin/v1/miniprograms/{appid}/check",
            post(miniprogram_check_post),
        )
        .route(
            "/api/admin/v1/miniprograms/{appid}/diagnostics",
            get(miniprogram_diagnostics_get),
        )
        .route("/api/admin/v1/apps", get(apps_get).post(apps_post))
        .route(
            "/api/admin/v1/apps/{client_id}",
            get(app_get).patch(app_patch).delete(app_delete),
        )
        .route(
            "/api/admin/v1/apps/{client_id}/secret",
            post(app_secret_post),
        )
        .route("/api/admin/v1/apps/{client_id}/funnel", get(app_funnel_get))
        .route(
            "/api/admin/v1/apps/{client_id}/logo",
            axum::routing::put(app_logo_put)
                .delete(app_logo_delete)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::qr::logo::MAX_LOGO_BYTES + 1,
                )),
        )
        .route(
            "/api/admin/v1/users/{id}",
            get(user_get).delete(user_delete),
        )
        .route("/api/admin/v1/users/{id}/block", post(user_block_post))
        .route("/api/admin/v1/users/{id}/unblock", post(user_unblock_post))
        .route(
            "/api/admin/v1/users/{id}/sign-out",
            post(user_sign_out_post),
        )
        .route("/api/admin/v1/users/{id}/merge", post(user_merge_post))
        .route("/api/admin/v1/audit", get(audit_get))
        .route("/api/admin/v1/audit/export", get(audit_export_get))
        .route("/api/admin/v1/keys", get(keys_get).post(keys_post))
        .route("/api/admin/v1/keys/{id}", axum::routing::delete(key_delete))
}

/// The caller of a management route: the actor its API key stands for. A missing or bad key
/// is `401` (audited); an address that keeps failing gets `429`.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let requester = Requester::from_request_parts(parts, state).await?;
        let refused = match bearer(&parts.headers) {
            None => {
                AppError::Unauthorized("an API key is required: Authorization: Bearer sgk_…".into())
            }
            Some(key) => match state.admin.authenticate(key, &requester.ip).await {
                Ok(actor) => return Ok(Caller(actor)),
                Err(e @ AppError::Unauthorized(_)) => e,
                Err(e) => return Err(e),
            },
        };
        state
            .admin
            .record_refusal(None, &requester.ip, &refused.message())
            .await;
        state
            .limiter
            .check(Limit::AdminAuthFailures, &requester.ip)
            .await?;
        Err(refused)
    }
}

/// The version an `If-Match` names; `*` (or none) is whatever is current. A value that names
/// no version of ours can match nothing.
struct IfMatch(Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let value = value.to_str().unwrap_or("").trim();
        if value == "*" {
            return Ok(IfMatch(None));
        }
        admin::parse_etag(value)
            .map(|v| IfMatch(Some(v)))
            .ok_or_else(admin::stale)
    }
}

/// A JSON answer that is never cached, with the object's `ETag` when it has a version.
fn respond(status: StatusCode, version: Option<i64>, body: serde_json::Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(tag) = version.and_then(|v| HeaderValue::from_str(&admin::etag(v)).ok()) {
        headers.insert(header::ETAG, tag);
    }
    res
}

fn ok(body: serde_json::Value) -> Response {
    respond(StatusCode::OK, None, body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

impl ListQuery {
    fn page(self) -> PageRequest {
        PageRequest {
            limit: self.limit,
            cursor: self.cursor,
        }
    }
}

// ---- pools

async fn pools_get(State(state): State<AppState>, Caller(actor): Caller) -> AppResult<Response> {
    let pools = state.admin.list_pools(&actor).await?;
    let items: Vec<_> = pools.iter().map(views::pool).collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPool {
    slug: String,
    name: String,
}

async fn pools_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Json(body): Json<NewPool>,
) -> AppResult<Response> {
    let pool = state
        .admin
        .create_pool(&actor, &body.slug, &body.name)
        .await?;
    Ok(respond(
        StatusCode::CREATED,
        Some(pool.version),
        views::pool(&pool),
    ))
}

async fn pool_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
) -> AppResult<Response> {
    let pool = state.admin.pool(&actor, &slug).await?;
    Ok(respond(
        StatusCode::OK,
        Some(pool.version),
        views::pool(&pool),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolChange {
    name: String,
}

async fn pool_patch(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    IfMatch(version): IfMatch,
    Json(body): Json<PoolChange>,
) -> AppResult<Response> {
    let pool = state
        .admin
        .rename_pool(&actor, &slug, &body.name, version)
        .await?;
    Ok(respond(
        StatusCode::OK,
        Some(pool.version),
        views::pool(&pool),
    ))
}

async fn pool_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    state.admin.delete_pool(&actor, &slug, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- apps

async fn apps_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    let page = state.admin.list_apps(&actor, &q.page()).await?;
    let items: Vec<_> = page.items.iter().map(views::app).collect();
    Ok(ok(
        json!({ "items": items, "next_cursor": page.next_cursor }),
    ))
}

async fn apps_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Json(body): Json<admin::apps::NewApp>,
) -> AppResult<Response> {
    let made = state.admin.create_app(&actor, body).await?;
    Ok(respond(
        StatusCode::CREATED,
        Some(made.app.version),
        views::app_with_secret(&made),
    ))
}

async fn app_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
) -> AppResult<Response> {
    let app = state.admin.app(&actor, &client_id).await?;
    Ok(respond(StatusCode::OK, Some(app.version), views::app(&app)))
}

async fn app_patch(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    IfMatch(version): IfMatch,
    Json(body): Json<admin::apps::AppChange>,
) -> AppResult<Response> {
    let app = state
        .admin
        .update_app(&actor, &client_id, body, version)
        .await?;
    Ok(respond(StatusCode::OK, Some(app.version), views::app(&app)))
}

async fn app_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    state.admin.delete_app(&actor, &client_id, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /apps/{client_id}/logo` with the image as the body (`Content-Type: image/png`,
/// `image/jpeg`, `image/webp` or `image/svg+xml`, at most 1 MiB).
async fn app_logo_put(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    IfMatch(version): IfMatch,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> AppResult<Response> {
    let image = body.map_err(|_| {
        AppError::PayloadTooLarge(format!(
            "a logo is at most {} bytes",
            crate::qr::logo::MAX_LOGO_BYTES
        ))
    })?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !["image/png", "image/jpeg", "image/webp", "image/svg+xml"]
        .iter()
        .any(|t| kind.starts_with(t))
    {
        return Err(AppError::invalid(
            "send the logo as image/png, image/jpeg, image/webp or image/svg+xml",
        ));
    }
    let app = state
        .admin
        .set_logo(&actor, &client_id, image.to_vec(), version)
        .await?;
    Ok(respond(StatusCode::OK, Some(app.version), views::app(&app)))
}

/// `DELETE /apps/{client_id}/logo`: the app shows no logo.
async fn app_logo_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    let change = admin::apps::AppChange {
        logo: Some(None),
        ..Default::default()
    };
    let app = state
        .admin
        .update_app(&actor, &client_id, change, version)
        .await?;
    Ok(respond(StatusCode::OK, Some(app.version), views::app(&app)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunnelQuery {
    /// `hour` (default) or `day`.
    bucket: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /apps/{client_id}/funnel`: created → scanned → confirmed → exchanged per bucket.
async fn app_funnel_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    Query(q): Query<FunnelQuery>,
) -> AppResult<Response> {
    let bucket = match q.bucket.as_deref() {
        None | Some("hour") => crate::funnel::Bucket::Hour,
        Some("day") => crate::funnel::Bucket::Day,
        Some(_) => return Err(AppError::invalid("bucket must be hour or day")),
    };
    let rows = state
        .admin
        .funnel(
            &actor,
            &client_id,
            bucket,
            instant("since", q.since.as_deref())?,
            instant("until", q.until.as_deref())?,
        )
        .await?;
    let items: Vec<_> = rows.iter().map(views::funnel_row).collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

/// `POST /apps/{client_id}/secret`: a new client secret, shown once.
async fn app_secret_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    let made = state
        .admin
        .rotate_secret(&actor, &client_id, version)
        .await?;
    Ok(respond(
        StatusCode::OK,
        Some(made.app.version),
        views::app_with_secret(&made),
    ))
}

// ---- Mini Programs

async fn miniprograms_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
) -> AppResult<Response> {
    let mps = state.admin.list_miniprograms(&actor).await?;
    let items: Vec<_> = mps.iter().map(views::miniprogram).collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

async fn miniprograms_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Json(body): Json<admin::miniprograms::NewMiniProgram>,
) -> AppResult<Response> {
    let mp = state.admin.create_miniprogram(&actor, body).await?;
    Ok(respond(
        StatusCode::CREATED,
        Some(mp.version),
        views::miniprogram(&mp),
    ))
}

async fn miniprogram_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
) -> AppResult<Response> {
    let mp = state.admin.miniprogram(&actor, &appid).await?;
    Ok(respond(
        StatusCode::OK,
        Some(mp.version),
        views::miniprogram(&mp),
    ))
}

async fn miniprogram_patch(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
    IfMatch(version): IfMatch,
    Json(body): Json<admin::miniprograms::MiniProgramChange>,
) -> AppResult<Response> {
    let mp = state
        .admin
        .update_miniprogram(&actor, &appid, body, version)
        .await?;
    Ok(respond(
        StatusCode::OK,
        Some(mp.version),
        views::miniprogram(&mp),
    ))
}

async fn miniprogram_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    state
        .admin
        .delete_miniprogram(&actor, &appid, version)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /miniprograms/{appid}/check`: whether WeChat accepts the stored credentials now.
async fn miniprogram_check_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
) -> AppResult<Response> {
    let check = state.admin.check_miniprogram(&actor, &appid).await?;
    Ok(ok(json!(check)))
}

async fn miniprogram_diagnostics_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
) -> AppResult<Response> {
    let diagnostics = state.admin.miniprogram_diagnostics(&actor, &appid).await?;
    Ok(ok(json!(diagnostics)))
}

// ---- signing keys

async fn signing_keys_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
) -> AppResult<Response> {
    let keys = state.admin.signing_keys(&actor, &slug).await?;
    let items: Vec<_> = keys.iter().map(views::signing_key).collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    #[serde(default = "default_alg")]
    alg: String,
}

fn default_alg() -> String {
    "RS256".into()
}

/// `POST /pools/{slug}/signing-keys {"alg"}`: rotate, as `scangate keys rotate` does.
async fn signing_keys_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    Json(body): Json<Rotation>,
) -> AppResult<Response> {
    let alg = crate::tokens::KeyAlg::parse(&body.alg)
        .ok_or_else(|| AppError::invalid("alg must be RS256, ES256 or EdDSA"))?;
    let key = state.admin.rotate_signing_key(&actor, &slug, alg).await?;
    Ok(respond(StatusCode::CREATED, None, views::signing_key(&key)))
}

/// `DELETE /pools/{slug}/signing-keys/{kid}`: withdraw a retired key from the JWKS now.
async fn signing_key_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((slug, kid)): Path<(String, String)>,
) -> AppResult<Response> {
    state.admin.retire_signing_key(&actor, &slug, &kid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- users

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn users_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    Query(q): Query<UsersQuery>,
) -> AppResult<Response> {
    let page = PageRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    let page = state
        .admin
        .list_users(&actor, &slug, q.q.as_deref(), &page)
        .await?;
    let items: Vec<_> = page.items.iter().map(views::user).collect();
    Ok(ok(
        json!({ "items": items, "next_cursor": page.next_cursor }),
    ))
}

/// `POST /pools/{slug}/users`: provision a person before their first scan.
async fn users_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    Json(body): Json<admin::users::NewUser>,
) -> AppResult<Response> {
    let detail = state.admin.provision_user(&actor, &slug, &body).await?;
    Ok(respond(
        StatusCode::CREATED,
        None,
        views::user_detail(&detail),
    ))
}

/// `POST /pools/{slug}/users/import`: one user per JSON line (`application/x-ndjson`).
async fn users_import_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    body: String,
) -> AppResult<Response> {
    let imported = state.admin.import_users(&actor, &slug, &body).await?;
    Ok(ok(json!(imported)))
}

async fn user_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let detail = state.admin.user(&actor, &id).await?;
    Ok(ok(views::user_detail(&detail)))
}

async fn user_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    state.admin.delete_user(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Merge {
    /// The user to absorb into the one in the path.
    absorb: String,
}

/// `POST /users/{id}/merge {"absorb"}`.
async fn user_merge_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Json(body): Json<Merge>,
) -> AppResult<Response> {
    let detail = state.admin.merge_users(&actor, &id, &body.absorb).await?;
    Ok(ok(views::user_detail(&detail)))
}

async fn user_block_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let detail = state.admin.set_blocked(&actor, &id, true).await?;
    Ok(ok(views::user_detail(&detail)))
}

async fn user_unblock_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let detail = state.admin.set_blocked(&actor, &id, false).await?;
    Ok(ok(views::user_detail(&detail)))
}

async fn user_sign_out_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let revoked = state.admin.sign_out_user(&actor, &id).await?;
    Ok(ok(json!({ "grants_revoked": revoked })))
}

// ---- audit

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    pool: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    /// RFC 3339.
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn instant(name: &str, value: Option<&str>) -> AppResult<Option<i64>> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| AppError::invalid(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

async fn audit_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    let filter = Filter {
        pool: q.pool.as_deref(),
        actor: q.actor.as_deref(),
        action: q.action.as_deref(),
        subject: q.subject.as_deref(),
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
    };
    let page = PageRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    let page = state.admin.audit_events(&actor, filter, &page).await?;
    let items: Vec<_> = page.items.iter().map(views::audit_event).collect();
    Ok(ok(
        json!({ "items": items, "next_cursor": page.next_cursor }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    pool: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /audit/export`: the whole (filtered) log as JSON lines, streamed newest first.
async fn audit_export_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ExportQuery>,
) -> AppResult<Response> {
    let filter = admin::audit::OwnedFilter {
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
        pool: q.pool,
        actor: q.actor,
        action: q.action,
        subject: q.subject,
    };
    let batches = state.admin.export_audit(&actor, filter).await?;
    let lines = futures::StreamExt::map(batches, |batch| {
        batch.map(|events| {
            events.iter().fold(String::new(), |mut out, e| {
                out.push_str(&views::audit_event(e).to_string());
                out.push('\n');
                out
            })
        })
    });
    let body = axum::body::Body::from_stream(lines);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"scangate-audit.jsonl\""),
            ),
        ],
        body,
    )
        .into_response())
}

// ---- API keys

async fn keys_get(State(state): State<AppState>, Caller(actor): Caller) -> AppResult<Response> {
    let keys = state.admin.list_keys(&actor).await?;
    let items: Vec<_> = keys.iter().map(views::key).collect();
    Ok(ok(json!({ "items": items, "next_cursor": null })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
    #[serde(default)]
    pool: Option<String>,
}

async fn keys_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Json(body): Json<NewKey>,
) -> AppResult<Response> {
    let role = Role::parse(&body.role)
        .ok_or_else(|| AppError::invalid("role must be viewer, admin or owner"))?;
    let pool = body
        .pool
        .as_deref()
        .map(PoolSlug::parse)
        .transpose()
        .map_err(AppError::invalid)?;
    let made = state
        .admin
        .create_key(&actor, &body.name, role, pool)
        .await?;
    let mut body = views::key(&made.key);
    body["key"] = json!(made.secret);
    Ok(respond(StatusCode::CREATED, None, body))
}

async fn key_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let key = state.admin.revoke_key(&actor, &id).await?;
    Ok(ok(views::key(&key)))
}
