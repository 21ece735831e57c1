//! The pages of `/_dev/`: the demo site, the phone simulator and the demo app's callback.
//!
//! The pages are thin shells; their behaviour lives in `static/dev-*.js` and talks only to the
//! public APIs, so reading that script is reading a working integration.

use askama::Template;
use axum::extract::RawQuery;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::{DEMO_APPID, DEMO_CLIENT_ID};
use crate::error::AppError;

/// Everything a page loads comes from this origin; no inline script or style. Images may come
/// from anywhere because avatars are URLs a user chose; `data:` and `blob:` hold the phone
/// simulator's generated avatars.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: blob: http: https:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/_dev", get(|| async { Redirect::permanent("/_dev/") }))
        .route("/_dev/", get(demo_get))
        .route("/_dev/phone", get(phone_get))
        .route("/_dev/callback", get(callback_get))
}

/// The demo site's login page.
#[derive(Template)]
#[template(path = "dev/demo.html")]
pub struct DemoPage {
    /// The `app_id` the page creates QR codes for.
    pub app_id: &'static str,
    pub phone_path: &'static str,
    pub jwks_path: &'static str,
    pub discovery_path: &'static str,
}

/// The phone simulator.
#[derive(Template)]
#[template(path = "dev/phone.html")]
pub struct PhonePage {
    /// The Mini Program the simulated phone runs.
    pub appid: &'static str,
}

/// What came back to the demo app's redirect URI.
#[derive(Template)]
#[template(path = "dev/callback.html")]
pub struct CallbackPage {
    pub query: String,
    pub params: Vec<(String, String)>,
}

impl CallbackPage {
    pub fn new(query: Option<String>) -> Self {
        let query = query.unwrap_or_default();
        let params = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        CallbackPage { query, params }
    }

    /// The OAuth error an authorization server may have sent back instead of a code.
    pub fn error(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.as_str())
    }
}

/// `GET /_dev/`
async fn demo_get() -> Response {
    page(&DemoPage {
        app_id: DEMO_CLIENT_ID,
        phone_path: "/_dev/phone",
        jwks_path: "/oidc/jwks",
        discovery_path: "/oidc/.well-known/openid-configuration",
    })
}

/// `GET /_dev/phone[?random=…]`: the script reads `random` (or `scene`, or `q` holding a scan
/// URL, as a Mini Program's launch options would).
async fn phone_get() -> Response {
    page(&PhonePage { appid: DEMO_APPID })
}

/// `GET /_dev/callback?…`
async fn callback_get(RawQuery(query): RawQuery) -> Response {
    let mut res = page(&CallbackPage::new(query));
    // The query may hold an authorization code: keep it out of Referer headers.
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            [
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let res = router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    /// The CSP forbids inline code; a page that carries some would break in the browser.
    fn assert_no_inline_code(html: &str) {
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices("<script") {
            let tag = &lower[i..i + lower[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!lower.contains("<style"), "inline style element");
        assert!(!lower.contains(" style="), "inline style attribute");
        for event in [
            " onclick=",
            " onload=",
            " onsubmit=",
            " onerror=",
            " oninput=",
            " onchange=",
        ] {
            assert!(!lower.contains(event), "inline event handler {event}");
        }
        assert!(!lower.contains("javascript:"), "javascript: URL");
    }

    #[tokio::test]
    async fn the_demo_page_renders_with_its_hooks_and_a_strict_csp() {
        let (status, headers, html) = get("/_dev/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self';"));
        assert!(html.contains(r#"data-app-id="demo""#), "{html}");
        assert!(html.contains(r#"href="/_dev/phone""#));
        assert!(html.contains(&crate::assets::url("dev-demo.js")));
        assert!(html.contains(&crate::assets::url("scangate.css")));
        assert!(html.contains("/oidc/jwks"));
        assert!(html.contains("Demo shop"));
        assert!(html.contains("微信扫码登录"));
        // The hosted login round trip, and what to do without script (in both languages,
        // since nothing picks one then).
        assert!(html.contains(r#"id="hosted-login""#));
        assert!(html.contains(r#"data-discovery-url="/oidc/.well-known/openid-configuration""#));
        assert!(html.contains(&crate::assets::url("dev-token.js")));
        let noscript = &html[html.find("<noscript>").unwrap()..html.find("</noscript>").unwrap()];
        assert!(noscript.contains("JavaScript is off") && noscript.contains("禁用 JavaScript"));
        assert!(!noscript.contains(r#"class="zh""#), "{noscript}");
        assert_no_inline_code(&html);
    }

    #[tokio::test]
    async fn the_phone_page_renders_for_the_demo_mini_program() {
        let (status, _, html) = get("/_dev/phone?random=abc").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"data-appid="wx0123456789abcdef""#));
        assert!(html.contains(&crate::assets::url("dev-phone.js")));
        assert!(html.contains(r#"name="viewport""#));
        assert_no_inline_code(&html);
    }

    #[tokio::test]
    async fn the_callback_page_lists_the_query_escaped() {
        let (status, headers, html) =
            get("/_dev/callback?code=abc123&state=%3Cb%3Ex%3C%2Fb%3E").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert!(html.contains("abc123"));
        assert!(html.contains(&crate::assets::url("dev-callback.js")));
        assert!(
            html.contains("&#60;b&#62;x&#60;/b&#62;") || html.contains("&lt;b&gt;x&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>x</b>"));
        assert_no_inline_code(&html);

        let (_, _, html) = get("/_dev/callback?error=access_denied").await;
        assert!(html.contains("access_denied"));
        let (_, _, html) = get("/_dev/callback").await;
        assert_no_inline_code(&html);
    }

    #[tokio::test]
    async fn the_bare_prefix_redirects_to_the_demo() {
        let (status, headers, _) = get("/_dev").await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(headers[header::LOCATION], "/_dev/");
    }
}
