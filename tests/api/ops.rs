//! Health, readiness, request ids, and what serve mode does not expose.

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp};

both_backends!(
    health_and_readiness_answer,
    nothing_under_dev_exists_in_serve_mode
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["ticket_store"], "ok");
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
