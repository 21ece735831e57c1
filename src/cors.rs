//! Cross-origin access to the PC APIs (Fetch standard, "CORS protocol").
//!
//! A site embedding a QR code calls ScanGate from its own origin, with credentials: the binding
//! cookie must travel with the calls that create a code, follow it and exchange its ticket. So a
//! grant is always the exact origin with `Access-Control-Allow-Credentials: true`, never `*`,
//! and only for an origin the app lists in `allowed_origins`.
//!
//! Which app a request is for is known from, in order: the handler (it inserts [`ForApp`] into
//! the response once it knows), the QR code named in the path or the `random` query, and the
//! `x-authing-app-id` header. A preflight, or an error about something that names no app,
//! is granted to origins that some app allows: it reveals nothing about any one app's codes.

use std::convert::Infallible;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;

use std::sync::Arc;

use crate::domain::{ClientId, Random};
use crate::store::apps::Cache;
use crate::tickets::TicketStore;

/// Set by a handler on its response: the app this response belongs to.
#[derive(Clone, Debug)]
pub struct ForApp(pub ClientId);

/// Request headers a page may send: ours, the JSON content type, and the ones `authing-js-sdk`
/// adds (every `x-authing-*`).
const ALLOWED_HEADERS: &[&str] = &["content-type", "authorization", "x-scangate-bind"];
const AUTHING_HEADER_PREFIX: &str = "x-authing-";
/// How long a browser may reuse a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// What deciding a grant reads: the QR codes (whose app a path names) and the apps.
#[derive(Clone)]
pub struct Cors {
    pub tickets: Arc<dyn TicketStore>,
    pub apps: Arc<Cache>,
}

/// Whose origins decide a grant.
#[derive(Clone, Debug)]
enum Scope {
    App(String),
    Qr(String),
    AnyApp,
}

impl<S> tower::Layer<S> for Cors {
    type Service = Granting<S>;

    fn layer(&self, inner: S) -> Granting<S> {
        Granting {
            cors: self.clone(),
            inner,
        }
    }
}

/// A route whose responses carry CORS grants.
#[derive(Clone)]
pub struct Granting<S> {
    cors: Cors,
    inner: S,
}

impl<S> tower::Service<Request> for Granting<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        // Without an Origin there is nothing to grant: skip working out the scope.
        let Some(origin) = origin else {
            if preflight {
                return Box::pin(async {
                    let mut res = StatusCode::NO_CONTENT.into_response();
                    vary(&mut res);
                    Ok(res)
                });
            }
            let answered = self.inner.call(req);
            return Box::pin(async move {
                let mut res = answered.await?;
                vary(&mut res);
                Ok(res)
            });
        };
        let scope = request_scope(&req);
        let cors = self.cors.clone();
        if preflight {
            let headers = req.headers().clone();
            return Box::pin(async move {
                let mut res = StatusCode::NO_CONTENT.into_response();
                vary(&mut res);
                if allowed(&cors, scope, &origin).await {
                    grant(&mut res, &origin);
                    preflight_grant(&mut res, &headers);
                }
                Ok(res)
            });
        }
        let answered = self.inner.call(req);
        Box::pin(async move {
            let mut res = answered.await?;
            vary(&mut res);
            let scope = match res.extensions().get::<ForApp>() {
                Some(ForApp(app)) => Scope::App(app.to_string()),
                None => scope,
            };
            if allowed(&cors, scope, &origin).await {
                grant(&mut res, &origin);
            }
            Ok(res)
        })
    }
}

/// The scope a request names by itself.
fn request_scope(req: &Request) -> Scope {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/api/v1/qrcodes/") {
        let random = rest.split('/').next().unwrap_or_default();
        if let Ok(r) = Random::parse(random) {
            return Scope::Qr(r.as_str().to_owned());
        }
    }
    if let Some(random) = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "random")
            .and_then(|(_, v)| Random::parse(&v).ok())
    }) {
        return Scope::Qr(random.as_str().to_owned());
    }
    match req
        .headers()
        .get("x-authing-app-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        Some(app) => Scope::App(app.to_owned()),
        None => Scope::AnyApp,
    }
}

/// Whether `origin` may read responses in `scope`. A store failure grants nothing.
async fn allowed(state: &Cors, scope: Scope, origin: &str) -> bool {
    let client_id = match scope {
        Scope::App(id) => Some(id),
        Scope::Qr(random) => match state.tickets.get_shared(&random).await {
            Ok(Some(qr)) => Some(qr.client_id.to_string()),
            Ok(None) => None,
            Err(_) => return false,
        },
        Scope::AnyApp => None,
    };
    if let Some(id) = client_id {
        match state.apps.get(&id).await {
            Ok(Some(app)) => return app.allowed_origins.iter().any(|o| o == origin),
            Ok(None) => {}
            Err(_) => return false,
        }
    }
    // Nothing names a known app.
    match state.apps.all().await {
        Ok(apps) => apps
            .iter()
            .any(|a| a.allowed_origins.iter().any(|o| o == origin)),
        Err(_) => false,
    }
}

fn vary(res: &mut Response) {
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}

fn grant(res: &mut Response, origin: &str) {
    let Ok(origin) = HeaderValue::from_str(origin) else {
        return;
    };
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}

/// The method and header part of a preflight answer: the requested headers are echoed when
/// every one of them is allowed, else only the fixed list is offered (and the browser refuses).
fn preflight_grant(res: &mut Response, req: &HeaderMap) {
    let requested = req
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let all_allowed = requested
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .all(|h| ALLOWED_HEADERS.contains(&h.as_str()) || h.starts_with(AUTHING_HEADER_PREFIX));
    let headers = if all_allowed && !requested.trim().is_empty() {
        HeaderValue::from_str(&requested.to_ascii_lowercase()).ok()
    } else {
        None
    }
    .unwrap_or_else(|| HeaderValue::from_static("content-type, authorization, x-scangate-bind"));
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, headers);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    h.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn preflight(requested: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_str(requested).unwrap(),
        );
        let mut res = StatusCode::NO_CONTENT.into_response();
        preflight_grant(&mut res, &headers);
        res
    }

    fn allow_headers(res: &Response) -> &str {
        res.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
    }

    #[test]
    fn the_sdk_headers_are_echoed() {
        let res =
            preflight("Content-Type, x-authing-app-id, x-authing-lang, x-authing-sdk-version");
        assert_eq!(
            allow_headers(&res),
            "content-type, x-authing-app-id, x-authing-lang, x-authing-sdk-version"
        );
    }

    #[test]
    fn an_unknown_header_is_not_granted() {
        let res = preflight("content-type, x-evil");
        assert!(!allow_headers(&res).contains("x-evil"));
    }

    #[test]
    fn the_scope_comes_from_the_path_the_query_or_the_header() {
        let random = Random::generate();
        let req = |uri: &str, app: Option<&str>| {
            let mut b = Request::builder().uri(uri);
            if let Some(a) = app {
                b = b.header("x-authing-app-id", a);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        assert!(matches!(
            request_scope(&req(&format!("/api/v1/qrcodes/{random}/events"), None)),
            Scope::Qr(r) if r == random.as_str()
        ));
        assert!(matches!(
            request_scope(&req(&format!("/api/v2/qrcode/check?random={random}"), Some("web"))),
            Scope::Qr(r) if r == random.as_str()
        ));
        assert!(matches!(
            request_scope(&req("/api/v2/qrcode/gene", Some("web"))),
            Scope::App(a) if a == "web"
        ));
        assert!(matches!(
            request_scope(&req("/api/v1/qrcodes/exchange", None)),
            Scope::AnyApp
        ));
    }
}
