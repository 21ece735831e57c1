//! `/metrics` read by a real Prometheus parser (the `prometheus_client` package's OpenMetrics
//! parser): its counters move as a login proceeds, and it is served only where it should be.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::both_backends;
use crate::deploy::require_tool;
use crate::helpers::{eventually, Backend, TestApp, APPID};
use crate::qrcodes::follow_events;

const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
"#;

/// Every sample of an OpenMetrics text, as `name{label="value",…}` (labels sorted) → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let python = require_tool("python3").expect("python3");
    let mut child = Command::new(python)
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the OpenMetrics parser accepts /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    parse(&res.text().await.unwrap())
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn counters_move_as_a_login_proceeds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = scrape(&app).await;
    assert_eq!(
        value(
            &before,
            r#"scangate_build_info{name="scangate",version="0.1.0"}"#
        ),
        1.0,
        "build info in {before:?}"
    );
    let qr = |outcome: &str| format!(r#"scangate_qr_codes_total{{app="web",outcome="{outcome}"}}"#);

    let code = app.create_qr().await;
    let random = code["random"].as_str().unwrap().to_owned();
    let created = scrape(&app).await;
    assert_eq!(value(&created, &qr("created")), 1.0);
    assert_eq!(
        value(
            &created,
            r#"scangate_http_requests_total{route="/api/v1/qrcodes",status="201"}"#
        ),
        1.0
    );
    assert!(
        value(
            &created,
            r#"scangate_http_request_duration_seconds_count{route="/api/v1/qrcodes"}"#
        ) >= 1.0
    );

    let (reader, mut events) = follow_events(app.events(&random).await);
    assert_eq!(events.recv().await, Some(1));
    let waiting = scrape(&app).await;
    assert_eq!(
        value(&waiting, r#"scangate_waiting_browsers{kind="sse"}"#),
        1.0
    );

    let token = app.mp_login(APPID, "o-metrics").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    assert_eq!(value(&scrape(&app).await, &qr("scanned")), 1.0);
    assert_eq!(
        app.confirm(&token, &random, None).await.status(),
        StatusCode::OK
    );
    let views = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream closes after confirmation")
        .unwrap();
    let ticket = views.last().unwrap()["ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        app.exchange(&app.client, &ticket).await.status(),
        StatusCode::OK
    );
    let closed = eventually(Duration::from_secs(5), || async {
        value(
            &scrape(&app).await,
            r#"scangate_waiting_browsers{kind="sse"}"#,
        ) == 0.0
    })
    .await;
    assert!(closed, "the closed stream is no longer counted");
    let after = scrape(&app).await;
    assert_eq!(value(&after, &qr("confirmed")), 1.0);
    assert_eq!(value(&after, &qr("exchanged")), 1.0);
    assert!(
        value(
            &after,
            r#"scangate_wechat_calls_total{endpoint="sns/jscode2session",errcode="0"}"#
        ) >= 1.0,
        "the WeChat call is counted: {after:?}"
    );
    assert!(
        value(
            &after,
            r#"scangate_wechat_call_duration_seconds_count{endpoint="sns/jscode2session"}"#
        ) >= 1.0
    );
}

async fn metrics_are_not_served_through_a_proxy_or_when_turned_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let proxied = app
        .client
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(proxied, StatusCode::NOT_FOUND, "not_found").await;

    let off = TestApp::spawn_with(backend, |c| c.metrics = false).await;
    let res = off.client.get(off.url("/metrics")).send().await.unwrap();
    crate::helpers::assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
}

async fn metrics_listen_serves_them_on_their_own_address(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(backend, |c| {
        c.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap())
    })
    .await;
    app.create_qr().await;
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = parse(&text);
    assert_eq!(
        value(
            &samples,
            r#"scangate_qr_codes_total{app="web",outcome="created"}"#
        ),
        1.0
    );
    let other = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "only /metrics there");
}

async fn token_grants_are_counted_by_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, tokens) =
        crate::oidc::login(&app, "web", "openid offline_access", "o-metrics-grant").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let res = crate::oidc::token_request(
        &app,
        "web",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let samples = scrape(&app).await;
    for grant in ["authorization_code", "refresh_token"] {
        assert_eq!(
            value(
                &samples,
                &format!(r#"scangate_token_grants_total{{grant_type="{grant}"}}"#)
            ),
            1.0,
            "{grant} in {samples:?}"
        );
    }
}

both_backends!(
    counters_move_as_a_login_proceeds,
    metrics_are_not_served_through_a_proxy_or_when_turned_off,
    metrics_listen_serves_them_on_their_own_address,
    token_grants_are_counted_by_type,
);
