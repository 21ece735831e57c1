//! OpenID Connect provider, one issuer per user pool: `{public_url}/oidc` for the default pool,
//! `{public_url}/pools/{slug}/oidc` for the others. Every issuer serves the same routes:
//!
//! - discovery and JWKS (OIDC Discovery 1.0, RFC 7517) — this module;
//! - the token endpoint (RFC 6749 §3.2, RFC 7636) — `token`;
//! - the device authorization endpoint and the device code grant (RFC 8628) — `device`;
//! - userinfo, revocation and introspection (OIDC Core §5.3, RFC 7009, RFC 7662) — `resource`;
//! - RP-initiated logout — `session`.
//!
//! The authorization endpoint is the hosted login page (`login`); what both share — the
//! issuer, parameters, the validated request, codes and the browser session — is `oauth`. A
//! login through the hosted page creates a grant (`store::grants`): its authorization code
//! and every token issued from it form one family that can be revoked at once.

mod device;
mod error;
mod resource;
mod session;
mod token;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde_json::json;
use utoipa_axum::routes;

use crate::cors::Cors;
use crate::error::{AppError, AppResult};
use crate::oauth::{Issuer, SCOPES};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::tokens::KeyAlg;

pub use error::OAuthError;

/// How long a discovery document is answered from memory before it is built again.
const DISCOVERY_KEPT_MS: i64 = 3600 * 1000;

/// The routes of one issuer, mounted under each issuer's path. What a browser-based relying
/// party calls with `fetch` answers cross-origin requests from the origins apps allow;
/// discovery and JWKS from any origin.
pub fn router(cors: &Cors) -> ApiRouter {
    let api = ApiRouter::new()
        .routes(routes!(token::token_post))
        .routes(routes!(device::device_authorization_post))
        .routes(routes!(resource::userinfo_get, resource::userinfo_post))
        .routes(routes!(resource::revocation_post))
        .routes(routes!(resource::introspection_post))
        .layer(cors.clone());
    ApiRouter::new()
        .routes(routes!(discovery_get))
        .routes(routes!(jwks_get))
        .routes(routes!(session::end_session_get, session::end_session_post))
        .routes(routes!(session::end_session_confirm_post))
        .merge(api)
}

/// OpenID Provider Metadata (OIDC Discovery 1.0 §3), built once an hour per issuer and
/// published in between.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oidc",
    responses((status = 200, description = "The provider's metadata.", body = Object)))]
async fn discovery_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    issuer: Issuer,
) -> Response {
    let body = Bytes::from(discovery_document(&issuer.url).to_string());
    let until = state.clock.now() + DISCOVERY_KEPT_MS;
    publish(&state, &issuer, uri.path(), body, until)
}

/// A public JSON document, answered from memory until `until` (see [`crate::published`]):
/// cacheable, and readable from any origin since it holds nothing private. Only the plain
/// spelling of the issuer's path is kept, so percent-encoded variants of a pool's slug cannot
/// fill memory.
fn publish(
    state: &AppState,
    issuer: &Issuer,
    path: &str,
    body: Bytes,
    until: crate::clock::Millis,
) -> Response {
    let mut res = Response::new(axum::body::Body::from(body.clone()));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    let plain = match issuer.pool.as_str() {
        "default" => path.starts_with("/oidc/"),
        pool => path
            .strip_prefix("/pools/")
            .and_then(|rest| rest.strip_prefix(pool))
            .is_some_and(|rest| rest.starts_with("/oidc/")),
    };
    if plain {
        state.published.keep(path, headers, body, until);
    }
    res
}

fn discovery_document(i: &str) -> serde_json::Value {
    let algs: Vec<&str> = KeyAlg::ALL.iter().map(|a| a.as_str()).collect();
    json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "device_authorization_endpoint": format!("{i}/device/auth"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/session/end"),
        "revocation_endpoint": format!("{i}/token/revocation"),
        "introspection_endpoint": format!("{i}/token/introspection"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", crate::oauth::device::GRANT_TYPE],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": ["none"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "nickname", "name", "picture", "preferred_username", "phone_number", "phone_number_verified"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "ui_locales_supported": ["zh-CN", "en"],
        "authorization_response_iss_parameter_supported": true,
    })
}

/// The pool's JSON Web Key Set (RFC 7517 §5), serialised once per key load and published
/// until the keys are read again.
#[utoipa::path(get, path = "/jwks", tag = "oidc",
    responses(
        (status = 200, description = "`{\"keys\": [JWK…]}`.", content_type = "application/jwk-set+json", body = Object),
        (status = 404, description = "No such pool.", body = crate::error::ErrorBody),
    ))]
async fn jwks_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    issuer: Issuer,
) -> AppResult<Response> {
    let keys = state
        .keys
        .for_pool(&issuer.pool)
        .await
        .map_err(AppError::Internal)?;
    Ok(publish(
        &state,
        &issuer,
        uri.path(),
        keys.jwks.clone(),
        keys.fresh_until(),
    ))
}
