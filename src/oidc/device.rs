//! The device authorization grant (RFC 8628): the device authorization endpoint (§3.1–3.2)
//! and the token request with `urn:ietf:params:oauth:grant-type:device_code` (§3.4–3.5).
//!
//! Only apps with `device_grant = true` may use either (`unauthorized_client` otherwise).
//! Clients authenticate as at the token endpoint; public clients send `client_id` alone. The
//! person approves on the phone (`mp`), after opening the request's link from a QR code the
//! device shows or from the verification page (`login`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::token::{authenticate, mint, no_store, read_form, usable, FormBody, TokenResponse};
use super::OAuthError;
use crate::error::AppError;
use crate::extract::Requester;
use crate::metrics::DeviceEvent;
use crate::oauth::device::{self, DEVICE_CODE_TTL_SECS};
use crate::oauth::{grant_scope, has_scope, Issuer, Params};
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::{self, apps::App, audit, grants::Grant};
use crate::tickets::Poll;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    /// The request's link: shown by the device as a QR code, scanned with WeChat.
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// The device authorization request (RFC 8628 §3.1): a form with the client's credentials
/// (or `client_id` alone for a public client) and `scope`.
#[utoipa::path(post, path = "/device/auth", tag = "oidc",
    security((), ("client_basic" = [])),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`client_id` (and `client_secret` unless Basic), `scope`."),
    responses(
        (status = 200, description = "The device code and what to show the person.", body = DeviceAuthorizationResponse),
        (status = 400, description = "`invalid_request`, `invalid_scope`, `unauthorized_client`.", body = crate::oidc::error::OAuthErrorBody),
        (status = 401, description = "`invalid_client`.", body = crate::oidc::error::OAuthErrorBody),
        (status = 429, description = "Too many requests.", body = crate::oidc::error::OAuthErrorBody),
    ))]
pub async fn device_authorization_post(
    State(state): State<AppState>,
    issuer: Issuer,
    requester: Requester,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    match device_authorization(&state, &issuer, &requester, &headers, &body).await {
        Ok(res) => no_store(axum::Json(res).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn device_authorization(
    state: &AppState,
    issuer: &Issuer,
    requester: &Requester,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeviceAuthorizationResponse, OAuthError> {
    state
        .limiter
        .check(Limit::DeviceAuthorizations, &requester.ip)
        .await?;
    let form = read_form(headers, body)?;
    let app = authenticate(state, issuer, requester, headers, &form).await?;
    allowed(&app)?;
    // As at the authorization endpoint: `openid` is required, unknown scopes are dropped.
    let scope = match form.get("scope") {
        None => return Err(OAuthError::invalid_request("scope is missing")),
        Some(s) if !has_scope(s, "openid") => {
            return Err(OAuthError::invalid_scope("the openid scope is required"))
        }
        Some(s) => grant_scope(s),
    };
    let now = state.clock.now();
    let (req, device_code) =
        device::start(state.tickets.as_ref(), &app, scope, requester, now).await?;
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&req.pool_id),
            actor: None,
            action: "device.authorize",
            subject: Some(&req.client_id),
            ip: Some(&requester.ip),
            detail: Some(json!({ "random": req.random, "user_code": req.user_code.display(), "scope": req.scope })),
        },
        now,
    )
    .await?;
    state.metrics.device_event(DeviceEvent::Authorized);
    Ok(DeviceAuthorizationResponse {
        device_code,
        user_code: req.user_code.display(),
        verification_uri: device::verification_uri(issuer),
        verification_uri_complete: state.config.url(&device::link_path(&req.random)),
        expires_in: DEVICE_CODE_TTL_SECS,
        interval: req.interval_secs,
    })
}

/// Only an app that opted in may use the grant.
fn allowed(app: &App) -> Result<(), OAuthError> {
    if app.device_grant {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(
            "this client may not use the device authorization grant (device_grant is off)",
        ))
    }
}

/// The device access token request (RFC 8628 §3.4) and its answers (§3.5): tokens once the
/// person approved, else `authorization_pending`, `slow_down`, `access_denied` or
/// `expired_token`. The poll is one atomic step in the ticket store, so its pace is kept
/// across instances and an approved request yields tokens exactly once.
pub(super) async fn device_code(
    state: &AppState,
    issuer: &Issuer,
    app: &App,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    allowed(app)?;
    let code = form
        .get("device_code")
        .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
    let req = device::find(state.tickets.as_ref(), code)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the device code is unknown"))?;
    // Another client's code is refused without touching it, so its pace stays its own.
    if req.client_id != app.client_id {
        return Err(OAuthError::invalid_grant(
            "the device code was issued to another client",
        ));
    }
    let now = state.clock.now();
    let req = match state.tickets.device_poll(&req.random, now).await? {
        Poll::Redeemed(req) => req,
        Poll::Pending { .. } => {
            return Err(OAuthError::authorization_pending(
                "the person has not approved the request yet",
            ))
        }
        Poll::SlowDown { interval_secs } => {
            state.metrics.device_event(DeviceEvent::SlowDown);
            return Err(OAuthError::slow_down(format!(
                "polled too often: wait {interval_secs} seconds between requests"
            )));
        }
        Poll::Denied => return Err(OAuthError::access_denied("the request was denied")),
        Poll::Expired => return Err(OAuthError::expired_token("the device code has expired")),
        Poll::Used => {
            return Err(OAuthError::invalid_grant(
                "the device code has already been used",
            ))
        }
        Poll::Unknown => return Err(OAuthError::invalid_grant("the device code is unknown")),
    };
    let user_id = req
        .decided_by
        .clone()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("an approved request without user")))?;
    let user = usable(store::users::get(&state.db.pool, &user_id).await?)?;
    let approved_at = req.decided_at.unwrap_or(now);
    let grant = Grant {
        id: store::new_id(),
        pool: req.pool_id.to_string(),
        client_id: req.client_id.to_string(),
        user_id: user.id.clone(),
        scope: req.scope.clone(),
        auth_time: approved_at,
        created_at: now,
        revoked_at: None,
    };
    store::grants::insert(&state.db, &grant).await?;
    // In the person's list of logins on the phone, where a report revokes the grant.
    let login = store::logins::Login {
        id: store::new_id(),
        pool: grant.pool.clone(),
        user_id: user.id.clone(),
        client_id: grant.client_id.clone(),
        random: req.random.to_string(),
        requester_ip: req.requester_ip.clone(),
        requester_user_agent: req.requester_user_agent.clone(),
        confirmed_at: approved_at,
        reported_at: None,
        grant_id: Some(grant.id.clone()),
        session_hash: None,
    };
    store::logins::insert(&state.db, &login).await?;
    let scope = grant.scope.clone();
    let response = mint(state, issuer, &grant, &user, &scope, None, true).await?;
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&grant.pool),
            actor: Some(&user.id),
            action: "device.redeem",
            subject: Some(&grant.client_id),
            ip: None,
            detail: Some(json!({ "random": req.random, "grant": grant.id })),
        },
        now,
    )
    .await?;
    state.metrics.device_event(DeviceEvent::Redeemed);
    Ok(response)
}
