//! The phone's side of the device authorization grant (RFC 8628 §3.3): the Mini Program opens
//! a device request's link (`{public_url}/q/d/{random}`), shows what is asking — the app, the
//! device's address, place and user agent, and the user code to compare with the device's
//! screen — and the person approves or declines.
//!
//! - `POST /api/mp/v1/devices/{random}/scan`: the view; nothing changes.
//! - `POST /api/mp/v1/devices/{random}/approve`: pending → approved by this user.
//! - `POST /api/mp/v1/devices/{random}/deny`: pending → denied.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::{requester_json, stale_scan, AppBrief, MpUser, RequesterView};
use crate::clock::rfc3339;
use crate::domain::Random;
use crate::error::{AppError, AppResult};
use crate::extract::{Path, Requester};
use crate::metrics::DeviceEvent;
use crate::openapi::ApiRouter;
use crate::ratelimit::Limit;
use crate::requesters;
use crate::state::AppState;
use crate::store::{apps::Signup, audit};
use crate::tickets::device::ALREADY_DECIDED;
use crate::tickets::{DeviceRequest, DeviceStatus};

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(device_scan_post))
        .routes(routes!(device_approve_post))
        .routes(routes!(device_deny_post))
}

/// A pending request the caller's Mini Program may decide, or why not: `not_found`, `403`
/// for another Mini Program's, `410` once expired, `409` once decided.
async fn load(state: &AppState, who: &MpUser, random: &Random) -> AppResult<DeviceRequest> {
    let missing = || AppError::NotFound("no such device request".into());
    let req = state
        .tickets
        .device_get(random.as_str())
        .await?
        .ok_or_else(missing)?;
    if state.apps.get(&req.client_id).await?.is_none() {
        return Err(missing());
    }
    if req.appid != who.identity.appid {
        return Err(AppError::Forbidden(
            "this device request belongs to another Mini Program".into(),
        ));
    }
    match req.status_at(state.clock.now()) {
        DeviceStatus::Pending => Ok(req),
        DeviceStatus::Expired => Err(AppError::Expired("the device request has expired".into())),
        _ => Err(AppError::Conflict(ALREADY_DECIDED.into())),
    }
}

/// What the approval screen shows. Reading it changes nothing: the person decides with
/// approve or deny.
#[utoipa::path(post, path = "/api/mp/v1/devices/{random}/scan", tag = "miniprogram", security(("mp_session" = [])),
    params(("random" = String, Path, description = "The device request's id, from its link.")),
    responses(
        (status = 200, description = "What the approval screen shows.", body = DeviceScanResponse),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 403, description = "Another Mini Program's request.", body = crate::error::ErrorBody),
        (status = 404, description = "No such device request.", body = crate::error::ErrorBody),
        (status = 409, description = "Already decided.", body = crate::error::ErrorBody),
        (status = 410, description = "The request has expired.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many stale scans.", body = crate::error::ErrorBody),
    ))]
async fn device_scan_post(
    State(state): State<AppState>,
    who: MpUser,
    phone_side: Requester,
    Path(random): Path<Random>,
) -> AppResult<Response> {
    let req = match load(&state, &who, &random).await {
        Ok(req) => req,
        Err(e) => return Err(stale_scan(&state, &who, e).await),
    };
    let app = state.apps.get(&req.client_id).await?;
    let (name, logo) = app
        .map(|a| (a.name.clone(), a.logo.clone()))
        .unwrap_or_default();
    let (requester, place) = requester_json(
        &state,
        &req.requester_ip,
        &req.requester_user_agent,
        req.created_at,
    );
    let device = DeviceView {
        requester,
        client_name: name.clone(),
        user_code: req.user_code.display(),
    };
    let phone_place = state.requesters.place(&phone_side.ip);
    let mismatch = requesters::mismatch(place.as_ref(), phone_place.as_ref());
    let scopes = req
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(axum::Json(DeviceScanResponse {
        app: AppBrief::new(&state, name, logo),
        device,
        scopes,
        status: DeviceStatus::Pending.as_str(),
        expires_at: rfc3339(req.expires_at),
        mismatch,
    })
    .into_response())
}

/// What the approval screen shows.
#[derive(Serialize, ToSchema)]
struct DeviceScanResponse {
    app: AppBrief,
    device: DeviceView,
    scopes: Vec<String>,
    /// `pending`.
    #[schema(value_type = String)]
    status: &'static str,
    expires_at: String,
    mismatch: Option<requesters::Mismatch>,
}

/// The device that asked: where and what it is, and the code its screen shows.
#[derive(Serialize, ToSchema)]
struct DeviceView {
    #[serde(flatten)]
    requester: RequesterView,
    client_name: String,
    /// `XXXX-XXXX`, to compare with the device's screen.
    user_code: String,
}

/// The person checked that the user code matches the device's screen and approves; the
/// device's next poll gets the tokens.
#[utoipa::path(post, path = "/api/mp/v1/devices/{random}/approve", tag = "miniprogram", security(("mp_session" = [])),
    params(("random" = String, Path, description = "The device request's id, from its link.")),
    responses(
        (status = 200, description = "`{\"status\": \"approved\"}`.", body = Object),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 403, description = "Another Mini Program's request.", body = crate::error::ErrorBody),
        (status = 404, description = "No such device request.", body = crate::error::ErrorBody),
        (status = 409, description = "Already decided.", body = crate::error::ErrorBody),
        (status = 410, description = "The request has expired.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many approvals.", body = crate::error::ErrorBody),
    ))]
async fn device_approve_post(
    State(state): State<AppState>,
    who: MpUser,
    Path(random): Path<Random>,
) -> AppResult<Response> {
    let req = load(&state, &who, &random).await?;
    let signup = state.apps.get(&req.client_id).await?.map(|a| a.signup);
    if signup == Some(Signup::ExistingOnly) && !who.user.provisioned {
        return Err(AppError::Forbidden(
            "this site signs in existing accounts only: share your phone number to link your \
             account (POST /api/mp/v1/me/phone), or ask the site to add you"
                .into(),
        ));
    }
    state.limiter.check(Limit::Approvals, &who.user.id).await?;
    decide(&state, &who, &req, true).await
}

/// The person declines; the device's next poll gets `access_denied`.
#[utoipa::path(post, path = "/api/mp/v1/devices/{random}/deny", tag = "miniprogram", security(("mp_session" = [])),
    params(("random" = String, Path, description = "The device request's id, from its link.")),
    responses(
        (status = 200, description = "`{\"status\": \"denied\"}`.", body = Object),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 403, description = "Another Mini Program's request.", body = crate::error::ErrorBody),
        (status = 404, description = "No such device request.", body = crate::error::ErrorBody),
        (status = 409, description = "Already decided.", body = crate::error::ErrorBody),
        (status = 410, description = "The request has expired.", body = crate::error::ErrorBody),
    ))]
async fn device_deny_post(
    State(state): State<AppState>,
    who: MpUser,
    Path(random): Path<Random>,
) -> AppResult<Response> {
    let req = load(&state, &who, &random).await?;
    decide(&state, &who, &req, false).await
}

async fn decide(
    state: &AppState,
    who: &MpUser,
    req: &DeviceRequest,
    approve: bool,
) -> AppResult<Response> {
    let now = state.clock.now();
    let req = state
        .tickets
        .device_decide(&req.random, &who.user.id, approve, now)
        .await?;
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&req.pool_id),
            actor: Some(&who.user.id),
            action: if approve {
                "device.approve"
            } else {
                "device.deny"
            },
            subject: Some(&req.client_id),
            ip: Some(&req.requester_ip),
            detail: Some(json!({ "random": req.random, "user_code": req.user_code.display() })),
        },
        now,
    )
    .await?;
    state.metrics.device_event(if approve {
        DeviceEvent::Approved
    } else {
        DeviceEvent::Denied
    });
    Ok(axum::Json(json!({ "status": req.status.as_str() })).into_response())
}
