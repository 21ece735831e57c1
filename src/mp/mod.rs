//! The Mini Program's backend API (`/api/mp/v1`): session from a `wx.login` code, scan,
//! confirm and cancel a QR code, approve or deny a device (`devices`), and the user's own
//! profile.
//!
//! The WeChat `session_key` is sealed in the database and never leaves the server; the Mini
//! Program holds only an opaque bearer token whose SHA-256 we store.

mod devices;
mod logins;
mod profile;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::crypto::{random_token, sha256_hex};
use crate::domain::{AppId, Random};
use crate::error::{AppError, AppResult};
use crate::extract::{bearer, Json, OptionalJson, Path, Requester};
use crate::funnel::Step;
use crate::metrics::ScannerEvent;
use crate::openapi::ApiRouter;
use crate::ratelimit::Limit;
use crate::requesters;
use crate::state::AppState;
use crate::store::apps::PhoneAsk;
use crate::store::{self, apps::Signup, audit, identities::Identity, users::User};
use crate::tickets::{cancel_reason, ExchangeTicket, QrStatus, Scanner, TICKET_TTL};

/// Lifetime of a Mini Program bearer session.
const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(session_post))
        .routes(routes!(scan_post))
        .routes(routes!(confirm_post))
        .routes(routes!(cancel_post))
        .merge(profile::router())
        .merge(logins::router())
        .merge(devices::router())
}

#[derive(Deserialize, ToSchema)]
struct SessionRequest {
    /// The Mini Program's AppID (`wx…`).
    #[schema(value_type = String)]
    appid: AppId,
    /// The code `wx.login` gave.
    code: String,
}

#[derive(Serialize, ToSchema)]
struct SessionResponse {
    /// The bearer token of the other Mini Program calls.
    token: String,
    expires_in: i64,
    user: SessionUser,
}

#[derive(Serialize, ToSchema)]
struct SessionUser {
    id: String,
    is_new: bool,
    nickname: Option<String>,
    avatar_url: Option<String>,
    has_phone: bool,
}

/// Signs the Mini Program in: its `wx.login` code goes to WeChat's code2Session, the person's
/// identity is found or made, and a bearer token comes back. The session key stays here.
#[utoipa::path(post, path = "/api/mp/v1/session", tag = "miniprogram",
    request_body = SessionRequest,
    responses(
        (status = 200, description = "The session.", body = SessionResponse),
        (status = 400, description = "No code, or WeChat refused it (errcode 40029, 40163…).", body = crate::error::ErrorBody),
        (status = 404, description = "No such Mini Program.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many sessions from this address.", body = crate::error::ErrorBody),
        (status = 503, description = "WeChat could not be reached.", body = crate::error::ErrorBody),
    ))]
async fn session_post(
    State(state): State<AppState>,
    requester: Requester,
    Json(req): Json<SessionRequest>,
) -> AppResult<Response> {
    if req.code.is_empty() || req.code.len() > 256 {
        return Err(AppError::invalid("code must be the code from wx.login"));
    }
    state.limiter.check(Limit::Sessions, &requester.ip).await?;
    let (mp, creds) = state.miniprograms.credentials(&req.appid).await?;
    let session = state.wechat.code2session(&creds, &req.code).await?;
    let now = state.clock.now();
    let sealed_key = state.secrets.seal(session.session_key.as_bytes());
    let upserted = store::identities::upsert_login(
        &state.db,
        &mp.pool,
        &mp.appid,
        &session.openid,
        session.unionid.as_deref(),
        &sealed_key,
        now,
    )
    .await?;
    let identity = upserted.identity;
    let token = random_token(32);
    let expires_at = now + SESSION_TTL_SECS * 1000;
    store::sessions::insert(
        &state.db,
        &sha256_hex(token.as_bytes()),
        &identity.id,
        &identity.user_id,
        now,
        expires_at,
    )
    .await?;
    let user = store::users::get(&state.db.pool, &identity.user_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("identity without user")))?;
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&mp.pool),
            actor: Some(&user.id),
            action: if upserted.is_new {
                "mp.signup"
            } else {
                "mp.session"
            },
            subject: Some(&mp.appid),
            ip: Some(&requester.ip),
            detail: None,
        },
        now,
    )
    .await?;
    let body = SessionResponse {
        token,
        expires_in: SESSION_TTL_SECS,
        user: SessionUser {
            id: user.id,
            is_new: upserted.is_new,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            has_phone: user.phone.is_some(),
        },
    };
    Ok(axum::Json(body).into_response())
}

/// The caller of an authenticated Mini Program endpoint.
pub struct MpUser {
    pub identity: Identity,
    pub user: User,
}

impl MpUser {
    /// The session key of this identity, unsealed (for decrypting open data).
    pub fn session_key(&self, state: &AppState) -> AppResult<String> {
        let sealed = self.identity.session_key_enc.as_deref().ok_or_else(|| {
            AppError::Unauthorized("no WeChat session; call session again".into())
        })?;
        state
            .secrets
            .open_string(sealed)
            .map_err(|e| AppError::Internal(e.into()))
    }
}

impl FromRequestParts<AppState> for MpUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| AppError::Unauthorized("missing bearer token".into()))?;
        if token.len() > 128 {
            return Err(AppError::Unauthorized("invalid or expired token".into()));
        }
        let now = state.clock.now();
        let session = store::sessions::get(&state.db, &sha256_hex(token.as_bytes()), now)
            .await?
            .ok_or_else(|| AppError::Unauthorized("invalid or expired token".into()))?;
        let identity = store::identities::get(&state.db, &session.identity_id)
            .await?
            .ok_or_else(|| AppError::Unauthorized("invalid or expired token".into()))?;
        let user = store::users::get(&state.db.pool, &session.user_id)
            .await?
            .ok_or_else(|| AppError::Unauthorized("invalid or expired token".into()))?;
        if user.blocked {
            return Err(AppError::Forbidden("this user is blocked".into()));
        }
        Ok(MpUser { identity, user })
    }
}

/// Loads a code the caller's Mini Program may act on.
async fn load_for(
    state: &AppState,
    who: &MpUser,
    random: &Random,
) -> AppResult<crate::tickets::QrCode> {
    let qr = crate::tickets::load(state.tickets.as_ref(), random).await?;
    // A code of an app deleted since names nothing any more.
    if state.apps.get(&qr.client_id).await?.is_none() {
        return Err(AppError::NotFound("no such QR code".into()));
    }
    if qr.appid != who.identity.appid {
        return Err(AppError::Forbidden(
            "this QR code belongs to another Mini Program".into(),
        ));
    }
    if qr.status_at(state.clock.now()) == QrStatus::Expired {
        return Err(AppError::Expired("the QR code has expired".into()));
    }
    Ok(qr)
}

/// Where the phone can load an app's logo from, if it has one to show.
pub(crate) fn logo_url(state: &AppState, logo: Option<String>) -> Option<String> {
    // A logo given as a file or `data:` URI is for QR images; only a URL is one to show.
    logo.and_then(|l| {
        if l.starts_with("https://") || l.starts_with("http://") {
            Some(l)
        } else {
            // A logo ScanGate stores, served from its own media path.
            crate::qr::logo::stored_digest(&l).map(|_| state.config.url(&l))
        }
    })
}

/// What the confirm screen shows of the browser that asked for a login (the code's creator):
/// the browser in words, its address and place, and how long ago it asked.
pub(crate) fn requester_json(
    state: &AppState,
    ip: &str,
    user_agent: &str,
    created_at: crate::clock::Millis,
) -> (RequesterView, Option<requesters::Place>) {
    let agent = requesters::agent(user_agent);
    let place = state.requesters.place(ip);
    let shown = (state.clock.now() - created_at).max(0).div_euclid(1000);
    let view = RequesterView {
        ip: ip.to_owned(),
        user_agent: user_agent.to_owned(),
        created_at: rfc3339(created_at),
        browser: agent.browser,
        os: agent.os,
        device: agent.device,
        description: agent.description,
        location: place.clone(),
        shown_seconds_ago: shown,
    };
    (view, place)
}

/// Who asked for a login, as the phone shows it before the person confirms.
#[derive(Serialize, ToSchema)]
pub(crate) struct RequesterView {
    ip: String,
    user_agent: String,
    /// When the request was made.
    created_at: String,
    browser: Option<String>,
    os: Option<String>,
    /// `desktop`, `phone`, `tablet` or `unknown`.
    #[schema(value_type = String)]
    device: &'static str,
    /// `Chrome on Windows`.
    description: String,
    /// Where the address is, when the GeoIP database knows.
    location: Option<requesters::Place>,
    shown_seconds_ago: i64,
}

/// An app as the phone shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct AppBrief {
    name: String,
    logo_url: Option<String>,
}

impl AppBrief {
    pub(crate) fn new(state: &AppState, name: String, logo: Option<String>) -> Self {
        AppBrief {
            name,
            logo_url: logo_url(state, logo),
        }
    }
}

/// What the confirm screen shows.
#[derive(Serialize, ToSchema)]
struct ScanResponse {
    app: AppBrief,
    requester: RequesterView,
    expires_at: String,
    /// A warning to show before the person confirms: the requester is in a datacenter or in
    /// another country than the phone.
    mismatch: Option<requesters::Mismatch>,
    /// The match step: the person taps the number the PC page shows.
    #[serde(rename = "match")]
    matching: Option<MatchStep>,
    /// Whether to ask for the phone number: `never`, `optional` or `required`.
    #[schema(value_type = String)]
    phone: &'static str,
}

#[derive(Serialize, ToSchema)]
struct MatchStep {
    /// Three numbers, one of them the PC page's.
    #[schema(value_type = Vec<u8>)]
    choices: [u8; 3],
}

#[derive(Serialize, ToSchema)]
struct ConfirmResponse {
    status: QrStatus,
    login_id: String,
    /// `quota_exhausted`: WeChat's phone quota ran out, so the person is signed in without
    /// the phone number.
    #[schema(value_type = Option<String>)]
    phone_skipped: Option<&'static str>,
    #[schema(value_type = Option<String>)]
    phone_skipped_message: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
struct StatusResponse {
    status: QrStatus,
}

/// A scan that found no pending code to take (unknown, expired, used, another's) counts
/// against the user's `stale_scans_per_minute`: past it, `rate_limited` instead of `e`.
async fn stale_scan(state: &AppState, who: &MpUser, e: AppError) -> AppError {
    if !matches!(
        e,
        AppError::NotFound(_) | AppError::Expired(_) | AppError::Conflict(_)
    ) {
        return e;
    }
    match state.limiter.check(Limit::StaleScans, &who.user.id).await {
        Ok(()) => e,
        Err(limited) => limited,
    }
}

/// Pending → scanned by this user. Answers what the
/// confirm screen needs: the app, who is asking (and a warning when the requester's network
/// is a datacenter's or in another country than the phone's), the match step's three numbers
/// and whether to ask for a phone number.
#[utoipa::path(post, path = "/api/mp/v1/qrcodes/{random}/scan", tag = "miniprogram", security(("mp_session" = [])),
    params(("random" = String, Path, description = "The code's id, from the scanned URL.")),
    responses(
        (status = 200, description = "What the confirm screen shows.", body = ScanResponse),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 403, description = "Another Mini Program's code, or an app of existing accounts only.", body = crate::error::ErrorBody),
        (status = 404, description = "No such code.", body = crate::error::ErrorBody),
        (status = 409, description = "Already scanned by someone else, or used.", body = crate::error::ErrorBody),
        (status = 410, description = "The code has expired.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many stale scans.", body = crate::error::ErrorBody),
    ))]
async fn scan_post(
    State(state): State<AppState>,
    who: MpUser,
    phone_side: Requester,
    Path(random): Path<Random>,
) -> AppResult<Response> {
    let qr = match load_for(&state, &who, &random).await {
        Ok(qr) => qr,
        Err(e) => return Err(stale_scan(&state, &who, e).await),
    };
    let app = state.apps.get(&qr.client_id).await?;
    if app.as_ref().map(|a| a.signup) == Some(Signup::ExistingOnly) && !who.user.provisioned {
        return Err(AppError::Forbidden(
            "this site signs in existing accounts only: share your phone number to link your \
             account (POST /api/mp/v1/me/phone), or ask the site to add you"
                .into(),
        ));
    }
    let scanner = Scanner {
        user_id: who.user.id.clone(),
        nickname: who.user.nickname.clone(),
        avatar_url: who.user.avatar_url.clone(),
    };
    let qr = match state
        .tickets
        .scan(&qr.random, &scanner, state.clock.now())
        .await
    {
        Ok(qr) => qr,
        Err(e) => return Err(stale_scan(&state, &who, e.into()).await),
    };
    // Scanned, the code no longer counts among its creator's pending ones.
    state
        .limiter
        .release_pending(&qr.requester_ip, &qr.random)
        .await?;
    state.funnel.scanned(&qr.client_id, &qr.random).await;
    let (name, logo, phone) = app
        .map(|a| (a.name.clone(), a.logo.clone(), a.phone))
        .unwrap_or_default();
    let app = AppBrief::new(&state, name, logo);
    let (requester, requester_place) = requester_json(
        &state,
        &qr.requester_ip,
        &qr.requester_user_agent,
        qr.created_at,
    );
    let phone_place = state.requesters.place(&phone_side.ip);
    let mismatch = requesters::mismatch(requester_place.as_ref(), phone_place.as_ref());
    if mismatch.is_some() {
        state.metrics.scanner_event(ScannerEvent::MismatchWarned);
    }
    let matching = qr.match_number.map(|n| MatchStep {
        choices: crate::tickets::match_choices(n),
    });
    Ok(axum::Json(ScanResponse {
        app,
        requester,
        expires_at: rfc3339(qr.expires_at),
        mismatch,
        matching,
        phone: phone.as_str(),
    })
    .into_response())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    #[serde(default)]
    pub profile: Option<profile::ProfileInput>,
    #[serde(default)]
    pub user_info: Option<profile::UserInfoInput>,
    #[serde(default)]
    pub phone: Option<profile::PhoneInput>,
    /// The number the person tapped (the match step).
    #[serde(default)]
    pub match_number: Option<i64>,
}

/// Checks the match number, applies the optional
/// profile and phone, then moves scanned → confirmed, records the login and issues the
/// exchange ticket. A wrong match number cancels the code at once.
#[utoipa::path(post, path = "/api/mp/v1/qrcodes/{random}/confirm", tag = "miniprogram", security(("mp_session" = [])),
    params(("random" = String, Path, description = "The code's id, from the scanned URL.")),
    request_body(content = Option<ConfirmRequest>, description = "Optional: a profile, a phone and the match number."),
    responses(
        (status = 200, description = "Confirmed: the PC page gets its ticket.", body = ConfirmResponse),
        (status = 400, description = "A wrong field, or the match number is missing.", body = crate::error::ErrorBody),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 403, description = "Scanned by another user.", body = crate::error::ErrorBody),
        (status = 404, description = "No such code.", body = crate::error::ErrorBody),
        (status = 409, description = "Not scanned, used, or a wrong match number (the code is cancelled).", body = crate::error::ErrorBody),
        (status = 410, description = "The code has expired.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many approvals.", body = crate::error::ErrorBody),
    ))]
async fn confirm_post(
    State(state): State<AppState>,
    who: MpUser,
    Path(random): Path<Random>,
    OptionalJson(body): OptionalJson<ConfirmRequest>,
) -> AppResult<Response> {
    let mut qr = load_for(&state, &who, &random).await?;
    // The phone's scan may have gone through another instance, whose notification has not
    // reached this instance's near cache yet: a pending copy is read again from the store.
    if qr.status == QrStatus::Pending {
        if let Some(fresh) = state.tickets.get_fresh(&qr.random).await? {
            qr = fresh;
        }
    }
    // Fail before any WeChat call when the transition cannot succeed anyway.
    match (qr.status, &qr.scanner) {
        (QrStatus::Scanned, Some(s)) if s.user_id == who.user.id => {}
        (QrStatus::Scanned, _) => {
            return Err(AppError::Forbidden(
                "this QR code was scanned by another user".into(),
            ))
        }
        (QrStatus::Pending, _) => {
            return Err(AppError::Conflict(
                "the QR code has not been scanned".into(),
            ))
        }
        _ => {
            return Err(AppError::Conflict(
                "this QR code has already been used".into(),
            ))
        }
    }
    let body = body.unwrap_or_default();
    if let Some(expected) = qr.match_number {
        match body.match_number {
            None => {
                return Err(AppError::invalid(
                    "match_number is required: tap the number the computer's screen shows",
                ))
            }
            Some(n) if n == i64::from(expected) => {}
            Some(_) => return Err(wrong_match_number(&state, &who, &qr).await),
        }
    }
    state.limiter.check(Limit::Approvals, &who.user.id).await?;
    let phone_ask = state
        .apps
        .get(&qr.client_id)
        .await?
        .map(|a| a.phone)
        .unwrap_or_default();
    if let Some(p) = &body.profile {
        profile::apply_profile(&state, &who, p).await?;
    }
    if let Some(u) = &body.user_info {
        profile::apply_user_info(&state, &who, u).await?;
    }
    let mut phone_skipped = None;
    match &body.phone {
        Some(_) if phone_ask == PhoneAsk::Off => {
            return Err(AppError::invalid(
                "this site does not ask for a phone number",
            ))
        }
        Some(p) => {
            if p.code.is_some() {
                // A phone code costs the Mini Program's owner a call WeChat charges for.
                state.funnel.step(&qr.client_id, Step::PhoneLookup).await;
            }
            if profile::read_phone(&state, &who, p).await?.is_none() {
                phone_skipped = Some("quota_exhausted");
                phone_quota_exhausted(&state, &who, &qr).await?;
            }
        }
        // `required` is the confirm screen's to enforce: WeChat may have no number to give
        // (the quota, errno 1400001 on the phone), and a person is not locked out for that.
        None => {}
    }
    let now = state.clock.now();
    let login = store::logins::Login {
        id: store::new_id(),
        pool: qr.pool_id.to_string(),
        user_id: who.user.id.clone(),
        client_id: qr.client_id.to_string(),
        random: qr.random.to_string(),
        requester_ip: qr.requester_ip.clone(),
        requester_user_agent: qr.requester_user_agent.clone(),
        confirmed_at: now,
        reported_at: None,
        grant_id: None,
        session_hash: None,
    };
    let ticket = ExchangeTicket {
        ticket: random_token(24),
        random: qr.random.clone(),
        pool_id: qr.pool_id.clone(),
        client_id: qr.client_id.clone(),
        user_id: who.user.id.clone(),
        bind_hash: qr.bind_hash.clone(),
        browser_hash: qr.browser_hash.clone(),
        require_binding: qr.require_binding,
        confirmed_at: now,
        expires_at: now + TICKET_TTL.as_millis() as i64,
        login_id: Some(login.id.clone()),
    };
    let qr = state.tickets.confirm(&qr.random, &ticket, now).await?;
    store::logins::insert(&state.db, &login).await?;
    state.funnel.confirmed(&qr.client_id, &qr.random).await;
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&qr.pool_id),
            actor: Some(&who.user.id),
            action: "qrcode.confirm",
            subject: Some(&qr.client_id),
            ip: None,
            detail: Some(json!({ "random": qr.random, "login": login.id })),
        },
        now,
    )
    .await?;
    let message = phone_skipped.map(|_| {
        "WeChat could not share your phone number right now (this Mini Program's quota is used \
         up); you are signed in without it."
    });
    Ok(axum::Json(ConfirmResponse {
        status: qr.status,
        login_id: login.id,
        phone_skipped,
        phone_skipped_message: message,
    })
    .into_response())
}

/// The person tapped a number the PC page did not show: the code is cancelled at once, so
/// that nobody can try again, and the event is audited.
async fn wrong_match_number(
    state: &AppState,
    who: &MpUser,
    qr: &crate::tickets::QrCode,
) -> AppError {
    let now = state.clock.now();
    if let Err(e) = state
        .tickets
        .cancel(
            &qr.random,
            &who.user.id,
            cancel_reason::WRONG_MATCH_NUMBER,
            now,
        )
        .await
    {
        return e.into();
    }
    state.funnel.step(&qr.client_id, Step::Cancelled).await;
    state.metrics.scanner_event(ScannerEvent::WrongMatchNumber);
    let audited = audit::record(
        &state.db,
        audit::Event {
            pool: Some(&qr.pool_id),
            actor: Some(&who.user.id),
            action: "qrcode.wrong_match_number",
            subject: Some(&qr.client_id),
            ip: Some(&qr.requester_ip),
            detail: Some(json!({
                "random": qr.random,
                "requester_user_agent": qr.requester_user_agent,
            })),
        },
        now,
    )
    .await;
    if let Err(e) = audited {
        return e.into();
    }
    AppError::WrongMatchNumber(
        "that is not the number the computer showed: this sign-in was cancelled. If you did \
         not start it on a computer in front of you, someone else may have."
            .into(),
    )
}

/// WeChat refused the phone code because the quota is used up: audited and counted; the
/// login goes on without the phone.
async fn phone_quota_exhausted(
    state: &AppState,
    who: &MpUser,
    qr: &crate::tickets::QrCode,
) -> AppResult<()> {
    state
        .metrics
        .scanner_event(ScannerEvent::PhoneQuotaExhausted);
    audit::record(
        &state.db,
        audit::Event {
            pool: Some(&qr.pool_id),
            actor: Some(&who.user.id),
            action: "mp.phone_quota_exhausted",
            subject: Some(&who.identity.appid),
            ip: None,
            detail: Some(json!({ "random": qr.random, "client_id": qr.client_id })),
        },
        state.clock.now(),
    )
    .await?;
    Ok(())
}

/// The person declined: the code is cancelled and the PC page told.
#[utoipa::path(post, path = "/api/mp/v1/qrcodes/{random}/cancel", tag = "miniprogram", security(("mp_session" = [])),
    params(("random" = String, Path, description = "The code's id, from the scanned URL.")),
    responses(
        (status = 200, description = "`cancelled`.", body = StatusResponse),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 403, description = "Only the user who scanned may cancel.", body = crate::error::ErrorBody),
        (status = 404, description = "No such code.", body = crate::error::ErrorBody),
        (status = 409, description = "Already confirmed or cancelled.", body = crate::error::ErrorBody),
    ))]
async fn cancel_post(
    State(state): State<AppState>,
    who: MpUser,
    Path(random): Path<Random>,
) -> AppResult<Response> {
    let qr = load_for(&state, &who, &random).await?;
    // Knowing a code's `random` (a photo of the screen) is not enough to cancel someone's
    // login: only the user who scanned it may. Once scanned, the store checks who did.
    if qr.status_at(state.clock.now()) == QrStatus::Pending {
        return Err(AppError::Forbidden(
            "only the user who scanned this QR code may cancel it".into(),
        ));
    }
    let qr = state
        .tickets
        .cancel(
            &qr.random,
            &who.user.id,
            cancel_reason::DECLINED,
            state.clock.now(),
        )
        .await?;
    state.funnel.step(&qr.client_id, Step::Cancelled).await;
    Ok((
        StatusCode::OK,
        axum::Json(StatusResponse { status: qr.status }),
    )
        .into_response())
}
