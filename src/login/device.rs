//! The device grant's verification pages (RFC 8628 §3.3), server-rendered, working without
//! JavaScript. Approval itself always happens in the Mini Program: these pages lead there.
//!
//! - `GET {issuer}/device` (the `verification_uri`): a form for the code the device shows;
//!   `POST` looks it up and, when it names a pending request of this issuer, shows that
//!   request's QR code to scan with WeChat (for a device that can show only text).
//! - `GET /q/d/{random}` (the `verification_uri_complete`, which WeChat opens in the Mini
//!   Program): opened in an ordinary browser, it asks for the code on the device's screen
//!   before it shows the QR code, so a link sent by someone else leads nowhere (§5.4). Each
//!   wrong code there counts against the request; `wrong_user_codes_per_device` of them deny it.
//!
//! Every code typed, right or wrong, counts against the address (`user_codes_per_minute`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use utoipa_axum::routes;

use crate::domain::{Random, UserCode};
use crate::error::AppError;
use crate::extract::{Path, Requester};
use crate::metrics::DeviceEvent;
use crate::oauth::device::link_path;
use crate::oauth::{parse_params, Issuer};
use crate::openapi::ApiRouter;
use crate::pages::{page, Lang};
use crate::qr::Format;
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::audit;
use crate::tickets::{DeviceRequest, DeviceStatus, WrongCode};

/// The verification page, mounted under each issuer's path.
pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(device_get, device_post))
}

/// A request's link opened in a browser, mounted at the root beside `/q/{random}`: a page for
/// people, like the QR codes' own landing page, so not in the API document.
pub fn link_router() -> ApiRouter {
    ApiRouter::new().route("/q/d/{random}", get(link_get).post(link_post))
}

/// The form for a user code.
#[derive(Template)]
#[template(path = "login/device_code.html")]
pub struct DeviceCodePage {
    pub lang: Lang,
    /// Where the form posts.
    pub action: String,
    /// The app, when the page belongs to one request (its link).
    pub app_name: Option<String>,
    /// What was typed, shown again after a mistake.
    pub value: String,
    pub error: Option<(&'static str, &'static str)>,
}

/// A pending request's QR code, to scan with WeChat.
#[derive(Template)]
#[template(path = "login/device.html")]
pub struct DevicePage {
    pub lang: Lang,
    pub app_name: String,
    pub app_initial: String,
    pub user_code: String,
    /// The device in words, its address and place.
    pub device: String,
    /// The QR code of the request's link, as a `data:` URI.
    pub qr_data_uri: String,
    pub expires_in_minutes: i64,
}

/// The device grant's verification page (RFC 8628 §3.3): a form for the user code;
/// `?user_code=` fills it in.
#[utoipa::path(get, path = "/device", tag = "oidc",
    params(("user_code" = Option<String>, Query, description = "The code the device shows.")),
    responses((status = 200, description = "The form.", content_type = "text/html", body = String)))]
async fn device_get(
    issuer: Issuer,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
) -> Response {
    let value = query
        .0
        .and_then(|q| parse_params(&q).ok())
        .and_then(|p| p.get("user_code").map(str::to_owned))
        .unwrap_or_default();
    let form = DeviceCodePage {
        lang: Lang::of_request(&headers),
        action: verification_uri_path(&issuer),
        app_name: None,
        value: value.chars().take(16).collect(),
        error: None,
    };
    page(&form)
}

fn verification_uri_path(issuer: &Issuer) -> String {
    format!("{}/device", issuer.path())
}

/// The `user_code` of a posted form, as typed.
fn typed(body: &[u8]) -> String {
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| parse_params(b).ok())
        .and_then(|p| p.get("user_code").map(|v| v.chars().take(32).collect()))
        .unwrap_or_default()
}

/// Looks the code up among this issuer's pending requests and shows its QR code to scan.
#[utoipa::path(post, path = "/device", tag = "oidc",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`user_code`."),
    responses(
        (status = 200, description = "The request's QR code to scan with WeChat.", content_type = "text/html", body = String),
        (status = 400, description = "The form again, saying the code is wrong or expired.", content_type = "text/html", body = String),
        (status = 429, description = "Too many wrong codes.", content_type = "text/html", body = String),
    ))]
async fn device_post(
    State(state): State<AppState>,
    issuer: Issuer,
    headers: HeaderMap,
    requester: Requester,
    body: Bytes,
) -> Response {
    let lang = Lang::of_request(&headers);
    if let Err(e) = state.limiter.check(Limit::UserCodes, &requester.ip).await {
        return e.into_page(lang);
    }
    let value = typed(&body);
    let again = |error: (&'static str, &'static str)| {
        let form = DeviceCodePage {
            lang,
            action: verification_uri_path(&issuer),
            app_name: None,
            value: value.clone(),
            error: Some(error),
        };
        respond(&form, StatusCode::BAD_REQUEST)
    };
    let Ok(code) = UserCode::parse(&value) else {
        return again(MALFORMED);
    };
    let now = state.clock.now();
    let found = match state.tickets.device_by_user_code(&code).await {
        Ok(found) => found,
        Err(e) => return AppError::from(e).into_page(lang),
    };
    match found {
        Some(req) if req.pool_id == issuer.pool && req.status_at(now) == DeviceStatus::Pending => {
            show(&state, lang, &req).await
        }
        _ => again(UNKNOWN),
    }
}

const MALFORMED: (&str, &str) = (
    "验证码是 8 个字母，格式如 BCDF-GHJK。",
    "A code is eight letters, like BCDF-GHJK.",
);
const UNKNOWN: (&str, &str) = (
    "没有找到这个验证码，或它已过期。请核对设备屏幕上的验证码。",
    "No request has this code, or it has expired. Check the code on your device's screen.",
);
const WRONG: (&str, &str) = (
    "验证码与设备不符。请输入设备屏幕上显示的验证码。",
    "That is not this device's code. Type the code your device's screen shows.",
);

/// `GET /q/d/{random}`: the request's link in a browser asks for the device's code first.
async fn link_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(random): Path<Random>,
) -> Response {
    let lang = Lang::of_request(&headers);
    let req = match pending(&state, &random).await {
        Ok(req) => req,
        Err(e) => return e.into_page(lang),
    };
    let form = link_form(&state, lang, &req, String::new(), None).await;
    page(&form)
}

/// `POST /q/d/{random}`: the typed code must be this request's; a wrong one counts against
/// it, and the last allowed wrong one denies it.
async fn link_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    requester: Requester,
    Path(random): Path<Random>,
    body: Bytes,
) -> Response {
    let lang = Lang::of_request(&headers);
    if let Err(e) = state.limiter.check(Limit::UserCodes, &requester.ip).await {
        return e.into_page(lang);
    }
    let req = match pending(&state, &random).await {
        Ok(req) => req,
        Err(e) => return e.into_page(lang),
    };
    let value = typed(&body);
    if UserCode::parse(&value).is_ok_and(|c| c == req.user_code) {
        return show(&state, lang, &req).await;
    }
    let limit = state.limiter.wrong_user_codes_per_device();
    let counted = if limit == 0 {
        Ok(WrongCode::Counted(0))
    } else {
        state
            .tickets
            .device_wrong_code(req.random.as_str(), limit, state.clock.now())
            .await
    };
    match counted {
        Ok(WrongCode::Counted(_)) => {
            let form = link_form(&state, lang, &req, value, Some(WRONG)).await;
            respond(&form, StatusCode::BAD_REQUEST)
        }
        Ok(WrongCode::Locked) => {
            locked(&state, &req, &requester).await;
            AppError::Expired(
                "the code was typed wrong too many times: this device request is cancelled; \
                 start again on the device"
                    .into(),
            )
            .into_page(lang)
        }
        Ok(WrongCode::NotPending) => {
            AppError::Expired("this device request is no longer waiting".into()).into_page(lang)
        }
        Err(e) => AppError::from(e).into_page(lang),
    }
}

/// Wrong codes denied a request: audited and counted.
async fn locked(state: &AppState, req: &DeviceRequest, requester: &Requester) {
    state.metrics.device_event(DeviceEvent::Locked);
    let recorded = audit::record(
        &state.db,
        audit::Event {
            pool: Some(&req.pool_id),
            actor: None,
            action: "device.locked",
            subject: Some(&req.client_id),
            ip: Some(&requester.ip),
            detail: Some(json!({ "random": req.random, "wrong_codes": req.wrong_codes + 1 })),
        },
        state.clock.now(),
    )
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not audit a locked device request");
    }
}

/// A request that is still waiting for the person, or why not (`not_found`, `410`).
async fn pending(state: &AppState, random: &Random) -> Result<DeviceRequest, AppError> {
    let req = state
        .tickets
        .device_get(random.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound("no such device request".into()))?;
    match req.status_at(state.clock.now()) {
        DeviceStatus::Pending => Ok(req),
        DeviceStatus::Expired => Err(AppError::Expired(
            "this device request has expired; start again on the device".into(),
        )),
        _ => Err(AppError::Expired(
            "this device request is no longer waiting".into(),
        )),
    }
}

async fn app_name(state: &AppState, req: &DeviceRequest) -> String {
    match state.apps.get(&req.client_id).await {
        Ok(Some(app)) => app.name.clone(),
        _ => req.client_id.to_string(),
    }
}

async fn link_form(
    state: &AppState,
    lang: Lang,
    req: &DeviceRequest,
    value: String,
    error: Option<(&'static str, &'static str)>,
) -> DeviceCodePage {
    DeviceCodePage {
        lang,
        action: link_path(&req.random),
        app_name: Some(app_name(state, req).await),
        value,
        error,
    }
}

/// The request's QR code, with what the phone will show beside it.
async fn show(state: &AppState, lang: Lang, req: &DeviceRequest) -> Response {
    let link = state.config.url(&link_path(&req.random));
    let branding = state.qr.branding(&req.client_id);
    let drawn =
        tokio::task::spawn_blocking(move || crate::qr::render(&link, &branding, 240, Format::Svg))
            .await;
    let svg = match drawn {
        Ok(Ok(svg)) => svg,
        Ok(Err(e)) => return AppError::Internal(e).into_page(lang),
        Err(e) => return AppError::Internal(e.into()).into_page(lang),
    };
    use base64::Engine as _;
    let qr_data_uri = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    );
    let agent = crate::requesters::agent(&req.requester_user_agent);
    let place = state.requesters.place(&req.requester_ip);
    let mut device = format!("{} · {}", agent.description, req.requester_ip);
    if let Some(p) = place {
        let named: Vec<String> = [p.city, p.region, p.country]
            .into_iter()
            .flatten()
            .collect();
        if !named.is_empty() {
            device = format!("{device} · {}", named.join(", "));
        }
    }
    let name = app_name(state, req).await;
    let remaining = (req.expires_at - state.clock.now()).max(0);
    page(&DevicePage {
        lang,
        app_initial: name.chars().next().map(String::from).unwrap_or_default(),
        app_name: name,
        user_code: req.user_code.display(),
        device,
        qr_data_uri,
        expires_in_minutes: (remaining + 59_999) / 60_000,
    })
}

fn respond(template: &impl Template, status: StatusCode) -> Response {
    let mut res = page(template);
    *res.status_mut() = status;
    res
}
