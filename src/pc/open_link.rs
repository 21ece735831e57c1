//! `GET /api/v1/qrcodes/{random}/open_link`: "Open in WeChat" for a page on a phone, which
//! cannot scan its own screen. The answer is WeChat's link that opens the Mini Program's
//! confirm page at this code (`wechat::links`: one WeChat call per code, for every instance),
//! given only to the browser the code is bound to (its cookie or `X-ScanGate-Bind`), as the
//! exchange ticket is; the login's result still reaches that browser alone.
//!
//! A code created by a phone's browser names this URL as `open_link_url` in its create answer.
//! Asks are limited per code (`[rate_limits] open_links_per_code_per_minute`), as image renders
//! are.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::clock::rfc3339;
use crate::config::LinkKind;
use crate::domain::Random;
use crate::error::{AppError, AppResult};
use crate::extract::Path;
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::tickets::{Binding, QrStatus};

#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenLinkResponse {
    /// `https://wxaurl.cn/…` (URL Link) or `weixin://dl/business/?t=…` (URL Scheme).
    pub url: String,
    pub kind: LinkKind,
    /// When the link stops opening anything: the code's expiry (to the second, never later).
    pub expires_at: String,
    pub expires_in: i64,
}

/// The link that opens the Mini Program at this code on the same phone ("Open in WeChat"),
/// for the browser that created the code.
#[utoipa::path(get, path = "/api/v1/qrcodes/{random}/open_link", tag = "pc",
    params(("random" = String, Path, description = "The code's id.")),
    responses(
        (status = 200, description = "The link.", body = OpenLinkResponse),
        (status = 403, description = "The code belongs to another browser.", body = crate::error::ErrorBody),
        (status = 404, description = "No such code, or links are off.", body = crate::error::ErrorBody),
        (status = 409, description = "The code is no longer waiting to be scanned.", body = crate::error::ErrorBody),
        (status = 410, description = "The code has expired.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many links asked for this code.", body = crate::error::ErrorBody),
        (status = 503, description = "WeChat could not make a link.", body = crate::error::ErrorBody),
    ))]
pub async fn open_link_get(
    State(state): State<AppState>,
    Path(random): Path<Random>,
    binding: Binding,
) -> AppResult<Response> {
    let qr = crate::tickets::load(state.tickets.as_ref(), &random).await?;
    if !binding.matches(&qr.bind_hash, qr.browser_hash.as_deref()) {
        return Err(AppError::Forbidden(
            "this QR code belongs to another browser".into(),
        ));
    }
    state
        .limiter
        .check(Limit::OpenLinks, qr.random.as_str())
        .await?;
    let now = state.clock.now();
    match qr.status_at(now) {
        QrStatus::Pending => {}
        QrStatus::Expired => return Err(AppError::Expired("the QR code has expired".into())),
        _ => {
            return Err(AppError::Conflict(
                "the QR code is no longer waiting to be scanned".into(),
            ))
        }
    }
    let link = state
        .links
        .for_code(qr.appid.as_str(), qr.random.as_str(), qr.expires_at, now)
        .await?;
    let body = OpenLinkResponse {
        url: link.url,
        kind: link.kind,
        expires_at: rfc3339(qr.expires_at.div_euclid(1000) * 1000),
        expires_in: (qr.expires_at - now).div_euclid(1000),
    };
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Extension(crate::cors::ForApp(qr.client_id.clone())),
        axum::Json(body),
    )
        .into_response())
}
