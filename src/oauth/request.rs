//! The authorization request (OIDC Core §3.1.2, RFC 6749 §4.1.1, RFC 7636 §4.3), validated in
//! the order the specifications demand: first the client and its redirect URI — until both
//! are known good, errors show a page and never redirect (RFC 6749 §4.1.2.1) — then everything
//! else, whose errors go back to the redirect URI.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{grant_scope, has_scope, parse_params, with_query, Issuer, Params};
use crate::domain::{ClientId, PoolSlug};
use crate::error::AppError;
use crate::pages::{see_other, Lang, MessagePage};
use crate::store::apps::{App, Cache};

/// A validated authorization request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthRequest {
    pub pool: PoolSlug,
    pub client_id: ClientId,
    pub redirect_uri: String,
    /// The granted scope (known scopes only).
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub lang: Lang,
    pub pinned: bool,
}

impl AuthRequest {
    /// A redirect back to the app with an error (RFC 6749 §4.1.2.1).
    pub fn error(&self, issuer: &Issuer, error: &str, description: &str) -> Response {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = &self.state {
            params.push(("state", s));
        }
        params.push(("iss", &issuer.url));
        see_other(&with_query(&self.redirect_uri, &params))
    }

    /// The authorization URL that starts this request again (a new QR code).
    pub fn restart_url(&self, issuer: &Issuer) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope);
        for (k, v) in [("state", &self.state), ("nonce", &self.nonce)] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(c) = &self.code_challenge {
            q.append_pair("code_challenge", c)
                .append_pair("code_challenge_method", "S256");
        }
        if self.pinned {
            q.append_pair("ui_locales", self.lang.html());
        }
        format!("{}/auth?{}", issuer.path(), q.finish())
    }
}

/// Why a request was refused before its redirect URI was known to be good.
pub fn bad_client(lang: Lang, en: String, zh: String) -> Response {
    MessagePage::error(
        lang,
        "invalid_request",
        ("无法登录", &zh),
        ("This sign-in request cannot be used", &en),
    )
    .respond(StatusCode::BAD_REQUEST)
}

/// A request that passed every check, with its app and what only this request asks for.
pub struct Validated {
    pub request: AuthRequest,
    pub app: Arc<App>,
    pub prompt: Prompt,
    /// Milliseconds.
    pub max_age: Option<i64>,
}

/// Validates the query of an authorization request to `issuer`. A refusal is the response to
/// send: a page while the client or redirect URI is in doubt, else a redirect to the app.
pub async fn validate(
    apps: &Cache,
    issuer: &Issuer,
    query: &str,
    accept_language: Option<&str>,
) -> Result<Validated, Response> {
    let accept = accept_language;
    let params = match parse_params(query) {
        Ok(p) => p,
        Err(why) => {
            let (lang, _) = Lang::choose(None, accept);
            return Err(bad_client(lang, why.clone(), format!("请求有误：{why}")));
        }
    };
    let (lang, pinned) = Lang::choose(params.get("ui_locales"), accept);
    let Some(client_id) = params.get("client_id") else {
        return Err(bad_client(
            lang,
            "The request has no client_id.".into(),
            "请求缺少 client_id。".into(),
        ));
    };
    let app = match apps.get(client_id).await {
        Ok(Some(app)) if app.pool == issuer.pool => app,
        Ok(_) => {
            let shown: String = client_id.chars().take(64).collect();
            return Err(bad_client(
                lang,
                format!("No app with client_id \"{shown}\" is registered with this issuer."),
                format!("此登录入口没有登记 client_id 为“{shown}”的应用。"),
            ));
        }
        Err(e) => return Err(AppError::from(e).into_page(lang)),
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(bad_client(
            lang,
            "The request has no redirect_uri.".into(),
            "请求缺少 redirect_uri。".into(),
        ));
    };
    if !app.redirect_uris.iter().any(|r| r == redirect_uri) {
        let (en, zh) = explain_mismatch(redirect_uri, &app.redirect_uris);
        return Err(bad_client(lang, en, zh));
    }
    // The redirect URI is registered: from here on, errors go back to the app.
    let mut request = AuthRequest {
        pool: issuer.pool.clone(),
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope: String::new(),
        state: params.get("state").map(str::to_owned),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge: None,
        lang,
        pinned,
    };
    let checked = match check(&params, &app) {
        Ok(c) => c,
        Err((error, description)) => return Err(request.error(issuer, error, &description)),
    };
    request.scope = checked.scope;
    request.code_challenge = checked.code_challenge;
    Ok(Validated {
        request,
        app,
        prompt: checked.prompt,
        max_age: checked.max_age,
    })
}

#[derive(Default)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
}

struct Checked {
    scope: String,
    code_challenge: Option<String>,
    prompt: Prompt,
    /// Milliseconds.
    max_age: Option<i64>,
}

/// The checks whose failures are reported to the app (OIDC Core §3.1.2.6).
fn check(params: &Params, app: &App) -> Result<Checked, (&'static str, String)> {
    let invalid = |m: &str| ("invalid_request", m.to_owned());
    if params.get("request").is_some() {
        return Err((
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    if params.get("request_uri").is_some() {
        return Err((
            "request_uri_not_supported",
            "request_uri is not supported".into(),
        ));
    }
    match params.get("response_type") {
        None => return Err(invalid("response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ))
        }
    }
    if !matches!(params.get("response_mode"), None | Some("query")) {
        return Err(invalid("only response_mode=query is supported"));
    }
    let Some(scope) = params.get("scope") else {
        return Err(invalid("scope is missing"));
    };
    if !has_scope(scope, "openid") {
        return Err(("invalid_scope", "the openid scope is required".into()));
    }
    for (name, limit) in [("state", 2048), ("nonce", 512)] {
        if params.get(name).is_some_and(|v| v.len() > limit) {
            return Err(invalid(&format!(
                "{name} is longer than {limit} characters"
            )));
        }
    }
    let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, Some(_)) => return Err(invalid("code_challenge_method without code_challenge")),
        (Some(_), m) if m != Some("S256") => {
            return Err(invalid("only code_challenge_method=S256 is supported"))
        }
        (Some(c), _) if !is_s256_challenge(c) => {
            return Err(invalid(
                "code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)",
            ))
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, None) if app.client_secret_hash.is_none() => {
            return Err(invalid(
                "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
            ))
        }
        (None, None) => None,
    };
    let mut prompt = Prompt::default();
    for p in params.get("prompt").unwrap_or("").split(' ') {
        match p {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            // consent is given on the phone with every scan; other values ask for nothing
            // ScanGate has.
            _ => {}
        }
    }
    if prompt.none && params.get("prompt").is_some_and(|p| p.trim() != "none") {
        return Err(invalid("prompt=none cannot be combined with other values"));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (0..=10 * 365 * 24 * 3600).contains(&n) => Some(n * 1000),
            _ => return Err(invalid("max_age must be a non-negative number of seconds")),
        },
    };
    Ok(Checked {
        scope: grant_scope(scope),
        code_challenge,
        prompt,
        max_age,
    })
}

/// An S256 challenge is 32 bytes in unpadded base64url: exactly 43 characters.
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Says exactly how a redirect URI misses the registered ones: (English, Chinese).
pub fn explain_mismatch(requested: &str, registered: &[String]) -> (String, String) {
    let listed = registered.join(", ");
    if registered.is_empty() {
        return (
            "This app has no registered redirect URIs.".into(),
            "该应用没有登记任何回调地址。".into(),
        );
    }
    let Ok(req) = url::Url::parse(requested) else {
        return (
            format!(
                "The redirect_uri \"{requested}\" is not an absolute URL; registered: {listed}."
            ),
            format!("redirect_uri“{requested}”不是完整的网址；已登记：{listed}。"),
        );
    };
    if !req.username().is_empty() || req.password().is_some() {
        return (
            format!("The redirect_uri \"{requested}\" carries user info (user@ or user:password@), which is never allowed; registered: {listed}."),
            format!("redirect_uri“{requested}”带有用户信息（user@ 或 user:password@），这是不允许的；已登记：{listed}。"),
        );
    }
    if req.fragment().is_some() {
        return (
            format!("The redirect_uri \"{requested}\" has a fragment (#…), which is never allowed; registered: {listed}."),
            format!("redirect_uri“{requested}”带有片段（#…），这是不允许的；已登记：{listed}。"),
        );
    }
    // The registered URI differing from the request in the fewest parts.
    let best = registered
        .iter()
        .filter_map(|r| url::Url::parse(r).ok().map(|u| (r, differences(&req, &u))))
        .min_by_key(|(_, d)| d.len());
    if let Some((reg, diffs)) = best {
        match diffs.as_slice() {
            [Part::TrailingSlash] => {
                return (
                    format!("A trailing slash differs from the registered redirect URI \"{reg}\" (requested \"{requested}\"); URIs must match exactly."),
                    format!("末尾斜杠与登记的回调地址“{reg}”不同（请求的是“{requested}”）；回调地址必须完全一致。"),
                )
            }
            [Part::Port] => {
                return (
                    format!("The port differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("端口与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [Part::Scheme] | [Part::Scheme, Part::Port] => {
                return (
                    format!("The scheme differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("协议（http/https）与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [Part::Query] => {
                let en = if reg.contains('?') {
                    format!("The query string differs from the registered redirect URI \"{reg}\" (requested \"{requested}\").")
                } else {
                    format!("The redirect_uri adds a query string the registered redirect URI \"{reg}\" does not have (requested \"{requested}\").")
                };
                return (
                    en,
                    format!("查询串与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                );
            }
            [Part::Host] => {
                return (
                    format!("The host differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("主机名与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [Part::Path] => {
                return (
                    format!("The path differs from the registered redirect URI \"{reg}\" (requested \"{requested}\")."),
                    format!("路径与登记的回调地址“{reg}”不同（请求的是“{requested}”）。"),
                )
            }
            [] => {
                return (
                    format!("The redirect_uri \"{requested}\" is not spelled exactly like the registered \"{reg}\"; URIs are compared character by character."),
                    format!("redirect_uri“{requested}”与登记的“{reg}”写法不完全相同；回调地址逐字比较。"),
                )
            }
            _ => {}
        }
    }
    (
        format!("The redirect_uri \"{requested}\" is not registered for this app; registered: {listed}."),
        format!("redirect_uri“{requested}”没有为该应用登记；已登记：{listed}。"),
    )
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Scheme,
    Host,
    Port,
    TrailingSlash,
    Path,
    Query,
}

fn differences(a: &url::Url, b: &url::Url) -> Vec<Part> {
    let mut d = Vec::new();
    if a.scheme() != b.scheme() {
        d.push(Part::Scheme);
    }
    if a.host_str() != b.host_str() {
        d.push(Part::Host);
    }
    if a.port_or_known_default() != b.port_or_known_default() {
        d.push(Part::Port);
    }
    if a.path() != b.path() {
        if a.path().trim_end_matches('/') == b.path().trim_end_matches('/') {
            d.push(Part::TrailingSlash);
        } else {
            d.push(Part::Path);
        }
    }
    if a.query() != b.query() {
        d.push(Part::Query);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(requested: &str) -> String {
        explain_mismatch(requested, &["http://127.0.0.1:3000/callback".into()]).0
    }

    #[test]
    fn near_misses_are_named() {
        assert!(why("http://127.0.0.1:3000/callback/").contains("trailing slash differs"));
        assert!(why("http://127.0.0.1:3001/callback").contains("port differs"));
        assert!(why("https://127.0.0.1:3000/callback").contains("scheme differs"));
        assert!(why("http://127.0.0.1:3000/callback?x=1").contains("adds a query string"));
        assert!(why("http://u:p@127.0.0.1:3000/callback").contains("user info"));
        assert!(why("http://localhost:3000/callback").contains("host differs"));
        assert!(why("http://evil.example/callback").contains("is not registered"));
        assert!(why("http://127.0.0.1:3000/other").contains("path differs"));
        assert!(why("not a url").contains("not an absolute URL"));
        assert!(why("HTTP://127.0.0.1:3000/callback").contains("character by character"));
    }

    #[test]
    fn s256_challenges_are_43_base64url_characters() {
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }
}
