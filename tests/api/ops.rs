//! Health, readiness, request ids, and what serve mode does not expose.

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use std::time::Duration;

use crate::helpers::{assert_error, Backend, TestApp, APPID};
use crate::qrcodes::follow_events;

both_backends!(
    health_and_readiness_answer,
    every_response_carries_a_request_id_and_the_default_headers,
    nothing_under_dev_exists_in_serve_mode,
    shutdown_ends_event_streams_cleanly_and_stops_listening,
    expired_sessions_and_tokens_are_purged,
    https_deployments_send_strict_transport_security,
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
    // The second JWKS request is answered from the published copy, before routing.
    for path in ["/healthz", "/oidc/jwks", "/oidc/jwks", "/no/such/thing"] {
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
    assert_eq!(ids.len(), 4, "request ids are unique: {ids:?}");

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
        "/_dev/latest-code",
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

async fn shutdown_ends_event_streams_cleanly_and_stops_listening(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let (reader, mut rx) = follow_events(app.events(&random).await);
    assert_eq!(rx.recv().await, Some(1), "the first event arrives");

    app.shut_down().await;
    // The stream ended with its chunked terminator, not a dropped connection (which
    // `read_events` would report as an error).
    let events = reader.await.expect("stream read to its end");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], "pending");
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "nothing listens after shutdown"
    );
}

async fn expired_sessions_and_tokens_are_purged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(APPID, "o-purge").await;
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mp_sessions")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
    };
    assert_eq!(sessions().await, 1);
    let now = app.clock.now();
    assert_eq!(
        scangate::store::purge_expired(&app.state.db, now)
            .await
            .unwrap(),
        0,
        "nothing has expired yet"
    );

    app.clock.advance(Duration::from_secs(400 * 24 * 3600));
    let deleted = scangate::store::purge_expired(&app.state.db, app.clock.now())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(sessions().await, 0);
    let res = app
        .client
        .get(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// With an https public URL every response, published documents included, carries
/// `Strict-Transport-Security`; on plain http none does.
async fn https_deployments_send_strict_transport_security(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.public_url = "https://id.example.test".parse().unwrap();
    })
    .await;
    for path in [
        "/healthz",
        "/oidc/.well-known/openid-configuration",
        "/nope",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            res.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("max-age=31536000".to_owned()),
            "{path}"
        );
    }
    let plain = TestApp::spawn(backend).await;
    let res = plain
        .client
        .get(plain.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("strict-transport-security").is_none());
}
