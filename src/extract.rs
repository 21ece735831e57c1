//! Our own extractors: every rejection becomes an [`AppError`] with a stable code, never
//! axum's plain-text message. Also who is calling ([`Requester`]), and the browser binding of
//! QR codes: the browser cookie and the bind header.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;

use crate::crypto::{sha256_hex, SecretBox};
use crate::error::AppError;
use crate::proxies::TrustedProxies;
use crate::tickets::Binding;

/// JSON body. Malformed JSON, a wrong content type or a missing field is `invalid_request`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: axum::extract::rejection::JsonRejection) -> AppError {
    use axum::extract::rejection::JsonRejection as R;
    match r {
        R::MissingJsonContentType(_) => {
            AppError::invalid("expected Content-Type: application/json")
        }
        R::JsonSyntaxError(_) => AppError::invalid("the body is not valid JSON"),
        R::JsonDataError(e) => {
            AppError::invalid(format!("the JSON does not fit: {}", e.body_text()))
        }
        R::BytesRejection(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge("the body is too large".into())
        }
        _ => AppError::invalid("the body could not be read"),
    }
}

/// The largest request body read whole, as axum's default.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Why a body could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads a body of at most `limit` bytes. A longer one is read on and dropped, up to four
/// times the limit, before it is refused: the client is still sending, and a connection cut
/// under it would leave it without the 413. Memory stays within `limit` either way.
pub async fn read_limited(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, BodyError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        seen += chunk.len();
        if seen > 4 * limit {
            return Err(BodyError::TooLarge);
        }
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else {
            kept = Vec::new();
        }
    }
    if seen > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(kept.into())
}

/// An optional JSON body: empty means `None`; anything else must be valid JSON of `T`.
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, AppError> {
        let bytes = read_limited(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => AppError::PayloadTooLarge("the body is too large".into()),
                BodyError::Unreadable => AppError::invalid("the body could not be read"),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| OptionalJson(Some(v)))
            .map_err(|e| {
                AppError::invalid(format!(
                    "the body is not valid JSON of the expected shape: {e}"
                ))
            })
    }
}

/// A path parameter parsed into its type. A value that does not parse names nothing, so it is
/// `not_found`, with the type's own message ("no such QR code").
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.into_kind() {
                ErrorKind::Message(m) => Err(AppError::NotFound(m)),
                _ => Err(AppError::NotFound("no such resource".into())),
            },
            Err(_) => Err(AppError::NotFound("no such resource".into())),
        }
    }
}

/// Query string. Anything that does not parse is `invalid_request`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| AppError::invalid(format!("bad query string: {}", e.body_text())))
    }
}

/// Who is calling: the client's IP and user agent, for audit and the confirm screen.
#[derive(Clone, Debug)]
pub struct Requester {
    pub ip: String,
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Requester
where
    TrustedProxies: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Requester {
            ip: client_ip(peer, &parts.headers, &TrustedProxies::from_ref(state)),
            user_agent: header_str(&parts.headers, header::USER_AGENT.as_str()),
        })
    }
}

/// The client's address. Behind a reverse proxy on this host (a loopback peer) or in a
/// `trusted_proxies` network, the nearest `X-Forwarded-For` hop that is not itself such a
/// proxy: proxies append the address they saw, so the hops on the left are whatever the client
/// chose to send and are never believed. Any other peer is the client itself, whatever it
/// claims.
fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: &TrustedProxies) -> String {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return "unknown".into();
    };
    if !proxies.trusts(peer) {
        return peer.to_string();
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return peer.to_string();
        };
        for hop in value.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip.to_canonical()),
                // A hop we cannot read: nothing to its left can be trusted either.
                Err(_) => hops.clear(),
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !proxies.trusts(*ip))
        .unwrap_or(peer)
        .to_string()
}

pub fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(512)
        .collect()
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The browser cookie a QR code is bound to, on plain http (development).
pub const BROWSER_COOKIE: &str = "scangate_browser";
/// Its name on https: the `__Host-` prefix makes browsers refuse it from a sibling subdomain
/// or a plain-http page (it must be Secure, Path=/ and carry no Domain), so nobody but this
/// host can plant one.
pub const SECURE_BROWSER_COOKIE: &str = "__Host-scangate_browser";
/// The header a server-side caller proves binding with.
pub const BIND_HEADER: &str = "x-scangate-bind";

/// The browser id cookie (`secure`: the public URL is https): reused when the server minted
/// it, else minted anew. A minted value is `{id}.{mac}`, the MAC keyed by `secret_key`, so a
/// value someone chose for the browser (cookie tossing from a sibling subdomain) is never
/// adopted as its binding. Returns the jar to send back and the value.
pub fn browser_cookie(jar: CookieJar, secure: bool, secrets: &SecretBox) -> (CookieJar, String) {
    let name = if secure {
        SECURE_BROWSER_COOKIE
    } else {
        BROWSER_COOKIE
    };
    if let Some(c) = jar
        .get(name)
        .filter(|c| is_minted_browser_id(c.value(), secrets))
    {
        let v = c.value().to_owned();
        return (jar, v);
    }
    let id = crate::crypto::random_token(24);
    let value = format!("{id}.{}", browser_mac(&id, secrets));
    let cookie = Cookie::build((name, value.clone()))
        .path("/")
        .http_only(true)
        .secure(secure)
        // Cross-site XHR with credentials (an embedding site) needs None, which browsers
        // accept only with Secure; on plain http (development) Lax still covers same-site
        // origins such as two localhost ports.
        .same_site(if secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .max_age(time::Duration::days(365))
        .build();
    (jar.add(cookie), value)
}

/// The MAC of a browser id: 128 bits of an HMAC under a key derived from `secret_key`.
fn browser_mac(id: &str, secrets: &SecretBox) -> String {
    let mut data = b"scangate browser id\0".to_vec();
    data.extend_from_slice(id.as_bytes());
    secrets.fingerprint(&data)[..32].to_owned()
}

/// Whether `value` is a browser id this server (or one sharing its `secret_key`) minted.
fn is_minted_browser_id(value: &str, secrets: &SecretBox) -> bool {
    value.split_once('.').is_some_and(|(id, mac)| {
        id.len() == 32 && crate::crypto::constant_time_eq(mac, &browser_mac(id, secrets))
    })
}

/// The caller's proof of binding: its bind header and its browser cookie, hashed.
pub fn binding(headers: &HeaderMap, jar: &CookieJar) -> Binding {
    Binding {
        bind_hash: bind_hash(headers),
        browser_hash: jar
            .get(SECURE_BROWSER_COOKIE)
            .or_else(|| jar.get(BROWSER_COOKIE))
            .map(|c| sha256_hex(c.value().as_bytes())),
    }
}

fn bind_hash(headers: &HeaderMap) -> Option<String> {
    headers
        .get(BIND_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|t| sha256_hex(t.as_bytes()))
}

/// The same, read straight from the request's headers (no cookie jar, no header map copy):
/// the extractor of the status endpoints, which every waiting page calls.
impl<S: Send + Sync> FromRequestParts<S> for Binding {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        // The `__Host-` cookie first: on https it is the only one this host set itself.
        let cookie = |wanted: &str| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| *name == wanted)
                .map(|(_, value)| value.trim_matches('"'))
        };
        let browser = cookie(SECURE_BROWSER_COOKIE).or_else(|| cookie(BROWSER_COOKIE));
        Ok(Binding {
            bind_hash: bind_hash(headers),
            browser_hash: browser.map(|c| sha256_hex(c.as_bytes())),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_read_on_but_refused() {
        let body = |n: usize| axum::body::Body::from(vec![b'x'; n]);
        assert_eq!(read_limited(body(10), 10).await.unwrap().len(), 10);
        assert_eq!(read_limited(body(11), 10).await, Err(BodyError::TooLarge));
        assert_eq!(read_limited(body(100), 10).await, Err(BodyError::TooLarge));
    }

    fn ip(peer: &str, forwarded: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        client_ip(
            Some(peer.parse().unwrap()),
            &headers,
            &TrustedProxies::default(),
        )
    }

    #[test]
    fn a_listed_proxy_network_is_believed_and_skipped() {
        let proxies = TrustedProxies::new(vec![
            crate::proxies::Network::parse("172.16.0.0/12").unwrap()
        ]);
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "10.9.9.9, 198.51.100.1, 172.18.0.3".parse().unwrap(),
        );
        let from = |peer: &str| client_ip(Some(peer.parse().unwrap()), &headers, &proxies);
        assert_eq!(from("172.18.0.2"), "198.51.100.1");
        assert_eq!(from("203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn a_remote_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(ip("203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
    }

    #[test]
    fn behind_a_local_proxy_the_hop_it_appended_is_the_client() {
        assert_eq!(ip("127.0.0.1", &["198.51.100.1"]), "198.51.100.1");
        assert_eq!(ip("::1", &["198.51.100.1, 127.0.0.1"]), "198.51.100.1");
    }

    #[test]
    fn hops_a_client_sent_itself_are_not_believed() {
        assert_eq!(ip("127.0.0.1", &["10.9.9.9, 198.51.100.1"]), "198.51.100.1");
        assert_eq!(
            ip("127.0.0.1", &["10.9.9.9", "198.51.100.1"]),
            "198.51.100.1"
        );
        assert_eq!(
            ip("127.0.0.1", &["10.9.9.9, junk, 198.51.100.1"]),
            "198.51.100.1"
        );
    }

    #[test]
    fn without_a_readable_hop_the_proxy_itself_is_named() {
        assert_eq!(ip("127.0.0.1", &[]), "127.0.0.1");
        assert_eq!(ip("127.0.0.1", &["junk"]), "127.0.0.1");
    }
}
