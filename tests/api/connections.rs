//! What one client may hold open: its connections, its event streams, a request body that
//! never finishes — and how a client is told apart behind a dual-stack proxy or in IPv6.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp, APPID};

/// Creates a QR code of app `web` as a browser behind a proxy at `forwarded`.
async fn create_from(app: &TestApp, forwarded: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/qrcodes"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap()
}

async fn a_proxy_on_a_dual_stack_listener_speaks_for_its_clients(backend: Backend) {
    // On `[::]` an IPv4 peer arrives as `::ffff:127.0.0.1`: still the local proxy.
    let app = TestApp::spawn_with(backend, |c| c.listen = "[::]:0".parse().unwrap()).await;
    let res = create_from(&app, "198.51.100.23").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let random = res.json::<Value>().await.unwrap()["random"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.mp_login(APPID, "o-dual-stack").await;
    let scanned: Value = app.scan(&token, &random).await.json().await.unwrap();
    assert_eq!(scanned["requester"]["ip"], "198.51.100.23");
}

async fn ipv6_clients_are_limited_per_64_network(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.rate_limits.qrcodes_per_minute = 2).await;
    for host in ["2001:db8:7:8::a", "2001:db8:7:8:ffff::b"] {
        assert_eq!(create_from(&app, host).await.status(), StatusCode::CREATED);
    }
    // A third address of the same /64 is the same subscriber.
    assert_error(
        create_from(&app, "2001:db8:7:8::c").await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_eq!(
        create_from(&app, "2001:db8:7:9::a").await.status(),
        StatusCode::CREATED
    );
}

async fn a_body_still_trickling_at_the_deadline_is_refused_and_the_connection_closed(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |c| c.connections.body_read_timeout_secs = 1).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Promises 100 bytes, sends 10, and then nothing.
    stream
        .write_all(
            format!(
                "POST /api/v1/qrcodes HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 content-length: 100\r\n\r\n{{\"app_id\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    // Read to the end: the server answers and closes (well before this bound).
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
}

async fn one_address_may_hold_only_so_many_event_streams(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.connections.event_streams_per_address = 2).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let open = |from: &'static str| {
        app.client
            .get(app.url(&format!("/api/v1/qrcodes/{random}/events")))
            .header("x-forwarded-for", from)
            .send()
    };
    let first = open("203.0.113.50").await.unwrap();
    let second = open("203.0.113.50").await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open("203.0.113.50").await.unwrap();
    assert!(third.headers().contains_key("retry-after"));
    assert_error(third, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Someone else is not affected.
    assert_eq!(open("203.0.113.51").await.unwrap().status(), StatusCode::OK);
}

both_backends!(
    a_proxy_on_a_dual_stack_listener_speaks_for_its_clients,
    ipv6_clients_are_limited_per_64_network,
    a_body_still_trickling_at_the_deadline_is_refused_and_the_connection_closed,
    one_address_may_hold_only_so_many_event_streams,
);
