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

/// Reads one HTTP/1.1 response (head and `content-length` body) from `stream`; `None` if the
/// connection closed first.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                let response: Vec<u8> = buf.drain(..end + 4 + length).collect();
                return Some(String::from_utf8_lossy(&response).into_owned());
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn a_body_the_handler_does_not_read_costs_the_connection_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-keep-alive").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    // `scan` takes no body; a Mini Program sends `{}` anyway, and its last bytes may arrive
    // after the head has been answered.
    stream
        .write_all(
            format!(
                "POST /api/mp/v1/qrcodes/{random}/scan HTTP/1.1\r\nhost: {addr}\r\n\
                 authorization: Bearer {token}\r\ncontent-type: application/json\r\n\
                 content-length: 2\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Whether the answer comes before the body or waits for it, the body and a next request
    // on the same connection must both be answered.
    let early = tokio::time::timeout(
        Duration::from_millis(500),
        read_response(&mut stream, &mut buf),
    )
    .await
    .ok();
    let next = format!("{{}}GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.write_all(next.as_bytes()).await.unwrap();
    let scanned = match early {
        Some(answer) => answer,
        None => Some(read_response(&mut stream, &mut buf).await).flatten(),
    };
    let scanned = scanned.expect("the scan is answered");
    assert!(scanned.starts_with("HTTP/1.1 200"), "{scanned}");
    let health = tokio::time::timeout(
        Duration::from_secs(20),
        read_response(&mut stream, &mut buf),
    )
    .await
    .expect("an answer in time");
    let health = health.expect("the next request on the connection is answered");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

both_backends!(
    a_body_the_handler_does_not_read_costs_the_connection_nothing,
    a_proxy_on_a_dual_stack_listener_speaks_for_its_clients,
    ipv6_clients_are_limited_per_64_network,
    a_body_still_trickling_at_the_deadline_is_refused_and_the_connection_closed,
    one_address_may_hold_only_so_many_event_streams,
);
