//! The management REST API, `/api/admin/v1`: JSON over the management layer (`admin`), with
//! API keys as bearer tokens.
//!
//! Conventions: `snake_case` JSON and the native error envelope (a form's errors add
//! `fields`); lists take `?limit=&cursor=` and answer `{"items", "next_cursor"}` in a stable
//! order; a single object carries an `ETag`, and a change sent with `If-Match` is refused with
//! `412 precondition_failed` when the object changed since (RFC 9110 §13.1.1). Nothing here is
//! cached and no response carries a secret, except the client secret or API key a create or
//! rotate call returns once.
//!
//! Every handler is registered with `routes!`, so its path and method come from its
//! `#[utoipa::path]` and the OpenAPI document cannot disagree with the router; the answers are
//! the typed views of `views`.

mod views;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::UtoipaMethodRouterExt as _;
use utoipa_axum::routes;

use crate::admin::{self, Actor, PageRequest, Role};
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::extract::{bearer, Json, Path, Query, Requester};
use crate::openapi::ApiRouter;
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::audit::Filter;
use views::{
    AppView, AppWithSecretView, AuditEventView, CreatedKeyView, FunnelRowView, KeyView,
    MiniProgramView, Page, PoolView, SignedOutView, SigningKeyView, UserDetailView, UserView,
};

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(pools_get, pools_post))
        .routes(routes!(pool_get, pool_patch, pool_delete))
        .routes(routes!(users_get, users_post))
        .routes(routes!(users_import_post))
        .routes(routes!(signing_keys_get, signing_keys_post))
        .routes(routes!(signing_key_delete))
        .routes(routes!(miniprograms_get, miniprograms_post))
        .routes(routes!(
            miniprogram_get,
            miniprogram_patch,
            miniprogram_delete
        ))
        .routes(routes!(miniprogram_check_post))
        .routes(routes!(miniprogram_diagnostics_get))
        .routes(routes!(apps_get, apps_post))
        .routes(routes!(app_get, app_patch, app_delete))
        .routes(routes!(app_secret_post))
        .routes(routes!(app_funnel_get))
        .routes(
            routes!(app_logo_put, app_logo_delete).layer(axum::extract::DefaultBodyLimit::max(
                crate::qr::logo::MAX_LOGO_BYTES + 1,
            )),
        )
        .routes(routes!(user_get, user_delete))
        .routes(routes!(user_block_post))
        .routes(routes!(user_unblock_post))
        .routes(routes!(user_sign_out_post))
        .routes(routes!(user_merge_post))
        .routes(routes!(audit_get))
        .routes(routes!(audit_export_get))
        .routes(routes!(keys_get, keys_post))
        .routes(routes!(key_delete))
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

/// What every management route may answer before it runs, in the OpenAPI document: the
/// refusals of [`Caller`]. Never built; the errors themselves are [`AppError`]s.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Refusals {
    /// No API key, or one unknown or revoked (`unauthorized`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Too many failed authentications from this address (`rate_limited`).
    #[response(status = 429)]
    RateLimited(ErrorBody),
}

/// The version an `If-Match` names; `*` (or none) is whatever is current. A value that names
/// no version of ours can match nothing.
struct IfMatch(Option<i64>);

/// The header as the OpenAPI document names it, beside the extractor that reads it.
impl utoipa::IntoParams for IfMatch {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![utoipa::openapi::path::Parameter::builder()
            .name("If-Match")
            .parameter_in(utoipa::openapi::path::ParameterIn::Header)
            .required(utoipa::openapi::Required::False)
            .description(Some(
                "The `ETag` the request is based on; `*` or none for whatever is current.",
            ))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .build()]
    }
}

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
fn respond(status: StatusCode, version: Option<i64>, body: impl Serialize) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(tag) = version.and_then(|v| HeaderValue::from_str(&admin::etag(v)).ok()) {
        headers.insert(header::ETAG, tag);
    }
    res
}

fn ok(body: impl Serialize) -> Response {
    respond(StatusCode::OK, None, body)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// How many items a page holds: 1 to 200, 50 when absent.
    limit: Option<i64>,
    /// The `next_cursor` of the page before; the first page when absent.
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

/// Lists the pools the key may see, by slug.
///
/// The list is never paged: `next_cursor` is always `null`.
#[utoipa::path(get, path = "/api/admin/v1/pools", tag = "admin",
    security(("admin_api_key" = [])),
    responses(
        (status = 200, description = "The pools.", body = Page<PoolView>),
        Refusals,
    ))]
async fn pools_get(State(state): State<AppState>, Caller(actor): Caller) -> AppResult<Response> {
    let pools = state.admin.list_pools(&actor).await?;
    Ok(ok(Page::whole(pools.iter().map(PoolView::from).collect())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPool {
    /// Part of the pool's issuer URL (`/pools/{slug}/oidc`): 1–64 of `[a-z0-9_-]`.
    slug: String,
    name: String,
}

/// Creates a pool: a set of users with an issuer of its own.
///
/// Owners of every pool only; a key limited to one pool cannot create pools.
#[utoipa::path(post, path = "/api/admin/v1/pools", tag = "admin",
    security(("admin_api_key" = [])),
    request_body = NewPool,
    responses(
        (status = 201, description = "The new pool.", body = PoolView,
            headers(("ETag" = String, description = "The pool's version."))),
        (status = 400, description = "The body is not a pool, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is not an owner, or is limited to one pool (`forbidden`).", body = ErrorBody),
        (status = 409, description = "A pool has this slug already (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
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
        PoolView::from(&pool),
    ))
}

/// A pool the key may see.
#[utoipa::path(get, path = "/api/admin/v1/pools/{slug}", tag = "admin",
    security(("admin_api_key" = [])),
    params(("slug" = String, Path, description = "The pool's slug.")),
    responses(
        (status = 200, description = "The pool.", body = PoolView,
            headers(("ETag" = String, description = "The pool's version."))),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn pool_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
) -> AppResult<Response> {
    let pool = state.admin.pool(&actor, &slug).await?;
    Ok(respond(
        StatusCode::OK,
        Some(pool.version),
        PoolView::from(&pool),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PoolChange {
    name: String,
}

/// Renames a pool; with `If-Match`, only if it has not changed since it was read.
#[utoipa::path(patch, path = "/api/admin/v1/pools/{slug}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("slug" = String, Path, description = "The pool's slug."),
        IfMatch
    ),
    request_body = PoolChange,
    responses(
        (status = 200, description = "The pool as renamed.", body = PoolView,
            headers(("ETag" = String, description = "The pool's new version."))),
        (status = 400, description = "The body is not a change, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is not an owner (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 412, description = "The pool changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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
        PoolView::from(&pool),
    ))
}

/// Deletes an empty pool; one that holds apps, users or Mini Programs, and the `default` pool,
/// cannot be deleted.
#[utoipa::path(delete, path = "/api/admin/v1/pools/{slug}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("slug" = String, Path, description = "The pool's slug."),
        IfMatch
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The key is not an owner (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The `default` pool, or a pool that still holds apps, users or Mini Programs (`conflict`).", body = ErrorBody),
        (status = 412, description = "The pool changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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

/// One page of the apps the key may see, by client id.
#[utoipa::path(get, path = "/api/admin/v1/apps", tag = "admin",
    security(("admin_api_key" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of apps.", body = Page<AppView>),
        (status = 400, description = "A bad `limit` or `cursor`, or an unknown query parameter (`invalid_request`).", body = ErrorBody),
        Refusals,
    ))]
async fn apps_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    let page = state.admin.list_apps(&actor, &q.page()).await?;
    Ok(ok(Page {
        items: page.items.iter().map(AppView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Creates an app; a confidential one (the default) gets a client secret, returned this once.
///
/// The same rules as `[[apps]]` in the config file apply, with the same messages.
#[utoipa::path(post, path = "/api/admin/v1/apps", tag = "admin",
    security(("admin_api_key" = [])),
    request_body = crate::admin::apps::NewApp,
    responses(
        (status = 201, description = "The new app, with its client secret (`null` for a public app).", body = AppWithSecretView,
            headers(("ETag" = String, description = "The app's version."))),
        (status = 400, description = "The body is not an app, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "The pool is outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "An app has this client id already (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
async fn apps_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Json(body): Json<admin::apps::NewApp>,
) -> AppResult<Response> {
    let made = state.admin.create_app(&actor, body).await?;
    Ok(respond(
        StatusCode::CREATED,
        Some(made.app.version),
        AppWithSecretView::from(&made),
    ))
}

/// An app the key may see.
#[utoipa::path(get, path = "/api/admin/v1/apps/{client_id}", tag = "admin",
    security(("admin_api_key" = [])),
    params(("client_id" = String, Path, description = "The app's client id.")),
    responses(
        (status = 200, description = "The app.", body = AppView,
            headers(("ETag" = String, description = "The app's version."))),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn app_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
) -> AppResult<Response> {
    let app = state.admin.app(&actor, &client_id).await?;
    Ok(respond(
        StatusCode::OK,
        Some(app.version),
        AppView::from(&app),
    ))
}

/// Changes the fields given and leaves the rest; with `If-Match`, only if the app has not
/// changed since it was read.
#[utoipa::path(patch, path = "/api/admin/v1/apps/{client_id}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("client_id" = String, Path, description = "The app's client id."),
        IfMatch
    ),
    request_body = crate::admin::apps::AppChange,
    responses(
        (status = 200, description = "The app as changed.", body = AppView,
            headers(("ETag" = String, description = "The app's new version."))),
        (status = 400, description = "The body is not a change, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The app is declared in the config file and read-only here (`conflict`).", body = ErrorBody),
        (status = 412, description = "The app changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(respond(
        StatusCode::OK,
        Some(app.version),
        AppView::from(&app),
    ))
}

/// Deletes an app with every grant, code and token issued to it.
#[utoipa::path(delete, path = "/api/admin/v1/apps/{client_id}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("client_id" = String, Path, description = "The app's client id."),
        IfMatch
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The app is declared in the config file and read-only here (`conflict`).", body = ErrorBody),
        (status = 412, description = "The app changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
async fn app_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(client_id): Path<String>,
    IfMatch(version): IfMatch,
) -> AppResult<Response> {
    state.admin.delete_app(&actor, &client_id, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Uploads the app's logo as the body: PNG, JPEG, WebP or SVG (rasterised), at most 1 MiB.
///
/// It is stored as a PNG of at most 512 px and served from ScanGate's media path, which
/// becomes the app's `logo`.
#[utoipa::path(put, path = "/api/admin/v1/apps/{client_id}/logo", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("client_id" = String, Path, description = "The app's client id."),
        IfMatch
    ),
    request_body(
        description = "The image itself, at most 1 MiB.",
        content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"), (Vec<u8> = "image/svg+xml"))
    ),
    responses(
        (status = 200, description = "The app with its new logo.", body = AppView,
            headers(("ETag" = String, description = "The app's new version."))),
        (status = 400, description = "Another `Content-Type`, or an image that cannot be read (`invalid_request`, `fields.logo`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The app is declared in the config file and read-only here (`conflict`).", body = ErrorBody),
        (status = 412, description = "The app changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        (status = 413, description = "The image is over 1 MiB (`payload_too_large`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(respond(
        StatusCode::OK,
        Some(app.version),
        AppView::from(&app),
    ))
}

/// Removes the app's logo: its pages and codes show none.
#[utoipa::path(delete, path = "/api/admin/v1/apps/{client_id}/logo", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("client_id" = String, Path, description = "The app's client id."),
        IfMatch
    ),
    responses(
        (status = 200, description = "The app without a logo.", body = AppView,
            headers(("ETag" = String, description = "The app's new version."))),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The app is declared in the config file and read-only here (`conflict`).", body = ErrorBody),
        (status = 412, description = "The app changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(respond(
        StatusCode::OK,
        Some(app.version),
        AppView::from(&app),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FunnelQuery {
    /// `hour` (default) or `day`.
    bucket: Option<String>,
    /// RFC 3339; by default 24 hours (by hour) or 7 days (by day) before `until`.
    since: Option<String>,
    /// RFC 3339; now by default. A report covers at most 8 days.
    until: Option<String>,
}

/// The app's scan funnel: created → scanned → confirmed → exchanged, per hour or per day.
///
/// The list is never paged: `next_cursor` is always `null`.
#[utoipa::path(get, path = "/api/admin/v1/apps/{client_id}/funnel", tag = "admin",
    security(("admin_api_key" = [])),
    params(("client_id" = String, Path, description = "The app's client id."), FunnelQuery),
    responses(
        (status = 200, description = "One row per bucket, oldest first.", body = Page<FunnelRowView>),
        (status = 400, description = "A bad `bucket`, `since` or `until`, a range over 8 days, or an unknown query parameter (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(ok(Page::whole(
        rows.iter().map(FunnelRowView::from).collect(),
    )))
}

/// Gives the app a new client secret, returned this once; the old one stops working at once.
///
/// A public app becomes confidential.
#[utoipa::path(post, path = "/api/admin/v1/apps/{client_id}/secret", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("client_id" = String, Path, description = "The app's client id."),
        IfMatch
    ),
    responses(
        (status = 200, description = "The app with its new client secret.", body = AppWithSecretView,
            headers(("ETag" = String, description = "The app's new version."))),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such app, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The app is declared in the config file and read-only here (`conflict`).", body = ErrorBody),
        (status = 412, description = "The app changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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
        AppWithSecretView::from(&made),
    ))
}

// ---- Mini Programs

/// Lists the Mini Programs the key may see, by AppID; never their AppSecrets.
///
/// The list is never paged: `next_cursor` is always `null`.
#[utoipa::path(get, path = "/api/admin/v1/miniprograms", tag = "admin",
    security(("admin_api_key" = [])),
    responses(
        (status = 200, description = "The Mini Programs.", body = Page<MiniProgramView>),
        Refusals,
    ))]
async fn miniprograms_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
) -> AppResult<Response> {
    let mps = state.admin.list_miniprograms(&actor).await?;
    Ok(ok(Page::whole(
        mps.iter().map(MiniProgramView::from).collect(),
    )))
}

/// Registers a Mini Program with its AppSecret, which is sealed at rest and never returned.
#[utoipa::path(post, path = "/api/admin/v1/miniprograms", tag = "admin",
    security(("admin_api_key" = [])),
    request_body = crate::admin::miniprograms::NewMiniProgram,
    responses(
        (status = 201, description = "The new Mini Program.", body = MiniProgramView,
            headers(("ETag" = String, description = "The Mini Program's version."))),
        (status = 400, description = "The body is not a Mini Program, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "The pool is outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The AppID is registered already (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
async fn miniprograms_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Json(body): Json<admin::miniprograms::NewMiniProgram>,
) -> AppResult<Response> {
    let mp = state.admin.create_miniprogram(&actor, body).await?;
    Ok(respond(
        StatusCode::CREATED,
        Some(mp.version),
        MiniProgramView::from(&mp),
    ))
}

/// A Mini Program the key may see.
#[utoipa::path(get, path = "/api/admin/v1/miniprograms/{appid}", tag = "admin",
    security(("admin_api_key" = [])),
    params(("appid" = String, Path, description = "The Mini Program's AppID.")),
    responses(
        (status = 200, description = "The Mini Program.", body = MiniProgramView,
            headers(("ETag" = String, description = "The Mini Program's version."))),
        (status = 404, description = "No such Mini Program, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn miniprogram_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
) -> AppResult<Response> {
    let mp = state.admin.miniprogram(&actor, &appid).await?;
    Ok(respond(
        StatusCode::OK,
        Some(mp.version),
        MiniProgramView::from(&mp),
    ))
}

/// Changes a Mini Program's name (`null` removes it) and/or its AppSecret; with `If-Match`,
/// only if it has not changed since it was read.
#[utoipa::path(patch, path = "/api/admin/v1/miniprograms/{appid}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("appid" = String, Path, description = "The Mini Program's AppID."),
        IfMatch
    ),
    request_body = crate::admin::miniprograms::MiniProgramChange,
    responses(
        (status = 200, description = "The Mini Program as changed.", body = MiniProgramView,
            headers(("ETag" = String, description = "The Mini Program's new version."))),
        (status = 400, description = "The body is not a change, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such Mini Program, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The Mini Program is declared in the config file and read-only here (`conflict`).", body = ErrorBody),
        (status = 412, description = "The Mini Program changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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
        MiniProgramView::from(&mp),
    ))
}

/// Deletes a Mini Program that no app uses and no user has signed in with.
#[utoipa::path(delete, path = "/api/admin/v1/miniprograms/{appid}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("appid" = String, Path, description = "The Mini Program's AppID."),
        IfMatch
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such Mini Program, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The Mini Program is declared in the config file, or apps or users still depend on it (`conflict`).", body = ErrorBody),
        (status = 412, description = "The Mini Program changed since the `If-Match` version (`precondition_failed`).", body = ErrorBody),
        Refusals,
    ))]
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

/// Asks WeChat now whether it accepts the stored credentials, and explains its answer.
///
/// A refusal is an answer too (`ok: false` with WeChat's errcode), not an error.
#[utoipa::path(post, path = "/api/admin/v1/miniprograms/{appid}/check", tag = "admin",
    security(("admin_api_key" = [])),
    params(("appid" = String, Path, description = "The Mini Program's AppID.")),
    responses(
        (status = 200, description = "What WeChat said.", body = crate::admin::miniprograms::Check),
        (status = 404, description = "No such Mini Program, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn miniprogram_check_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
) -> AppResult<Response> {
    let check = state.admin.check_miniprogram(&actor, &appid).await?;
    Ok(ok(check))
}

/// What WeChat last answered the Mini Program: its errors by errcode, each explained, and the
/// state of its access-token cache.
#[utoipa::path(get, path = "/api/admin/v1/miniprograms/{appid}/diagnostics", tag = "admin",
    security(("admin_api_key" = [])),
    params(("appid" = String, Path, description = "The Mini Program's AppID.")),
    responses(
        (status = 200, description = "The diagnostics of every instance's calls together.", body = crate::admin::miniprograms::Diagnostics),
        (status = 404, description = "No such Mini Program, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn miniprogram_diagnostics_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(appid): Path<String>,
) -> AppResult<Response> {
    let diagnostics = state.admin.miniprogram_diagnostics(&actor, &appid).await?;
    Ok(ok(diagnostics))
}

// ---- signing keys

/// The pool's published signing keys, newest first: the active one and the retired ones still
/// in the JWKS.
///
/// The list is never paged: `next_cursor` is always `null`.
#[utoipa::path(get, path = "/api/admin/v1/pools/{slug}/signing-keys", tag = "admin",
    security(("admin_api_key" = [])),
    params(("slug" = String, Path, description = "The pool's slug.")),
    responses(
        (status = 200, description = "The keys.", body = Page<SigningKeyView>),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn signing_keys_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
) -> AppResult<Response> {
    let keys = state.admin.signing_keys(&actor, &slug).await?;
    Ok(ok(Page::whole(
        keys.iter().map(SigningKeyView::from).collect(),
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// `RS256` (the default), `ES256` or `EdDSA`.
    #[serde(default = "default_alg")]
    alg: String,
}

fn default_alg() -> String {
    "RS256".into()
}

/// Rotates the pool's signing key, as `scangate keys rotate` does: a new active key of `alg`;
/// the previous one is retired and stays published for the grace period.
#[utoipa::path(post, path = "/api/admin/v1/pools/{slug}/signing-keys", tag = "admin",
    security(("admin_api_key" = [])),
    params(("slug" = String, Path, description = "The pool's slug.")),
    request_body = Rotation,
    responses(
        (status = 201, description = "The new active key.", body = SigningKeyView),
        (status = 400, description = "The body is not a rotation, or an unknown `alg` (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is not an owner (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn signing_keys_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    Json(body): Json<Rotation>,
) -> AppResult<Response> {
    let alg = crate::tokens::KeyAlg::parse(&body.alg)
        .ok_or_else(|| AppError::invalid("alg must be RS256, ES256 or EdDSA"))?;
    let key = state.admin.rotate_signing_key(&actor, &slug, alg).await?;
    Ok(respond(
        StatusCode::CREATED,
        None,
        SigningKeyView::from(&key),
    ))
}

/// Withdraws a retired key from the JWKS now, before its grace period ends: tokens it signed
/// stop verifying.
#[utoipa::path(delete, path = "/api/admin/v1/pools/{slug}/signing-keys/{kid}", tag = "admin",
    security(("admin_api_key" = [])),
    params(
        ("slug" = String, Path, description = "The pool's slug."),
        ("kid" = String, Path, description = "The key's `kid`.")
    ),
    responses(
        (status = 204, description = "Withdrawn."),
        (status = 403, description = "The key is not an owner (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool or signing key, or a pool outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The key is the active one; rotate first (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
async fn signing_key_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((slug, kid)): Path<(String, String)>,
) -> AppResult<Response> {
    state.admin.retire_signing_key(&actor, &slug, &kid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- users

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    /// Only users whose id, nickname, phone, openid or unionid starts with this (at most 64
    /// characters).
    q: Option<String>,
    /// How many items a page holds: 1 to 200, 50 when absent.
    limit: Option<i64>,
    /// The `next_cursor` of the page before; the first page when absent.
    cursor: Option<String>,
}

/// One page of the pool's users in creation order, optionally only those matching `q`.
#[utoipa::path(get, path = "/api/admin/v1/pools/{slug}/users", tag = "admin",
    security(("admin_api_key" = [])),
    params(("slug" = String, Path, description = "The pool's slug."), UsersQuery),
    responses(
        (status = 200, description = "One page of users.", body = Page<UserView>),
        (status = 400, description = "A bad `q`, `limit` or `cursor`, or an unknown query parameter (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(ok(Page {
        items: page.items.iter().map(UserView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Provisions a person before their first scan, known by phone number and/or unionid.
///
/// They are linked at their first login when the unionid matches, or the phone number they
/// share does.
#[utoipa::path(post, path = "/api/admin/v1/pools/{slug}/users", tag = "admin",
    security(("admin_api_key" = [])),
    params(("slug" = String, Path, description = "The pool's slug.")),
    request_body = crate::admin::users::NewUser,
    responses(
        (status = 201, description = "The provisioned user.", body = UserDetailView),
        (status = 400, description = "The body is not a user, or `fields` names what is wrong (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The pool has a user with this `external_id` already (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
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
        UserDetailView::from(&detail),
    ))
}

/// Provisions one user per JSON line, each as `POST /pools/{slug}/users` takes it.
///
/// A bad line is reported with its number and the others go ahead.
#[utoipa::path(post, path = "/api/admin/v1/pools/{slug}/users/import", tag = "admin",
    security(("admin_api_key" = [])),
    params(("slug" = String, Path, description = "The pool's slug.")),
    request_body(
        content = String,
        content_type = "application/x-ndjson",
        description = "One `NewUser` JSON object per line, at most 10 000 lines; blank lines are skipped."
    ),
    responses(
        (status = 200, description = "How many users were created, and each line refused and why.", body = crate::admin::users::Imported),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 413, description = "Over 10 000 lines; split the import (`payload_too_large`).", body = ErrorBody),
        Refusals,
    ))]
async fn users_import_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(slug): Path<String>,
    body: String,
) -> AppResult<Response> {
    let imported = state.admin.import_users(&actor, &slug, &body).await?;
    Ok(ok(imported))
}

/// A user the key may see, with identities, live grants and sessions, and last logins.
#[utoipa::path(get, path = "/api/admin/v1/users/{id}", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = UserDetailView),
        (status = 404, description = "No such user, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn user_get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let detail = state.admin.user(&actor, &id).await?;
    Ok(ok(UserDetailView::from(&detail)))
}

/// Erases a user and everything that signs them in; a later scan signs up afresh.
#[utoipa::path(delete, path = "/api/admin/v1/users/{id}", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 204, description = "Erased."),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn user_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    state.admin.delete_user(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Merge {
    /// The user to absorb into the one in the path.
    absorb: String,
}

/// Merges the user `absorb` into this one (same pool): identities move, the absorbed user's
/// tokens and sessions end and it is erased.
///
/// This user keeps its own profile and takes what it lacks.
#[utoipa::path(post, path = "/api/admin/v1/users/{id}/merge", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The id of the user that is kept.")),
    request_body = Merge,
    responses(
        (status = 200, description = "The user as merged.", body = UserDetailView),
        (status = 400, description = "The body is not a merge, or a user merged into itself (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "Either user does not exist, or is outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The users belong to different pools (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
async fn user_merge_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Json(body): Json<Merge>,
) -> AppResult<Response> {
    let detail = state.admin.merge_users(&actor, &id, &body.absorb).await?;
    Ok(ok(UserDetailView::from(&detail)))
}

/// Blocks a user: every live session, refresh token and grant ends at once, and the login
/// paths refuse them.
#[utoipa::path(post, path = "/api/admin/v1/users/{id}/block", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user, blocked.", body = UserDetailView),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn user_block_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let detail = state.admin.set_blocked(&actor, &id, true).await?;
    Ok(ok(UserDetailView::from(&detail)))
}

/// Unblocks a user: they may sign in again.
#[utoipa::path(post, path = "/api/admin/v1/users/{id}/unblock", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user, unblocked.", body = UserDetailView),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn user_unblock_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let detail = state.admin.set_blocked(&actor, &id, false).await?;
    Ok(ok(UserDetailView::from(&detail)))
}

/// Ends every session and token of a user; they must scan again everywhere.
#[utoipa::path(post, path = "/api/admin/v1/users/{id}/sign-out", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "How many grants were revoked.", body = SignedOutView),
        (status = 403, description = "The key is a viewer (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such user, or one outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
async fn user_sign_out_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let revoked = state.admin.sign_out_user(&actor, &id).await?;
    Ok(ok(SignedOutView {
        grants_revoked: revoked,
    }))
}

// ---- audit

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only this pool's events; a key limited to a pool sees only its own.
    pool: Option<String>,
    /// Only events by this actor (`key:{name}`, a user id, `cli`).
    actor: Option<String>,
    /// Only this action, such as `admin.app.update`.
    action: Option<String>,
    /// Only events about this subject.
    subject: Option<String>,
    /// RFC 3339, inclusive.
    since: Option<String>,
    /// RFC 3339, exclusive.
    until: Option<String>,
    /// How many items a page holds: 1 to 200, 50 when absent.
    limit: Option<i64>,
    /// The `next_cursor` of the page before; the first page when absent.
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

/// One page of the audit log, newest first, filtered by pool, actor, action, subject and time.
#[utoipa::path(get, path = "/api/admin/v1/audit", tag = "admin",
    security(("admin_api_key" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of events.", body = Page<AuditEventView>),
        (status = 400, description = "A bad time, `since` not before `until`, a bad `limit` or `cursor`, or an unknown query parameter (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "The `pool` is outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(ok(Page {
        items: page.items.iter().map(AuditEventView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Only this pool's events; a key limited to a pool exports only its own.
    pool: Option<String>,
    /// Only events by this actor (`key:{name}`, a user id, `cli`).
    actor: Option<String>,
    /// Only this action, such as `admin.app.update`.
    action: Option<String>,
    /// Only events about this subject.
    subject: Option<String>,
    /// RFC 3339, inclusive.
    since: Option<String>,
    /// RFC 3339, exclusive.
    until: Option<String>,
}

/// The whole (filtered) audit log as JSON lines, streamed newest first; the export itself is
/// audited.
#[utoipa::path(get, path = "/api/admin/v1/audit/export", tag = "admin",
    security(("admin_api_key" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "One event per line, as an attachment (`scangate-audit.jsonl`).", body = AuditEventView, content_type = "application/x-ndjson"),
        (status = 400, description = "A bad time, or an unknown query parameter (`invalid_request`).", body = ErrorBody),
        (status = 404, description = "The `pool` is outside the key's pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
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
                // A view of strings, numbers and a JSON value always serialises.
                let line = serde_json::to_string(&AuditEventView::from(e)).unwrap_or_default();
                out.push_str(&line);
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

/// Lists the API keys the key may see, revoked ones included; never the keys themselves.
///
/// Owners only. The list is never paged: `next_cursor` is always `null`.
#[utoipa::path(get, path = "/api/admin/v1/keys", tag = "admin",
    security(("admin_api_key" = [])),
    responses(
        (status = 200, description = "The keys.", body = Page<KeyView>),
        (status = 403, description = "The key is not an owner (`forbidden`).", body = ErrorBody),
        Refusals,
    ))]
async fn keys_get(State(state): State<AppState>, Caller(actor): Caller) -> AppResult<Response> {
    let keys = state.admin.list_keys(&actor).await?;
    Ok(ok(Page::whole(keys.iter().map(KeyView::from).collect())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// 1 to 64 characters; the audit log names the key `key:{name}`.
    name: String,
    /// `viewer`, `admin` or `owner`.
    role: String,
    /// The one pool the key may see; every pool when absent.
    #[serde(default)]
    pool: Option<String>,
}

/// Creates an API key, returned this once; only its hash is stored.
///
/// Owners only, and never a key wider than the one creating it.
#[utoipa::path(post, path = "/api/admin/v1/keys", tag = "admin",
    security(("admin_api_key" = [])),
    request_body = NewKey,
    responses(
        (status = 201, description = "The new key, with its secret in `key`.", body = CreatedKeyView),
        (status = 400, description = "The body is not a key, or a bad `name`, `role` or `pool` (`invalid_request`).", body = ErrorBody),
        (status = 403, description = "The key is not an owner, or is limited to another pool than the one asked for (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such pool (`not_found`).", body = ErrorBody),
        Refusals,
    ))]
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
    Ok(respond(
        StatusCode::CREATED,
        None,
        CreatedKeyView::from(&made),
    ))
}

/// Revokes an API key; it stops working at once.
#[utoipa::path(delete, path = "/api/admin/v1/keys/{id}", tag = "admin",
    security(("admin_api_key" = [])),
    params(("id" = String, Path, description = "The key's id.")),
    responses(
        (status = 200, description = "The key, revoked.", body = KeyView),
        (status = 403, description = "The key is not an owner (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such key, or one outside the key's pool (`not_found`).", body = ErrorBody),
        (status = 409, description = "The key is revoked already (`conflict`).", body = ErrorBody),
        Refusals,
    ))]
async fn key_delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let key = state.admin.revoke_key(&actor, &id).await?;
    Ok(ok(KeyView::from(&key)))
}
