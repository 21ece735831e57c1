//! The scanner side's protections: who is asking (browser, address, place, a warning when
//! the requester's network does not fit the phone's), the match number, "this wasn't me",
//! WeChat's phone quota, and the phone-side limits.

use std::net::Ipv4Addr;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, cookie_client, tempdir, Backend, TestApp, APPID};

both_backends!(
    a_qrljacking_attempt_shows_the_attacker_and_a_wrong_number_cancels_it,
    a_requester_in_another_country_is_a_mismatch_and_a_neighbour_is_not,
    the_match_number_is_on_status_and_sse_and_the_right_one_confirms,
    a_code_of_the_authing_compatible_api_has_no_match_step,
    a_reported_hosted_login_loses_its_refresh_access_and_session_at_once,
    a_reported_native_login_loses_its_access_token_and_only_the_owner_may_report,
    an_exhausted_phone_quota_lets_the_login_go_on_without_the_phone,
    an_address_may_have_only_so_many_codes_pending_at_once,
    approvals_per_user_are_limited,
    scans_of_codes_that_are_not_pending_are_limited_per_user,
);

const ATTACKER_IP: &str = "198.51.100.7";
const VICTIM_IP: &str = "203.0.113.9";
const GERMAN_IP: &str = "192.0.2.44";
const SHANGHAI_NEIGHBOUR_IP: &str = "203.0.113.200";
const ATTACKER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// A GeoIP database: a US datacenter, a Shanghai ISP and a Berlin ISP.
fn geoip(dir: &tempdir::Dir) -> std::path::PathBuf {
    let place = |city: &str, region: &str, code: &str, country: &str| {
        json!({
            "city": { "names": { "en": city } },
            "subdivisions": [{ "names": { "en": region } }],
            "country": { "iso_code": code, "names": { "en": country } },
        })
    };
    let mut datacenter = place("Ashburn", "Virginia", "US", "United States");
    datacenter["traits"] = json!({ "is_hosting_provider": true });
    let db = crate::mmdb::write(&[
        (Ipv4Addr::new(198, 51, 100, 0), 24, datacenter),
        (
            Ipv4Addr::new(203, 0, 113, 0),
            24,
            place("Shanghai", "Shanghai", "CN", "China"),
        ),
        (
            Ipv4Addr::new(192, 0, 2, 0),
            24,
            place("Berlin", "Land Berlin", "DE", "Germany"),
        ),
    ]);
    let path = dir.0.join("test.mmdb");
    std::fs::write(&path, db).unwrap();
    path
}

/// ScanGate with the GeoIP database and the match step on for `web`.
async fn spawn(backend: Backend, dir: &tempdir::Dir) -> TestApp {
    let path = geoip(dir);
    TestApp::spawn_with(backend, move |config| {
        config.geoip_database = Some(path);
        for app in &mut config.apps {
            app.match_number = Some(true);
        }
    })
    .await
}

/// A browser at `ip` (behind the loopback proxy ScanGate believes) creates a code for `app_id`.
async fn create_from(app: &TestApp, browser: &Client, app_id: &str, ip: &str, ua: &str) -> Value {
    let res = browser
        .post(app.url("/api/v1/qrcodes"))
        .header("x-forwarded-for", ip)
        .header("user-agent", ua)
        .json(&json!({ "app_id": app_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// The phone at `ip` scans `random`.
async fn scan_from(app: &TestApp, token: &str, random: &str, ip: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/mp/v1/qrcodes/{random}/scan")))
        .header("x-forwarded-for", ip)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn random_of(qr: &Value) -> String {
    qr["random"].as_str().unwrap().to_owned()
}

/// How many audit events of `action` there are.
async fn audited(app: &TestApp, action: &str) -> i64 {
    use sqlx::Row as _;
    sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn a_qrljacking_attempt_shows_the_attacker_and_a_wrong_number_cancels_it(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    // The attacker's PC asks for a login and relays the code to the victim.
    let attacker = cookie_client();
    let qr = create_from(&app, &attacker, "web", ATTACKER_IP, ATTACKER_UA).await;
    let random = random_of(&qr);
    let victim = app.mp_login(APPID, "o-victim").await;
    let res = scan_from(&app, &victim, &random, VICTIM_IP).await;
    assert_eq!(res.status(), StatusCode::OK);
    let shown: Value = res.json().await.unwrap();
    let requester = &shown["requester"];
    assert_eq!(requester["ip"], ATTACKER_IP);
    assert_eq!(requester["browser"], "Firefox");
    assert_eq!(requester["os"], "Linux");
    assert_eq!(requester["device"], "desktop");
    assert_eq!(requester["description"], "Firefox on Linux");
    assert_eq!(
        requester["location"],
        json!({
            "city": "Ashburn",
            "region": "Virginia",
            "country": "United States",
            "country_code": "US",
        })
    );
    assert!(requester["shown_seconds_ago"].as_i64().unwrap() >= 0);
    assert_eq!(shown["mismatch"]["reason"], "datacenter", "{shown}");
    assert_eq!(shown["mismatch"]["requester_country"], "US");
    assert_eq!(shown["mismatch"]["scanner_country"], "CN");
    assert!(shown["mismatch"]["message"].as_str().unwrap().len() > 20);
    assert_eq!(shown["phone"], "optional");

    // The attacker's page shows the number; the victim, not seeing it, taps another.
    let status = app.status(&attacker, &random).await;
    let number = status["match_number"]
        .as_i64()
        .expect("a number while scanned");
    let choices: Vec<i64> = shown["match"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    assert_eq!(choices.len(), 3);
    assert!(choices.contains(&number), "{choices:?} hold {number}");
    let wrong = *choices.iter().find(|c| **c != number).unwrap();
    let res = app
        .confirm(&victim, &random, Some(json!({ "match_number": wrong })))
        .await;
    assert_error(res, StatusCode::FORBIDDEN, "wrong_match_number").await;

    // Cancelled at once, audited, and the attacker never sees a ticket.
    let status = app.status(&attacker, &random).await;
    assert_eq!(status["status"], "cancelled");
    assert_eq!(status["cancel_reason"], "wrong_match_number");
    assert!(status.get("ticket").is_none() && status.get("match_number").is_none());
    assert_eq!(audited(&app, "qrcode.wrong_match_number").await, 1);
    let retry = app
        .confirm(&victim, &random, Some(json!({ "match_number": number })))
        .await;
    assert_error(retry, StatusCode::CONFLICT, "conflict").await;
    let status = app.status(&attacker, &random).await;
    assert!(status.get("ticket").is_none(), "{status}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"scangate_scanner_events_total{event="wrong_match_number"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"scangate_scanner_events_total{event="mismatch_warned"} 1"#));
}

async fn a_requester_in_another_country_is_a_mismatch_and_a_neighbour_is_not(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let token = app.mp_login(APPID, "o-traveller").await;
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                  Gecko) Chrome/131.0.0.0 Safari/537.36";
    let qr = create_from(&app, &cookie_client(), "web", GERMAN_IP, chrome).await;
    let shown: Value = scan_from(&app, &token, &random_of(&qr), VICTIM_IP)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["mismatch"]["reason"], "country", "{shown}");
    assert_eq!(shown["mismatch"]["requester_country"], "DE");
    assert_eq!(shown["requester"]["description"], "Chrome on Windows");
    assert_eq!(shown["requester"]["location"]["city"], "Berlin");

    let qr = create_from(&app, &cookie_client(), "web", SHANGHAI_NEIGHBOUR_IP, chrome).await;
    let shown: Value = scan_from(&app, &token, &random_of(&qr), VICTIM_IP)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["mismatch"], Value::Null, "{shown}");
    assert_eq!(shown["requester"]["location"]["country_code"], "CN");

    // An address the database does not know: no place, no warning.
    let qr = create_from(&app, &cookie_client(), "web", "100.64.0.1", chrome).await;
    let shown: Value = scan_from(&app, &token, &random_of(&qr), VICTIM_IP)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["requester"]["location"], Value::Null);
    assert_eq!(shown["mismatch"], Value::Null);
}

/// Reads Server-Sent Events from `res` until one whose data has `status`; that data.
async fn sse_until(res: &mut reqwest::Response, status: &str) -> Value {
    let mut buffer = String::new();
    let deadline = std::time::Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let v: Value = serde_json::from_str(data).unwrap();
                    if v["status"] == status {
                        return v;
                    }
                }
            }
            let chunk = res.chunk().await.unwrap().expect("the stream stays open");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the event came")
}

async fn the_match_number_is_on_status_and_sse_and_the_right_one_confirms(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let qr = app.create_qr().await;
    let random = random_of(&qr);
    let pending = app.status(&app.client, &random).await;
    assert!(
        pending.get("match_number").is_none(),
        "no number before the scan"
    );
    let mut events = app.events(&random).await;
    sse_until(&mut events, "pending").await;
    let token = app.mp_login(APPID, "o-matcher").await;
    let shown: Value = app.scan(&token, &random).await.json().await.unwrap();
    let scanned = sse_until(&mut events, "scanned").await;
    let number = scanned["match_number"]
        .as_i64()
        .expect("the number on the event");
    assert!((10..=99).contains(&number));
    assert_eq!(
        app.status(&app.client, &random).await["match_number"],
        number
    );
    let choices = shown["match"]["choices"].as_array().unwrap();
    let distinct: std::collections::BTreeSet<i64> =
        choices.iter().map(|c| c.as_i64().unwrap()).collect();
    assert_eq!(distinct.len(), 3, "{choices:?}");
    assert!(distinct.iter().all(|n| (10..=99).contains(n)));
    assert!(distinct.contains(&number));
    // Someone without the creator's binding does not see the number.
    let stranger = app.status(&cookie_client(), &random).await;
    assert!(stranger.get("match_number").is_none(), "{stranger}");

    // Without a number: refused, and the code stays scanned.
    let res = app.confirm(&token, &random, None).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(app.status(&app.client, &random).await["status"], "scanned");
    let res = app
        .confirm(&token, &random, Some(json!({ "match_number": number })))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["phone_skipped"], Value::Null);
    let confirmed = sse_until(&mut events, "confirmed").await;
    assert!(confirmed["ticket"].is_string());
    assert!(confirmed.get("match_number").is_none());
}

async fn a_code_of_the_authing_compatible_api_has_no_match_step(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let res = app
        .client
        .post(app.url("/api/v2/qrcode/gene"))
        .header("x-authing-app-id", "web")
        .json(&json!({ "scene": "WXAPP_AUTH" }))
        .send()
        .await
        .unwrap();
    let gene: Value = res.json().await.unwrap();
    let random = gene["data"]["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-authing").await;
    let shown: Value = app.scan(&token, &random).await.json().await.unwrap();
    assert_eq!(shown["match"], Value::Null, "{shown}");
    assert!(app
        .status(&app.client, &random)
        .await
        .get("match_number")
        .is_none());
    let res = app.confirm(&token, &random, None).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// The id of the newest login in `token`'s list, after checking the list's shape.
async fn newest_login(app: &TestApp, token: &str) -> String {
    let list = app.get_json_bearer("/api/mp/v1/me/logins", token).await;
    let first = &list["logins"][0];
    assert_eq!(first["reported"], false, "{list}");
    assert!(first["app"]["name"].is_string());
    assert!(first["requester"]["description"].is_string());
    assert!(first["confirmed_at"].is_string());
    first["id"].as_str().unwrap().to_owned()
}

async fn report(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.mp_post(token, &format!("/api/mp/v1/logins/{id}/report"), None)
        .await
}

async fn a_reported_hosted_login_loses_its_refresh_access_and_session_at_once(backend: Backend) {
    use crate::oidc::{login, signed_in, token_request, userinfo_status};
    let app = TestApp::spawn(backend).await;
    let (browser, tokens) = login(&app, "web", "openid offline_access", "o-victim").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, access).await, StatusCode::OK);
    assert!(signed_in(&app, &browser).await);

    let token = app.mp_login(APPID, "o-victim").await;
    let id = newest_login(&app, &token).await;
    let res = report(&app, &token, &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({ "reported": true })
    );

    // At once: no waiting for an access token to expire.
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::UNAUTHORIZED
    );
    let res = token_request(
        &app,
        "web",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!signed_in(&app, &browser).await, "the SSO session is gone");
    assert_eq!(audited(&app, "login.reported").await, 1);

    // Idempotent; the list says so.
    assert_eq!(report(&app, &token, &id).await.status(), StatusCode::OK);
    assert_eq!(audited(&app, "login.reported").await, 1);
    let list = app.get_json_bearer("/api/mp/v1/me/logins", &token).await;
    assert_eq!(list["logins"][0]["reported"], true);
}

async fn a_reported_native_login_loses_its_access_token_and_only_the_owner_may_report(
    backend: Backend,
) {
    use crate::oidc::userinfo_status;
    let app = TestApp::spawn(backend).await;
    let kept = app.exchanged("o-owner").await;
    let body = app.exchanged("o-owner").await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, access).await, StatusCode::OK);
    let token = app.mp_login(APPID, "o-owner").await;
    let list = app.get_json_bearer("/api/mp/v1/me/logins", &token).await;
    assert_eq!(list["logins"].as_array().unwrap().len(), 2, "{list}");
    let id = newest_login(&app, &token).await;

    let stranger = app.mp_login(APPID, "o-stranger").await;
    assert_error(
        report(&app, &stranger, &id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        report(&app, &token, "no-such-login").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(userinfo_status(&app, access).await, StatusCode::OK);

    assert_eq!(report(&app, &token, &id).await.status(), StatusCode::OK);
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::UNAUTHORIZED
    );
    // The other login is untouched.
    let other = kept["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, other).await, StatusCode::OK);

    // The list keeps 90 days.
    app.clock
        .advance(std::time::Duration::from_secs(91 * 24 * 3600));
    scangate::store::purge_expired(&app.state.db, app.clock.now())
        .await
        .unwrap();
    let token = app.mp_login(APPID, "o-owner").await;
    let list = app.get_json_bearer("/api/mp/v1/me/logins", &token).await;
    assert_eq!(list, json!({ "logins": [] }));
}

async fn an_exhausted_phone_quota_lets_the_login_go_on_without_the_phone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sim.set_phone_quota(APPID, Some(0));
    let qr = app.create_qr().await;
    let random = random_of(&qr);
    let token = app.mp_login(APPID, "o-phone").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let code = app.sim.phone_code(APPID, "o-phone", "13800138000", "86");
    let res = app
        .confirm(&token, &random, Some(json!({ "phone": { "code": code } })))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["phone_skipped"], "quota_exhausted", "{body}");
    assert!(body["phone_skipped_message"].is_string());
    let status = app.status(&app.client, &random).await;
    assert!(status["ticket"].is_string());
    let me = app.get_json_bearer("/api/mp/v1/me", &token).await;
    assert_eq!(me["phone"], Value::Null, "{me}");
    assert_eq!(audited(&app, "mp.phone_quota_exhausted").await, 1);
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"scangate_scanner_events_total{event="phone_quota_exhausted"} 1"#));

    // With quota again, the phone is shared as before.
    app.sim.set_phone_quota(APPID, None);
    let qr = app.create_qr().await;
    let random = random_of(&qr);
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let code = app.sim.phone_code(APPID, "o-phone", "13800138000", "86");
    let body: Value = app
        .confirm(&token, &random, Some(json!({ "phone": { "code": code } })))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["phone_skipped"], Value::Null);
    let me = app.get_json_bearer("/api/mp/v1/me", &token).await;
    assert_eq!(me["phone"], "13800138000", "{me}");
}

/// A 429 `rate_limited` with `Retry-After`.
async fn assert_limited(res: reqwest::Response) {
    assert!(res.headers().contains_key("retry-after"), "Retry-After");
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn an_address_may_have_only_so_many_codes_pending_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.rate_limits.pending_qrcodes_per_address = 2;
    })
    .await;
    let farm = cookie_client();
    let post = |ip: &'static str| {
        farm.post(app.url("/api/v1/qrcodes"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "app_id": "web" }))
            .send()
    };
    let first: Value = post(ATTACKER_IP).await.unwrap().json().await.unwrap();
    assert_eq!(
        post(ATTACKER_IP).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_limited(post(ATTACKER_IP).await.unwrap()).await;
    // Another address is not held back; a scanned code counts no more.
    assert_eq!(post(VICTIM_IP).await.unwrap().status(), StatusCode::CREATED);
    let token = app.mp_login(APPID, "o-scanner").await;
    assert_eq!(
        app.scan(&token, &random_of(&first)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post(ATTACKER_IP).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_limited(post(ATTACKER_IP).await.unwrap()).await;
    // Expired codes count no more either.
    app.clock.advance(std::time::Duration::from_secs(121));
    assert_eq!(
        post(ATTACKER_IP).await.unwrap().status(),
        StatusCode::CREATED
    );
}

async fn approvals_per_user_are_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.rate_limits.approvals_per_minute = 2;
    })
    .await;
    let token = app.mp_login(APPID, "o-busy").await;
    for i in 0..3 {
        let qr = app.create_qr().await;
        let random = random_of(&qr);
        assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
        let res = app.confirm(&token, &random, None).await;
        if i < 2 {
            assert_eq!(res.status(), StatusCode::OK);
        } else {
            assert_limited(res).await;
            assert_eq!(app.status(&app.client, &random).await["status"], "scanned");
        }
    }
    // Another user is not held back.
    let other = app.mp_login(APPID, "o-calm").await;
    let qr = app.create_qr().await;
    let random = random_of(&qr);
    assert_eq!(app.scan(&other, &random).await.status(), StatusCode::OK);
    assert_eq!(
        app.confirm(&other, &random, None).await.status(),
        StatusCode::OK
    );
}

async fn scans_of_codes_that_are_not_pending_are_limited_per_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.rate_limits.stale_scans_per_minute = 2;
    })
    .await;
    let guesser = app.mp_login(APPID, "o-guesser").await;
    let unknown = |n: u32| format!("AAAAAAAAAAAAAAAAAAAAA{n}");
    assert_error(
        app.scan(&guesser, &unknown(1)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Someone else's code: a conflict, counted too.
    let qr = app.create_qr().await;
    let owner = app.mp_login(APPID, "o-owner").await;
    assert_eq!(
        app.scan(&owner, &random_of(&qr)).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.scan(&guesser, &random_of(&qr)).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_limited(app.scan(&guesser, &unknown(2)).await).await;
    // A user who scans real codes is not held back.
    let fresh = app.create_qr().await;
    assert_eq!(
        app.scan(&owner, &random_of(&fresh)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.scan(&owner, &random_of(&fresh)).await.status(),
        StatusCode::OK
    );
}

/// The cost of `scan` on the phone's path: a bounded loop over loopback, p50 and p99 printed.
/// Run by hand: `cargo test --test api scan_latency -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn scan_latency_is_measured_over_loopback() {
    let dir = tempdir::Dir::new();
    for (backend, geo) in [
        (Backend::Embedded, false),
        (Backend::Embedded, true),
        (Backend::Distributed, false),
        (Backend::Distributed, true),
    ] {
        let app = if geo {
            spawn(backend, &dir).await
        } else {
            TestApp::spawn(backend).await
        };
        let token = app.mp_login(APPID, "o-latency").await;
        let mut randoms = Vec::new();
        for _ in 0..300 {
            let qr = create_from(&app, &app.client, "web", GERMAN_IP, ATTACKER_UA).await;
            randoms.push(qr["random"].as_str().unwrap().to_owned());
        }
        // Warm up connections and caches.
        for random in randoms.iter().take(20) {
            assert_eq!(app.scan(&token, random).await.status(), StatusCode::OK);
        }
        let mut took = Vec::new();
        for random in randoms.iter().skip(20) {
            let start = std::time::Instant::now();
            let res = scan_from(&app, &token, random, VICTIM_IP).await;
            took.push(start.elapsed());
            assert_eq!(res.status(), StatusCode::OK);
        }
        took.sort();
        let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "scan latency {backend:?} geoip={geo}: n={} p50={:?} p99={:?} max={:?}",
            took.len(),
            at(0.5),
            at(0.99),
            took[took.len() - 1]
        );
    }
}

/// Real desktop user agents, read as a person would say them on the confirm screen.
#[test]
fn desktop_user_agents_read_as_a_person_would_say_them() {
    const TABLE: &[(&str, &str)] = &[
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"),
        ("Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36", "Chrome on Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on macOS"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Linux"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"),
        ("Mozilla/5.0 (Windows NT 6.3; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0", "Firefox on Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on macOS"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15", "Safari on macOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on macOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045", "Edge on Windows"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera on Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera on macOS"),
        ("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer on Windows"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 YaBrowser/24.10.0.0 Safari/537.36", "Yandex Browser on Windows"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Vivaldi/7.0.3495.15", "Vivaldi on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) WindowsWechat(0x63090c11) XWEB/11275 Flue", "WeChat on Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) MicroMessenger/6.8.0(0x16080000) MacWechat/3.8.9(0x13080910) XWEB/31023 Flue", "WeChat on macOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0.4606.71 Safari/537.36 Core/1.94.253.400 QQBrowser/12.4.5623.400", "QQ Browser on Windows"),
    ];
    for (ua, said) in TABLE {
        let agent = scangate::requesters::agent(ua);
        assert_eq!(agent.description, *said, "{ua}");
        assert_eq!(agent.device, "desktop", "{ua}");
    }
    // And the phones and tablets one may meet.
    let iphone = scangate::requesters::agent("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1");
    assert_eq!(
        (iphone.description.as_str(), iphone.device),
        ("Safari on iOS", "phone")
    );
    let ipad = scangate::requesters::agent("Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1");
    assert_eq!(
        (ipad.description.as_str(), ipad.device),
        ("Safari on iPadOS", "tablet")
    );
    let android = scangate::requesters::agent("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36");
    assert_eq!(
        (android.description.as_str(), android.device),
        ("Chrome on Android", "phone")
    );
}
