//! The device authorization grant's engine (RFC 8628): making a request with its device code,
//! user code and link, and reading a device code back. The endpoints are `oidc` (device
//! authorization and the token grant), `login` (the verification page) and `mp` (approval on
//! the phone); the shared state lives in the ticket store (`tickets::device`).
//!
//! The device code is `{random}.{secret}`: the random names the request (and is the last part
//! of its link, which the device may show as a QR code), the secret is 256 random bits. Only
//! the SHA-256 of the whole code is stored, so a copy of the store cannot poll for tokens.

use super::Issuer;
use crate::clock::Millis;
use crate::crypto::{random_token, sha256_hex};
use crate::domain::{Random, UserCode};
use crate::extract::Requester;
use crate::store::apps::App;
use crate::tickets::{DeviceRequest, DeviceStatus, StoreError, TicketStore};

/// How long a device code lives (RFC 8628 §3.2 `expires_in`): time to find the phone, open
/// WeChat and approve.
pub const DEVICE_CODE_TTL_SECS: i64 = 600;
/// The polling interval a device starts with (RFC 8628 §3.2 `interval`; 5 is its default).
pub const INTERVAL_SECS: i64 = 5;
/// Draws of a user code before giving up: a clash with a live code is rare (20^8 codes).
const USER_CODE_DRAWS: usize = 8;

/// The grant type of the token request (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The path of a request's link: under `/q/`, so that WeChat's "scan an ordinary QR code"
/// rule opens the Mini Program with it, like a QR login's `scan_url`.
pub fn link_path(random: &str) -> String {
    format!("/q/d/{random}")
}

/// The verification page of `issuer` (RFC 8628 §3.2 `verification_uri`), where a code is
/// typed.
pub fn verification_uri(issuer: &Issuer) -> String {
    issuer.endpoint("/device")
}

/// Stores a new pending request of `app` for `scope`, from the device `requester`; returns it
/// with its device code (handed to the device once, never stored).
pub async fn start(
    store: &dyn TicketStore,
    app: &App,
    scope: String,
    requester: &Requester,
    now: Millis,
) -> Result<(DeviceRequest, String), StoreError> {
    let random = Random::generate();
    let device_code = format!("{random}.{}", random_token(32));
    let mut req = DeviceRequest {
        random,
        code_hash: sha256_hex(device_code.as_bytes()),
        user_code: UserCode::generate(),
        pool_id: app.pool.clone(),
        client_id: app.client_id.clone(),
        appid: app.miniprogram.clone(),
        scope,
        status: DeviceStatus::Pending,
        created_at: now,
        expires_at: now + DEVICE_CODE_TTL_SECS * 1000,
        interval_secs: INTERVAL_SECS,
        last_poll_at: None,
        requester_ip: requester.ip.clone(),
        requester_user_agent: requester.user_agent.clone(),
        decided_by: None,
        decided_at: None,
        deny_reason: None,
        wrong_codes: 0,
    };
    for _ in 0..USER_CODE_DRAWS {
        if store.device_insert(&req).await? {
            return Ok((req, device_code));
        }
        req.user_code = UserCode::generate();
    }
    Err(StoreError(anyhow::anyhow!(
        "no free user code after {USER_CODE_DRAWS} draws"
    )))
}

/// The request a device code names, if it is one ScanGate handed out: the code's random finds
/// the request and the whole code's hash must match (compared in constant time).
pub async fn find(
    store: &dyn TicketStore,
    device_code: &str,
) -> Result<Option<DeviceRequest>, StoreError> {
    let Some((random, _)) = device_code.split_once('.') else {
        return Ok(None);
    };
    if Random::parse(random).is_err() || device_code.len() > 128 {
        return Ok(None);
    }
    let hash = sha256_hex(device_code.as_bytes());
    Ok(store
        .device_get(random)
        .await?
        .filter(|req| crate::crypto::constant_time_eq(&req.code_hash, &hash)))
}
