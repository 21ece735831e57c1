//! Responses that are the same for every caller and change rarely (discovery documents, key
//! sets) kept whole once served, and answered before routing.
//!
//! Relying parties fetch these on every start and often on every token check, so they are the
//! hottest public endpoints. The handler that builds one hands it to [`Published::keep`] with
//! how long it stays right; until then a `GET` of that exact path is answered from here with
//! the same headers, a fresh request id and its own log span, without a trip through the router.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response};

use crate::clock::{Clock, Millis};

struct Document {
    headers: HeaderMap,
    body: Bytes,
    until: Millis,
}

pub struct Published {
    clock: Clock,
    documents: RwLock<HashMap<String, Arc<Document>>>,
}

impl Published {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            documents: RwLock::default(),
        }
    }

    /// Answers `GET path` with `headers` and `body` until `until` (clock millis).
    pub fn keep(&self, path: &str, headers: &HeaderMap, body: Bytes, until: Millis) {
        let document = Arc::new(Document {
            headers: headers.clone(),
            body,
            until,
        });
        self.documents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), document);
    }

    /// The kept response for `path`, while it is fresh.
    pub fn response(&self, path: &str) -> Option<Response<Body>> {
        let document = self
            .documents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .filter(|d| d.until > self.clock.now())
            .cloned()?;
        let mut res = Response::new(Body::from(document.body.clone()));
        *res.headers_mut() = document.headers.clone();
        Some(res)
    }

    /// Forgets every kept response (the keys they publish changed).
    pub fn forget_all(&self) {
        self.documents
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    #[test]
    fn a_kept_document_is_answered_until_it_goes_stale() {
        let clock = Clock::manual();
        let published = Published::new(clock.clone());
        let minute = clock.now() + 60_000;
        assert!(published.response("/oidc/jwks").is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        published.keep("/oidc/jwks", &headers, Bytes::from_static(b"{}"), minute);
        let res = published.response("/oidc/jwks").expect("kept");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert!(
            published.response("/oidc/jwks/").is_none(),
            "exact paths only"
        );

        clock.advance(std::time::Duration::from_secs(60));
        assert!(published.response("/oidc/jwks").is_none(), "stale");

        published.keep("/oidc/jwks", &headers, Bytes::new(), minute + 60_000);
        published.forget_all();
        assert!(published.response("/oidc/jwks").is_none(), "forgotten");
    }
}
