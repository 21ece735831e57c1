//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6; RFC 7636 §4.5–4.6; OIDC Core §3.1.3) and
//! client authentication (RFC 6749 §2.3.1: `client_secret_basic`, `client_secret_post`;
//! public clients authenticate with nothing but PKCE).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Serialize;
use sha2::Digest;

use super::OAuthError;
use crate::crypto::{random_token, sha256_hex};
use crate::error::AppError;
use crate::extract::{read_limited, BodyError, Requester, BODY_LIMIT};
use crate::oauth::clients::Verdict;
use crate::oauth::{device, has_scope, parse_params, Issuer, Params, REFRESH_TTL_SECS};
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::{self, apps::App, grants::Grant, users::User};
use crate::tokens::{IdClaims, TOKEN_TTL_SECS};

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TokenResponse {
    access_token: String,
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    expires_in: i64,
    id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    scope: String,
}

/// The token endpoint (RFC 6749 §3.2): grants `authorization_code` (with PKCE, RFC 7636),
/// `refresh_token` and `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4). A
/// confidential client authenticates with HTTP Basic or `client_secret` in the form.
#[utoipa::path(post, path = "/token", tag = "oidc",
    security((), ("client_basic" = [])),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`grant_type` and the grant's parameters: `code`, `redirect_uri`, `code_verifier`; `refresh_token`, `scope`; `device_code`; and `client_id` (with `client_secret` unless Basic)."),
    responses(
        (status = 200, description = "The tokens.", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`, `authorization_pending`, `slow_down`, `access_denied`, `expired_token`.", body = crate::oidc::error::OAuthErrorBody),
        (status = 401, description = "`invalid_client`.", body = crate::oidc::error::OAuthErrorBody),
        (status = 429, description = "Too many requests.", body = crate::oidc::error::OAuthErrorBody),
    ))]
pub async fn token_post(
    State(state): State<AppState>,
    issuer: Issuer,
    requester: Requester,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    match token(&state, &issuer, &requester, &headers, &body).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn token(
    state: &AppState,
    issuer: &Issuer,
    requester: &Requester,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let form = read_form(headers, body)?;
    let app = authenticate(state, issuer, requester, headers, &form).await?;
    let response = match form.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => {
            let granted = authorization_code(state, issuer, &app, &form).await?;
            state.metrics.token_grant("authorization_code");
            granted
        }
        Some("refresh_token") => {
            let granted = refresh(state, issuer, &app, &form).await?;
            state.metrics.token_grant("refresh_token");
            granted
        }
        Some(device::GRANT_TYPE) => {
            let granted = super::device::device_code(state, issuer, &app, &form).await?;
            state.metrics.token_grant("device_code");
            granted
        }
        Some(_) => {
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type must be authorization_code, refresh_token or {}",
                device::GRANT_TYPE
            )))
        }
    };
    Ok(no_store(axum::Json(response).into_response()))
}

pub fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// The raw body of an OAuth endpoint's request. A body over the limit, or one that cannot be
/// read, is refused in the OAuth error format (413 or 400), not axum's plain text.
pub struct FormBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormBody {
    type Rejection = OAuthError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, OAuthError> {
        match read_limited(req.into_body(), BODY_LIMIT).await {
            Ok(body) => Ok(FormBody(body)),
            Err(BodyError::TooLarge) => Err(OAuthError::too_large("the body is too large")),
            Err(BodyError::Unreadable) => {
                Err(OAuthError::invalid_request("the body could not be read"))
            }
        }
    }
}

/// The body of a form POST (RFC 6749 §3.2: `application/x-www-form-urlencoded`).
pub fn read_form(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    parse_params(text).map_err(OAuthError::invalid_request)
}

/// Authenticates the calling client (RFC 6749 §2.3): HTTP Basic, or `client_id` and
/// `client_secret` in the body, or for a public client `client_id` alone. One method only.
///
/// A secret already verified is accepted at once. Any other costs an Argon2 check, so it is
/// counted against the caller's address and the client id first (`429` once over), and waits
/// for one of the few verification slots (`503` with `Retry-After` if none frees up).
pub async fn authenticate(
    state: &AppState,
    issuer: &Issuer,
    requester: &Requester,
    headers: &HeaderMap,
    form: &Params,
) -> Result<std::sync::Arc<App>, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(parse_basic(v).ok_or_else(|| {
            OAuthError::invalid_client("the Authorization header is not valid HTTP Basic")
        })?),
    };
    let (client_id, secret) = match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ))
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|c| c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(secret))
        }
        (None, secret) => {
            let id = form
                .get("client_id")
                .ok_or_else(|| OAuthError::invalid_client("the client is not identified"))?;
            (id.to_owned(), secret.map(str::to_owned))
        }
    };
    let app = state
        .apps
        .get(&client_id)
        .await?
        .filter(|a| a.pool == issuer.pool)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    match (&app.client_secret_hash, secret) {
        (Some(hash), Some(secret)) => {
            if !state.client_secrets.is_known(&app.client_id, hash, &secret) {
                state
                    .limiter
                    .check(Limit::ClientAuthFailures, &requester.ip)
                    .await?;
                state
                    .limiter
                    .check(Limit::ClientAuthFailuresPerClient, &app.client_id)
                    .await?;
            }
            match state
                .client_secrets
                .verify(&app.client_id, hash, &secret)
                .await
            {
                Verdict::Valid => {}
                Verdict::Invalid => {
                    return Err(OAuthError::invalid_client("client authentication failed"))
                }
                Verdict::Busy => {
                    return Err(OAuthError::busy(
                        "too many client authentications at once; retry in a moment",
                    ))
                }
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_client(
                "this client must authenticate (client_secret_basic or client_secret_post)",
            ))
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_client(
                "this is a public client: it has no secret",
            ))
        }
        (None, None) => {}
    }
    Ok(app)
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Undoes `application/x-www-form-urlencoded` encoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).
async fn authorization_code(
    state: &AppState,
    issuer: &Issuer,
    app: &App,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let hash = sha256_hex(code.as_bytes());
    let now = state.clock.now();
    let record = store::codes::get(&state.db, &hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the code is unknown, used or expired"))?;
    // Another client's code is refused without touching it.
    if record.grant.client_id != app.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    // The checks that the presenter holds the code legitimately come before it is used up:
    // whoever intercepted a code but lacks the verifier must not be able to spend it and so
    // block the real exchange. A used code skips them, to be treated as the replay it is.
    if record.used_at.is_none() {
        check_presenter(&record, form)?;
    }
    if !store::codes::take(&state.db, &hash, now).await? {
        if record.used_at.is_some() || record.expires_at > now {
            // Used before (or by a concurrent request that won): whatever the code issued
            // may be in the wrong hands (RFC 6749 §4.1.2).
            store::grants::revoke(&state.db, &record.grant.id, now).await?;
            tracing::warn!(client_id = %app.client_id, "authorization code replayed; its grant is revoked");
            return Err(OAuthError::invalid_grant(
                "the code has already been used; the tokens issued for it are revoked",
            ));
        }
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if record.grant.revoked_at.is_some() {
        return Err(OAuthError::invalid_grant("the grant has been revoked"));
    }
    let user = usable(store::users::get(&state.db.pool, &record.grant.user_id).await?)?;
    let scope = record.grant.scope.clone();
    mint(
        state,
        issuer,
        &record.grant,
        &user,
        &scope,
        record.nonce.as_deref(),
        true,
    )
    .await
}

/// Whether the token request matches the authorization request that issued the code: the
/// same `redirect_uri` (RFC 6749 §4.1.3) and a verifier of its PKCE challenge (RFC 7636 §4.6).
fn check_presenter(record: &store::codes::Code, form: &Params) -> Result<(), OAuthError> {
    if form.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&record.code_challenge, form.get("code_verifier")) {
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier is missing (the authorization request used PKCE)",
            ))
        }
        (Some(challenge), Some(verifier)) => {
            if !is_verifier(verifier) {
                return Err(OAuthError::invalid_grant(
                    "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
                ));
            }
            let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            if !crate::crypto::constant_time_eq(&computed, challenge) {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ))
        }
        (None, None) => {}
    }
    Ok(())
}

/// RFC 7636 §4.1: `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`, 43 to 128 characters.
fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The refresh token grant (RFC 6749 §6) with rotation: each use issues a new refresh token;
/// presenting a used one again revokes the whole grant (OAuth 2.0 Security BCP §4.14.2).
async fn refresh(
    state: &AppState,
    issuer: &Issuer,
    app: &App,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    let token = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let hash = sha256_hex(token.as_bytes());
    let now = state.clock.now();
    let successor = random_token(32);
    let Some((grant_id, granted)) = store::grants::rotate_refresh(
        &state.db,
        &hash,
        &sha256_hex(successor.as_bytes()),
        &app.client_id,
        now,
        now + REFRESH_TTL_SECS * 1000,
    )
    .await?
    else {
        return Err(refused_refresh(state, app, &hash).await?);
    };
    let scope = match form.get("scope") {
        None => granted.clone(),
        Some(asked) => {
            if let Some(extra) = asked
                .split(' ')
                .find(|s| !s.is_empty() && !has_scope(&granted, s))
            {
                return Err(OAuthError::invalid_scope(format!(
                    "the scope `{extra}` was not granted"
                )));
            }
            crate::oauth::grant_scope(asked)
        }
    };
    let (grant, user) = store::grants::get_with_user(&state.db.pool, &grant_id)
        .await?
        .unzip();
    let user = usable(user)?;
    let grant = grant.ok_or_else(|| OAuthError::invalid_grant("the grant no longer exists"))?;
    let mut response = mint(state, issuer, &grant, &user, &scope, None, false).await?;
    // The successor keeps the original scope, so narrowing one access token narrows nothing else.
    response.refresh_token = Some(successor);
    Ok(response)
}

/// Why a refresh token could not be used, read after the fact. Presenting a used one again
/// revokes its grant.
async fn refused_refresh(
    state: &AppState,
    app: &App,
    hash: &str,
) -> Result<OAuthError, OAuthError> {
    let Some(record) = store::grants::get_refresh(&state.db, hash).await? else {
        return Ok(OAuthError::invalid_grant("the refresh token is unknown"));
    };
    Ok(if record.grant.client_id != app.client_id {
        OAuthError::invalid_grant("the refresh token was issued to another client")
    } else if record.grant.revoked_at.is_some() {
        OAuthError::invalid_grant("the grant has been revoked")
    } else if record.used_at.is_some() {
        store::grants::revoke(&state.db, &record.grant.id, state.clock.now()).await?;
        tracing::warn!(client_id = %app.client_id, "rotated refresh token reused; its grant is revoked");
        OAuthError::invalid_grant(
            "the refresh token has already been used; every token of its grant is revoked",
        )
    } else {
        OAuthError::invalid_grant("the refresh token is expired or revoked")
    })
}

/// A user who may still get tokens (`accounts::active`), or why not.
pub(super) fn usable(user: Option<User>) -> Result<User, OAuthError> {
    let gone = user.is_none();
    crate::accounts::active(user).ok_or_else(|| {
        OAuthError::invalid_grant(if gone {
            "the user no longer exists"
        } else {
            "the user is blocked"
        })
    })
}

async fn new_refresh(state: &AppState, grant: &Grant, scope: &str) -> Result<String, OAuthError> {
    let token = random_token(32);
    let now = state.clock.now();
    store::grants::insert_refresh(
        &state.db,
        &sha256_hex(token.as_bytes()),
        &grant.id,
        scope,
        now,
        now + REFRESH_TTL_SECS * 1000,
    )
    .await?;
    Ok(token)
}

/// Signs an ID token and an access token and, with `offline_access` on a code exchange,
/// creates a refresh token. The access token is not stored: it names its grant, and only its
/// revocation is written down.
pub(super) async fn mint(
    state: &AppState,
    issuer: &Issuer,
    grant: &Grant,
    user: &User,
    scope: &str,
    nonce: Option<&str>,
    first: bool,
) -> Result<TokenResponse, OAuthError> {
    let iat = state.clock.now_secs();
    let id = IdClaims::for_user(
        &issuer.url,
        user,
        &grant.client_id,
        scope,
        iat,
        grant.auth_time.div_euclid(1000),
        nonce,
    );
    let access = id.access(scope, random_token(16), Some(&grant.id));
    let id_token = state
        .keys
        .sign(&grant.pool, "JWT", &id)
        .await
        .map_err(AppError::Internal)?;
    let access_token = state
        .keys
        .sign(&grant.pool, "at+jwt", &access)
        .await
        .map_err(AppError::Internal)?;
    let refresh_token = if first && has_scope(&grant.scope, "offline_access") {
        Some(new_refresh(state, grant, &grant.scope).await?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: TOKEN_TTL_SECS,
        id_token,
        refresh_token,
        scope: scope.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let v = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("my%20app:s%3Acret+x")))
            .unwrap_or(HeaderValue::from_static(""));
        assert_eq!(
            parse_basic(&v),
            Some(("my app".to_owned(), "s:cret x".to_owned()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")), None);
    }

    #[test]
    fn verifiers_follow_rfc_7636() {
        assert!(is_verifier(&"a".repeat(43)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&format!("{}!", "a".repeat(43))));
    }
}
