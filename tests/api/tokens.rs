//! Tokens verify with an independent JWT library against the published JWKS.

use std::collections::{HashMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    the_id_token_verifies_against_the_published_jwks,
    discovery_points_at_the_jwks
);

async fn the_id_token_verifies_against_the_published_jwks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, ticket) = app.confirmed_ticket("o-jwt").await;
    let body: Value = app
        .exchange(&app.client, &ticket)
        .await
        .json()
        .await
        .unwrap();
    let user_id = body["user"]["id"].as_str().unwrap();
    let jwks: Value = app.get_json("/oidc/jwks").await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "RSA");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let key = RS256PublicKey::from_components(&n, &e)
        .unwrap()
        .with_key_id(jwk["kid"].as_str().unwrap());

    let issuer = app.url("/oidc");
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([issuer.clone()])),
        allowed_audiences: Some(HashSet::from(["web".to_owned()])),
        ..Default::default()
    };
    let id = key
        .verify_token::<HashMap<String, Value>>(
            body["id_token"].as_str().unwrap(),
            Some(options.clone()),
        )
        .unwrap();
    assert_eq!(id.subject.as_deref(), Some(user_id));
    assert_ne!(
        id.subject.as_deref(),
        Some("o-jwt"),
        "sub is the ScanGate id, never the openid"
    );
    assert!(id.custom.contains_key("auth_time"));
    assert_eq!(id.custom["amr"], serde_json::json!(["qr"]));
    let access = key
        .verify_token::<HashMap<String, Value>>(
            body["access_token"].as_str().unwrap(),
            Some(options),
        )
        .unwrap();
    assert_eq!(access.subject.as_deref(), Some(user_id));
    assert_eq!(access.custom["client_id"], "web");

    // A token tampered with does not verify.
    let tampered = body["id_token"].as_str().unwrap().replace('.', ".x");
    assert!(key
        .verify_token::<HashMap<String, Value>>(&tampered, None)
        .is_err());
}

async fn discovery_points_at_the_jwks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .get(app.url("/oidc/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["issuer"], app.url("/oidc"));
    assert_eq!(doc["jwks_uri"], app.url("/oidc/jwks"));
    let other: Value = app
        .get_json("/pools/other/oidc/.well-known/openid-configuration")
        .await;
    assert_eq!(other["issuer"], app.url("/pools/other/oidc"));
    let missing = app
        .client
        .get(app.url("/pools/nope/oidc/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
