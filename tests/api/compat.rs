//! The Authing-compatible API (`/api/v2/qrcode/*`) and CORS on both PC APIs; then the real
//! `authing-js-sdk` in Node and in Chromium, and the `scangate.js` widget in Chromium.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{cookie_client, Backend, TestApp, APPID};
use crate::js::{chromium, js_dir, run_node};

both_backends!(
    a_login_through_the_authing_api_follows_the_envelope_and_status_numbers,
    an_unknown_or_malformed_code_is_2241,
    gene_needs_a_known_app_and_the_wechat_scene,
    with_binding_another_browser_never_sees_the_ticket,
    an_app_without_binding_behaves_like_authing,
    cancelled_and_expired_codes_read_3_and_minus_1,
    an_allowed_origin_gets_the_exact_origin_with_credentials,
    a_disallowed_origin_gets_no_grant,
    a_preflight_is_answered_with_the_sdk_headers,
    an_origin_of_another_app_gets_no_grant_on_this_apps_codes,
    the_authing_sdk_in_node_logs_in,
    the_authing_sdk_in_a_browser_on_another_origin_logs_in,
    the_widget_in_a_browser_on_another_origin_logs_in,
);

/// The origin the test apps allow (see `helpers::base_config`).
const SITE: &str = "http://127.0.0.1:3000";

async fn gene(app: &TestApp, client: &Client, app_id: &str) -> Value {
    envelope(
        client
            .post(app.url("/api/v2/qrcode/gene"))
            .header("x-authing-app-id", app_id)
            .json(&json!({ "autoMergeQrCode": false, "scene": "WXAPP_AUTH" }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn check(app: &TestApp, client: &Client, app_id: &str, random: &str) -> Value {
    envelope(
        client
            .get(app.url(&format!("/api/v2/qrcode/check?random={random}")))
            .header("x-authing-app-id", app_id)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn userinfo(app: &TestApp, client: &Client, app_id: &str, ticket: &str) -> Value {
    envelope(
        client
            .post(app.url("/api/v2/qrcode/userinfo"))
            .header("x-authing-app-id", app_id)
            .json(&json!({ "ticket": ticket }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Every answer is HTTP 200 with `code`, `message` and `data` (null on failure).
async fn envelope(res: reqwest::Response) -> Value {
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the envelope is always HTTP 200"
    );
    let body: Value = res.json().await.unwrap();
    assert!(body["code"].is_i64(), "code in {body}");
    assert!(body["message"].is_string(), "message in {body}");
    assert!(body.get("data").is_some(), "data in {body}");
    if body["code"] != 200 {
        assert!(body["data"].is_null(), "no data on failure: {body}");
    }
    body
}

fn data(body: &Value) -> &Value {
    assert_eq!(body["code"], 200, "success expected: {body}");
    &body["data"]
}

fn str_of<'v>(v: &'v Value, field: &str) -> &'v str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// A Mini Program user with a nickname and avatar; returns the bearer token.
async fn phone_user(app: &TestApp, openid: &str, nickname: &str) -> String {
    let token = app.mp_login(APPID, openid).await;
    let res = app
        .client
        .patch(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .json(
            &json!({ "nickname": nickname, "avatar_url": "https://thirdwx.qlogo.cn/mmopen/a/132" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    token
}

async fn a_login_through_the_authing_api_follows_the_envelope_and_status_numbers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = cookie_client();
    let created = gene(&app, &browser, "web").await;
    let qr = data(&created);
    let random = str_of(qr, "random");
    assert_eq!(
        qr["url"],
        app.url(&format!("/api/v1/qrcodes/{random}/image.png"))
    );
    assert_eq!(qr["customLogo"], "");
    let image = browser.get(str_of(qr, "url")).send().await.unwrap();
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(image.headers()["content-type"], "image/png");

    let pending = check(&app, &browser, "web", random).await;
    assert_eq!(data(&pending)["status"], 0);
    assert_eq!(data(&pending)["random"], random);
    assert!(data(&pending).get("userInfo").is_none() && data(&pending).get("ticket").is_none());

    let token = phone_user(&app, "o-compat-alice", "Alice 爱丽丝").await;
    assert_eq!(app.scan(&token, random).await.status(), StatusCode::OK);
    let scanned = check(&app, &browser, "web", random).await;
    assert_eq!(data(&scanned)["status"], 1);
    assert_eq!(
        data(&scanned)["userInfo"],
        json!({ "nickname": "Alice 爱丽丝", "photo": "https://thirdwx.qlogo.cn/mmopen/a/132" }),
        "only nickname and photo before confirmation"
    );
    assert!(data(&scanned).get("ticket").is_none());

    assert_eq!(
        app.confirm(&token, random, None).await.status(),
        StatusCode::OK
    );
    let confirmed = check(&app, &browser, "web", random).await;
    assert_eq!(data(&confirmed)["status"], 2);
    let ticket = str_of(data(&confirmed), "ticket").to_owned();
    assert_eq!(data(&confirmed)["userInfo"]["nickname"], "Alice 爱丽丝");

    let user = userinfo(&app, &browser, "web", &ticket).await;
    let user = data(&user);
    assert_eq!(user["nickname"], "Alice 爱丽丝");
    assert_eq!(user["photo"], "https://thirdwx.qlogo.cn/mmopen/a/132");
    assert_eq!(user["openid"], "o-compat-alice");
    assert_eq!(user["loginsCount"], 1);
    assert!(str_of(user, "id").len() > 8);
    let id_token = str_of(user, "token");
    assert_eq!(id_token.split('.').count(), 3, "a JWT: {id_token}");
    let claims = jwt_claims(id_token);
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["aud"], "web");
    let expires_at = time::OffsetDateTime::parse(
        str_of(user, "tokenExpiredAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("tokenExpiredAt is RFC 3339");
    assert_eq!(expires_at.unix_timestamp(), claims["exp"].as_i64().unwrap());

    let again = userinfo(&app, &browser, "web", &ticket).await;
    assert_eq!(again["code"], 400, "a ticket is used once: {again}");
}

/// The claims of a JWT, unverified (verification against the JWKS is `tokens.rs`'s and the
/// Node test's business).
fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn an_unknown_or_malformed_code_is_2241(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for random in [
        "AAAAAAAAAAAAAAAAAAAAAAAA",
        "short",
        "has%20space%20and%20more%20characters",
        "",
    ] {
        let body = check(&app, &app.client, "web", random).await;
        assert_eq!(body["code"], 2241, "{random}: {body}");
    }
    let body = envelope(
        app.client
            .get(app.url("/api/v2/qrcode/check"))
            .header("x-authing-app-id", "web")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["code"], 400, "random is required: {body}");
    // A code of another app does not exist for this one.
    let created = gene(&app, &app.client, "open").await;
    let random = str_of(data(&created), "random");
    assert_eq!(check(&app, &app.client, "web", random).await["code"], 2241);
    assert_eq!(check(&app, &app.client, "open", random).await["code"], 200);
}

async fn gene_needs_a_known_app_and_the_wechat_scene(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |app_id: Option<&str>, body: &str| {
        let mut req = app
            .client
            .post(app.url("/api/v2/qrcode/gene"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(a) = app_id {
            req = req.header("x-authing-app-id", a);
        }
        req.send()
    };
    let missing = envelope(post(None, r#"{"scene":"WXAPP_AUTH"}"#).await.unwrap()).await;
    assert_eq!(missing["code"], 400, "{missing}");
    let unknown = envelope(
        post(Some("nope"), r#"{"scene":"WXAPP_AUTH"}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown["code"], 404, "{unknown}");
    let scene = envelope(post(Some("web"), r#"{"scene":"APP_AUTH"}"#).await.unwrap()).await;
    assert_eq!(scene["code"], 400, "{scene}");
    let broken = envelope(post(Some("web"), "{not json").await.unwrap()).await;
    assert_eq!(broken["code"], 400, "{broken}");
    // The SDK's other fields are accepted and ignored; an empty body means the default scene.
    let full = envelope(
        post(
            Some("web"),
            r#"{"autoMergeQrCode":false,"scene":"WXAPP_AUTH","context":{"a":1},"params":{},"withCustomData":false}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(full["code"], 200, "{full}");
    assert_eq!(
        envelope(post(Some("web"), "").await.unwrap()).await["code"],
        200
    );
}

async fn with_binding_another_browser_never_sees_the_ticket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creator = cookie_client();
    let other = cookie_client();
    let created = gene(&app, &creator, "web").await;
    let random = str_of(data(&created), "random").to_owned();
    // The other browser has a cookie of its own.
    data(&gene(&app, &other, "web").await);
    let token = phone_user(&app, "o-compat-bob", "Bob").await;
    app.scan(&token, &random).await;
    // The other browser follows the same code all the way.
    let seen = check(&app, &other, "web", &random).await;
    assert_eq!(data(&seen)["status"], 1);
    app.confirm(&token, &random, None).await;
    for _ in 0..3 {
        let seen = check(&app, &other, "web", &random).await;
        assert_eq!(data(&seen)["status"], 2);
        assert!(data(&seen).get("ticket").is_none(), "{seen}");
        let native = app.status(&other, &random).await;
        assert!(native.get("ticket").is_none(), "{native}");
    }
    let ticket = str_of(data(&check(&app, &creator, "web", &random).await), "ticket").to_owned();
    // Even holding the ticket, the other browser cannot redeem it, and that does not burn it.
    let stolen = userinfo(&app, &other, "web", &ticket).await;
    assert_eq!(stolen["code"], 403, "{stolen}");
    let user = userinfo(&app, &creator, "web", &ticket).await;
    assert_eq!(data(&user)["nickname"], "Bob");
}

async fn an_app_without_binding_behaves_like_authing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A server without a cookie jar, as the SDK is in Node.
    let plain = Client::new();
    let created = gene(&app, &plain, "open").await;
    let random = str_of(data(&created), "random").to_owned();
    let token = phone_user(&app, "o-compat-carol", "Carol").await;
    app.scan(&token, &random).await;
    app.confirm(&token, &random, None).await;
    let confirmed = check(&app, &Client::new(), "open", &random).await;
    assert_eq!(data(&confirmed)["status"], 2);
    let ticket = str_of(data(&confirmed), "ticket");
    let user = userinfo(&app, &Client::new(), "open", ticket).await;
    assert_eq!(data(&user)["nickname"], "Carol");
    assert_eq!(jwt_claims(str_of(data(&user), "token"))["aud"], "open");
    assert_eq!(userinfo(&app, &plain, "open", ticket).await["code"], 400);
}

async fn cancelled_and_expired_codes_read_3_and_minus_1(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cancelled = str_of(data(&gene(&app, &app.client, "web").await), "random").to_owned();
    let token = phone_user(&app, "o-compat-dave", "Dave").await;
    app.scan(&token, &cancelled).await;
    let res = app
        .mp_post(
            &token,
            &format!("/api/mp/v1/qrcodes/{cancelled}/cancel"),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        data(&check(&app, &app.client, "web", &cancelled).await)["status"],
        3
    );
    let expiring = str_of(data(&gene(&app, &app.client, "web").await), "random").to_owned();
    app.clock.advance(Duration::from_secs(121));
    assert_eq!(
        data(&check(&app, &app.client, "web", &expiring).await)["status"],
        -1
    );
}

/// Sends `method url` with `Origin: origin` and the SDK's headers; returns the response.
async fn from_origin(
    client: &Client,
    method: Method,
    url: &str,
    origin: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = client
        .request(method, url)
        .header("origin", origin)
        .header("x-authing-app-id", "web")
        .header("x-authing-request-from", "sdk");
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn assert_granted(headers: &HeaderMap, origin: &str, what: &str) {
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(origin),
        "{what}: exact origin"
    );
    assert_eq!(
        header(headers, "access-control-allow-credentials"),
        Some("true"),
        "{what}: credentials"
    );
    assert_varies_by_origin(headers, what);
}

fn assert_not_granted(headers: &HeaderMap, what: &str) {
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{what}: no grant, got {headers:?}"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert_varies_by_origin(headers, what);
}

fn assert_varies_by_origin(headers: &HeaderMap, what: &str) {
    assert!(
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap_or("").contains("Origin")),
        "{what}: Vary: Origin"
    );
}

/// A page of `origin` calling ScanGate with its own cookie-keeping browser.
struct Site<'a> {
    app: &'a TestApp,
    browser: Client,
    origin: &'a str,
}

impl Site<'_> {
    async fn get(&self, path: &str) -> reqwest::Response {
        from_origin(
            &self.browser,
            Method::GET,
            &self.app.url(path),
            self.origin,
            None,
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        from_origin(
            &self.browser,
            Method::POST,
            &self.app.url(path),
            self.origin,
            Some(body),
        )
        .await
    }
}

/// Every PC endpoint of a whole login, from `origin`, each checked by `verdict`.
async fn login_from_origin(app: &TestApp, origin: &str, verdict: fn(&HeaderMap, &str)) {
    let site = Site {
        app,
        browser: cookie_client(),
        origin,
    };
    let res = site
        .post("/api/v2/qrcode/gene", json!({ "scene": "WXAPP_AUTH" }))
        .await;
    verdict(res.headers(), "gene");
    let random = str_of(data(&envelope(res).await), "random").to_owned();
    let res = site
        .get(&format!("/api/v1/qrcodes/{random}/image.png"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    verdict(res.headers(), "image");
    let res = site.get(&format!("/api/v1/qrcodes/{random}/events")).await;
    verdict(res.headers(), "events");
    drop(res);
    let token = phone_user(app, &format!("o-{}", origin.len()), "Erin").await;
    app.scan(&token, &random).await;
    app.confirm(&token, &random, None).await;
    let res = site
        .get(&format!("/api/v2/qrcode/check?random={random}"))
        .await;
    verdict(res.headers(), "check");
    let ticket = str_of(data(&envelope(res).await), "ticket").to_owned();
    let res = site
        .post("/api/v2/qrcode/userinfo", json!({ "ticket": ticket }))
        .await;
    verdict(res.headers(), "userinfo");
    assert_eq!(envelope(res).await["code"], 200);

    // The native API, from creation to exchange.
    let res = site
        .post("/api/v1/qrcodes", json!({ "app_id": "web" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    verdict(res.headers(), "create");
    let random = res.json::<Value>().await.unwrap()["random"]
        .as_str()
        .unwrap()
        .to_owned();
    app.scan(&token, &random).await;
    app.confirm(&token, &random, None).await;
    let res = site.get(&format!("/api/v1/qrcodes/{random}?wait=5")).await;
    verdict(res.headers(), "status");
    let ticket = str_of(&res.json::<Value>().await.unwrap(), "ticket").to_owned();
    let res = site
        .post("/api/v1/qrcodes/exchange", json!({ "ticket": ticket }))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    verdict(res.headers(), "exchange");
    // A failure is readable by the same origins, so the page can show it.
    let res = site
        .post("/api/v1/qrcodes/exchange", json!({ "ticket": ticket }))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    verdict(res.headers(), "failed exchange");
}

async fn an_allowed_origin_gets_the_exact_origin_with_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    login_from_origin(&app, SITE, |h, what| assert_granted(h, SITE, what)).await;
    // Without an Origin (same-origin or server-side), no grant is needed and none is sent.
    let res = app
        .client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_varies_by_origin(res.headers(), "no origin");
}

async fn a_disallowed_origin_gets_no_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    login_from_origin(&app, "http://evil.example", assert_not_granted).await;
    // Nor a preflight; and a near miss is a miss.
    for origin in [
        "http://evil.example",
        "http://127.0.0.1:3001",
        "https://127.0.0.1:3000",
        "null",
    ] {
        let res = preflight(&app, "/api/v2/qrcode/gene", origin).await;
        assert_not_granted(res.headers(), origin);
        assert!(res.headers().get("access-control-allow-methods").is_none());
    }
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-authing-app-id,x-authing-userpool-id,x-authing-request-from,x-authing-sdk-version,x-authing-lang,x-scangate-bind",
        )
        .send()
        .await
        .unwrap()
}

async fn a_preflight_is_answered_with_the_sdk_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    for path in [
        "/api/v2/qrcode/gene".to_owned(),
        format!("/api/v2/qrcode/check?random={random}"),
        "/api/v2/qrcode/userinfo".to_owned(),
        "/api/v1/qrcodes".to_owned(),
        format!("/api/v1/qrcodes/{random}"),
        "/api/v1/qrcodes/exchange".to_owned(),
    ] {
        let res = preflight(&app, &path, SITE).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let h = res.headers();
        assert_granted(h, SITE, &path);
        let methods = header(h, "access-control-allow-methods").unwrap_or_default();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{path}: {methods}"
        );
        let allowed = header(h, "access-control-allow-headers").unwrap_or_default();
        for name in [
            "content-type",
            "x-authing-app-id",
            "x-authing-userpool-id",
            "x-authing-request-from",
            "x-authing-sdk-version",
            "x-authing-lang",
            "x-scangate-bind",
        ] {
            assert!(allowed.contains(name), "{path}: {name} in {allowed}");
        }
        assert!(h.get("access-control-max-age").is_some());
    }
    // A header nobody asked to allow is not granted.
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/qrcodes"))
        .header("origin", SITE)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-evil")
        .send()
        .await
        .unwrap();
    let allowed = header(res.headers(), "access-control-allow-headers").unwrap_or_default();
    assert!(!allowed.contains("x-evil"), "{allowed}");
}

async fn an_origin_of_another_app_gets_no_grant_on_this_apps_codes(backend: Backend) {
    let other_site = "http://127.0.0.1:4000";
    let app = TestApp::spawn_with(backend, |c| {
        for a in &mut c.apps {
            if a.client_id == "other" {
                a.allowed_origins = vec![other_site.into()];
            }
        }
    })
    .await;
    // A preflight does not know the app yet: any app's origin passes it.
    assert_granted(
        preflight(&app, "/api/v2/qrcode/gene", other_site)
            .await
            .headers(),
        other_site,
        "preflight",
    );
    // The request itself is for `web`, which does not list that origin.
    let res = from_origin(
        &app.client,
        Method::POST,
        &app.url("/api/v2/qrcode/gene"),
        other_site,
        Some(json!({ "scene": "WXAPP_AUTH" })),
    )
    .await;
    assert_not_granted(res.headers(), "gene for web");
    let random = str_of(data(&envelope(res).await), "random").to_owned();
    for path in [
        format!("/api/v1/qrcodes/{random}"),
        format!("/api/v1/qrcodes/{random}/image.png"),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .header("origin", other_site)
            .send()
            .await
            .unwrap();
        assert_not_granted(res.headers(), &path);
        // While the app's own origin is granted.
        let res = app
            .client
            .get(app.url(&path))
            .header("origin", SITE)
            .send()
            .await
            .unwrap();
        assert_granted(res.headers(), SITE, &path);
    }
}

// ---- the real SDK and the widget ----

/// The phone's side for the Node programs: the WeChat simulator's base URL and the Mini
/// Program's AppID, so they can mint `wx.login` codes and scan and confirm themselves.
pub(crate) fn phone_env(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("SCANGATE", app.base.clone()),
        ("SIMULATOR", app.config.wechat.api_base.to_string()),
        ("MP_APPID", APPID.to_owned()),
    ]
}

async fn the_authing_sdk_in_node_logs_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut env = phone_env(&app);
    // Node keeps no cookies: the app that behaves like Authing.
    env.push(("APP_ID", "open".to_owned()));
    let out = run_node("authing-sdk.mjs", &env).await;
    assert!(out.contains("ok"), "{out}");
    // What the SDK saw was a login the server recorded: two exchanges, one per flow.
    let logins = out
        .lines()
        .filter_map(|l| l.strip_prefix("user "))
        .collect::<Vec<_>>();
    assert_eq!(logins.len(), 2, "{out}");
    for id in logins {
        let user = scangate::store::users::get(&app.state.db.pool, id)
            .await
            .unwrap()
            .expect("the user exists");
        assert!(user.login_count >= 1);
    }
}

/// The other site: serves `tests/js/pages/` (with `__SCANGATE__` replaced by ScanGate's base
/// URL), the SDK's browser build at `/vendor/authing.min.js`, and `POST /_test/advance?secs=`,
/// which moves ScanGate's manual clock.
pub(crate) async fn site(app: &TestApp, listener: tokio::net::TcpListener) {
    use axum::extract::{Path, Query};
    use axum::http::header::CONTENT_TYPE;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use std::collections::HashMap;

    let base = app.base.clone();
    let clock = app.clock.clone();
    let router = axum::Router::new()
        .route(
            "/vendor/authing.min.js",
            get(|| async {
                let path = js_dir().join("node_modules/authing-js-sdk/build/browser/index.min.js");
                let body = std::fs::read(path).expect("the SDK's browser build");
                ([(CONTENT_TYPE, "text/javascript")], body)
            }),
        )
        .route(
            "/_test/advance",
            post(move |Query(q): Query<HashMap<String, u64>>| {
                clock.advance(Duration::from_secs(q.get("secs").copied().unwrap_or(0)));
                async { "ok" }
            }),
        )
        .route(
            "/{file}",
            get(move |Path(file): Path<String>| {
                let base = base.clone();
                async move {
                    let ok = file
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                        && !file.starts_with('.');
                    let path = js_dir().join("pages").join(&file);
                    let Some(body) = ok.then(|| std::fs::read(&path).ok()).flatten() else {
                        return axum::http::StatusCode::NOT_FOUND.into_response();
                    };
                    let kind = match file.rsplit_once('.').map(|(_, e)| e) {
                        Some("html") => "text/html; charset=utf-8",
                        Some("js") => "text/javascript; charset=utf-8",
                        Some("svg") => "image/svg+xml",
                        _ => "application/octet-stream",
                    };
                    let body = String::from_utf8_lossy(&body).replace("__SCANGATE__", &base);
                    ([(CONTENT_TYPE, kind)], body).into_response()
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
}

/// Spawns ScanGate whose apps allow the test site's origin; the site's port is bound first.
async fn with_site(backend: Backend) -> (TestApp, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = TestApp::spawn_with(backend, |c| {
        for a in &mut c.apps {
            a.allowed_origins.push(origin.clone());
        }
        // A code that expires in seconds, for the expiry screens.
        let mut brief = c.apps[0].clone();
        brief.client_id = "brief".into();
        brief.qr_ttl_secs = 3;
        c.apps.push(brief);
        // The match step on, for the widget's number.
        let mut matched = c.apps[0].clone();
        matched.client_id = "matched".into();
        matched.match_number = Some(true);
        c.apps.push(matched);
    })
    .await;
    site(&app, listener).await;
    (app, origin)
}

async fn the_authing_sdk_in_a_browser_on_another_origin_logs_in(backend: Backend) {
    chromium();
    let (app, site) = with_site(backend).await;
    let mut env = phone_env(&app);
    env.push(("SITE", site));
    env.push(("APP_ID", "web".to_owned()));
    let out = run_node("authing-browser.mjs", &env).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

async fn the_widget_in_a_browser_on_another_origin_logs_in(backend: Backend) {
    chromium();
    let (app, site) = with_site(backend).await;
    let mut env = phone_env(&app);
    env.push(("SITE", site));
    env.push(("APP_ID", "web".to_owned()));
    env.push(("SHORT_APP_ID", "brief".to_owned()));
    env.push(("MATCH_APP_ID", "matched".to_owned()));
    env.push(("BACKEND", format!("{backend:?}").to_lowercase()));
    let out = run_node("widget-browser.mjs", &env).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
}
