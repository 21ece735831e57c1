//! Static files (`static/*`), compiled into the binary and served at `/static/*`.
//!
//! Embedding keeps the one-binary deployment whole: nothing to copy beside the executable and
//! no working-directory surprises. Pages link assets through [`url`], which appends a digest of
//! the file so a new build is never hidden behind a cached copy.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// How long browsers and proxies may keep an asset. Short enough that an unversioned link
/// catches up with an upgrade within the hour.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// One embedded file.
struct Asset {
    /// Path under `static/`, which is also the path under `/static/`.
    path: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal) => {
        Asset {
            path: $path,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $path)),
        }
    };
}

/// Every file under `static/`. A file missing here is a 404, however it is spelled on disk.
static ASSETS: &[Asset] = &[
    asset!("scangate.css"),
    asset!("dev.css"),
    asset!("i18n.js"),
    asset!("login.css"),
    asset!("login.js"),
    asset!("dev-demo.js"),
    asset!("dev-phone.js"),
    asset!("dev-token.js"),
    asset!("dev-callback.js"),
    asset!("favicon.svg"),
    asset!("avatar.svg"),
    asset!("scangate.js"),
    asset!("scangate-widget.css"),
    asset!("console.css"),
    asset!("console.js"),
];

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/static/{*path}", get(asset_get))
}

/// `GET /static/{path}`
async fn asset_get(Path(path): Path<String>) -> Response {
    let Some(asset) = find(&path) else {
        return AppError::NotFound("no such static file".into()).into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(asset.path)),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
        ],
        asset.body,
    )
        .into_response()
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The MIME type by file extension; text types say their charset so CJK text never depends
/// on a browser's guess.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The link to an embedded asset, versioned by a digest of its content
/// (`/static/dev.css?v=1a2b3c4d5e6f`). An unknown path is linked unversioned (and will 404).
pub fn url(path: &str) -> String {
    match find(path) {
        Some(asset) => {
            let digest = Sha256::digest(asset.body);
            format!("/static/{}?v={}", asset.path, hex::encode(&digest[..6]))
        }
        None => format!("/static/{path}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header(res: &Response, name: header::HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn serves_each_embedded_file_with_its_content_type_and_cache_header() {
        for (path, expected) in [
            ("/static/dev.css", "text/css; charset=utf-8"),
            ("/static/scangate.css", "text/css; charset=utf-8"),
            ("/static/dev-demo.js", "text/javascript; charset=utf-8"),
            ("/static/i18n.js", "text/javascript; charset=utf-8"),
            ("/static/favicon.svg", "image/svg+xml"),
        ] {
            let res = get(path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&res, header::CONTENT_TYPE), expected, "{path}");
            assert_eq!(
                header(&res, header::CACHE_CONTROL),
                "public, max-age=3600",
                "{path}"
            );
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                &body[..],
                find(&path["/static/".len()..]).unwrap().body,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_file_is_a_json_not_found() {
        for path in [
            "/static/nope.css",
            "/static/../Cargo.toml",
            "/static/dev.css/x",
            "/static/",
        ] {
            let res = get(path).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            if path != "/static/" {
                assert!(
                    header(&res, header::CONTENT_TYPE).starts_with("application/json"),
                    "{path}"
                );
                let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["error"], "not_found");
            }
        }
    }

    #[test]
    fn every_asset_has_a_known_content_type() {
        for asset in ASSETS {
            assert_ne!(
                content_type(asset.path),
                "application/octet-stream",
                "{}",
                asset.path
            );
        }
    }

    #[test]
    fn links_carry_a_content_digest() {
        let link = url("dev.css");
        assert!(link.starts_with("/static/dev.css?v="), "{link}");
        assert_eq!(link.len(), "/static/dev.css?v=".len() + 12);
        assert_eq!(url("missing.css"), "/static/missing.css");
    }
}
