//! Bad input on every endpoint gets its status and stable error code; never a 500.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID};
use crate::mp::tiny_png;

both_backends!(
    every_endpoint_answers_bad_input_with_its_error_code,
    a_body_over_the_limit_gets_each_apis_own_413,
);

#[allow(clippy::enum_variant_names)]
enum Body {
    NoBody,
    Json(Value),
    Raw(&'static str, &'static str),
    Multipart(Vec<u8>, &'static str),
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Body,
    status: StatusCode,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    token: Option<&str>,
    body: Body,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        token: token.map(str::to_owned),
        body,
        status,
        code,
    }
}

async fn every_endpoint_answers_bad_input_with_its_error_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.mp_login(APPID, "o-alice").await;
    let bob = app.mp_login(APPID, "o-bob").await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    assert_eq!(app.scan(&alice, &random).await.status(), StatusCode::OK);
    let other_mp = app.create_qr_for(&app.client, "other").await["random"]
        .as_str()
        .unwrap()
        .to_owned();
    let session_key = app.sim.session_key(APPID, "o-alice").unwrap();
    let (good_data, good_iv) = app
        .sim
        .encrypt_for(
            APPID,
            "o-alice",
            &json!({ "purePhoneNumber": "1", "countryCode": "86" }),
        )
        .unwrap();
    let (foreign_data, foreign_iv) = app
        .sim
        .encrypt_for(APPID, "o-alice", &json!({ "purePhoneNumber": "1", "watermark": { "appid": "wx4f4bc4dec97d474b", "timestamp": 1 } }))
        .unwrap();
    let a = Some(alice.as_str());
    let qr = format!("/api/v1/qrcodes/{random}");
    let mp = format!("/api/mp/v1/qrcodes/{random}");
    use Body::*;
    use StatusCode as S;
    let mut truncated = tiny_png();
    truncated.truncate(30);
    let cases = vec![
        // PC native API
        case(
            "create: malformed JSON",
            Method::POST,
            "/api/v1/qrcodes",
            None,
            Raw("application/json", "{\"app_id\":"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "create: not JSON",
            Method::POST,
            "/api/v1/qrcodes",
            None,
            Raw("text/plain", "app_id=web"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "create: missing app_id",
            Method::POST,
            "/api/v1/qrcodes",
            None,
            Json(json!({})),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "create: app_id of the wrong type",
            Method::POST,
            "/api/v1/qrcodes",
            None,
            Json(json!({ "app_id": 7 })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "create: unknown app",
            Method::POST,
            "/api/v1/qrcodes",
            None,
            Json(json!({ "app_id": "nope" })),
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "create: an app id no app could have",
            Method::POST,
            "/api/v1/qrcodes",
            None,
            Json(json!({ "app_id": "no such app!" })),
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "status: unknown random",
            Method::GET,
            "/api/v1/qrcodes/AAAAAAAAAAAAAAAAAAAAAAAA",
            None,
            NoBody,
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "status: malformed random",
            Method::GET,
            "/api/v1/qrcodes/..%2F..%2Fetc",
            None,
            NoBody,
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "status: wait not a number",
            Method::GET,
            format!("{qr}?wait=soon"),
            None,
            NoBody,
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "status: unknown known-status",
            Method::GET,
            format!("{qr}?wait=1&status=weird"),
            None,
            NoBody,
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "events: unknown random",
            Method::GET,
            "/api/v1/qrcodes/AAAAAAAAAAAAAAAAAAAAAAAA/events",
            None,
            NoBody,
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "image: size too small",
            Method::GET,
            format!("{qr}/image.png?size=10"),
            None,
            NoBody,
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "image: size not a number",
            Method::GET,
            format!("{qr}/image.svg?size=big"),
            None,
            NoBody,
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "image: unknown random",
            Method::GET,
            "/api/v1/qrcodes/AAAAAAAAAAAAAAAAAAAAAAAA/image.png",
            None,
            NoBody,
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "exchange: malformed JSON",
            Method::POST,
            "/api/v1/qrcodes/exchange",
            None,
            Raw("application/json", "[1,"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "exchange: empty ticket",
            Method::POST,
            "/api/v1/qrcodes/exchange",
            None,
            Json(json!({ "ticket": "" })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "exchange: unknown ticket",
            Method::POST,
            "/api/v1/qrcodes/exchange",
            None,
            Json(json!({ "ticket": "forged" })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "exchange: huge ticket",
            Method::POST,
            "/api/v1/qrcodes/exchange",
            None,
            Json(json!({ "ticket": "x".repeat(5000) })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        // Mini Program: session
        case(
            "session: malformed JSON",
            Method::POST,
            "/api/mp/v1/session",
            None,
            Raw("application/json", "{"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "session: missing code",
            Method::POST,
            "/api/mp/v1/session",
            None,
            Json(json!({ "appid": APPID })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "session: malformed appid",
            Method::POST,
            "/api/mp/v1/session",
            None,
            Json(json!({ "appid": "wxbad", "code": "c" })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "session: unknown appid",
            Method::POST,
            "/api/mp/v1/session",
            None,
            Json(json!({ "appid": "wx1111111111111111", "code": "c" })),
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "session: bad code",
            Method::POST,
            "/api/mp/v1/session",
            None,
            Json(json!({ "appid": APPID, "code": "bogus" })),
            S::BAD_REQUEST,
            "invalid_code",
        ),
        // Mini Program: authentication
        case(
            "scan: no token",
            Method::POST,
            format!("{mp}/scan"),
            None,
            NoBody,
            S::UNAUTHORIZED,
            "unauthorized",
        ),
        case(
            "scan: bad token",
            Method::POST,
            format!("{mp}/scan"),
            Some("not-a-token"),
            NoBody,
            S::UNAUTHORIZED,
            "unauthorized",
        ),
        case(
            "me: no token",
            Method::GET,
            "/api/mp/v1/me",
            None,
            NoBody,
            S::UNAUTHORIZED,
            "unauthorized",
        ),
        // Mini Program: QR codes
        case(
            "scan: unknown random",
            Method::POST,
            "/api/mp/v1/qrcodes/AAAAAAAAAAAAAAAAAAAAAAAA/scan",
            a,
            NoBody,
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            "scan: another user's code",
            Method::POST,
            format!("{mp}/scan"),
            Some(&bob),
            NoBody,
            S::CONFLICT,
            "conflict",
        ),
        case(
            "confirm: another user's code",
            Method::POST,
            format!("{mp}/confirm"),
            Some(&bob),
            NoBody,
            S::FORBIDDEN,
            "forbidden",
        ),
        case(
            "cancel: another user's code",
            Method::POST,
            format!("{mp}/cancel"),
            Some(&bob),
            NoBody,
            S::FORBIDDEN,
            "forbidden",
        ),
        case(
            "scan: another Mini Program's code",
            Method::POST,
            format!("/api/mp/v1/qrcodes/{other_mp}/scan"),
            a,
            NoBody,
            S::FORBIDDEN,
            "forbidden",
        ),
        case(
            "confirm: malformed JSON",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Raw("application/json", "{\"profile\":"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "confirm: unknown field",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(json!({ "profil": {} })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "confirm: user_info bad base64",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(json!({ "user_info": { "encrypted_data": "%%%", "iv": good_iv } })),
            S::BAD_REQUEST,
            "decrypt_failed",
        ),
        case(
            "confirm: user_info wrong iv length",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(json!({ "user_info": { "encrypted_data": good_data, "iv": "AAAA" } })),
            S::BAD_REQUEST,
            "decrypt_failed",
        ),
        case(
            "confirm: user_info bad padding",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(
                json!({ "user_info": { "encrypted_data": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": good_iv } }),
            ),
            S::BAD_REQUEST,
            "decrypt_failed",
        ),
        case(
            "confirm: user_info bad signature",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(
                json!({ "user_info": { "encrypted_data": good_data, "iv": good_iv, "raw_data": "{}", "signature": "00" } }),
            ),
            S::BAD_REQUEST,
            "decrypt_failed",
        ),
        case(
            "confirm: phone of another Mini Program",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(json!({ "phone": { "encrypted_data": foreign_data, "iv": foreign_iv } })),
            S::BAD_REQUEST,
            "decrypt_failed",
        ),
        case(
            "confirm: used phone code",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(json!({ "phone": { "code": "never-issued" } })),
            S::BAD_REQUEST,
            "invalid_code",
        ),
        case(
            "confirm: phone with nothing",
            Method::POST,
            format!("{mp}/confirm"),
            a,
            Json(json!({ "phone": {} })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        // Mini Program: profile
        case(
            "me: nickname too long",
            Method::PATCH,
            "/api/mp/v1/me",
            a,
            Json(json!({ "nickname": "n".repeat(65) })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "me: avatar not a URL",
            Method::PATCH,
            "/api/mp/v1/me",
            a,
            Json(json!({ "avatar_url": "javascript:alert(1)" })),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "phone: wrong iv length",
            Method::POST,
            "/api/mp/v1/me/phone",
            a,
            Json(json!({ "encrypted_data": good_data, "iv": "short" })),
            S::BAD_REQUEST,
            "decrypt_failed",
        ),
        case(
            "avatar: oversized",
            Method::POST,
            "/api/mp/v1/me/avatar",
            a,
            Multipart(vec![0x89; 3 * 1024 * 1024], "big.png"),
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        case(
            "avatar: not an image",
            Method::POST,
            "/api/mp/v1/me/avatar",
            a,
            Multipart(b"hello".to_vec(), "a.png"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "avatar: truncated PNG",
            Method::POST,
            "/api/mp/v1/me/avatar",
            a,
            Multipart(truncated, "a.png"),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "avatar: not multipart",
            Method::POST,
            "/api/mp/v1/me/avatar",
            a,
            Json(json!({})),
            S::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "avatar: unknown id",
            Method::GET,
            "/media/avatars/nope",
            None,
            NoBody,
            S::NOT_FOUND,
            "not_found",
        ),
    ];
    let _ = session_key;
    let mut failures = Vec::new();
    for c in cases {
        let mut req = app.client.request(c.method.clone(), app.url(&c.path));
        if let Some(t) = &c.token {
            req = req.bearer_auth(t);
        }
        req = match c.body {
            NoBody => req,
            Json(v) => req.json(&v),
            Raw(ct, text) => req.header("content-type", ct).body(text),
            Multipart(bytes, name) => req.multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            )),
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != c.status || body["error"] != c.code || !body["message"].is_string() {
            failures.push(format!(
                "{}: got {status} {body}, want {} {}",
                c.name, c.status, c.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The code in the middle of all that is still alive and confirmable by its scanner.
    assert_eq!(
        app.confirm(&alice, &random, None).await.status(),
        StatusCode::OK
    );

    // Expired codes: 410 on every Mini Program action.
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(600));
    for action in ["scan", "confirm", "cancel"] {
        let res = app
            .mp_post(
                &alice,
                &format!("/api/mp/v1/qrcodes/{random}/{action}"),
                None,
            )
            .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::GONE, Some("expired")),
            "{action}"
        );
    }
}

/// A body over the limit gets a 413 in the format of the API it was sent to: the OAuth error
/// at the token, revocation and introspection endpoints, `payload_too_large` at the Mini
/// Program's confirm, and the Authing envelope's `code: 413` at `gene`.
async fn a_body_over_the_limit_gets_each_apis_own_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let big = "a=".to_owned() + &"x".repeat(3 * 1024 * 1024);
    for path in [
        "/oidc/token",
        "/oidc/token/revocation",
        "/oidc/token/introspection",
    ] {
        let res = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}: {body}");
        assert!(body["error_description"].is_string(), "{path}: {body}");
    }

    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-big").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let big_json = json!({ "profile": { "nickname": "x".repeat(3 * 1024 * 1024) } });
    let res = app
        .client
        .post(app.url(&format!("/api/mp/v1/qrcodes/{random}/confirm")))
        .bearer_auth(&token)
        .json(&big_json)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let res = app
        .client
        .post(app.url("/api/v2/qrcode/gene"))
        .header("x-authing-app-id", "web")
        .json(&json!({ "scene": "WXAPP_AUTH", "padding": "x".repeat(3 * 1024 * 1024) }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], 413, "{}", body["message"]);
    assert!(body["data"].is_null());
}
