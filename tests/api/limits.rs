//! Per-address request limits, shared by every instance through the ticket store.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp, APPID};

async fn spawn_strict(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.rate_limits.qrcodes_per_minute = 3;
        c.rate_limits.sessions_per_minute = 2;
        c.rate_limits.exchanges_per_minute = 2;
    })
    .await
}

async fn qr_creation_over_the_limit_is_rate_limited_until_the_next_minute(backend: Backend) {
    let app = spawn_strict(backend).await;
    for _ in 0..3 {
        app.create_qr().await;
    }
    let res = app
        .client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers().contains_key("retry-after"),
        "Retry-After is set"
    );
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    app.clock.advance(std::time::Duration::from_secs(60));
    app.create_qr().await;
}

async fn mini_program_logins_over_the_limit_are_refused_before_wechat_is_called(backend: Backend) {
    let app = spawn_strict(backend).await;
    app.mp_login(APPID, "o-limit-1").await;
    app.mp_login(APPID, "o-limit-2").await;
    let code = app.sim.login_code(APPID, "o-limit-3", None);
    let login = || {
        app.client
            .post(app.url("/api/mp/v1/session"))
            .json(&json!({ "appid": APPID, "code": code }))
            .send()
    };
    assert_error(
        login().await.unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;

    // WeChat never saw the code: it still works once the minute has passed.
    app.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(login().await.unwrap().status(), StatusCode::OK);
}

async fn ticket_guessing_is_rate_limited(backend: Backend) {
    let app = spawn_strict(backend).await;
    for _ in 0..2 {
        let res = app.exchange(&app.client, "guessed-ticket-value").await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let res = app.exchange(&app.client, "guessed-ticket-value").await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

both_backends!(
    qr_creation_over_the_limit_is_rate_limited_until_the_next_minute,
    mini_program_logins_over_the_limit_are_refused_before_wechat_is_called,
    ticket_guessing_is_rate_limited,
);
