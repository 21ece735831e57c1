//! The hosted login in a real browser: a relying party redirects headless Chromium to the
//! hosted page, the phone confirms over HTTP, and the browser lands on the relying party's
//! callback with a code the relying party exchanges; then logout asks first, and signs out only
//! from its own form.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use scangate::config::{AppConfig, Secret};
use serde_json::{json, Value};
use sha2::Digest;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID, CLIENT_SECRET};
use crate::js::{chromium, run_node};

/// A relying party: state and PKCE verifiers of logins in flight.
#[derive(Clone)]
struct Rp {
    issuer: String,
    callback: String,
    pending: Arc<Mutex<HashMap<String, String>>>,
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    lang: String,
    prompt: Option<String>,
}

async fn rp_login(State(rp): State<Rp>, Query(q): Query<LoginQuery>) -> Response {
    let state = scangate::crypto::random_token(12);
    let verifier = scangate::crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    rp.pending.lock().unwrap().insert(state.clone(), verifier);
    let mut url = url::Url::parse(&format!("{}/auth", rp.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "shop")
        .append_pair("redirect_uri", &rp.callback)
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("nonce", "n-browser")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("ui_locales", &q.lang);
    if let Some(p) = q.prompt {
        url.query_pairs_mut().append_pair("prompt", &p);
    }
    Redirect::to(url.as_str()).into_response()
}

async fn rp_callback(State(rp): State<Rp>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(verifier) = q
        .get("state")
        .and_then(|s| rp.pending.lock().unwrap().remove(s))
    else {
        return Html("<p id=signed-in>unknown state</p>".to_owned()).into_response();
    };
    let Some(code) = q.get("code") else {
        return Html(format!("<p id=signed-in>error {:?}</p>", q.get("error"))).into_response();
    };
    let res = reqwest::Client::new()
        .post(format!("{}/token", rp.issuer))
        .basic_auth("shop", Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &rp.callback),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let Some(id_token) = body["id_token"].as_str() else {
        return Html(format!("<p id=signed-in>token error {body}</p>")).into_response();
    };
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    Html(format!(
        "<p id=signed-in>Signed in as {} ({})</p>",
        claims["sub"].as_str().unwrap_or("?"),
        claims["nickname"].as_str().unwrap_or("-")
    ))
    .into_response()
}

both_backends!(a_browser_signs_in_through_the_hosted_page);

async fn a_browser_signs_in_through_the_hosted_page(backend: Backend) {
    chromium();
    // The relying party's port first: its callback must be registered.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rp_base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{rp_base}/callback");
    let registered = callback.clone();
    let after_logout = format!("{rp_base}/");
    let app = TestApp::spawn_with(backend, move |config| {
        config.apps.push(AppConfig {
            pool: "default".into(),
            client_id: "shop".into(),
            client_secret: Some(Secret(CLIENT_SECRET.into())),
            name: "Demo shop 演示商城".into(),
            logo: None,
            redirect_uris: vec![registered],
            post_logout_redirect_uris: vec![after_logout],
            allowed_origins: vec![],
            miniprogram: APPID.into(),
            qr_ttl_secs: 120,
            require_binding: true,
            match_number: Some(true),
            ..AppConfig::default()
        });
    })
    .await;
    let rp = Rp {
        issuer: app.url("/oidc"),
        callback,
        pending: Arc::default(),
    };
    let router = Router::new()
        .route("/login", get(rp_login))
        .route("/callback", get(rp_callback))
        .route(
            "/",
            get(|| async { Html("<p id=signed-out>Signed out</p>") }),
        )
        .with_state(rp);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let phone = app.mp_login(APPID, "o-browser").await;
    let res = app
        .client
        .patch(app.url("/api/mp/v1/me"))
        .bearer_auth(&phone)
        .json(&json!({ "nickname": "小明" }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());

    let out = run_node(
        "oidc-login.mjs",
        &[
            ("RP_URL", rp_base),
            ("SCANGATE_URL", app.base.clone()),
            ("PHONE_TOKEN", phone),
            // One set of screenshots per run is enough.
            (
                "SCREENSHOTS",
                u8::from(backend == Backend::Embedded).to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(out.matches("Signed in as").count(), 4, "{out}");
    assert!(out.contains("wrong number: ok"), "{out}");
    assert!(out.contains("(小明)"), "{out}");
    assert!(
        out.contains("sso: ok") && out.contains("cancelled: ok"),
        "{out}"
    );
    assert!(
        out.contains("logout asked: ok") && out.contains("logout: ok"),
        "{out}"
    );
}
