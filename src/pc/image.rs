//! `GET /api/v1/qrcodes/{random}/image.png` and `.svg`: the code's branded image.
//!
//! Each image is made once per code, size and format and served from memory until the code
//! expires, with a strong `ETag` (a `304` for a matching `If-None-Match`) and a
//! `Cache-Control` lifetime no longer than the code's. Drawing runs on the blocking pool, never
//! on the async workers, and a code may have only so many images drawn a minute
//! (`[rate_limits] image_renders_per_code_per_minute`): requests are unauthenticated, and each
//! new size is work. An app in `wxacode` mode gets a Mini Program code from WeChat's
//! getwxacodeunlimit with `scene` = the code's random — one call per code, at
//! [`WXACODE_SOURCE_WIDTH`], kept beside the images, from which every size and format is drawn;
//! when WeChat refuses (an unpublished page is 41030) or cannot be reached, the images are an
//! ordinary QR code of `scan_url` instead, and a warning is logged.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::config::QrMode;
use crate::domain::Random;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::qr::{Branding, Format, Image, ImageKey, WXACODE_SOURCE_WIDTH};
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::tickets::QrCode;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    /// The image's width and height in pixels (the app's size when absent).
    #[param(minimum = 128, maximum = 1024)]
    size: Option<u32>,
}

/// The `If-None-Match` values of a request, read without copying its other headers.
pub struct IfNoneMatch(Vec<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
        ))
    }
}

/// The code's branded image as PNG, with a strong `ETag` (`304` for a matching
/// `If-None-Match`) and a lifetime no longer than the code's.
#[utoipa::path(get, path = "/api/v1/qrcodes/{random}/image.png", tag = "pc",
    params(("random" = String, Path, description = "The code's id."), ImageQuery),
    responses(
        (status = 200, description = "The image.", content_type = "image/png", body = Vec<u8>),
        (status = 304, description = "Not modified."),
        (status = 400, description = "`size` out of range.", body = ErrorBody),
        (status = 404, description = "No such code.", body = ErrorBody),
        (status = 429, description = "Too many images drawn for this code.", body = ErrorBody),
    ))]
pub async fn image_png_get(
    State(state): State<AppState>,
    Path(random): Path<Random>,
    headers: IfNoneMatch,
    Query(q): Query<ImageQuery>,
) -> AppResult<Response> {
    image(state, random, q, headers, Format::Png).await
}

/// The code's branded image as SVG; otherwise as the PNG.
#[utoipa::path(get, path = "/api/v1/qrcodes/{random}/image.svg", tag = "pc",
    params(("random" = String, Path, description = "The code's id."), ImageQuery),
    responses(
        (status = 200, description = "The image.", content_type = "image/svg+xml", body = String),
        (status = 304, description = "Not modified."),
        (status = 400, description = "`size` out of range.", body = ErrorBody),
        (status = 404, description = "No such code.", body = ErrorBody),
        (status = 429, description = "Too many images drawn for this code.", body = ErrorBody),
    ))]
pub async fn image_svg_get(
    State(state): State<AppState>,
    Path(random): Path<Random>,
    headers: IfNoneMatch,
    Query(q): Query<ImageQuery>,
) -> AppResult<Response> {
    image(state, random, q, headers, Format::Svg).await
}

async fn image(
    state: AppState,
    random: Random,
    q: ImageQuery,
    headers: IfNoneMatch,
    format: Format,
) -> AppResult<Response> {
    if let Some(size) = q.size {
        if !(crate::qr::MIN_SIZE..=crate::qr::MAX_SIZE).contains(&size) {
            return Err(AppError::invalid(format!(
                "size must be between {} and {}",
                crate::qr::MIN_SIZE,
                crate::qr::MAX_SIZE
            )));
        }
    }
    let qr = crate::tickets::load_shared(state.tickets.as_ref(), &random).await?;
    let branding = branding(&state, &qr).await?;
    let size = q.size.unwrap_or(branding.size);
    let now = state.clock.now();
    let key = ImageKey {
        random: qr.random.clone(),
        size,
        format,
        branding: branding.fingerprint,
    };
    let image = state
        .qr
        .cache
        .get_or_render(key, now, qr.expires_at, || async {
            state
                .limiter
                .check(Limit::ImageRenders, qr.random.as_str())
                .await?;
            make(
                state.clone(),
                QrCode::clone(&qr),
                Arc::clone(&branding),
                size,
                format,
            )
            .await
        })
        .await?;
    let max_age = ((qr.expires_at - now) / 1000).max(0);
    let cache_control = HeaderValue::from_str(&format!("private, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-store"));
    let etag = HeaderValue::from_str(&image.etag).map_err(|e| AppError::Internal(e.into()))?;
    if not_modified(&headers, &image.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(image.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        image.bytes.clone(),
    )
        .into_response())
}

/// The app's branding: the config file's, or for an app made through the management API its
/// stored logo on plain colours.
async fn branding(state: &AppState, qr: &QrCode) -> AppResult<Arc<Branding>> {
    if let Some(b) = state.qr.configured(&qr.client_id) {
        return Ok(b);
    }
    let app = state.apps.get(&qr.client_id).await?;
    let Some(digest) = app
        .as_ref()
        .and_then(|a| a.logo.as_deref())
        .and_then(crate::qr::logo::stored_digest)
    else {
        return Ok(state.qr.branding(&qr.client_id));
    };
    let png = crate::store::logos::get(&state.db, digest).await?;
    Ok(state.qr.with_stored_logo(digest, || png))
}

/// A logo ScanGate stores (`{sha256}.png`). Its name is its content's SHA-256, so it is
/// cached for a year and never revalidated.
#[utoipa::path(get, path = "/media/logos/{name}", tag = "pc",
    params(("name" = String, Path, description = "The logo's SHA-256 in hex, then `.png`.")),
    responses(
        (status = 200, description = "The logo.", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such logo.", body = ErrorBody),
    ))]
pub async fn logo_get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> AppResult<Response> {
    let path = format!("{}{name}", crate::qr::logo::MEDIA_PREFIX);
    let not_found = || AppError::NotFound("no such logo".into());
    let digest = crate::qr::logo::stored_digest(&path).ok_or_else(not_found)?;
    let png = crate::store::logos::get(&state.db, digest)
        .await?
        .ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        png,
    )
        .into_response())
}

/// Whether `If-None-Match` names this entity (RFC 9110 §13.1.2: weak comparison, `*` matches).
fn not_modified(headers: &IfNoneMatch, etag: &str) -> bool {
    headers
        .0
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Makes one image: the Mini Program code for a `wxacode` app (falling back to an ordinary
/// QR code), else the QR code of `scan_url`.
async fn make(
    state: AppState,
    qr: QrCode,
    branding: Arc<Branding>,
    size: u32,
    format: Format,
) -> AppResult<Image> {
    if branding.mode == QrMode::Wxacode {
        let source = wxacode_source(&state, &qr, &branding).await?;
        if !source.bytes.is_empty() {
            let b = Arc::clone(&branding);
            let made =
                blocking(move || crate::qr::render_wxacode(&source.bytes, &b, size, format)).await;
            match made {
                Ok(bytes) => return Ok(Image::new(bytes, format)),
                Err(e) => tracing::warn!(
                    client_id = %qr.client_id,
                    error = %format!("{e:#}"),
                    "WeChat's Mini Program code could not be decoded; serving an ordinary QR code of scan_url"
                ),
            }
        }
    }
    let url = super::scan_url(&state, &qr.random);
    let bytes = blocking(move || crate::qr::render(&url, &branding, size, format))
        .await
        .map_err(AppError::Internal)?;
    Ok(Image::new(bytes, format))
}

/// The code's Mini Program code as WeChat sent it, fetched by the first image of the code and
/// kept as long as the code; empty when WeChat refused (the images fall back).
async fn wxacode_source(
    state: &AppState,
    qr: &QrCode,
    branding: &Branding,
) -> AppResult<Arc<Image>> {
    // Size 0 names the source among the code's images.
    let key = ImageKey {
        random: qr.random.clone(),
        size: 0,
        format: Format::Png,
        branding: branding.fingerprint,
    };
    let now = state.clock.now();
    state
        .qr
        .cache
        .get_or_render(key, now, qr.expires_at, || async {
            let bytes = fetch_wxacode(state, qr, branding).await?;
            Ok::<_, AppError>(Image::new(bytes.unwrap_or_default(), Format::Png))
        })
        .await
}

/// A Mini Program code from WeChat, or `None` (logged) when WeChat refuses or fails.
async fn fetch_wxacode(
    state: &AppState,
    qr: &QrCode,
    branding: &Branding,
) -> AppResult<Option<Vec<u8>>> {
    let (_, creds) = state.miniprograms.credentials(&qr.appid).await?;
    let request = branding.wxacode.request(&qr.random, WXACODE_SOURCE_WIDTH);
    match state.wechat.wxacode_unlimit(&creds, &request).await {
        Ok((bytes, _)) => Ok(Some(bytes)),
        Err(e) => {
            tracing::warn!(
                client_id = %qr.client_id,
                appid = %qr.appid,
                error = %e,
                "getwxacodeunlimit failed; serving an ordinary QR code of scan_url"
            );
            Ok(None)
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}
