//! The Authing-compatible PC API (`/api/v2/qrcode/*`): what `authing-js-sdk` 4.x's
//! `authenticationClient.wxqrcode` calls, so a site moves to ScanGate by changing `appHost`.
//!
//! It is a thin skin over the native API: the same QR codes, browser binding, ticket store and
//! tokens (the rest of `pc`). What differs is the outside: the app comes from the
//! `x-authing-app-id` header, statuses are numbers, field names are Authing's, and every answer,
//! success or failure, is HTTP 200 with `{"code","message","data"}` — the SDK reads `code` and
//! never looks at the HTTP status (a non-2xx status makes its HTTP client throw before the body
//! is read).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::exchange;
use super::status::{json_bytes, json_response, view_as, Seen};
use crate::clock::rfc3339;
use crate::cors::ForApp;
use crate::domain::Random;
use crate::error::AppError;
use crate::extract::{binding, Json, OptionalJson, Query, Requester};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::store::{self, users::User};
use crate::tickets::{Binding, QrStatus};

/// Authing's code for "QR code does not exist" (unknown, malformed, or expired and gone).
pub const QR_NOT_FOUND: i64 = 2241;
/// The only scene ScanGate serves: a WeChat Mini Program scan.
const SCENE: &str = "WXAPP_AUTH";
const APP_ID_HEADER: &str = "x-authing-app-id";

pub(super) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(gene_post))
        .routes(routes!(check_get))
        .routes(routes!(userinfo_post))
}

/// A failure in Authing's shape: a numeric `code` in an HTTP 200 envelope. Codes other than
/// [`QR_NOT_FOUND`] are the HTTP status the native API gives the same failure.
#[derive(Debug)]
pub struct CompatError {
    code: i64,
    message: String,
}

impl CompatError {
    fn qr_not_found() -> Self {
        CompatError {
            code: QR_NOT_FOUND,
            message: "二维码不存在 (no such QR code)".into(),
        }
    }
}

impl From<AppError> for CompatError {
    fn from(e: AppError) -> Self {
        // Logged as the native error would be; never described to the client.
        match &e {
            AppError::Unavailable(err) => {
                tracing::warn!(error = %format!("{err:#}"), "dependency unavailable")
            }
            AppError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error")
            }
            _ => {}
        }
        CompatError {
            code: i64::from(e.status().as_u16()),
            message: e.message(),
        }
    }
}

type CompatResult<T> = Result<T, CompatError>;

/// The envelope around a result.
fn envelope<T: Serialize>(result: CompatResult<T>) -> Response {
    json_response(envelope_bytes(result))
}

/// Every answer of this API, success or failure, with HTTP status 200.
#[derive(Serialize, ToSchema)]
struct Envelope<T> {
    /// `200` on success; otherwise Authing's code (`2241`: no such QR code) or the HTTP
    /// status the native API gives the same failure.
    code: i64,
    message: String,
    /// The result; `null` on failure.
    data: Option<T>,
}

/// The envelope around a result, as the JSON bytes of the answer.
fn envelope_bytes<T: Serialize>(result: CompatResult<T>) -> axum::body::Bytes {
    let body = match result {
        Ok(data) => Envelope {
            code: 200,
            message: "success".into(),
            data: Some(data),
        },
        Err(e) => Envelope {
            code: e.code,
            message: e.message,
            data: None,
        },
    };
    json_bytes(&body)
}

/// The `x-authing-app-id` header as sent, read without copying the other headers.
struct AppIdHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for AppIdHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AppIdHeader(parts.headers.get(APP_ID_HEADER).cloned()))
    }
}

/// Which endpoint an answer kept in [`crate::tickets::Rendered`] is for.
const CHECK_ANSWER: u8 = 1;

fn app_id(headers: &HeaderMap) -> CompatResult<String> {
    headers
        .get(APP_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| AppError::invalid("the x-authing-app-id header is required").into())
}

/// Authing's status numbers.
fn status_number(status: QrStatus) -> i64 {
    match status {
        QrStatus::Pending => 0,
        QrStatus::Scanned => 1,
        QrStatus::Confirmed => 2,
        QrStatus::Cancelled => 3,
        QrStatus::Expired => -1,
    }
}

#[derive(Deserialize, ToSchema)]
struct GeneRequest {
    /// Only `WXAPP_AUTH`, the default.
    scene: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct GeneData {
    random: String,
    url: String,
    #[serde(rename = "customLogo")]
    #[schema(value_type = String)]
    custom_logo: &'static str,
}

/// A new code for the app in `x-authing-app-id`, bound to this browser's cookie.
#[utoipa::path(post, path = "/api/v2/qrcode/gene", tag = "authing", operation_id = "authing_gene_post",
    params(("x-authing-app-id" = String, Header, description = "The app's client id.")),
    request_body(content = Option<GeneRequest>, description = "Optional: `{\"scene\": \"WXAPP_AUTH\"}`."),
    responses(
        (status = 200, description = "Always 200: success or failure is `code`.", body = Envelope<GeneData>),
    ))]
async fn gene_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    requester: Requester,
    body: Result<OptionalJson<GeneRequest>, AppError>,
) -> Response {
    let result = async {
        let scene = body?.0.and_then(|b| b.scene);
        if scene.as_deref().is_some_and(|s| s != SCENE) {
            return Err(AppError::invalid("only the WXAPP_AUTH scene is supported").into());
        }
        let app = app_id(&headers)?;
        let created = super::create_qrcode(&state, &app, jar, &requester, true).await?;
        let data = GeneData {
            url: state
                .config
                .url(&format!("/api/v1/qrcodes/{}/image.png", created.qr.random)),
            random: created.qr.random.to_string(),
            // The image already carries the app's branding.
            custom_logo: "",
        };
        Ok::<_, CompatError>((created.jar, data))
    }
    .await;
    match result {
        Ok((jar, data)) => (jar, envelope(Ok(data))).into_response(),
        Err(e) => envelope::<()>(Err(e)),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CheckQuery {
    /// The code's id, as `gene` gave it.
    random: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct CheckData {
    random: String,
    /// `0` pending, `1` scanned, `2` confirmed, `3` cancelled, `-1` expired.
    status: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<String>,
    /// From the scan on: `{"nickname", "photo"}`.
    #[serde(rename = "userInfo", skip_serializing_if = "Option::is_none")]
    user_info: Option<Scanner>,
}

/// Who scanned, as far as the PC page may know.
#[derive(Serialize, ToSchema)]
struct Scanner {
    nickname: Option<String>,
    photo: Option<String>,
}

/// The code's status. `userInfo` (nickname and photo only) is there from the scan on; the
/// ticket only for the browser that created the code, unless the app turned binding off.
#[utoipa::path(get, path = "/api/v2/qrcode/check", tag = "authing", operation_id = "authing_check_get",
    params(("x-authing-app-id" = Option<String>, Header, description = "The app's client id."), CheckQuery),
    responses(
        (status = 200, description = "Always 200: success or failure is `code`.", body = Envelope<CheckData>),
    ))]
async fn check_get(
    State(state): State<AppState>,
    AppIdHeader(app): AppIdHeader,
    binding: Binding,
    query: Result<Query<CheckQuery>, AppError>,
) -> Response {
    let result = async {
        let random = query?
            .0
            .random
            .ok_or_else(|| AppError::invalid("the random query parameter is required"))?;
        let Ok(random) = Random::parse(&random) else {
            return Err(CompatError::qr_not_found());
        };
        let qr = match crate::tickets::load_shared(state.tickets.as_ref(), &random).await {
            Ok(qr) => qr,
            Err(AppError::NotFound(_)) => return Err(CompatError::qr_not_found()),
            Err(e) => return Err(e.into()),
        };
        // A code of another app does not exist as far as this app is concerned.
        if app
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|app| !app.is_empty() && qr.client_id != app)
        {
            return Err(CompatError::qr_not_found());
        }
        // Made once for each code and what its callers see, then answered with the same bytes
        // until the code changes.
        let seen = Seen::of(&qr, state.clock.now(), &binding);
        let body = state
            .rendered
            .get_or_make(&qr, seen.variant(CHECK_ANSWER), || {
                let view = view_as(&qr, seen);
                envelope_bytes(Ok(CheckData {
                    random: view.random.to_string(),
                    status: status_number(view.status),
                    ticket: view.ticket,
                    // The SDK reads `userInfo.token` on success, so it must be an object then
                    // too.
                    user_info: view.scanned_by.map(|s| Scanner {
                        nickname: s.nickname,
                        photo: s.avatar_url,
                    }),
                }))
            });
        Ok::<_, CompatError>((qr.client_id.clone(), body))
    }
    .await;
    match result {
        Ok((client_id, body)) => {
            (Extension(ForApp(client_id)), json_response(body)).into_response()
        }
        Err(e) => envelope::<()>(Err(e)),
    }
}

#[derive(Deserialize, ToSchema)]
struct UserinfoRequest {
    /// The ticket `check` showed once the code was confirmed.
    ticket: String,
}

/// The user in Authing's field names, with an ID token as `token`. The ticket is consumed: a
/// second call with it fails.
#[utoipa::path(post, path = "/api/v2/qrcode/userinfo", tag = "authing", operation_id = "authing_userinfo_post",
    request_body = UserinfoRequest,
    responses(
        (status = 200, description = "Always 200: success or failure is `code`; `data` is the user.", body = Envelope<AuthingUser>),
    ))]
async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    requester: Requester,
    body: Result<Json<UserinfoRequest>, AppError>,
) -> Response {
    let result = async {
        let Json(req) = body?;
        let (user, tokens) =
            exchange::redeem(&state, &req.ticket, &binding(&headers, &jar), &requester).await?;
        let identities = store::identities::of_user(&state.db, &user.id)
            .await
            .map_err(AppError::from)?;
        // The openid is the one of the app's Mini Program; the unionid is the person's.
        let miniprogram = state
            .apps
            .get(&tokens.client_id)
            .await
            .map_err(AppError::from)?
            .map(|a| a.miniprogram.clone());
        let openid = identities
            .iter()
            .find(|i| miniprogram.as_ref().is_some_and(|m| *m == i.appid))
            .or(identities.first())
            .map(|i| i.openid.clone());
        let unionid = identities.iter().find_map(|i| i.unionid.clone());
        let data = user_data(&user, openid, unionid, &tokens);
        Ok::<_, CompatError>((tokens.client_id, data))
    }
    .await;
    match result {
        Ok((client_id, data)) => (Extension(ForApp(client_id)), envelope(Ok(data))).into_response(),
        Err(e) => envelope::<()>(Err(e)),
    }
}

/// The user in Authing's field names.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthingUser {
    id: String,
    user_pool_id: String,
    /// Always `null`: WeChat users have none.
    username: Option<String>,
    /// Always `null`.
    email: Option<String>,
    email_verified: bool,
    phone: Option<String>,
    phone_verified: bool,
    phone_country_code: Option<String>,
    nickname: Option<String>,
    photo: Option<String>,
    openid: Option<String>,
    unionid: Option<String>,
    /// An ID token for the app.
    token: String,
    token_expired_at: String,
    logins_count: i64,
    last_login: Option<String>,
    #[serde(rename = "lastIP")]
    last_ip: Option<String>,
    signed_up: String,
    blocked: bool,
}

fn user_data(
    user: &User,
    openid: Option<String>,
    unionid: Option<String>,
    tokens: &exchange::IssuedTokens,
) -> AuthingUser {
    AuthingUser {
        id: user.id.clone(),
        user_pool_id: user.pool.clone(),
        username: None,
        email: None,
        email_verified: false,
        phone: user.phone.clone(),
        phone_verified: user.phone.is_some(),
        phone_country_code: user.phone_country.clone(),
        nickname: user.nickname.clone(),
        photo: user.avatar_url.clone(),
        openid,
        unionid,
        token: tokens.id_token.clone(),
        token_expired_at: rfc3339(tokens.expires_at * 1000),
        logins_count: user.login_count,
        last_login: user.last_login_at.map(rfc3339),
        last_ip: user.last_ip.clone(),
        signed_up: rfc3339(user.created_at),
        blocked: user.blocked,
    }
}
