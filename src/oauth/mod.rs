//! The authorization server's engine, below both the OpenID Connect endpoints (`oidc`) and the
//! hosted login page (`login`): which issuer a request addresses, OAuth parameters and scopes,
//! the validated authorization request, authorization codes, the browser session, and client
//! secrets already verified. No routes live here.
//!
//! - `request`: the authorization request and its checks (OIDC Core §3.1.2, RFC 6749 §4.1.1,
//!   RFC 7636 §4.3), and the exact explanation of a redirect URI that does not match.
//! - `codes`: a grant and its one-time authorization code, and the redirect that carries it.
//! - `session`: the browser session of single sign-on.
//! - `clients`: client secrets already verified against their Argon2 hash.
//! - `device`: the device authorization grant's requests, device codes and links (RFC 8628).

pub mod clients;
pub mod codes;
pub mod device;
pub mod request;
pub mod session;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use crate::config::Config;
use crate::domain::PoolSlug;
use crate::error::AppError;
use crate::store::{self, Db};

/// How long an authorization code lives (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL_SECS: i64 = 60;
/// How long a refresh token lives unless used (each use rotates it).
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long a browser session lets a user into the pool's apps without scanning again.
pub const SESSION_TTL_SECS: i64 = 24 * 3600;

/// The scopes ScanGate grants; others are ignored (RFC 6749 §3.3 lets the server narrow).
pub const SCOPES: [&str; 4] = ["openid", "profile", "phone", "offline_access"];

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

/// The issuer a request addressed: its pool and URL. Unknown pools are `not_found`; the
/// default pool is reachable only at `/oidc`, so each pool has exactly one issuer string.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub pool: PoolSlug,
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

impl<S> FromRequestParts<S> for Issuer
where
    S: Send + Sync,
    Db: FromRef<S>,
    Arc<Config>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let params = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => Some(params),
            // `/pools/%ff/oidc/…` names no pool; it must not fall back to the default one.
            Err(axum::extract::rejection::RawPathParamsRejection::InvalidUtf8InPathParam(_)) => {
                return Err(no_such_pool())
            }
            Err(_) => None,
        };
        let slug = params.and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "slug")
                .map(|(_, v)| v.to_owned())
        });
        let pool = match slug {
            None => PoolSlug::default_pool(),
            Some(s) if s == "default" => return Err(no_such_pool()),
            Some(s) => {
                let slug = PoolSlug::parse(&s).map_err(|_| no_such_pool())?;
                if store::pools::get(&Db::from_ref(state), &slug)
                    .await?
                    .is_none()
                {
                    return Err(no_such_pool());
                }
                slug
            }
        };
        Ok(Issuer {
            url: Arc::<Config>::from_ref(state).issuer(&pool),
            pool,
        })
    }
}

fn no_such_pool() -> AppError {
    AppError::NotFound("no such user pool".into())
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
