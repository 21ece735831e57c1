//! OpenID Connect provider, one issuer per user pool: `{public_url}/oidc` for the default pool,
//! `{public_url}/pools/{slug}/oidc` for the others. Every issuer serves the same routes:
//!
//! - discovery and JWKS (OIDC Discovery 1.0, RFC 7517) — this module;
//! - the authorization endpoint and the hosted login page (OIDC Core §3.1.2) — `authorize`;
//! - the token endpoint (RFC 6749 §3.2, RFC 7636) — `token`;
//! - userinfo, revocation and introspection (OIDC Core §5.3, RFC 7009, RFC 7662) — `resource`;
//! - the browser session and RP-initiated logout — `session`.
//!
//! A login through the hosted page creates a grant (`store::grants`): its authorization code
//! and every token issued from it form one family that can be revoked at once.

mod authorize;
mod error;
mod resource;
mod session;
mod token;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, OriginalUri, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::store;
use crate::tokens::KeyAlg;

pub use authorize::{page, Lang};
pub use error::OAuthError;
pub use token::VerifiedSecrets;

/// What the provider keeps in memory.
#[derive(Default)]
pub struct OidcState {
    pub secrets: VerifiedSecrets,
}

/// How long a discovery document is answered from memory before it is built again.
const DISCOVERY_KEPT_MS: i64 = 3600 * 1000;

/// How long an authorization code lives (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL_SECS: i64 = 60;
/// How long a refresh token lives unless used (each use rotates it).
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long a browser session lets a user into the pool's apps without scanning again.
pub const SESSION_TTL_SECS: i64 = 24 * 3600;

/// The scopes ScanGate grants; others are ignored (RFC 6749 §3.3 lets the server narrow).
pub const SCOPES: [&str; 4] = ["openid", "profile", "phone", "offline_access"];

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .nest("/oidc", issuer_routes(state))
        .nest("/pools/{slug}/oidc", issuer_routes(state))
}

/// The routes of one issuer. What a browser-based relying party calls with `fetch` answers
/// cross-origin requests from the origins apps allow; discovery and JWKS from any origin.
fn issuer_routes(state: &AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/token", post(token::token_post))
        .route(
            "/userinfo",
            get(resource::userinfo_get).post(resource::userinfo_get),
        )
        .route("/token/revocation", post(resource::revocation_post))
        .route("/token/introspection", post(resource::introspection_post));
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery_get))
        .route("/jwks", get(jwks_get))
        .route("/auth", get(authorize::auth_get))
        .route("/auth/continue", get(authorize::continue_get))
        .route(
            "/session/end",
            get(session::end_session_get).post(session::end_session_post),
        )
        .merge(crate::cors::apply(api, state))
}

/// The issuer a request addressed: its pool and URL. Unknown pools are `not_found`; the
/// default pool is reachable only at `/oidc`, so each pool has exactly one issuer string.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub pool: String,
    pub url: String,
}

impl Issuer {
    /// The path of the issuer on this server (for cookie scoping and same-origin links).
    pub fn path(&self) -> String {
        url::Url::parse(&self.url)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_else(|_| "/oidc".into())
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl FromRequestParts<AppState> for Issuer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let slug = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == "slug")
                    .map(|(_, v)| v.to_owned())
            });
        let pool = match slug {
            None => "default".to_owned(),
            Some(s) if s == "default" => return Err(no_such_pool()),
            Some(s) => {
                if store::pools::get(&state.db, &s).await?.is_none() {
                    return Err(no_such_pool());
                }
                s
            }
        };
        Ok(Issuer {
            url: state.config.issuer(&pool),
            pool,
        })
    }
}

fn no_such_pool() -> AppError {
    AppError::NotFound("no such user pool".into())
}

/// `GET {issuer}/.well-known/openid-configuration` — OpenID Provider Metadata (OIDC
/// Discovery 1.0 §3), built once an hour per issuer and published in between.
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
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/session/end"),
        "revocation_endpoint": format!("{i}/token/revocation"),
        "introspection_endpoint": format!("{i}/token/introspection"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": ["none"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "nickname", "name", "picture", "phone_number", "phone_number_verified"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "ui_locales_supported": ["zh-CN", "en"],
        "authorization_response_iss_parameter_supported": true,
    })
}

/// `GET {issuer}/jwks` — the pool's JSON Web Key Set (RFC 7517 §5), serialised once per key
/// load and published until the keys are read again.
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

/// The granted scope: the known scopes of `requested`, in canonical order, space-separated.
pub fn grant_scope(requested: &str) -> String {
    let asked: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// Parses a form or query string into pairs, refusing a repeated parameter (RFC 6749 §3.1:
/// "Request and response parameters MUST NOT be included more than once"). Parameters sent
/// without a value are treated as omitted.
pub fn parse_params(raw: &str) -> Result<Params, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if v.is_empty() {
            continue;
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("the parameter `{k}` is repeated"));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(Params(out))
}

/// Request parameters, each at most once.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `uri` with `params` appended to its query (keeping any query it already has).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_scope_keeps_known_scopes_in_order() {
        assert_eq!(grant_scope("phone openid email"), "openid phone");
        assert_eq!(
            grant_scope("  offline_access  openid"),
            "openid offline_access"
        );
        assert_eq!(grant_scope("email"), "");
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(parse_params("a=1&a=2").is_err());
        let p = parse_params("a=1&b=&c=x%20y").unwrap_or_default();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn parameters_are_appended_to_an_existing_query() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("code", "c d"), ("state", "s")]
            ),
            "https://a.example/cb?x=1&code=c+d&state=s"
        );
    }
}
