//! `scangate dev` as a newcomer meets it: the phone simulator offered the code a page shows,
//! and the demo site in a real browser (a login, a cancel, the hosted login round trip, and the
//! page with JavaScript off), with screenshots left for people to look at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp, APPID};
use crate::js::{chromium, run_node};

async fn dev_app(backend: Backend) -> TestApp {
    TestApp::spawn_dev(backend).await
}

/// A Mini Program session of `openid`, logged in through the dev server's own simulator.
async fn phone_token(app: &TestApp, openid: &str) -> String {
    let sim: Value = app
        .client
        .post(app.url("/_dev/wechat/_sim/login"))
        .json(&json!({ "appid": APPID, "openid": openid }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session: Value = app
        .client
        .post(app.url("/api/mp/v1/session"))
        .json(&json!({ "appid": APPID, "code": sim["code"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["token"]
        .as_str()
        .expect("a session token")
        .to_owned()
}

async fn latest(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url("/_dev/latest-code"))
        .send()
        .await
        .unwrap()
}

async fn latest_json(app: &TestApp) -> Value {
    let res = latest(app).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The `data-random` of the hosted login page the demo app's authorization request shows.
async fn hosted_page_random(app: &TestApp) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(
        b"a-verifier-long-enough-for-pkce-0123456789",
    ));
    let res = app
        .client
        .get(app.url("/oidc/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "demo"),
            ("redirect_uri", &app.url("/_dev/callback")),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let at = html
        .find("data-random=\"")
        .expect("the page carries data-random")
        + 13;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

both_backends!(
    the_phone_simulator_is_offered_the_latest_code_a_page_shows,
    the_demo_site_works_in_a_browser,
);

async fn the_phone_simulator_is_offered_the_latest_code_a_page_shows(backend: Backend) {
    let app = dev_app(backend).await;
    assert_error(latest(&app).await, StatusCode::NOT_FOUND, "not_found").await;

    // The demo page's code, as the public API created it.
    let qr = app.create_qr_for(&app.client, "demo").await;
    let offered = latest_json(&app).await;
    assert_eq!(offered["random"], qr["random"]);
    assert_eq!(offered["client_id"], "demo");
    assert_eq!(offered["status"], "pending");
    assert_eq!(offered["scan_url"], qr["scan_url"]);
    assert_eq!(offered["expires_at"], qr["expires_at"]);

    // A code another Mini Program scans is not the simulated phone's to offer.
    app.create_qr_for(&app.client, "other").await;
    assert_eq!(latest_json(&app).await["random"], qr["random"]);

    // The hosted login page's code replaces it: the page the newcomer now looks at.
    let hosted = hosted_page_random(&app).await;
    assert_ne!(Value::from(hosted.as_str()), qr["random"]);
    assert_eq!(latest_json(&app).await["random"], hosted.as_str());

    // The status is the one the public status API gives.
    let token = phone_token(&app, "o-newcomer").await;
    assert_eq!(app.scan(&token, &hosted).await.status(), StatusCode::OK);
    assert_eq!(latest_json(&app).await["status"], "scanned");
    app.clock.advance(std::time::Duration::from_secs(121));
    assert_eq!(latest_json(&app).await["status"], "expired");
}

async fn the_demo_site_works_in_a_browser(backend: Backend) {
    chromium();
    let app = dev_app(backend).await;
    let out = run_node(
        "dev-demo.mjs",
        &[
            ("SCANGATE_URL", app.base.clone()),
            // One set of screenshots per run is enough.
            (
                "SCREENSHOTS",
                u8::from(backend == Backend::Embedded).to_string(),
            ),
        ],
    )
    .await;
    for step in [
        "offered: ok",
        "first login: ok",
        "cancelled: ok",
        "second login: ok",
        "hosted login: ok",
        "no script: ok",
    ] {
        assert!(out.contains(step), "{step} in {out}");
    }
}
