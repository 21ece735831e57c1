//! A dependency that goes away: `503 unavailable` while it is gone, and service resumes by
//! itself when it returns.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_error, eventually, fresh_postgres, require_redis, Backend, Proxy, TestApp, APPID,
};

async fn create_status(app: &TestApp) -> StatusCode {
    app.client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// A fresh Mini Program login, which needs the database.
async fn mp_session(app: &TestApp) -> reqwest::Result<reqwest::Response> {
    let code = app.sim.login_code(APPID, "o-outage", None);
    app.client
        .post(app.url("/api/mp/v1/session"))
        .json(&json!({ "appid": APPID, "code": code }))
        .send()
        .await
}

async fn session_status(app: &TestApp) -> StatusCode {
    mp_session(app)
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_is_unavailable_and_service_resumes_when_it_returns() {
    let upstream = require_redis()
        .await
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Proxy::start(upstream).await;
    let port = proxy.port;
    let app = TestApp::spawn_with(Backend::Distributed, move |c| {
        c.redis_url = format!("redis://127.0.0.1:{port}")
    })
    .await;
    assert_eq!(create_status(&app).await, StatusCode::CREATED);

    proxy.cut();
    let res = app
        .client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(15), || async {
            create_status(&app).await == StatusCode::CREATED
        })
        .await,
        "service resumed"
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_is_unavailable_and_service_resumes_when_it_returns() {
    let url = fresh_postgres().await;
    let parsed = url::Url::parse(&url).unwrap();
    let upstream = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    let mut proxied = parsed.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let proxied = proxied.to_string();
    let app = TestApp::spawn_with(Backend::Distributed, move |c| c.database_url = proxied).await;
    assert_eq!(session_status(&app).await, StatusCode::OK);

    proxy.cut();
    // A Mini Program login reads and writes users and identities.
    let res = mp_session(&app).await.unwrap();
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(15), || async {
            session_status(&app).await == StatusCode::OK
        })
        .await,
        "service resumed"
    );
}
