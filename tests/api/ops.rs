//! Health, readiness, request ids, and what serve mode does not expose.

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp};

both_backends!(
    health_and_readiness_answer,
    every_response_carries_a_request_id_and_the_default_headers,
    nothing_under_dev_exists_in_serve_mode
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["ticket_store"], "ok");
}

async fn every_response_carries_a_request_id_and_the_default_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for path in ["/healthz", "/oidc/jwks", "/no/such/thing"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        ids.push(h["x-request-id"].to_str().unwrap().to_owned());
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            h["referrer-policy"], "strict-origin-when-cross-origin",
            "{path}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "request ids are unique: {ids:?}");

    // A caller's own request id is kept and answered.
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "caller-chosen-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "caller-chosen-1");
}

async fn nothing_under_dev_exists_in_serve_mode(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/_dev/",
        "/_dev/phone",
        "/_dev/wechat/sns/jscode2session",
        "/_dev/wechat/_sim/login",
    ] {
        assert_error(
            app.client.get(app.url(path)).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let res = app
        .client
        .post(app.url("/_dev/wechat/_sim/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
