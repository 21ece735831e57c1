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
    discovery_points_at_the_jwks,
    browser_relying_parties_may_call_the_token_endpoint_from_allowed_origins
);

async fn the_id_token_verifies_against_the_published_jwks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.exchanged("o-jwt").await;
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
    // Twice: the second answer comes from the published copy and must be the same.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let res = app
            .client
            .get(app.url("/oidc/.well-known/openid-configuration"))
            .header("origin", "https://spa.example")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["access-control-allow-origin"], "*", "public metadata");
        assert_eq!(h["x-content-type-options"], "nosniff");
        seen.push(res.json::<Value>().await.unwrap());
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0]["issuer"], app.url("/oidc"));
    assert_eq!(seen[0]["jwks_uri"], app.url("/oidc/jwks"));
    for path in [
        "/pools/other/oidc/.well-known/openid-configuration",
        "/pools/other/oidc/.well-known/openid-configuration",
        "/pools/ot%68er/oidc/.well-known/openid-configuration",
    ] {
        let other: Value = app.get_json(path).await;
        assert_eq!(other["issuer"], app.url("/pools/other/oidc"));
    }
    // Only the plain spelling is kept, so spellings cannot fill memory.
    let published = &app.state.published;
    assert!(published
        .response("/pools/other/oidc/.well-known/openid-configuration")
        .is_some());
    assert!(published
        .response("/pools/ot%68er/oidc/.well-known/openid-configuration")
        .is_none());
    let missing = app
        .client
        .get(app.url("/pools/nope/oidc/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn browser_relying_parties_may_call_the_token_endpoint_from_allowed_origins(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    for path in ["/oidc/token", "/oidc/userinfo"] {
        let preflight = |origin: &'static str| {
            app.client
                .request(reqwest::Method::OPTIONS, app.url(path))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization")
                .send()
        };
        let res = preflight("http://127.0.0.1:3000").await.unwrap();
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "http://127.0.0.1:3000",
            "{path}"
        );
        let res = preflight("https://evil.example").await.unwrap();
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "{path}"
        );
    }
}
