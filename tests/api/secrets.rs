//! Secrets stay secret: not in responses, not in logs, not in plain text at rest.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

use crate::both_backends;
use crate::helpers::{captured_logs, Backend, TestApp, APPID, CLIENT_SECRET, MP_SECRET};

both_backends!(
    no_response_log_or_table_holds_a_secret,
    a_restart_keeps_an_unchanged_client_secrets_hash
);

async fn no_response_log_or_table_holds_a_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut seen = String::new();
    let mut record = |label: &str, headers: &reqwest::header::HeaderMap, body: &str| {
        seen.push_str(&format!("{label} {headers:?} {body}\n"));
    };

    // A whole login touching every secret-bearing path: session, legacy decryption, phone by
    // code (access token), exchange.
    let code = app.sim.login_code(APPID, "o-secret", Some("u-secret"));
    let res = app
        .client
        .post(app.url("/api/mp/v1/session"))
        .json(&json!({ "appid": APPID, "code": code }))
        .send()
        .await
        .unwrap();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    record("session", &headers, &body);
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let qr = app.create_qr().await;
    let random = qr["random"].as_str().unwrap();
    let res = app.scan(&token, random).await;
    let headers = res.headers().clone();
    record("scan", &headers, &res.text().await.unwrap());
    let (data, iv) = app
        .sim
        .encrypt_for(
            APPID,
            "o-secret",
            &json!({ "openId": "o-secret", "nickName": "S" }),
        )
        .unwrap();
    let phone_code = app.sim.phone_code(APPID, "o-secret", "13700000000", "86");
    let res = app
        .confirm(&token, random, Some(json!({ "user_info": { "encrypted_data": data, "iv": iv }, "phone": { "code": phone_code } })))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    record("confirm", &headers, &res.text().await.unwrap());
    let status = app
        .client
        .get(app.url(&format!("/api/v1/qrcodes/{random}")))
        .send()
        .await
        .unwrap();
    let headers = status.headers().clone();
    let status = status.text().await.unwrap();
    record("status", &headers, &status);
    let ticket = serde_json::from_str::<serde_json::Value>(&status).unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app.exchange(&app.client, &ticket).await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    record("exchange", &headers, &res.text().await.unwrap());
    for path in [
        "/api/mp/v1/me",
        "/oidc/jwks",
        "/oidc/.well-known/openid-configuration",
    ] {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let headers = res.headers().clone();
        record(path, &headers, &res.text().await.unwrap());
    }

    let session_key = app.sim.session_key(APPID, "o-secret").unwrap();
    let secret_key = app.config.secret_key.as_ref().unwrap().expose().to_owned();
    let secrets = [
        ("session_key", session_key.as_str()),
        ("AppSecret", MP_SECRET),
        ("client secret", CLIENT_SECRET),
        ("secret_key", secret_key.as_str()),
    ];
    let logs = captured_logs();
    assert!(logs.contains("request"), "logs are being captured");
    for (name, secret) in secrets {
        assert!(!seen.contains(secret), "a response carries the {name}");
        assert!(!logs.contains(secret), "a log line carries the {name}");
    }

    // At rest: sealed or hashed, never plain.
    let pool = &app.state.db.pool;
    let mp_secret: String = sqlx::query("SELECT secret_enc FROM miniprograms WHERE appid = $1")
        .bind(APPID)
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert!(mp_secret.starts_with("v1.") && !mp_secret.contains(MP_SECRET));
    let client_hash: String =
        sqlx::query("SELECT client_secret_hash FROM apps WHERE client_id = 'web'")
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0);
    assert!(client_hash.starts_with("$argon2id$"));
    let sealed_key: String =
        sqlx::query("SELECT session_key_enc FROM identities WHERE openid = 'o-secret'")
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0);
    assert!(sealed_key.starts_with("v1.") && !sealed_key.contains(&session_key));
    let private: String = sqlx::query("SELECT private_key_enc FROM signing_keys")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert!(private.starts_with("v1.") && !private.contains("PRIVATE KEY"));
    let token_rows: i64 = sqlx::query("SELECT COUNT(*) FROM mp_sessions WHERE token_hash = $1")
        .bind(&token)
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(token_rows, 0, "bearer tokens are stored hashed");
}

/// Argon2 hashes are salted, so an equal hash after a restart means it was kept, not redone.
async fn a_restart_keeps_an_unchanged_client_secrets_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hash = || async {
        scangate::store::apps::get(&app.state.db, "web")
            .await
            .unwrap()
            .unwrap()
            .client_secret_hash
            .unwrap()
    };
    let first = hash().await;
    scangate::app::App::build(app.config.clone()).await.unwrap();
    assert_eq!(hash().await, first, "unchanged secret, same hash");

    let mut changed = app.config.clone();
    for a in changed.apps.iter_mut().filter(|a| a.client_id == "web") {
        a.client_secret = Some(scangate::config::Secret("a-new-secret".into()));
    }
    scangate::app::App::build(changed).await.unwrap();
    let rotated = hash().await;
    assert_ne!(rotated, first);
    assert!(scangate::crypto::verify_password("a-new-secret", &rotated));
    assert!(!scangate::crypto::verify_password(CLIENT_SECRET, &rotated));
}
