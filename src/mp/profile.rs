//! The user's own profile: nickname and avatar (fill-in or legacy encrypted user info), phone
//! (by `getPhoneNumber` code or legacy encrypted data), and avatar uploads: checked from the
//! header before decoding, decoded a few at a time under a memory limit, and stored small.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::UtoipaMethodRouterExt as _;
use utoipa_axum::routes;

use super::MpUser;
use std::sync::Arc;

use crate::error::{AppError, AppResult};
use crate::extract::Json;
use crate::openapi::ApiRouter;
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store;
use crate::wechat;

/// Largest avatar upload.
pub const MAX_AVATAR_BYTES: usize = 2 * 1024 * 1024;
/// WeChat's placeholder nickname when a profile is withheld.
const ANONYMOUS_NICKNAME: &str = "微信用户";

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(me_get, me_patch))
        // Read somewhat oversized uploads whole and refuse them with a 413 body the client can
        // see; cutting the connection mid-upload would leave it with no answer at all.
        .routes(routes!(avatar_post).layer(DefaultBodyLimit::max(4 * MAX_AVATAR_BYTES)))
        .routes(routes!(phone_post))
        .routes(routes!(avatar_get))
}

#[derive(Deserialize, Debug, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

/// The legacy `getUserProfile` answer, decrypted with the session key.
#[derive(Deserialize, Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInfoInput {
    pub encrypted_data: String,
    pub iv: String,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
}

/// The phone number a person shared: `code` from `getPhoneNumber` (WeChat's current way), or
/// the legacy encrypted data.
#[derive(Deserialize, Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneInput {
    pub code: Option<String>,
    pub encrypted_data: Option<String>,
    pub iv: Option<String>,
}

/// The signed-in person's own profile.
#[derive(Serialize, ToSchema)]
struct MeView {
    id: String,
    nickname: Option<String>,
    avatar_url: Option<String>,
    phone: Option<String>,
    phone_country_code: Option<String>,
    has_phone: bool,
    login_count: i64,
    created_at: String,
}

fn me_json(user: &store::users::User) -> MeView {
    MeView {
        id: user.id.clone(),
        nickname: user.nickname.clone(),
        avatar_url: user.avatar_url.clone(),
        phone: user.phone.clone(),
        phone_country_code: user.phone_country.clone(),
        has_phone: user.phone.is_some(),
        login_count: user.login_count,
        created_at: crate::clock::rfc3339(user.created_at),
    }
}

#[derive(Serialize, ToSchema)]
struct AvatarUploaded {
    avatar_url: String,
}

async fn reload(state: &AppState, who: &MpUser) -> AppResult<store::users::User> {
    store::users::get(&state.db.pool, &who.user.id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("the user no longer exists".into()))
}

/// The signed-in person's profile.
#[utoipa::path(get, path = "/api/mp/v1/me", tag = "miniprogram", security(("mp_session" = [])),
    responses(
        (status = 200, description = "The profile.", body = MeView),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
    ))]
async fn me_get(who: MpUser) -> AppResult<Response> {
    Ok(axum::Json(me_json(&who.user)).into_response())
}

/// Sets the nickname and avatar chosen in the Mini Program (WeChat's fill-in components).
#[utoipa::path(patch, path = "/api/mp/v1/me", tag = "miniprogram", security(("mp_session" = [])),
    request_body = ProfileInput,
    responses(
        (status = 200, description = "The profile as changed.", body = MeView),
        (status = 400, description = "A field is wrong.", body = crate::error::ErrorBody),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
    ))]
async fn me_patch(
    State(state): State<AppState>,
    who: MpUser,
    Json(input): Json<ProfileInput>,
) -> AppResult<Response> {
    apply_profile(&state, &who, &input).await?;
    Ok(axum::Json(me_json(&reload(&state, &who).await?)).into_response())
}

/// Validates and stores a nickname and avatar URL chosen in the Mini Program.
pub async fn apply_profile(state: &AppState, who: &MpUser, input: &ProfileInput) -> AppResult<()> {
    let nickname = input
        .nickname
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if let Some(n) = nickname {
        if n.chars().count() > 64 || n.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "nickname must be at most 64 printable characters",
            ));
        }
    }
    let avatar = input
        .avatar_url
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let avatar = match avatar {
        Some(a) => Some(avatar_url(a, &state.config.public_url).ok_or_else(|| {
            AppError::invalid(
                "avatar_url must be an avatar uploaded to /api/mp/v1/me/avatar or a WeChat avatar \
                 (https://thirdwx.qlogo.cn/…)",
            )
        })?),
        None => None,
    };
    if nickname.is_some() || avatar.is_some() {
        store::users::update_profile(
            &state.db,
            &who.user.id,
            nickname,
            avatar.as_deref(),
            state.clock.now(),
        )
        .await?;
    }
    Ok(())
}

/// Hosts WeChat serves avatars from (legacy `getUserInfo` data and its grey default).
const WECHAT_AVATAR_HOSTS: &[&str] = &["thirdwx.qlogo.cn", "wx.qlogo.cn"];

/// An avatar URL as stored: one of ScanGate's own uploaded avatars (under `public_url`), or a
/// WeChat avatar over https; normalised (scheme and host lowercased, odd characters
/// percent-encoded, no fragment). Anything else — another host, a link-local address, a port,
/// credentials, raw quotes — is refused, since every page and token that shows the avatar
/// would point browsers at it.
fn avatar_url(text: &str, public_url: &url::Url) -> Option<String> {
    if text.len() > 1024 {
        return None;
    }
    let mut url = url::Url::parse(text).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.set_fragment(None);
    let own = url.scheme() == public_url.scheme()
        && url.host_str() == public_url.host_str()
        && url.port_or_known_default() == public_url.port_or_known_default();
    if own {
        let base = public_url.path().trim_end_matches('/');
        let id = url
            .path()
            .strip_prefix(base)
            .and_then(|p| p.strip_prefix("/media/avatars/"))?;
        let plain = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return (plain && url.query().is_none()).then(|| url.to_string());
    }
    let wechat = matches!(url.scheme(), "https" | "http")
        && url.port().is_none()
        && url
            .host_str()
            .is_some_and(|h| WECHAT_AVATAR_HOSTS.contains(&h));
    if !wechat {
        return None;
    }
    url.set_scheme("https").ok()?;
    Some(url.to_string())
}

/// Legacy `getUserInfo` data: signature checked when given, decrypted with the session key,
/// watermark checked against the Mini Program.
pub async fn apply_user_info(
    state: &AppState,
    who: &MpUser,
    input: &UserInfoInput,
) -> AppResult<()> {
    let session_key = who.session_key(state)?;
    if let (Some(raw), Some(sig)) = (&input.raw_data, &input.signature) {
        if !wechat::check_signature(raw, &session_key, sig) {
            return Err(AppError::DecryptFailed(
                "signature does not match raw_data".into(),
            ));
        }
    }
    let data = wechat::decrypt(
        &session_key,
        &input.iv,
        &input.encrypted_data,
        &who.identity.appid,
    )?;
    if let Some(open_id) = data.get("openId").and_then(|v| v.as_str()) {
        if open_id != who.identity.openid {
            return Err(AppError::DecryptFailed(
                "the data belongs to another user".into(),
            ));
        }
    }
    let nickname = data
        .get("nickName")
        .and_then(|v| v.as_str())
        .filter(|n| *n != ANONYMOUS_NICKNAME);
    let avatar = data
        .get("avatarUrl")
        .and_then(|v| v.as_str())
        .filter(|a| !a.is_empty() && nickname.is_some());
    let input = ProfileInput {
        nickname: nickname.map(str::to_owned),
        avatar_url: avatar.map(str::to_owned),
    };
    apply_profile(state, who, &input).await
}

/// Sets the caller's phone number from a `getPhoneNumber` code (new way) or legacy encrypted
/// data; returns the number.
pub async fn apply_phone(state: &AppState, who: &MpUser, input: &PhoneInput) -> AppResult<String> {
    match read_phone(state, who, input).await? {
        Some(phone) => Ok(phone),
        None => Err(AppError::Wechat(
            "the Mini Program's phone number quota is exhausted; try again later".into(),
        )),
    }
}

/// As [`apply_phone`]; `None` when WeChat refused the code because the Mini Program's paid
/// quota of phone numbers is used up (errcode 1400001), so a login can go on without it.
pub async fn read_phone(
    state: &AppState,
    who: &MpUser,
    input: &PhoneInput,
) -> AppResult<Option<String>> {
    let (phone, country) = match (&input.code, &input.encrypted_data, &input.iv) {
        (Some(code), None, None) => {
            if code.is_empty() || code.len() > 256 {
                return Err(AppError::invalid(
                    "phone.code must be the code from getPhoneNumber",
                ));
            }
            let (_, creds) = state.miniprograms.credentials(&who.identity.appid).await?;
            let info = match state
                .wechat
                .phone_number(&creds, code, Some(&who.identity.openid))
                .await
            {
                Ok(info) => info,
                Err(crate::wechat::WechatError::PhoneQuotaExhausted) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            (info.pure_phone_number, info.country_code)
        }
        (None, Some(data), Some(iv)) => {
            let session_key = who.session_key(state)?;
            let v = wechat::decrypt(&session_key, iv, data, &who.identity.appid)?;
            let pure = v
                .get("purePhoneNumber")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
                .to_owned();
            // countryCode is documented as a string but sent as a number too.
            let country = match v.get("countryCode") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            if pure.is_empty() {
                return Err(AppError::DecryptFailed(
                    "the data holds no phone number".into(),
                ));
            }
            (pure, country)
        }
        _ => {
            return Err(AppError::invalid(
                "phone needs either `code` or both `encrypted_data` and `iv`",
            ))
        }
    };
    store::users::set_phone(&state.db, &who.user.id, &phone, &country, state.clock.now()).await?;
    Ok(Some(phone))
}

/// Links the caller to the user an operator provisioned with this phone number, if there is
/// one and the caller is not provisioned itself (its account was made by its first scan).
/// The phone stays signed in, now as that user.
async fn link_by_phone(state: &AppState, who: &MpUser, phone: &str) -> AppResult<()> {
    if who.user.provisioned {
        return Ok(());
    }
    let found =
        store::users::provisioned_with_phone(&state.db, &who.user.pool, phone, &who.user.id)
            .await?;
    let Some(kept) = found else {
        return Ok(());
    };
    let now = state.clock.now();
    store::users::absorb(
        &state.db,
        &kept,
        &who.user.id,
        store::users::Sessions::Move,
        now,
    )
    .await?;
    store::audit::record(
        &state.db,
        store::audit::Event {
            pool: Some(&who.user.pool),
            actor: Some(&kept),
            action: "mp.link.phone",
            subject: Some(&who.identity.appid),
            ip: None,
            detail: Some(json!({ "absorbed": who.user.id })),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Stores the phone number the person shared (and links a pre-provisioned account with it).
#[utoipa::path(post, path = "/api/mp/v1/me/phone", tag = "miniprogram", security(("mp_session" = [])),
    request_body = PhoneInput,
    responses(
        (status = 200, description = "The profile with the phone number.", body = MeView),
        (status = 400, description = "Neither a code nor encrypted data, or WeChat refused the code.", body = crate::error::ErrorBody),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many phone lookups.", body = crate::error::ErrorBody),
        (status = 503, description = "WeChat could not be reached.", body = crate::error::ErrorBody),
    ))]
async fn phone_post(
    State(state): State<AppState>,
    who: MpUser,
    Json(input): Json<PhoneInput>,
) -> AppResult<Response> {
    let phone = apply_phone(&state, &who, &input).await?;
    link_by_phone(&state, &who, &phone).await?;
    // The identity's user, which linking may have changed.
    let identity = store::identities::get(&state.db, &who.identity.id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("invalid or expired token".into()))?;
    let user = store::users::get(&state.db.pool, &identity.user_id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("the user no longer exists".into()))?;
    Ok(axum::Json(me_json(&user)).into_response())
}

/// Makes the image the user's one
/// avatar, re-encoded as a PNG of at most [`AVATAR_EDGE`] pixels a side, in place of the
/// previous one. Limited per user per minute (`[rate_limits] avatar_uploads_per_minute`).
#[utoipa::path(post, path = "/api/mp/v1/me/avatar", tag = "miniprogram", security(("mp_session" = [])),
    request_body(content = Vec<u8>, content_type = "multipart/form-data", description = "One part: a PNG, JPEG, WebP or GIF image of at most 2 MiB."),
    responses(
        (status = 200, description = "The new avatar's URL.", body = AvatarUploaded),
        (status = 400, description = "Not one image part, or not an image.", body = crate::error::ErrorBody),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 413, description = "Over 2 MiB, or too many pixels.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many uploads this minute.", body = crate::error::ErrorBody),
    ))]
async fn avatar_post(
    State(state): State<AppState>,
    who: MpUser,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> AppResult<Response> {
    state
        .limiter
        .check(Limit::AvatarUploads, &who.user.id)
        .await?;
    let mut multipart = multipart
        .map_err(|_| AppError::invalid("expected multipart/form-data with one image part"))?;
    let mut bytes = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.file_name().is_some() || matches!(field.name(), Some("file" | "avatar")) {
            bytes = Some(field.bytes().await.map_err(multipart_error)?);
            break;
        }
    }
    let bytes = bytes.ok_or_else(|| {
        AppError::invalid("expected a multipart part named `file` with the image")
    })?;
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(AppError::PayloadTooLarge(format!(
            "the avatar must be at most {} bytes",
            MAX_AVATAR_BYTES
        )));
    }
    sniff_image(&bytes)
        .ok_or_else(|| AppError::invalid("the avatar must be a PNG, JPEG, WebP or GIF image"))?;
    // Each decode may hold up to AVATAR_MAX_ALLOC of pixels: only a few run at once.
    let slot = Arc::clone(&state.avatar_decodes).acquire_owned();
    let permit = tokio::time::timeout(std::time::Duration::from_secs(10), slot)
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            AppError::Unavailable(anyhow::anyhow!("every avatar decoding slot stayed busy"))
        })?;
    let png = tokio::task::spawn_blocking(move || {
        let png = reencode(&bytes);
        drop(permit);
        png
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))??;
    let id = crate::crypto::random_token(16);
    let now = state.clock.now();
    let url = state.config.url(&format!("/media/avatars/{id}"));
    store::avatars::replace(&state.db, &id, &who.user.id, &url, "image/png", &png, now).await?;
    Ok(axum::Json(AvatarUploaded { avatar_url: url }).into_response())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(format!(
            "the avatar must be at most {} bytes",
            MAX_AVATAR_BYTES
        ))
    } else {
        AppError::invalid("the body is not valid multipart/form-data")
    }
}

/// The MIME type of an image we accept, by its magic bytes.
fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.len() > 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

/// The edge of a stored avatar, at most: what a profile picture is shown at, twice over.
pub const AVATAR_EDGE: u32 = 512;
/// The largest upload accepted, in pixels a side (read from the header, before decoding).
const AVATAR_MAX_SIDE: u32 = 4096;
/// The decoder's memory limit: a 4096 × 4096 RGBA image.
const AVATAR_MAX_ALLOC: u64 = 64 * 1024 * 1024;

/// Decodes an upload and re-encodes it as a PNG of at most [`AVATAR_EDGE`] pixels a side, so
/// what is stored is small whatever was sent. The dimensions are read from the header first:
/// a small file declaring a huge image is refused before any pixel is allocated. Animated
/// GIFs are refused (each frame would be another full canvas to decode).
fn reencode(bytes: &[u8]) -> AppResult<Vec<u8>> {
    use image::{AnimationDecoder as _, ImageFormat};
    let corrupt = |_| AppError::invalid("the avatar image is corrupt or not a supported format");
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|_| AppError::invalid("the avatar image cannot be read"))
    };
    // Reads the header only: nothing the size of the image is allocated.
    let (width, height) = reader()?.into_dimensions().map_err(corrupt)?;
    if width > AVATAR_MAX_SIDE || height > AVATAR_MAX_SIDE {
        return Err(AppError::invalid(format!(
            "the avatar must be at most {AVATAR_MAX_SIDE} pixels a side (this one is {width} × {height})"
        )));
    }
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(AVATAR_MAX_SIDE);
    limits.max_image_height = Some(AVATAR_MAX_SIDE);
    limits.max_alloc = Some(AVATAR_MAX_ALLOC);
    reader.limits(limits);
    if reader.format() == Some(ImageFormat::Gif) {
        let mut decoder =
            image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).map_err(corrupt)?;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(AVATAR_MAX_ALLOC);
        image::ImageDecoder::set_limits(&mut decoder, limits).map_err(corrupt)?;
        if decoder.into_frames().take(2).count() > 1 {
            return Err(AppError::invalid(
                "animated GIFs are not accepted as avatars; send a still image",
            ));
        }
    }
    let image = reader.decode().map_err(corrupt)?;
    let image = if image.width() > AVATAR_EDGE || image.height() > AVATAR_EDGE {
        image.thumbnail(AVATAR_EDGE, AVATAR_EDGE)
    } else {
        image
    };
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(png)
}

/// An avatar a person uploaded.
#[utoipa::path(get, path = "/media/avatars/{id}", tag = "miniprogram",
    params(("id" = String, Path, description = "The avatar's id.")),
    responses(
        (status = 200, description = "The image.", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such avatar.", body = crate::error::ErrorBody),
    ))]
async fn avatar_get(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    if id.len() > 64 {
        return Err(AppError::NotFound("no such avatar".into()));
    }
    let (content_type, bytes) = store::avatars::get(&state.db, &id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such avatar".into()))?;
    let ct = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, ct),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod avatar_tests {
    #![allow(clippy::unwrap_used)]

    use super::avatar_url;

    #[test]
    fn only_our_own_avatars_and_wechat_s_are_accepted_normalised() {
        let public = url::Url::parse("https://login.example.com").unwrap();
        let ok = |s: &str| avatar_url(s, &public);
        assert_eq!(
            ok("https://login.example.com/media/avatars/AbC_12-x").as_deref(),
            Some("https://login.example.com/media/avatars/AbC_12-x")
        );
        assert_eq!(
            ok("HTTP://ThirdWX.qlogo.CN/mmopen/vi_32/x/132#frag").as_deref(),
            Some("https://thirdwx.qlogo.cn/mmopen/vi_32/x/132")
        );
        assert_eq!(
            ok("https://wx.qlogo.cn/a\"b<c>/132").as_deref(),
            Some("https://wx.qlogo.cn/a%22b%3Cc%3E/132")
        );
        for bad in [
            "https://example.com/x.png",
            "http://169.254.169.254/latest/meta-data/",
            "https://[fe80::1]/a.png",
            "https://thirdwx.qlogo.cn:8443/x/132",
            "https://user:pw@thirdwx.qlogo.cn/x/132",
            "https://thirdwx.qlogo.cn.evil.example/x/132",
            "http://login.example.com/media/avatars/abc",
            "https://login.example.com/media/avatars/../admin",
            "https://login.example.com/media/logos/abc.png",
            "https://login.example.com/media/avatars/abc?x=1",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }
}
