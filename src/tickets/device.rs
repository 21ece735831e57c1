//! Device authorization requests (RFC 8628): the state a device polls for, kept in the ticket
//! store so that every instance shares it — the pace of polling (`slow_down`) included.
//!
//! A request moves `pending → approved | denied`, and an approved one `→ redeemed` at the one
//! token request that wins it; `pending` and `approved` read as `expired` once the device code's
//! lifetime has passed. It is named by its `random` (the link the device shows as a QR code)
//! and found by its user code; the device code itself is never stored, only its SHA-256.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::{AppId, ClientId, PoolSlug, Random, UserCode};

/// Seconds added to a device's polling interval at each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: i64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Approved, and the tokens handed to the device: nothing more comes of it.
    Redeemed,
    Expired,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Redeemed => "redeemed",
            DeviceStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "redeemed" => DeviceStatus::Redeemed,
            "expired" => DeviceStatus::Expired,
            _ => return None,
        })
    }
}

/// Why a request was denied.
pub mod deny_reason {
    /// The person tapped Decline on the phone.
    pub const DECLINED: &str = "declined";
    /// The user code was typed wrong too often on its verification page.
    pub const LOCKED: &str = "locked";
}

/// One device authorization request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// The request's public name: ≥128 random bits, the last part of its link.
    pub random: Random,
    /// SHA-256 (hex) of the device code handed to the device.
    pub code_hash: String,
    pub user_code: UserCode,
    pub pool_id: PoolSlug,
    /// The app (OIDC client) the device is.
    pub client_id: ClientId,
    /// The Mini Program that may approve it (the app's).
    pub appid: AppId,
    /// The granted scope (known scopes only, `openid` among them).
    pub scope: String,
    /// Stored status; read [`DeviceRequest::status_at`] for what callers see.
    pub status: DeviceStatus,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Seconds the device must leave between two polls; grows with each `slow_down`.
    pub interval_secs: i64,
    /// When the device last polled, if it has.
    pub last_poll_at: Option<Millis>,
    /// The device's address and user agent at the device authorization request.
    pub requester_ip: String,
    pub requester_user_agent: String,
    /// The Mini Program user who approved or denied it.
    pub decided_by: Option<String>,
    /// When it was approved or denied: the approval is the tokens' `auth_time`.
    pub decided_at: Option<Millis>,
    /// Why it was denied (see [`deny_reason`]).
    pub deny_reason: Option<String>,
    /// User codes typed wrong on its verification page.
    pub wrong_codes: u32,
}

impl DeviceRequest {
    /// The status as seen at `now`: pending or approved past the lifetime is `expired`.
    pub fn status_at(&self, now: Millis) -> DeviceStatus {
        match self.status {
            DeviceStatus::Pending | DeviceStatus::Approved if now >= self.expires_at => {
                DeviceStatus::Expired
            }
            s => s,
        }
    }
}

/// What a device's poll of the token endpoint found (RFC 8628 §3.5), decided atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// No such request (gone after its retention, or never).
    Unknown,
    /// Still waiting for the person; poll again after `interval_secs`.
    Pending {
        interval_secs: i64,
    },
    /// Polled sooner than the interval: the interval is now `interval_secs` (5 more).
    SlowDown {
        interval_secs: i64,
    },
    Denied,
    Expired,
    /// Approved, and this poll won it: mint the tokens. Every later poll is `Used`.
    Redeemed(Box<DeviceRequest>),
    /// Approved and already redeemed by an earlier poll.
    Used,
}

/// The outcome of a wrong user code typed against a request's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrongCode {
    /// Counted: so many wrong codes so far.
    Counted(u32),
    /// This one reached the limit: the request is denied (`locked`) from now on.
    Locked,
    /// The request is not pending any more (or gone); nothing was counted.
    NotPending,
}

/// The poll of `req` at `now`, applied to it: the in-process backend's transition, which the
/// Redis script spells the same way.
pub(crate) fn poll(req: &mut DeviceRequest, now: Millis) -> Poll {
    match req.status_at(now) {
        DeviceStatus::Expired => Poll::Expired,
        DeviceStatus::Denied => Poll::Denied,
        DeviceStatus::Redeemed => Poll::Used,
        DeviceStatus::Approved => {
            req.status = DeviceStatus::Redeemed;
            req.last_poll_at = Some(now);
            Poll::Redeemed(Box::new(req.clone()))
        }
        DeviceStatus::Pending => {
            let too_soon = req
                .last_poll_at
                .is_some_and(|last| now - last < req.interval_secs * 1000);
            req.last_poll_at = Some(now);
            if too_soon {
                req.interval_secs += SLOW_DOWN_STEP_SECS;
                Poll::SlowDown {
                    interval_secs: req.interval_secs,
                }
            } else {
                Poll::Pending {
                    interval_secs: req.interval_secs,
                }
            }
        }
    }
}

/// pending → approved or denied by `user_id`, applied to `req`.
pub(crate) fn decide(
    req: &mut DeviceRequest,
    user_id: &str,
    approve: bool,
    now: Millis,
) -> Result<(), super::TransitionError> {
    match req.status_at(now) {
        DeviceStatus::Pending => {
            req.status = if approve {
                DeviceStatus::Approved
            } else {
                DeviceStatus::Denied
            };
            if !approve {
                req.deny_reason = Some(deny_reason::DECLINED.into());
            }
            req.decided_by = Some(user_id.to_owned());
            req.decided_at = Some(now);
            Ok(())
        }
        DeviceStatus::Expired => Err(super::TransitionError::Expired),
        _ => Err(super::TransitionError::Conflict(ALREADY_DECIDED)),
    }
}

/// A wrong user code counted against `req`.
pub(crate) fn wrong_code(req: &mut DeviceRequest, limit: u32, now: Millis) -> WrongCode {
    if req.status_at(now) != DeviceStatus::Pending {
        return WrongCode::NotPending;
    }
    req.wrong_codes += 1;
    if req.wrong_codes >= limit {
        req.status = DeviceStatus::Denied;
        req.deny_reason = Some(deny_reason::LOCKED.into());
        WrongCode::Locked
    } else {
        WrongCode::Counted(req.wrong_codes)
    }
}

/// Why a decision on a request that is no longer pending fails.
pub const ALREADY_DECIDED: &str = "this device request has already been approved or denied";
