//! The device authorization grant (RFC 8628): a device asks for a code, the person approves it
//! in the Mini Program (played here over its HTTP API), and the device's polls get, in turn,
//! `authorization_pending`, `slow_down`, `access_denied`, `expired_token` or the tokens — once.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::StatusCode;
use scangate::config::AppConfig;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp, APPID, APPID_OTHER, CLIENT_SECRET};

both_backends!(
    a_device_gets_tokens_once_the_phone_approves,
    polling_faster_than_the_interval_slows_the_device_down_on_every_instance,
    a_declined_request_answers_access_denied,
    an_expired_device_code_answers_expired_token,
    exactly_one_of_twenty_concurrent_redemptions_gets_tokens,
    five_wrong_codes_on_the_link_page_lock_the_request,
    user_codes_are_rate_limited_per_address,
    the_verification_page_shows_the_requests_qr_code,
    bad_device_requests_get_rfc_errors,
    the_phone_decides_a_request_once_and_only_its_own_mini_programs,
);

/// The grant type of the device's token requests.
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// ScanGate with `web` (confidential) and `tv` (public) allowed the device grant; `open` not.
async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

async fn spawn_with(
    backend: Backend,
    customise: impl FnOnce(&mut scangate::config::Config),
) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        with_device_clients(c);
        customise(c);
    })
    .await
}

pub fn with_device_clients(c: &mut scangate::config::Config) {
    for app in c.apps.iter_mut().filter(|a| a.client_id == "web") {
        app.device_grant = true;
    }
    c.apps.push(AppConfig {
        client_id: "tv".into(),
        client_secret: None,
        name: "Living-room TV".into(),
        miniprogram: APPID.into(),
        match_number: Some(false),
        device_grant: true,
        ..AppConfig::default()
    });
}

/// `POST path` as a form; client credentials are part of `form`.
async fn form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A device authorization of the public client `tv`; the response's JSON.
async fn authorize(app: &TestApp, scope: &str) -> Value {
    let res = form(
        app,
        "/oidc/device/auth",
        &[("client_id", "tv"), ("scope", scope)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

/// One poll of the token endpoint by `tv` on `app`.
async fn poll(app: &TestApp, device_code: &str) -> reqwest::Response {
    form(
        app,
        "/oidc/token",
        &[
            ("grant_type", GRANT),
            ("client_id", "tv"),
            ("device_code", device_code),
        ],
    )
    .await
}

/// Asserts an RFC 6749 §5.2 error: status and code.
async fn assert_oauth(res: reqwest::Response, status: StatusCode, error: &str) -> Value {
    let got = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

/// The random of a request's `verification_uri_complete` (`…/q/d/{random}`).
fn random_of(auth: &Value) -> String {
    let link = auth["verification_uri_complete"].as_str().unwrap();
    link.rsplit('/').next().unwrap().to_owned()
}

/// Plays the Mini Program: opens the request's link and answers `action` (approve or deny).
async fn phone(app: &TestApp, token: &str, random: &str, action: &str) -> reqwest::Response {
    app.mp_post(
        token,
        &format!("/api/mp/v1/devices/{random}/{action}"),
        None,
    )
    .await
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let key = app.admin_key("owner", None).await;
    let log: Value = app
        .client
        .get(app.url("/api/admin/v1/audit?limit=100"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    log["items"]
        .as_array()
        .unwrap_or_else(|| panic!("audit items in {log}"))
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

async fn a_device_gets_tokens_once_the_phone_approves(backend: Backend) {
    let app = spawn(backend).await;
    let meta = app.get_json("/oidc/.well-known/openid-configuration").await;
    assert_eq!(
        meta["device_authorization_endpoint"],
        app.url("/oidc/device/auth")
    );
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == GRANT));

    let auth = authorize(&app, "openid profile offline_access email").await;
    let user_code = auth["user_code"].as_str().unwrap();
    assert!(
        user_code.len() == 9
            && user_code.as_bytes()[4] == b'-'
            && user_code
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)),
        "{user_code}"
    );
    assert_eq!(auth["verification_uri"], app.url("/oidc/device"));
    let link = auth["verification_uri_complete"].as_str().unwrap();
    assert!(link.starts_with(&app.url("/q/d/")), "{link}");
    assert_eq!(auth["expires_in"], 600);
    assert_eq!(auth["interval"], 5);
    let device_code = auth["device_code"].as_str().unwrap();
    assert!(device_code.len() >= 43, "{device_code}");

    assert_oauth(
        poll(&app, device_code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;

    let random = random_of(&auth);
    let token = app.mp_login(APPID, "o-device-tv").await;
    let view = phone(&app, &token, &random, "scan").await;
    assert_eq!(view.status(), StatusCode::OK);
    let view: Value = view.json().await.unwrap();
    assert_eq!(view["app"]["name"], "Living-room TV");
    assert_eq!(view["device"]["client_name"], "Living-room TV");
    assert_eq!(view["device"]["user_code"], user_code);
    assert_eq!(view["device"]["ip"], "127.0.0.1");
    assert_eq!(
        view["scopes"],
        serde_json::json!(["openid", "profile", "offline_access"])
    );
    assert_eq!(view["status"], "pending");
    // Looking is not approving: the device still waits.
    app.clock.advance(Duration::from_secs(5));
    assert_oauth(
        poll(&app, device_code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;

    let approved = phone(&app, &token, &random, "approve").await;
    assert_eq!(approved.status(), StatusCode::OK);
    app.clock.advance(Duration::from_secs(5));
    let res = poll(&app, device_code).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile offline_access");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], app.url("/oidc"));
    assert_eq!(id["aud"], "tv");
    let me = app.get_json_bearer("/api/mp/v1/me", &token).await;
    assert_eq!(id["sub"], me["id"], "the approver is the subject");
    let info = app
        .get_json_bearer("/oidc/userinfo", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(info["sub"], me["id"]);

    // Used: the same code yields nothing more, however long the device waits.
    app.clock.advance(Duration::from_secs(5));
    assert_oauth(
        poll(&app, device_code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let actions = audit_actions(&app).await;
    for action in ["device.authorize", "device.approve", "device.redeem"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for event in ["authorized", "approved", "redeemed"] {
        assert!(
            metrics.contains(&format!(
                "scangate_device_authorizations_total{{event=\"{event}\"}} 1"
            )),
            "{event} counted in:\n{metrics}"
        );
    }
    assert!(metrics.contains("scangate_token_grants_total{grant_type=\"device_code\"} 1"));
}

async fn polling_faster_than_the_interval_slows_the_device_down_on_every_instance(
    backend: Backend,
) {
    let app = spawn(backend).await;
    // A fleet shares the pace; the embedded store is one instance's, so it is asked twice.
    let peer = match backend {
        Backend::Distributed => Some(app.peer().await),
        Backend::Embedded => None,
    };
    let other = peer.as_ref().unwrap_or(&app);
    let auth = authorize(&app, "openid").await;
    let code = auth["device_code"].as_str().unwrap();
    assert_oauth(
        poll(&app, code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
    // At once again, through the other instance: 5 s more.
    let slow = assert_oauth(
        poll(other, code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    )
    .await;
    assert!(
        slow["error_description"]
            .as_str()
            .unwrap()
            .contains("10 seconds"),
        "{slow}"
    );
    // Six seconds would have been enough before; now the interval is ten: slow down again.
    app.clock.advance(Duration::from_secs(6));
    let slower = assert_oauth(poll(&app, code).await, StatusCode::BAD_REQUEST, "slow_down").await;
    assert!(
        slower["error_description"]
            .as_str()
            .unwrap()
            .contains("15 seconds"),
        "{slower}"
    );
    app.clock.advance(Duration::from_secs(14));
    assert_oauth(
        poll(other, code).await,
        StatusCode::BAD_REQUEST,
        "slow_down",
    )
    .await;
    // Waiting the full, grown interval is pending again.
    app.clock.advance(Duration::from_secs(20));
    assert_oauth(
        poll(&app, code).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
    // Another device's pace is its own.
    let fresh = authorize(&app, "openid").await;
    let fresh = fresh["device_code"].as_str().unwrap();
    assert_oauth(
        poll(other, fresh).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
}

async fn a_declined_request_answers_access_denied(backend: Backend) {
    let app = spawn(backend).await;
    let auth = authorize(&app, "openid").await;
    let token = app.mp_login(APPID, "o-device-decline").await;
    let random = random_of(&auth);
    let denied = phone(&app, &token, &random, "deny").await;
    assert_eq!(denied.status(), StatusCode::OK);
    assert_eq!(denied.json::<Value>().await.unwrap()["status"], "denied");
    let code = auth["device_code"].as_str().unwrap();
    assert_oauth(
        poll(&app, code).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;
    // Still denied later: a refusal is final.
    app.clock.advance(Duration::from_secs(30));
    assert_oauth(
        poll(&app, code).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;
    assert!(audit_actions(&app).await.iter().any(|a| a == "device.deny"));
}

async fn an_expired_device_code_answers_expired_token(backend: Backend) {
    let app = spawn(backend).await;
    let waiting = authorize(&app, "openid").await;
    let approved = authorize(&app, "openid").await;
    let token = app.mp_login(APPID, "o-device-late").await;
    assert_eq!(
        phone(&app, &token, &random_of(&approved), "approve")
            .await
            .status(),
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(600));
    for auth in [&waiting, &approved] {
        assert_oauth(
            poll(&app, auth["device_code"].as_str().unwrap()).await,
            StatusCode::BAD_REQUEST,
            "expired_token",
        )
        .await;
    }
    // The phone can no longer approve it either.
    assert_error(
        phone(&app, &token, &random_of(&waiting), "approve").await,
        StatusCode::GONE,
        "expired",
    )
    .await;
}

async fn exactly_one_of_twenty_concurrent_redemptions_gets_tokens(backend: Backend) {
    let app = spawn(backend).await;
    let peer = match backend {
        Backend::Distributed => Some(app.peer().await),
        Backend::Embedded => None,
    };
    let auth = authorize(&app, "openid offline_access").await;
    let token = app.mp_login(APPID, "o-device-race").await;
    assert_eq!(
        phone(&app, &token, &random_of(&auth), "approve")
            .await
            .status(),
        StatusCode::OK
    );
    let code = auth["device_code"].as_str().unwrap();
    let polls = (0..20).map(|i| {
        let on = if i % 2 == 0 {
            &app
        } else {
            peer.as_ref().unwrap_or(&app)
        };
        poll(on, code)
    });
    let answers = futures::future::join_all(polls).await;
    let mut tokens = 0;
    for res in answers {
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        if status == StatusCode::OK {
            assert!(body["id_token"].is_string());
            tokens += 1;
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert_eq!(tokens, 1, "exactly one set of tokens");
    let grants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oidc_grants WHERE client_id = 'tv'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(grants, 1, "exactly one grant");
}

/// Types `code` on the page of the link `random` as an ordinary browser.
async fn type_on_link(app: &TestApp, random: &str, code: &str) -> reqwest::Response {
    form(app, &format!("/q/d/{random}"), &[("user_code", code)]).await
}

async fn five_wrong_codes_on_the_link_page_lock_the_request(backend: Backend) {
    let app = spawn(backend).await;
    let auth = authorize(&app, "openid").await;
    let random = random_of(&auth);
    let page = app
        .client
        .get(app.url(&format!("/q/d/{random}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Living-room TV") && page.contains("name=\"user_code\""));
    assert!(
        !page.contains(auth["user_code"].as_str().unwrap()),
        "the code is not given away"
    );

    let right = auth["user_code"].as_str().unwrap();
    let wrong = if right.starts_with('B') {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    for _ in 0..4 {
        assert_eq!(
            type_on_link(&app, &random, wrong).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    // Still waiting after four: the right code shows the QR code.
    let shown = type_on_link(&app, &random, &right.to_lowercase()).await;
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(shown.text().await.unwrap().contains(right));
    // The fifth wrong one locks it for good: the right code no longer helps.
    assert_eq!(
        type_on_link(&app, &random, wrong).await.status(),
        StatusCode::GONE
    );
    assert_eq!(
        type_on_link(&app, &random, right).await.status(),
        StatusCode::GONE
    );
    assert_oauth(
        poll(&app, auth["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;
    let token = app.mp_login(APPID, "o-device-locked").await;
    assert_error(
        phone(&app, &token, &random, "approve").await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(audit_actions(&app)
        .await
        .iter()
        .any(|a| a == "device.locked"));
}

/// Types `code` on the verification page as a browser behind a proxy at `from`.
async fn type_on_page(app: &TestApp, from: &str, code: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oidc/device"))
        .header("x-forwarded-for", from)
        .form(&[("user_code", code)])
        .send()
        .await
        .unwrap()
}

async fn user_codes_are_rate_limited_per_address(backend: Backend) {
    let app = spawn_with(backend, |c| c.rate_limits.user_codes_per_minute = 3).await;
    let auth = authorize(&app, "openid").await;
    let right = auth["user_code"].as_str().unwrap();
    let guesser = "198.51.100.7";
    for guess in ["BCDF-GHJK", "BCDF-GHJL", "BCDF-GHJM"] {
        let res = type_on_page(&app, guesser, guess).await;
        let want = if guess == right {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(res.status(), want);
    }
    // Over the limit, even the right code is not looked up.
    assert_eq!(
        type_on_page(&app, guesser, right).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // On a request's own page too: the count is the address's.
    assert_eq!(
        app.client
            .post(app.url(&format!("/q/d/{}", random_of(&auth))))
            .header("x-forwarded-for", guesser)
            .form(&[("user_code", right)])
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another address is not slowed by the guesser.
    assert_eq!(
        type_on_page(&app, "203.0.113.9", right).await.status(),
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(
        type_on_page(&app, guesser, right).await.status(),
        StatusCode::OK
    );
}

async fn the_verification_page_shows_the_requests_qr_code(backend: Backend) {
    let app = spawn(backend).await;
    let page = app
        .client
        .get(app.url("/oidc/device"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text().await.unwrap().contains("name=\"user_code\""));

    let auth = authorize(&app, "openid").await;
    let right = auth["user_code"].as_str().unwrap();
    // Typed loosely: lower case, no dash.
    let res = type_on_page(&app, "192.0.2.1", &right.to_lowercase().replace('-', "")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains(right) && html.contains("Living-room TV"));
    let start = html.find("data:image/svg+xml;base64,").expect("a QR image") + 26;
    let end = start + html[start..].find('"').unwrap();
    let svg = STANDARD.decode(&html[start..end]).unwrap();
    assert_eq!(
        crate::images::decode_svg(&svg).as_deref(),
        auth["verification_uri_complete"].as_str(),
        "the QR code is the request's link"
    );

    // Another pool's issuer does not know this pool's codes; an unknown code is refused.
    assert_eq!(
        app.client
            .post(app.url("/pools/other/oidc/device"))
            .form(&[("user_code", right)])
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let wrong = if right.starts_with('B') {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    assert_eq!(
        type_on_page(&app, "192.0.2.1", wrong).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        type_on_page(&app, "192.0.2.1", "not a code").await.status(),
        StatusCode::BAD_REQUEST
    );
}

/// One bad request: what it is, where it goes, its form, and the status and error it gets.
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    StatusCode,
    &'a str,
);

async fn bad_device_requests_get_rfc_errors(backend: Backend) {
    let app = spawn(backend).await;
    let tv = authorize(&app, "openid").await;
    let tv_code = tv["device_code"].as_str().unwrap().to_owned();
    let bad = StatusCode::BAD_REQUEST;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let auth = "/oidc/device/auth";
    let token = "/oidc/token";
    let table: Vec<Case> = vec![
        (
            "no client_id",
            auth,
            vec![("scope", "openid")],
            unauthorized,
            "invalid_client",
        ),
        (
            "unknown client",
            auth,
            vec![("client_id", "nobody"), ("scope", "openid")],
            unauthorized,
            "invalid_client",
        ),
        (
            "wrong secret",
            auth,
            vec![
                ("client_id", "web"),
                ("client_secret", "wrong"),
                ("scope", "openid"),
            ],
            unauthorized,
            "invalid_client",
        ),
        (
            "grant not enabled",
            auth,
            vec![
                ("client_id", "open"),
                ("client_secret", CLIENT_SECRET),
                ("scope", "openid"),
            ],
            bad,
            "unauthorized_client",
        ),
        (
            "no openid scope",
            auth,
            vec![("client_id", "tv"), ("scope", "profile")],
            bad,
            "invalid_scope",
        ),
        (
            "no scope",
            auth,
            vec![("client_id", "tv")],
            bad,
            "invalid_request",
        ),
        (
            "another pool's client",
            "/pools/other/oidc/device/auth",
            vec![("client_id", "tv"), ("scope", "openid")],
            unauthorized,
            "invalid_client",
        ),
        (
            "no device_code",
            token,
            vec![("grant_type", GRANT), ("client_id", "tv")],
            bad,
            "invalid_request",
        ),
        (
            "wrong device_code",
            token,
            vec![
                ("grant_type", GRANT),
                ("client_id", "tv"),
                ("device_code", "nonsense"),
            ],
            bad,
            "invalid_grant",
        ),
        (
            "a forged secret half",
            token,
            vec![
                ("grant_type", GRANT),
                ("client_id", "tv"),
                ("device_code", &tv_code[..tv_code.len() - 1]),
            ],
            bad,
            "invalid_grant",
        ),
        (
            "wrong client redeeming",
            token,
            vec![
                ("grant_type", GRANT),
                ("client_id", "web"),
                ("client_secret", CLIENT_SECRET),
                ("device_code", &tv_code),
            ],
            bad,
            "invalid_grant",
        ),
        (
            "grant not enabled at the token endpoint",
            token,
            vec![
                ("grant_type", GRANT),
                ("client_id", "open"),
                ("client_secret", CLIENT_SECRET),
                ("device_code", &tv_code),
            ],
            bad,
            "unauthorized_client",
        ),
    ];
    for (case, path, params, status, error) in table {
        let res = form(&app, path, &params).await;
        let got = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{case}: {body}"
        );
    }
    // A form is required; a JSON body is not one.
    let res = app
        .client
        .post(app.url(auth))
        .json(&serde_json::json!({ "client_id": "tv", "scope": "openid" }))
        .send()
        .await
        .unwrap();
    assert_oauth(res, bad, "invalid_request").await;
    // None of the refused polls above counted against the device: it polls at once, unslowed.
    assert_oauth(poll(&app, &tv_code).await, bad, "authorization_pending").await;
}

async fn the_phone_decides_a_request_once_and_only_its_own_mini_programs(backend: Backend) {
    let app = spawn(backend).await;
    let auth = authorize(&app, "openid").await;
    let random = random_of(&auth);
    let stranger = app.mp_login(APPID_OTHER, "o-device-other-pool").await;
    assert_error(
        phone(&app, &stranger, &random, "scan").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        phone(&app, &stranger, &random, "approve").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let token = app.mp_login(APPID, "o-device-once").await;
    assert_error(
        phone(&app, &token, "AAAAAAAAAAAAAAAAAAAAAAAA", "scan").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unauthenticated = app
        .client
        .post(app.url(&format!("/api/mp/v1/devices/{random}/approve")))
        .send()
        .await
        .unwrap();
    assert_error(unauthenticated, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        phone(&app, &token, &random, "approve").await.status(),
        StatusCode::OK
    );
    for action in ["approve", "deny", "scan"] {
        assert_error(
            phone(&app, &token, &random, action).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }
}
