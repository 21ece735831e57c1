//! What a stranger can make ScanGate spend, each bound reproduced as an attack: Argon2 checks
//! of client secrets, avatar storage, and image decoding.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::oidc::login;

both_backends!(
    a_flood_of_wrong_client_secrets_keeps_memory_flat_and_the_real_client_served,
    wrong_client_secrets_are_rate_limited_per_address_and_per_client,
);

/// Which backend the flood runs on, for the process that runs it.
const FLOOD_BACKEND: &str = "SCANGATE_TEST_FLOOD_BACKEND";

/// The resident memory of this process, in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Runs [`client_secret_flood`] in a test process of its own, so that the memory it reads is
/// that of one server under attack and not of the tests running beside it.
async fn a_flood_of_wrong_client_secrets_keeps_memory_flat_and_the_real_client_served(
    backend: Backend,
) {
    let run = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exhaustion::client_secret_flood",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FLOOD_BACKEND, format!("{backend:?}"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the flood ends within five minutes")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the flood ran: {stdout}");
}

/// 64 connections send wrong client secrets to the token, introspection and revocation
/// endpoints with the rate limits off, so only the verification slots stand in the way. The
/// server's resident memory stays within 100 MB of idle, and a real client logs in meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a process of its own by a_flood_of_wrong_client_secrets_…"]
async fn client_secret_flood() {
    const ATTACKERS: usize = 64;
    const REQUESTS_EACH: usize = 6;
    let backend = match std::env::var(FLOOD_BACKEND).as_deref() {
        Ok("Distributed") => Backend::Distributed,
        _ => Backend::Embedded,
    };
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits.client_auth_failures_per_minute = 0;
        c.rate_limits.client_auth_failures_per_client_per_minute = 0;
    })
    .await;
    // The real client's first token request verifies its secret, as in production.
    login(&app, "web", "openid", "o-before").await;
    let idle = rss();

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = rss();
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak.max(rss())
        })
    };
    let (refused, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            // A client of its own per attacker: its own connection.
            let client = reqwest::Client::new();
            let base = app.base.clone();
            let (refused, busy) = (Arc::clone(&refused), Arc::clone(&busy));
            tokio::spawn(async move {
                for n in 0..REQUESTS_EACH {
                    let path = [
                        "/oidc/token",
                        "/oidc/token/introspection",
                        "/oidc/token/revocation",
                    ][(i + n) % 3];
                    let res = client
                        .post(format!("{base}{path}"))
                        .basic_auth("web", Some(format!("wrong-secret-{i}-{n}")))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", "x"),
                            ("token", "x"),
                        ])
                        .send()
                        .await
                        .unwrap();
                    match res.status() {
                        StatusCode::UNAUTHORIZED => refused.fetch_add(1, Ordering::Relaxed),
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert_eq!(res.headers()["retry-after"], "1");
                            let body: serde_json::Value = res.json().await.unwrap();
                            assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                            busy.fetch_add(1, Ordering::Relaxed)
                        }
                        other => panic!("a wrong secret got {other}"),
                    };
                }
            })
        })
        .collect();

    // Meanwhile a real client completes a login, its grant included.
    let real = Instant::now();
    let (_, tokens) = login(&app, "web", "openid", "o-during").await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let real = real.elapsed();
    let during = attackers.iter().filter(|a| !a.is_finished()).count();

    for a in attackers {
        a.await.unwrap();
    }
    let flood = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let after = rss();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "flood of {} wrong secrets from {ATTACKERS} connections in {:.1} s: {} refused (401), {} told to retry (503); \
         resident memory idle {:.1} MB, peak {:.1} MB (+{:.1} MB), after {:.1} MB; \
         the real client's login took {:.2} s with {during} attackers still running",
        ATTACKERS * REQUESTS_EACH,
        flood.as_secs_f64(),
        refused.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        mb(idle),
        mb(peak),
        mb(peak.saturating_sub(idle)),
        mb(after),
        real.as_secs_f64(),
    );
    assert!(during > 0, "the real login ran during the flood");
    assert!(
        peak.saturating_sub(idle) <= 100 * 1024 * 1024,
        "resident memory grew by {:.1} MB",
        mb(peak.saturating_sub(idle))
    );
}

/// Past `client_auth_failures_per_minute` wrong secrets an address gets `429` without an
/// Argon2 check; past the per-client limit so does every address, for that client only; and
/// a secret already verified is still accepted from the blocked address.
async fn wrong_client_secrets_are_rate_limited_per_address_and_per_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits.client_auth_failures_per_minute = 3;
        c.rate_limits.client_auth_failures_per_client_per_minute = 5;
    })
    .await;
    login(&app, "web", "openid", "o-known").await;
    let introspect = |client: &str, secret: &str, forwarded: &str| {
        app.client
            .post(app.url("/oidc/token/introspection"))
            .header("x-forwarded-for", forwarded.to_owned())
            .basic_auth(client.to_owned(), Some(secret.to_owned()))
            .form(&[("token", "x")])
            .send()
    };
    // The login above verified the real secret once, from 127.0.0.1: one count for `web`.
    for _ in 0..3 {
        let res = introspect("web", "wrong", "203.0.113.7").await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = introspect("web", "wrong", "203.0.113.7").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "60");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // The real secret still works from the blocked address: it needs no Argon2 check.
    let res = introspect("web", crate::helpers::CLIENT_SECRET, "203.0.113.7")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Another address: the client's own count (1 + 3 so far) runs out after one more.
    let res = introspect("web", "wrong", "198.51.100.9").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = introspect("web", "wrong", "198.51.100.9").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client from that address is not held up by the first one's count.
    let res = introspect("open", "wrong", "198.51.100.9").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    app.clock.advance(Duration::from_secs(60));
    let res = introspect("web", "wrong", "203.0.113.7").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
