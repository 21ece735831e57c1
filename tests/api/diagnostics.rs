//! WeChat diagnostics of a Mini Program: the errcodes WeChat answered with, counted across
//! instances, each explained in English and Chinese, and the state of the access-token cache.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID, MP_SECRET};

both_backends!(
    wechat_errors_from_every_instance_are_counted_and_explained,
    the_access_token_cache_shows_its_last_fetch_and_its_last_failure,
    diagnostics_are_read_only_within_the_key_scope,
);

async fn diagnostics(app: &TestApp, key: &str, appid: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .get(app.url(&format!("/api/admin/v1/miniprograms/{appid}/diagnostics")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(!text.contains(MP_SECRET), "a secret in {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn error(body: &Value, errcode: i64) -> &Value {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["errcode"] == errcode)
        .unwrap_or_else(|| panic!("no errcode {errcode} in {body}"))
}

/// Asks the Mini Program API for a session with a code WeChat refuses.
async fn refused_login(app: &TestApp) {
    let code = app.sim.login_code(APPID, "o-refused", None);
    let res = app
        .client
        .post(app.url("/api/mp/v1/session"))
        .json(&json!({ "appid": APPID, "code": code }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

async fn wechat_errors_from_every_instance_are_counted_and_explained(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = app.peer().await;
    let key = app.admin_key("viewer", None).await;
    let (status, body) = diagnostics(&app, &key, APPID).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"], json!([]));

    // 40029 twice, once on each instance.
    app.sim.fail_next("/sns/jscode2session", 40029, 2);
    refused_login(&app).await;
    let first = app.clock.now();
    app.clock.advance(std::time::Duration::from_secs(5));
    refused_login(&peer).await;
    // 41030: the Mini Program code's page is not released.
    app.clock.advance(std::time::Duration::from_secs(1));
    app.sim.fail_next("/wxa/getwxacodeunlimit", 41030, 1);
    let creds = scangate::wechat::Credentials {
        appid: APPID.into(),
        secret: MP_SECRET.into(),
    };
    let req = scangate::wechat::WxaCodeRequest {
        scene: "s".into(),
        ..Default::default()
    };
    assert!(peer
        .state
        .wechat
        .wxacode_unlimit(&creds, &req)
        .await
        .is_err());

    for instance in [&app, &peer] {
        let (_, body) = diagnostics(instance, &key, APPID).await;
        let invalid = error(&body, 40029);
        assert_eq!(invalid["count"], 2, "{body}");
        assert_eq!(invalid["first_at"], first);
        assert_eq!(invalid["last_at"], first + 5000);
        assert_eq!(invalid["last_path"], "sns/jscode2session");
        assert!(invalid["last_message"]
            .as_str()
            .unwrap()
            .contains("invalid code"));
        assert_eq!(invalid["known"], true);
        let page = error(&body, 41030);
        assert_eq!(page["count"], 1);
        assert!(page["help"]["action"]["en"]
            .as_str()
            .unwrap()
            .contains("trial"));
        assert!(page["help"]["meaning"]["zh-CN"]
            .as_str()
            .unwrap()
            .contains("页面"));
        // The most recent first.
        assert_eq!(body["errors"][0]["errcode"], 41030);
    }
}

async fn the_access_token_cache_shows_its_last_fetch_and_its_last_failure(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("viewer", None).await;
    let (_, body) = diagnostics(&app, &key, APPID).await;
    assert_eq!(body["access_token"]["cached"], false, "{body}");
    assert_eq!(body["access_token"]["refreshed_at"], Value::Null);

    // WeChat refuses the token: this server is not on the IP whitelist.
    let token = app.mp_login(APPID, "o-phone").await;
    app.sim.fail_next("/cgi-bin/stable_token", 40164, 1);
    let code = app.sim.phone_code(APPID, "o-phone", "13000000001", "86");
    let res = app
        .mp_post(&token, "/api/mp/v1/me/phone", Some(json!({ "code": code })))
        .await;
    assert!(!res.status().is_success());
    let failed_at = app.clock.now();
    let (_, body) = diagnostics(&app, &key, APPID).await;
    let state = &body["access_token"];
    assert_eq!(state["cached"], false, "{body}");
    assert_eq!(state["error_code"], 40164);
    assert_eq!(state["error_at"], failed_at);
    assert!(!state["error_message"].as_str().unwrap().is_empty());
    let whitelist = error(&body, 40164);
    assert_eq!(whitelist["last_path"], "cgi-bin/stable_token");
    assert!(whitelist["help"]["action"]["zh-CN"]
        .as_str()
        .unwrap()
        .contains("白名单"));

    // The next fetch succeeds: the token is cached until five minutes before WeChat's expiry.
    app.clock.advance(std::time::Duration::from_secs(60));
    let code = app.sim.phone_code(APPID, "o-phone", "13000000001", "86");
    let res = app
        .mp_post(&token, "/api/mp/v1/me/phone", Some(json!({ "code": code })))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let now = app.clock.now();
    let (_, body) = diagnostics(&app, &key, APPID).await;
    let state = &body["access_token"];
    assert_eq!(state["cached"], true, "{body}");
    assert_eq!(state["refreshed_at"], now);
    let expires_at = state["expires_at"].as_i64().unwrap();
    assert!(expires_at > now + 60_000, "{body}");
    // The last failure stays on view, older than the last success.
    assert_eq!(state["error_code"], 40164);
    // The token itself is nowhere.
    let creds = scangate::wechat::Credentials {
        appid: APPID.into(),
        secret: MP_SECRET.into(),
    };
    let cached = app.state.wechat.access_token(&creds).await.unwrap();
    assert!(!body.to_string().contains(&cached));
}

async fn diagnostics_are_read_only_within_the_key_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.admin_key("owner", Some("other")).await;
    let (status, body) = diagnostics(&app, &other, APPID).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = diagnostics(&app, "sgk_nope", APPID).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let key = app.admin_key("viewer", None).await;
    let res = app
        .client
        .post(app.url(&format!("/api/admin/v1/miniprograms/{APPID}/diagnostics")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}
