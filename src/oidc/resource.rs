//! What a relying party does with tokens: userinfo (OIDC Core §5.3), revocation (RFC 7009) and
//! introspection (RFC 7662). Access tokens are JWTs that name their grant; a revoked token, or
//! one of a revoked grant, stops working at once here. Tokens from the native exchange have no
//! grant and work until they expire unless revoked themselves.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::token::{authenticate, no_store, read_form, FormBody};
use super::OAuthError;
use crate::crypto::sha256_hex;
use crate::extract::Requester;
use crate::oauth::{has_scope, Issuer};
use crate::state::AppState;
use crate::store;

/// The claims of our access tokens that these endpoints read.
#[derive(Deserialize)]
struct AccessTokenClaims {
    sub: String,
    client_id: String,
    scope: String,
    exp: i64,
    iat: i64,
    auth_time: i64,
    jti: String,
    grant_id: Option<String>,
}

/// A live access token of this issuer: signed by its pool, unexpired, not revoked, and its
/// grant (if it names one) live and of the same client. `None` for anything else.
async fn access_token(
    state: &AppState,
    issuer: &Issuer,
    token: &str,
) -> Result<Option<AccessTokenClaims>, OAuthError> {
    let Ok((typ, claims)) = state
        .keys
        .verify::<AccessTokenClaims>(&issuer.pool, token, &issuer.url)
        .await
    else {
        return Ok(None);
    };
    if !typ.eq_ignore_ascii_case("at+jwt") || claims.exp * 1000 <= state.clock.now() {
        return Ok(None);
    }
    let live = match store::grants::access_state(&state.db, &claims.jti, claims.grant_id.as_deref())
        .await?
    {
        None | Some((true, _)) => false,
        Some((false, None)) => true,
        Some((false, Some(g))) => {
            g.revoked_at.is_none() && g.pool == issuer.pool && g.client_id == claims.client_id
        }
    };
    Ok(live.then_some(claims))
}

/// The user's claims for an access token (OIDC Core §5.3), as the token's scopes allow.
#[utoipa::path(get, path = "/userinfo", tag = "oidc", security(("access_token" = [])),
    responses(
        (status = 200, description = "The claims: `sub` and those the scopes grant.", body = Object),
        (status = 401, description = "No, an expired or a revoked token (`WWW-Authenticate: Bearer error=\"invalid_token\"`).", body = crate::oidc::error::OAuthErrorBody),
    ))]
pub async fn userinfo_get(
    State(state): State<AppState>,
    issuer: Issuer,
    headers: HeaderMap,
) -> Response {
    match userinfo(&state, &issuer, &headers).await {
        Ok(v) => no_store(axum::Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

/// The same as `GET`, as OIDC Core §5.3 allows.
#[utoipa::path(post, path = "/userinfo", tag = "oidc", security(("access_token" = [])),
    responses(
        (status = 200, description = "The claims: `sub` and those the scopes grant.", body = Object),
        (status = 401, description = "No, an expired or a revoked token.", body = crate::oidc::error::OAuthErrorBody),
    ))]
pub async fn userinfo_post(state: State<AppState>, issuer: Issuer, headers: HeaderMap) -> Response {
    userinfo_get(state, issuer, headers).await
}

async fn userinfo(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let token = crate::extract::bearer(headers).ok_or_else(|| {
        OAuthError::invalid_token("an access token is required (Authorization: Bearer)")
    })?;
    let claims = access_token(state, issuer, token).await?.ok_or_else(|| {
        OAuthError::invalid_token("the access token is invalid, expired or revoked")
    })?;
    if !has_scope(&claims.scope, "openid") {
        return Err(OAuthError::invalid_token(
            "the access token has no openid scope",
        ));
    }
    let user = store::users::get(&state.db.pool, &claims.sub).await?;
    let user = crate::accounts::active(user)
        .ok_or_else(|| OAuthError::invalid_token("the user is blocked or gone"))?;
    let mut out = json!({ "sub": user.id });
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            out[name] = json!(v);
        }
    };
    if has_scope(&claims.scope, "profile") {
        put("nickname", user.nickname.as_deref());
        put("name", user.nickname.as_deref());
        put("picture", user.avatar_url.as_deref());
        put("preferred_username", user.external_id.as_deref());
    }
    if has_scope(&claims.scope, "phone") {
        if let Some((number, verified)) = crate::tokens::phone_claims(&user) {
            out["phone_number"] = json!(number);
            out["phone_number_verified"] = json!(verified);
        }
    }
    Ok(out)
}

/// What revocation and introspection both start with: the authenticated client and the
/// `token` it asks about.
async fn client_and_token(
    state: &AppState,
    issuer: &Issuer,
    requester: &Requester,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(std::sync::Arc<store::apps::App>, String), OAuthError> {
    let form = read_form(headers, body)?;
    let app = authenticate(state, issuer, requester, headers, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    Ok((app, token.to_owned()))
}

/// Token revocation (RFC 7009 §2). Revoking a refresh token revokes its whole
/// grant, access tokens included (§2.1); revoking an access token revokes that token. Tokens
/// of other clients, unknown and already revoked tokens are all answered with 200 (§2.2).
#[utoipa::path(post, path = "/token/revocation", tag = "oidc",
    security((), ("client_basic" = [])),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`token`, `token_type_hint`, and the client's credentials."),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke."),
        (status = 400, description = "`invalid_request`.", body = crate::oidc::error::OAuthErrorBody),
        (status = 401, description = "`invalid_client`.", body = crate::oidc::error::OAuthErrorBody),
    ))]
pub async fn revocation_post(
    State(state): State<AppState>,
    issuer: Issuer,
    requester: Requester,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let run = async {
        let (app, token) = client_and_token(&state, &issuer, &requester, &headers, &body).await?;
        let token = token.as_str();
        let now = state.clock.now();
        if let Some(record) =
            store::grants::get_refresh(&state.db, &sha256_hex(token.as_bytes())).await?
        {
            if record.grant.client_id == app.client_id && record.grant.pool == issuer.pool {
                store::grants::revoke(&state.db, &record.grant.id, now).await?;
            }
        } else if let Some(claims) = access_token(&state, &issuer, token).await? {
            if claims.client_id == app.client_id {
                store::grants::revoke_access(&state.db, &claims.jti, now, claims.exp * 1000)
                    .await?;
            }
        }
        Ok::<_, OAuthError>(no_store(axum::http::StatusCode::OK.into_response()))
    };
    match run.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Token introspection (RFC 7662 §2). A client learns about its own tokens
/// only; anything else is `{"active": false}`.
#[utoipa::path(post, path = "/token/introspection", tag = "oidc",
    security((), ("client_basic" = [])),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`token`, `token_type_hint`, and the client's credentials."),
    responses(
        (status = 200, description = "`{\"active\": true, …claims}` or `{\"active\": false}`.", body = Object),
        (status = 400, description = "`invalid_request`.", body = crate::oidc::error::OAuthErrorBody),
        (status = 401, description = "`invalid_client`.", body = crate::oidc::error::OAuthErrorBody),
    ))]
pub async fn introspection_post(
    State(state): State<AppState>,
    issuer: Issuer,
    requester: Requester,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let run = async {
        let (app, token) = client_and_token(&state, &issuer, &requester, &headers, &body).await?;
        let token = token.as_str();
        let now = state.clock.now();
        let inactive = json!({ "active": false });
        let refresh = store::grants::get_refresh(&state.db, &sha256_hex(token.as_bytes())).await?;
        let answer = if let Some(r) = refresh {
            if r.grant.client_id == app.client_id && r.grant.pool == issuer.pool && r.is_live(now) {
                json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": r.scope,
                    "client_id": r.grant.client_id,
                    "sub": r.grant.user_id,
                    "iss": issuer.url,
                    "iat": r.created_at / 1000,
                    "exp": r.expires_at / 1000,
                    "auth_time": r.grant.auth_time / 1000,
                })
            } else {
                inactive
            }
        } else {
            match access_token(&state, &issuer, token).await? {
                Some(c) if c.client_id == app.client_id => json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": c.scope,
                    "client_id": c.client_id,
                    "sub": c.sub,
                    "aud": c.client_id,
                    "iss": issuer.url,
                    "iat": c.iat,
                    "exp": c.exp,
                    "jti": c.jti,
                    "auth_time": c.auth_time,
                }),
                _ => inactive,
            }
        };
        Ok::<_, OAuthError>(no_store(axum::Json(answer).into_response()))
    };
    match run.await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
