//! OpenID Connect through the hosted login page, with the `openidconnect` crate as the relying
//! party, and the negative cases each with its exact error.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse,
};
use reqwest::{Client, StatusCode};
use scangate::config::AppConfig;
use serde_json::{json, Value};
use sha2::Digest;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID, CLIENT_SECRET};

pub const CALLBACK: &str = "http://127.0.0.1:3000/callback";

type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

both_backends!(
    the_openidconnect_crate_logs_in_through_the_hosted_page,
    a_second_app_of_the_pool_logs_in_without_scanning,
    near_miss_redirect_uris_show_an_error_page_and_never_redirect,
    other_authorization_errors_go_back_to_the_app,
    pkce_is_checked_and_required_for_public_clients,
    a_replayed_code_fails_and_revokes_what_it_issued,
    a_reused_refresh_token_revokes_its_family,
    client_authentication_and_code_ownership_are_enforced,
    an_expired_qr_code_cannot_complete_the_login,
    revocation_and_introspection_see_only_the_callers_tokens,
    the_native_exchanges_access_token_works_until_revoked,
    tokens_signed_before_a_key_rotation_still_verify,
    codes_are_single_use_under_concurrency,
    a_refresh_token_is_used_once_under_concurrency,
    the_hosted_page_binds_its_code_even_when_the_app_does_not,
    a_failed_pkce_or_redirect_uri_check_leaves_the_code_usable,
    phone_numbers_are_e164_in_id_tokens_and_userinfo,
    the_authorization_endpoint_accepts_a_posted_form,
    logout_without_a_hint_asks_first_and_needs_the_forms_token,
    the_hosted_pages_cancel_cancels_its_code_on_the_server,
    a_pool_slug_that_is_not_utf8_names_no_pool,
);

/// A cookie-keeping browser that does not follow redirects, so each hop can be checked.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An attribute's value in a page (the first occurrence), HTML-unescaped.
pub fn attr(html: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let start = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + key.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn location(res: &reqwest::Response) -> url::Url {
    let loc = res
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} response", res.status()))
        .to_str()
        .unwrap();
    url::Url::parse(loc).unwrap()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn relying_party(app: &TestApp, client_id: &str, secret: Option<&str>) -> Rp {
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.url("/oidc")).unwrap(), &http())
            .await
            .unwrap();
    CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.into()),
        secret.map(|s| ClientSecret::new(s.into())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap())
}

/// What a relying party keeps between the redirect and the callback.
struct Started {
    url: url::Url,
    csrf: CsrfToken,
    nonce: Nonce,
    verifier: openidconnect::PkceCodeVerifier,
}

fn start(rp: &Rp, scopes: &[&str], prompt: Option<CoreAuthPrompt>) -> Started {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new((*s).into()));
    }
    if let Some(p) = prompt {
        req = req.add_prompt(p);
    }
    let (url, csrf, nonce) = req.url();
    Started {
        url,
        csrf,
        nonce,
        verifier,
    }
}

/// Opens the hosted page in `browser`; returns the page.
async fn hosted_page(browser: &Client, url: &str) -> String {
    let res = browser.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "hosted page for {url}");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.text().await.unwrap()
}

/// The phone scans and confirms the page's code; the browser continues. Returns the redirect.
async fn scan_and_continue(app: &TestApp, browser: &Client, page: &str, openid: &str) -> url::Url {
    let body = json!({ "profile": { "nickname": "Alice" } });
    scan_and_confirm_with(app, browser, page, openid, body).await
}

/// As [`scan_and_continue`], confirming with `body` (a profile, a phone).
async fn scan_and_confirm_with(
    app: &TestApp,
    browser: &Client,
    page: &str,
    openid: &str,
    body: Value,
) -> url::Url {
    let random = attr(page, "data-random");
    let token = app.mp_login(APPID, openid).await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let confirmed = app.confirm(&token, &random, Some(body)).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let continue_url = app.url(&attr(page, "data-continue-url"));
    let res = browser.get(&continue_url).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap_or_default()
    );
    location(&res)
}

/// A full login of `client_id` (with `CLIENT_SECRET`) by `openid` through the hosted page with
/// a fresh browser; returns (browser, the token response JSON).
pub async fn login(app: &TestApp, client_id: &str, scope: &str, openid: &str) -> (Client, Value) {
    let browser = browser();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope={}&state=st&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/oidc/auth"),
        urlencode(CALLBACK),
        urlencode(scope),
    );
    let page = hosted_page(&browser, &url).await;
    let back = scan_and_continue(app, &browser, &page, openid).await;
    let code = query(&back, "code").unwrap();
    let res = token_request(
        app,
        client_id,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    (browser, res.json().await.unwrap())
}

fn pkce() -> (String, String) {
    let verifier = scangate::crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (challenge, verifier)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A token-endpoint style POST authenticated with `client_secret_post`.
pub async fn token_request(
    app: &TestApp,
    client_id: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    post_form(app, "/oidc/token", client_id, params).await
}

pub async fn post_form(
    app: &TestApp,
    path: &str,
    client_id: &str,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> =
        vec![("client_id", client_id), ("client_secret", CLIENT_SECRET)];
    form.extend_from_slice(params);
    app.client
        .post(app.url(path))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Asserts an RFC 6749 §5.2 error response.
async fn assert_oauth_error(res: reqwest::Response, status: StatusCode, error: &str) -> String {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

pub async fn userinfo_status(app: &TestApp, access_token: &str) -> StatusCode {
    app.client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn the_openidconnect_crate_logs_in_through_the_hosted_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rp = relying_party(&app, "web", Some(CLIENT_SECRET)).await;
    let http = http();
    let started = start(&rp, &["profile", "phone", "offline_access"], None);
    let browser = browser();
    let page = hosted_page(&browser, started.url.as_str()).await;
    assert!(page.contains("App web"), "the app's name is shown");
    let random = attr(&page, "data-random");
    assert!((22..=32).contains(&random.len()));

    let back = scan_and_continue(&app, &browser, &page, "o-oidc").await;
    assert_eq!(back.as_str().split('?').next(), Some(CALLBACK));
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(started.csrf.secret().as_str())
    );
    assert_eq!(query(&back, "iss"), Some(app.url("/oidc")));
    let code = query(&back, "code").unwrap();

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(started.verifier)
        .request_async(&http)
        .await
        .unwrap();
    let verifier = rp.id_token_verifier();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&verifier, &started.nonce).unwrap();
    let sub = claims.subject().as_str().to_owned();
    assert_ne!(
        sub, "o-oidc",
        "sub is the ScanGate user id, never the openid"
    );
    assert_eq!(claims.issuer().as_str(), app.url("/oidc"));
    assert_eq!(claims.audiences()[0].as_str(), "web");
    assert!(claims.auth_time().is_some());
    assert_eq!(
        claims
            .nickname()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str()),
        Some("Alice")
    );
    // Another nonce does not verify.
    assert!(id_token
        .claims(&verifier, &Nonce::new("other".into()))
        .is_err());

    let info: CoreUserInfoClaims = rp
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), sub);
    assert_eq!(
        info.nickname()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str()),
        Some("Alice")
    );

    // Refresh rotates the refresh token.
    let first_refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token");
    let refreshed = rp
        .exchange_refresh_token(first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let second_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let refreshed_id = refreshed.id_token().expect("an ID token on refresh");
    let again = refreshed_id
        .claims(&verifier, |_: Option<&Nonce>| Ok::<(), String>(()))
        .unwrap();
    assert_eq!(again.subject().as_str(), sub);
    assert_eq!(
        userinfo_status(&app, refreshed.access_token().secret()).await,
        StatusCode::OK
    );

    // Logout: back to the registered post-logout URI with the state; the session is gone.
    let res = browser
        .get(app.url("/oidc/session/end"))
        .query(&[
            ("id_token_hint", id_token.to_string().as_str()),
            ("post_logout_redirect_uri", "http://127.0.0.1:3000/"),
            ("state", "bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res).as_str(), "http://127.0.0.1:3000/?state=bye");
    let silent = start(&rp, &[], Some(CoreAuthPrompt::None));
    let res = browser.get(silent.url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        query(&location(&res), "error").as_deref(),
        Some("login_required")
    );
}

async fn a_second_app_of_the_pool_logs_in_without_scanning(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let web = relying_party(&app, "web", Some(CLIENT_SECRET)).await;
    let open = relying_party(&app, "open", Some(CLIENT_SECRET)).await;
    let browser = browser();

    // Without a session, prompt=none comes back with login_required and the state.
    let silent = start(&open, &[], Some(CoreAuthPrompt::None));
    let res = browser.get(silent.url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(silent.csrf.secret().as_str())
    );

    let first = start(&web, &[], None);
    let page = hosted_page(&browser, first.url.as_str()).await;
    let back = scan_and_continue(&app, &browser, &page, "o-sso").await;
    let code = query(&back, "code").unwrap();
    let web_tokens = web
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(first.verifier)
        .request_async(&http())
        .await
        .unwrap();
    let web_sub = web_tokens
        .id_token()
        .unwrap()
        .claims(&web.id_token_verifier(), &first.nonce)
        .unwrap()
        .subject()
        .clone();

    // The second app: straight back with a code, no page, same user.
    for prompt in [None, Some(CoreAuthPrompt::None)] {
        let second = start(&open, &[], prompt);
        let res = browser.get(second.url.as_str()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "single sign-on");
        let code = query(&location(&res), "code").unwrap();
        let tokens = open
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(second.verifier)
            .request_async(&http())
            .await
            .unwrap();
        let claims = tokens
            .id_token()
            .unwrap()
            .claims(&open.id_token_verifier(), &second.nonce)
            .unwrap();
        assert_eq!(claims.subject(), &web_sub);
        assert_eq!(claims.audiences()[0].as_str(), "open");
    }

    // prompt=login forces a scan.
    let forced = start(&open, &[], Some(CoreAuthPrompt::Login));
    let page = hosted_page(&browser, forced.url.as_str()).await;
    assert!(page.contains("data-random"));

    // max_age: a session older than it needs a new scan; with prompt=none, login_required.
    app.clock.advance(Duration::from_secs(120));
    let aged = format!("{}&max_age=60", start(&open, &[], None).url);
    hosted_page(&browser, &aged).await;
    let fresh_enough = format!("{}&max_age=600", start(&open, &[], None).url);
    let res = browser.get(&fresh_enough).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(query(&location(&res), "code").is_some());
    let aged_silent = format!(
        "{}&max_age=60",
        start(&open, &[], Some(CoreAuthPrompt::None)).url
    );
    let res = browser.get(&aged_silent).send().await.unwrap();
    assert_eq!(
        query(&location(&res), "error").as_deref(),
        Some("login_required")
    );

    // Another pool's issuer does not see this session.
    let other = browser
        .get(app.url("/pools/other/oidc/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "other"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("prompt", "none"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        query(&location(&other), "error").as_deref(),
        Some("login_required")
    );
}

async fn near_miss_redirect_uris_show_an_error_page_and_never_redirect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let cases = [
        ("http://127.0.0.1:3000/callback/", "trailing slash differs"),
        ("http://127.0.0.1:3001/callback", "port differs"),
        ("https://127.0.0.1:3000/callback", "scheme differs"),
        ("http://127.0.0.1:3000/callback?x=1", "adds a query string"),
        ("http://user@127.0.0.1:3000/callback", "user info"),
        ("http://user:pw@127.0.0.1:3000/callback", "user info"),
        ("http://localhost:3000/callback", "host differs"),
        ("http://evil.example/cb", "is not registered"),
        ("http://127.0.0.1:3000/callback#frag", "fragment"),
    ];
    for (uri, why) in cases {
        let res = browser
            .get(app.url("/oidc/auth"))
            .query(&[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", uri),
                ("scope", "openid"),
                ("state", "s"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            res.headers().get("location").is_none(),
            "{uri} must not redirect"
        );
        let page = res.text().await.unwrap();
        assert!(
            page.contains(why),
            "{uri}: expected “{why}” in the page:\n{page}"
        );
        assert!(
            page.contains(&CALLBACK.replace('/', "&#x2f;")) || page.contains(CALLBACK),
            "{uri}: names the registered URI"
        );
    }
    let unknown = browser
        .get(app.url("/oidc/auth"))
        .query(&[
            ("client_id", "nobody"),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("No app with client_id"));
    // An app of another pool is unknown to this issuer.
    let foreign = browser
        .get(app.url("/oidc/auth"))
        .query(&[
            ("client_id", "other"),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST);
    assert!(foreign.headers().get("location").is_none());
}

async fn other_authorization_errors_go_back_to_the_app(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let (challenge, _) = pkce();
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("response_type", "token"), ("scope", "openid")],
            "unsupported_response_type",
        ),
        (&[("scope", "openid")], "invalid_request"),
        (
            &[("response_type", "code"), ("scope", "profile")],
            "invalid_scope",
        ),
        (
            &[
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                ("scope", "openid"),
                ("prompt", "none login"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                ("scope", "openid"),
                ("max_age", "-1"),
            ],
            "invalid_request",
        ),
    ];
    for (params, error) in cases {
        let mut q: Vec<(&str, &str)> = vec![
            ("client_id", "web"),
            ("redirect_uri", CALLBACK),
            ("state", "xyz"),
        ];
        q.extend_from_slice(params);
        let res = browser
            .get(app.url("/oidc/auth"))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{params:?}");
        let back = location(&res);
        assert!(back.as_str().starts_with(CALLBACK), "{back}");
        assert_eq!(query(&back, "error").as_deref(), Some(error), "{params:?}");
        assert_eq!(query(&back, "state").as_deref(), Some("xyz"));
        assert!(query(&back, "error_description").is_some());
    }
}

fn with_public_client(config: &mut scangate::config::Config) {
    config.apps.push(AppConfig {
        pool: "default".into(),
        client_id: "spa".into(),
        client_secret: None,
        name: "Single-page app".into(),
        logo: None,
        redirect_uris: vec![CALLBACK.into()],
        post_logout_redirect_uris: vec![],
        allowed_origins: vec!["http://127.0.0.1:3000".into()],
        miniprogram: APPID.into(),
        qr_ttl_secs: 120,
        require_binding: true,
        match_number: Some(false),
        ..AppConfig::default()
    });
}

async fn pkce_is_checked_and_required_for_public_clients(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_public_client).await;
    let browser = browser();
    // A public client without PKCE is sent back.
    let res = browser
        .get(app.url("/oidc/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "spa"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    let back = location(&res);
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert!(query(&back, "error_description")
        .unwrap()
        .contains("PKCE is required"));

    // The public client with PKCE and no secret; missing and wrong verifiers fail.
    let spa = relying_party(&app, "spa", None).await;
    for verifier in [None, Some("wrong-verifier-wrong-verifier-wrong-verifier-0")] {
        let started = start(&spa, &[], Some(CoreAuthPrompt::Login));
        let page = hosted_page(&browser, started.url.as_str()).await;
        let back = scan_and_continue(&app, &browser, &page, "o-pkce").await;
        let code = query(&back, "code").unwrap();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", "spa"),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let res = app
            .client
            .post(app.url("/oidc/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        let why = assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
        let expected = if verifier.is_some() {
            "does not match the code_challenge"
        } else {
            "code_verifier is missing"
        };
        assert!(why.contains(expected), "{why}");
    }
    // The right verifier works, with no secret at all.
    let started = start(&spa, &[], Some(CoreAuthPrompt::Login));
    let page = hosted_page(&browser, started.url.as_str()).await;
    let back = scan_and_continue(&app, &browser, &page, "o-pkce").await;
    let tokens = spa
        .exchange_code(AuthorizationCode::new(query(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(started.verifier)
        .request_async(&http())
        .await
        .unwrap();
    assert!(tokens.id_token().is_some());
    // A public client cannot present a secret it does not have.
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "spa"),
            ("client_secret", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

async fn a_replayed_code_fails_and_revokes_what_it_issued(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}?response_type=code&client_id=web&redirect_uri={}&scope=openid%20offline_access&code_challenge={challenge}&code_challenge_method=S256&prompt=login",
        app.url("/oidc/auth"),
        urlencode(CALLBACK)
    );
    let page = hosted_page(&browser, &url).await;
    let code = query(
        &scan_and_continue(&app, &browser, &page, "o-replay").await,
        "code",
    )
    .unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let first: Value = token_request(&app, "web", &form)
        .await
        .json()
        .await
        .unwrap();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, access).await, StatusCode::OK);

    let why = assert_oauth_error(
        token_request(&app, "web", &form).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("already been used"), "{why}");
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::UNAUTHORIZED
    );
    let refresh = token_request(
        &app,
        "web",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A code past its lifetime is refused.
    let page = hosted_page(&browser, &url).await;
    let code = query(
        &scan_and_continue(&app, &browser, &page, "o-replay").await,
        "code",
    )
    .unwrap();
    app.clock.advance(Duration::from_secs(61));
    let late = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let why = assert_oauth_error(
        token_request(&app, "web", &late).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("expired"), "{why}");
}

async fn a_reused_refresh_token_revokes_its_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, first) = login(&app, "web", "openid offline_access", "o-family").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let second: Value = token_request(
        &app,
        "web",
        &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
    )
    .await
    .json()
    .await
    .unwrap();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let access2 = second["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, access2).await, StatusCode::OK);

    let why = assert_oauth_error(
        token_request(
            &app,
            "web",
            &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("already been used"), "{why}");
    // The whole family is gone: the successor and every access token.
    assert_oauth_error(
        token_request(
            &app,
            "web",
            &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        userinfo_status(&app, access2).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        userinfo_status(&app, first["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );

    // Narrowing the scope on refresh is allowed; widening is not.
    let (_, fresh) = login(&app, "web", "openid profile offline_access", "o-family").await;
    let r = fresh["refresh_token"].as_str().unwrap();
    let wider = token_request(
        &app,
        "web",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r),
            ("scope", "openid phone"),
        ],
    )
    .await;
    assert_oauth_error(wider, StatusCode::BAD_REQUEST, "invalid_scope").await;
}

async fn client_authentication_and_code_ownership_are_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}?response_type=code&client_id=web&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256&prompt=login",
        app.url("/oidc/auth"),
        urlencode(CALLBACK)
    );
    let page = hosted_page(&browser, &url).await;
    let code = query(
        &scan_and_continue(&app, &browser, &page, "o-auth").await,
        "code",
    )
    .unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];

    // Wrong secret, Basic: 401 with a challenge.
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .basic_auth("web", Some("not-the-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Wrong secret, post.
    let mut wrong = vec![("client_id", "web"), ("client_secret", "not-the-secret")];
    wrong.extend_from_slice(&form);
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // No authentication for a confidential client.
    let mut bare = vec![("client_id", "web")];
    bare.extend_from_slice(&form);
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .form(&bare)
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Another client's code: refused, and left usable for its owner.
    let why = assert_oauth_error(
        token_request(&app, "open", &form).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("another client"), "{why}");
    // A redirect_uri that differs from the request's.
    let mut other_uri = form;
    other_uri[2] = ("redirect_uri", "http://127.0.0.1:3000/other");
    // (Checked after the code is taken, so use a fresh code below.)
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .basic_auth("web", Some(CLIENT_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "client_secret_basic works");
    assert_eq!(res.headers()["cache-control"], "no-store");

    let page = hosted_page(&browser, &url).await;
    let code = query(
        &scan_and_continue(&app, &browser, &page, "o-auth").await,
        "code",
    )
    .unwrap();
    other_uri[1] = ("code", code.as_str());
    let why = assert_oauth_error(
        token_request(&app, "web", &other_uri).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(why.contains("redirect_uri"), "{why}");

    // Grant types and bodies.
    assert_oauth_error(
        token_request(&app, "web", &[("grant_type", "password")]).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    assert_oauth_error(
        token_request(&app, "web", &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        token_request(
            &app,
            "web",
            &[
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let json_body = app
        .client
        .post(app.url("/oidc/token"))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json_body, StatusCode::BAD_REQUEST, "invalid_request").await;
    let repeated = app
        .client
        .post(app.url("/oidc/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&grant_type=refresh_token&client_id=web&client_secret=x")
        .send()
        .await
        .unwrap();
    assert_oauth_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn an_expired_qr_code_cannot_complete_the_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let rp = relying_party(&app, "web", Some(CLIENT_SECRET)).await;
    let started = start(&rp, &[], None);
    let page = hosted_page(&browser, started.url.as_str()).await;
    let random = attr(&page, "data-random");
    let continue_url = app.url(&attr(&page, "data-continue-url"));
    app.clock.advance(Duration::from_secs(121));
    let token = app.mp_login(APPID, "o-late").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::GONE);
    assert_eq!(app.status(&browser, &random).await["status"], "expired");
    let res = browser.get(&continue_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.headers().get("location").is_none());
    let text = res.text().await.unwrap();
    assert!(
        text.contains("The QR code has expired") && text.contains("/oidc/auth?"),
        "{text}"
    );

    // Before confirmation, continuing says so; another browser cannot take the ticket.
    let started = start(&rp, &[], None);
    let page = hosted_page(&browser, started.url.as_str()).await;
    let random = attr(&page, "data-random");
    let continue_url = app.url(&attr(&page, "data-continue-url"));
    let token = app.mp_login(APPID, "o-late").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    assert_eq!(
        browser.get(&continue_url).send().await.unwrap().status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.confirm(&token, &random, None).await.status(),
        StatusCode::OK
    );
    let thief = self::browser();
    assert_eq!(
        thief.get(&continue_url).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let res = browser.get(&continue_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the owner still can");
    let again = browser.get(&continue_url).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "the ticket is used once"
    );
    // A tampered continue link is refused.
    let tampered = format!("{}x", continue_url);
    assert_eq!(
        browser.get(&tampered).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // Cancelling on the phone goes back to the app with access_denied.
    let started = start(&rp, &[], Some(CoreAuthPrompt::Login));
    let page = hosted_page(&browser, started.url.as_str()).await;
    let random = attr(&page, "data-random");
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let cancel = app
        .mp_post(&token, &format!("/api/mp/v1/qrcodes/{random}/cancel"), None)
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    let res = browser
        .get(app.url(&attr(&page, "data-continue-url")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        query(&location(&res), "error").as_deref(),
        Some("access_denied")
    );
}

async fn revocation_and_introspection_see_only_the_callers_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, tokens) = login(&app, "web", "openid offline_access", "o-intro").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let mine: Value = post_form(
        &app,
        "/oidc/token/introspection",
        "web",
        &[("token", access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(mine["active"], true);
    assert_eq!(mine["client_id"], "web");
    assert_eq!(mine["scope"], "openid offline_access");
    let theirs: Value = post_form(
        &app,
        "/oidc/token/introspection",
        "open",
        &[("token", access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(theirs, json!({ "active": false }));
    let rt: Value = post_form(
        &app,
        "/oidc/token/introspection",
        "web",
        &[("token", refresh)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rt["active"], true);
    assert_eq!(rt["token_type"], "refresh_token");

    // Another client cannot revoke it (200, nothing happens).
    let res = post_form(&app, "/oidc/token/revocation", "open", &[("token", access)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(userinfo_status(&app, access).await, StatusCode::OK);
    // The owner can.
    let res = post_form(
        &app,
        "/oidc/token/revocation",
        "web",
        &[("token", access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::UNAUTHORIZED
    );
    let gone: Value = post_form(
        &app,
        "/oidc/token/introspection",
        "web",
        &[("token", access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(gone["active"], false);
    // Revoking the refresh token ends the grant.
    assert_eq!(
        post_form(&app, "/oidc/token/revocation", "web", &[("token", refresh)])
            .await
            .status(),
        StatusCode::OK
    );
    assert_oauth_error(
        token_request(
            &app,
            "web",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // Unknown tokens are fine to revoke; unauthenticated callers are not.
    assert_eq!(
        post_form(
            &app,
            "/oidc/token/revocation",
            "web",
            &[("token", "whatever")]
        )
        .await
        .status(),
        StatusCode::OK
    );
    let res = app
        .client
        .post(app.url("/oidc/token/revocation"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Userinfo without or with a junk token.
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        userinfo_status(&app, "a.b.c").await,
        StatusCode::UNAUTHORIZED
    );
    // An expired access token stops working.
    let (_, fresh) = login(&app, "web", "openid", "o-intro").await;
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, fresh_access).await, StatusCode::OK);
    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        userinfo_status(&app, fresh_access).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Where a redirect goes, resolved against the server (ScanGate's own redirects are paths).
fn location_on(app: &TestApp, res: &reqwest::Response) -> url::Url {
    let loc = res
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} response", res.status()))
        .to_str()
        .unwrap();
    url::Url::parse(&app.base).unwrap().join(loc).unwrap()
}

async fn the_authorization_endpoint_accepts_a_posted_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (challenge, verifier) = pkce();
    let request = |state: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut form = vec![
            ("response_type", "code".to_owned()),
            ("client_id", "web".to_owned()),
            ("redirect_uri", CALLBACK.to_owned()),
            ("scope", "openid profile".to_owned()),
            ("state", state.to_owned()),
            ("nonce", "n-post".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        for (k, v) in extra {
            form.retain(|(name, _)| name != k);
            form.push((k, (*v).to_owned()));
        }
        form
    };
    let post = |browser: &Client, site: &str, form: &[(&str, String)]| {
        browser
            .post(app.url("/oidc/auth"))
            .header("sec-fetch-site", site)
            .form(form)
            .send()
    };

    // A form posted from ScanGate's own site is answered with the hosted page itself.
    let browser = browser();
    let res = post(&browser, "same-origin", &request("posted", &[]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    assert!(page.contains("App web"), "the app's name is shown");
    let back = scan_and_continue(&app, &browser, &page, "o-post").await;
    assert_eq!(back.as_str().split('?').next(), Some(CALLBACK));
    assert_eq!(query(&back, "state").as_deref(), Some("posted"));
    let code = query(&back, "code").unwrap();
    let res = token_request(
        &app,
        "web",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-post");
    assert_eq!(id["nickname"], "Alice");

    // From another site no session cookie comes with a POST (SameSite=Lax): the valid request
    // goes on as the same GET, which shows the page to a browser without a session…
    let fresh = self::browser();
    let res = post(&fresh, "cross-site", &request("elsewhere", &[]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let again = location_on(&app, &res);
    assert_eq!(again.path(), "/oidc/auth");
    let mut sent: Vec<(String, String)> = request("elsewhere", &[])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut got: Vec<(String, String)> = again.query_pairs().into_owned().collect();
    sent.sort();
    got.sort();
    assert_eq!(got, sent, "the GET carries the same parameters");
    let page = hosted_page(&fresh, again.as_str()).await;
    assert!(page.contains("data-random"));
    // …and prompt=none there comes back with login_required, as by GET.
    let res = post(
        &fresh,
        "cross-site",
        &request("quiet", &[("prompt", "none")]),
    )
    .await
    .unwrap();
    let res = fresh
        .get(location_on(&app, &res).as_str())
        .send()
        .await
        .unwrap();
    let back = location(&res);
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(query(&back, "state").as_deref(), Some("quiet"));

    // Single sign-on: a browser whose session cookie came along gets a code at once.
    let res = post(
        &browser,
        "cross-site",
        &request("sso", &[("prompt", "none")]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    assert_eq!(back.as_str().split('?').next(), Some(CALLBACK));
    assert_eq!(query(&back, "state").as_deref(), Some("sso"));
    assert!(query(&back, "code").is_some());

    // The same errors as by GET: a page that never redirects while the client or redirect URI
    // is in doubt, then redirects to the app with the error and the state.
    for site in ["same-origin", "cross-site"] {
        let near = request("x", &[("redirect_uri", "http://127.0.0.1:3000/callback/")]);
        let res = post(&browser, site, &near).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers().get("location").is_none());
        assert!(res.text().await.unwrap().contains("trailing slash differs"));
        let no_openid = request("bad-scope", &[("scope", "profile")]);
        let res = post(&fresh, site, &no_openid).await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let back = location(&res);
        assert_eq!(query(&back, "error").as_deref(), Some("invalid_scope"));
        assert_eq!(query(&back, "state").as_deref(), Some("bad-scope"));
    }
    let repeated = "client_id=web&client_id=open&response_type=code";
    let res = browser
        .post(app.url("/oidc/auth"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(repeated)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("is repeated"));
    // A body that is not a form is refused with a page saying so.
    let res = browser
        .post(app.url("/oidc/auth"))
        .json(&json!({ "client_id": "web" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("application/x-www-form-urlencoded"));
}

/// Whether `browser` still has a session: `prompt=none` gets a code.
pub async fn signed_in(app: &TestApp, browser: &Client) -> bool {
    let (challenge, _) = pkce();
    let res = browser
        .get(app.url("/oidc/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("prompt", "none"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    query(&location(&res), "code").is_some()
}

/// The CSRF token of the sign-out confirmation form.
fn logout_token(html: &str) -> String {
    let key = r#"name="token" value=""#;
    let start = html
        .find(key)
        .unwrap_or_else(|| panic!("no token in {html}"))
        + key.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// `session/end` with `params`, as a page on any site can send a browser there; the answer
/// must be the confirmation page, with the session left alone.
async fn asked(app: &TestApp, browser: &Client, params: &[(&str, &str)]) -> (String, String) {
    let res = browser
        .get(app.url("/oidc/session/end"))
        .header("sec-fetch-site", "cross-site")
        .query(params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{params:?}");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().get("set-cookie").is_none(), "{params:?}");
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"action="/oidc/session/end/confirm""#),
        "{html}"
    );
    assert!(html.contains(r#"value="logout""#) && html.contains(r#"value="stay""#));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(signed_in(app, browser).await, "asking signs nobody out");
    (html, csp)
}

async fn confirm_logout(
    app: &TestApp,
    browser: &Client,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post(app.url("/oidc/session/end/confirm"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn logout_without_a_hint_asks_first_and_needs_the_forms_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (victim, _) = login(&app, "web", "openid", "o-victim").await;
    let (attacker, attackers_tokens) = login(&app, "web", "openid", "o-attacker").await;
    assert!(signed_in(&app, &victim).await);

    // No parameters, state alone, a client with its post-logout URI, the attacker's own ID
    // token as the hint, and a form POSTed from elsewhere: each only asks.
    let (html, _) = asked(&app, &victim, &[]).await;
    assert!(html.contains("Sign out") && html.contains("退出登录"));
    assert!(html.contains("Stay signed in") && html.contains("保持登录"));
    assert!(!html.contains("App web"), "no app was named");
    asked(&app, &victim, &[("state", "s")]).await;
    let (html, csp) = asked(
        &app,
        &victim,
        &[
            ("client_id", "web"),
            ("post_logout_redirect_uri", "http://127.0.0.1:3000/"),
            ("state", "bye"),
            ("ui_locales", "en"),
        ],
    )
    .await;
    assert!(html.contains("App web"), "the app's name is shown");
    assert!(html.contains(r#"lang="en""#));
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:3000"),
        "the form may go on to the registered URI: {csp}"
    );
    let victims_token = logout_token(&html);
    let foreign_hint = attackers_tokens["id_token"].as_str().unwrap();
    asked(&app, &victim, &[("id_token_hint", foreign_hint)]).await;
    let res = victim
        .post(app.url("/oidc/session/end"))
        .form(&[("client_id", "web")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("session/end/confirm"));
    assert!(signed_in(&app, &victim).await);

    // A forged, missing or foreign token is refused with a page, and the session stays.
    let (attackers_page, _) = asked(&app, &attacker, &[]).await;
    let attackers_token = logout_token(&attackers_page);
    for (why, form) in [
        ("missing", vec![("choice", "logout")]),
        (
            "forged",
            vec![
                ("choice", "logout"),
                ("token", "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ],
        ),
        (
            "not sealed",
            vec![("choice", "logout"), ("token", "forged")],
        ),
        (
            "another browser's",
            vec![("choice", "logout"), ("token", attackers_token.as_str())],
        ),
    ] {
        let res = confirm_logout(&app, &victim, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{why} token");
        assert!(res.headers().get("set-cookie").is_none(), "{why} token");
        let page = res.text().await.unwrap();
        assert!(
            page.contains("<code>forbidden</code>"),
            "{why} token: {page}"
        );
        assert!(signed_in(&app, &victim).await, "{why} token");
    }
    // The victim's own token without its cookie is refused too.
    let cookieless = browser();
    let res = confirm_logout(
        &app,
        &cookieless,
        &[("choice", "logout"), ("token", &victims_token)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // An answer that is neither choice is a bad request.
    let res = confirm_logout(
        &app,
        &victim,
        &[("choice", "maybe"), ("token", &victims_token)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(signed_in(&app, &victim).await);

    // "Stay signed in" keeps the session and offers the way back.
    let res = confirm_logout(
        &app,
        &victim,
        &[("choice", "stay"), ("token", &victims_token)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("Still signed in"), "{page}");
    assert!(
        page.contains(r#"href="http://127.0.0.1:3000/?state=bye""#),
        "{page}"
    );
    assert!(signed_in(&app, &victim).await);

    // A token older than ten minutes is refused.
    let (html, _) = asked(&app, &victim, &[]).await;
    let stale = logout_token(&html);
    app.clock.advance(Duration::from_secs(601));
    let res = confirm_logout(&app, &victim, &[("choice", "logout"), ("token", &stale)]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(signed_in(&app, &victim).await);

    // "Sign out" with the page's token ends the session and goes to the registered URI.
    let (html, _) = asked(
        &app,
        &victim,
        &[
            ("client_id", "web"),
            ("post_logout_redirect_uri", "http://127.0.0.1:3000/"),
            ("state", "bye"),
        ],
    )
    .await;
    let res = confirm_logout(
        &app,
        &victim,
        &[("choice", "logout"), ("token", &logout_token(&html))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res).as_str(), "http://127.0.0.1:3000/?state=bye");
    assert!(!signed_in(&app, &victim).await);
    assert!(
        signed_in(&app, &attacker).await,
        "only this browser signed out"
    );

    // With no session there is nothing to ask about: signed out at once.
    let res = victim
        .get(app.url("/oidc/session/end"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("Signed out") && !page.contains("session/end/confirm"));
}

/// The payload of a JWT, unverified (the signature is checked by the relying-party tests).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn phone_numbers_are_e164_in_id_tokens_and_userinfo(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (openid, national, country, e164) in [
        ("o-phone-cn", "13712340010", "86", "+8613712340010"),
        ("o-phone-hk", "91234567", "852", "+85291234567"),
    ] {
        // Through the hosted page: the phone is confirmed with the scan.
        let browser = browser();
        let (challenge, verifier) = pkce();
        let url = format!(
            "{}?response_type=code&client_id=web&redirect_uri={}&scope=openid%20phone&state=st&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
            app.url("/oidc/auth"),
            urlencode(CALLBACK),
        );
        let page = hosted_page(&browser, &url).await;
        let phone_code = app.sim.phone_code(APPID, openid, national, country);
        let body = json!({ "phone": { "code": phone_code } });
        let back = scan_and_confirm_with(&app, &browser, &page, openid, body).await;
        let code = query(&back, "code").unwrap();
        let res = token_request(
            &app,
            "web",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let tokens: Value = res.json().await.unwrap();
        let id = jwt_claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["phone_number"], e164, "ID token {id}");
        assert_eq!(id["phone_number_verified"], true, "ID token {id}");
        let access = tokens["access_token"].as_str().unwrap();
        let info = app.get_json_bearer("/oidc/userinfo", access).await;
        assert_eq!(info["phone_number"], e164, "userinfo {info}");
        assert_eq!(info["phone_number_verified"], true, "userinfo {info}");

        // Through the native exchange: the ID token says E.164, the user keeps WeChat's
        // national number and its country code apart, as Authing's `phone` does.
        let exchanged = app.exchanged(openid).await;
        assert_eq!(exchanged["user"]["phone"], national, "{exchanged}");
        assert_eq!(exchanged["user"]["phone_country_code"], country);
        let id = jwt_claims(exchanged["id_token"].as_str().unwrap());
        assert_eq!(id["phone_number"], e164, "exchange ID token {id}");
    }
}

fn jwt_header(token: &str) -> Value {
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get_json("/oidc/jwks").await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn tokens_signed_before_a_key_rotation_still_verify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, before) = login(&app, "web", "openid", "o-rotate").await;
    let old_token = before["id_token"].as_str().unwrap().to_owned();
    let old_kid = jwt_header(&old_token)["kid"].as_str().unwrap().to_owned();
    assert_eq!(jwt_header(&old_token)["alg"], "RS256");

    // The real command, against this test's database, as an operator would run it.
    let secret = app.config.secret_key.as_ref().unwrap().expose().to_owned();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["keys", "rotate", "--pool", "default", "--alg", "ES256"])
        .env("DATABASE_URL", &app.config.database_url)
        .env("SCANGATE_SECRET_KEY", secret)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Running instances pick the new key up when their cache ages out.
    app.clock
        .advance(scangate::tokens::RELOAD_AFTER + Duration::from_secs(1));

    let kids = jwks_kids(&app).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&old_kid));

    let rp = relying_party(&app, "web", Some(CLIENT_SECRET)).await;
    let verifier = rp.id_token_verifier();
    let old: openidconnect::core::CoreIdToken = old_token.parse().unwrap();
    let accept_any = |_: Option<&Nonce>| Ok::<(), String>(());
    old.claims(&verifier, accept_any)
        .expect("the old token verifies after rotation");

    let (_, after) = login(&app, "web", "openid", "o-rotate").await;
    let new_token = after["id_token"].as_str().unwrap();
    let header = jwt_header(new_token);
    assert_eq!(header["alg"], "ES256");
    assert_ne!(header["kid"], old_kid.as_str());
    assert!(kids.contains(&header["kid"].as_str().unwrap().to_owned()));
    let new: openidconnect::core::CoreIdToken = new_token.parse().unwrap();
    new.claims(&verifier, accept_any)
        .expect("the new ES256 token verifies");
    assert_eq!(
        userinfo_status(&app, after["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    // Once every token the old key signed has expired, it leaves the JWKS.
    app.clock.advance(Duration::from_secs(
        scangate::tokens::RETIRED_KEY_GRACE_SECS as u64,
    ));
    let kids = jwks_kids(&app).await;
    assert_eq!(kids, vec![header["kid"].as_str().unwrap().to_owned()]);

    // EdDSA as well.
    let kid = app
        .state
        .keys
        .rotate("default", scangate::tokens::KeyAlg::EdDsa)
        .await
        .unwrap();
    let (_, ed) = login(&app, "web", "openid", "o-rotate").await;
    let header = jwt_header(ed["id_token"].as_str().unwrap());
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], kid.as_str());
    assert_eq!(
        userinfo_status(&app, ed["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

async fn codes_are_single_use_under_concurrency(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}?response_type=code&client_id=web&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256&prompt=login",
        app.url("/oidc/auth"),
        urlencode(CALLBACK)
    );
    let page = hosted_page(&browser, &url).await;
    let code = query(
        &scan_and_continue(&app, &browser, &page, "o-race").await,
        "code",
    )
    .unwrap();
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", CALLBACK.to_owned()),
        ("code_verifier", verifier),
        ("client_id", "web".to_owned()),
        ("client_secret", CLIENT_SECRET.to_owned()),
    ];
    let attempts = (0..8).map(|_| {
        let req = app.client.post(app.url("/oidc/token")).form(&form);
        async move { req.send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

/// The JSON API's exchange issues no grant; its access token still opens userinfo and
/// introspection until it expires or its app revokes it.
async fn the_native_exchanges_access_token_works_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.exchanged("o-native").await;
    let access = body["access_token"].as_str().unwrap();
    let info = app.get_json_bearer("/oidc/userinfo", access).await;
    assert_eq!(info["sub"], body["user"]["id"]);
    let introspect = || async {
        post_form(
            &app,
            "/oidc/token/introspection",
            "web",
            &[("token", access)],
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    let live = introspect().await;
    assert_eq!(live["active"], true, "{live}");
    assert_eq!(live["client_id"], "web");

    let res = post_form(&app, "/oidc/token/revocation", "web", &[("token", access)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        userinfo_status(&app, access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(introspect().await, json!({ "active": false }));
}

async fn a_refresh_token_is_used_once_under_concurrency(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, tokens) = login(&app, "web", "openid offline_access", "o-race").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let attempts = (0..12).map(|_| post_form(&app, "/oidc/token", "web", &form));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST));
}

/// The hosted page's code is bound to its browser even for an app with
/// `require_binding = false`: someone who photographed the QR code (and so knows its `random`)
/// cannot read the ticket; the page's own browser still finishes the login.
async fn the_hosted_page_binds_its_code_even_when_the_app_does_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}?response_type=code&client_id=open&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/oidc/auth"),
        urlencode(CALLBACK)
    );
    let page = hosted_page(&browser, &url).await;
    let random = attr(&page, "data-random");
    let token = app.mp_login(APPID, "o-photographed").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    assert_eq!(
        app.confirm(&token, &random, None).await.status(),
        StatusCode::OK
    );
    let onlooker = reqwest::Client::new();
    for path in [
        format!("/api/v1/qrcodes/{random}"),
        format!("/api/v2/qrcode/check?random={random}"),
    ] {
        let seen: Value = onlooker
            .get(app.url(&path))
            .header("x-authing-app-id", "open")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!seen.to_string().contains("\"ticket\""), "{path}: {seen}");
    }
    let continued = browser
        .get(app.url(&attr(&page, "data-continue-url")))
        .send()
        .await
        .unwrap();
    assert_eq!(continued.status(), StatusCode::SEE_OTHER);
    let code = query(&location(&continued), "code").unwrap();
    let res = token_request(
        &app,
        "open",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Whoever intercepted a code but lacks the verifier (or sends another redirect URI) is
/// refused without using the code up: the real client's exchange still succeeds.
async fn a_failed_pkce_or_redirect_uri_check_leaves_the_code_usable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let (challenge, verifier) = pkce();
    let url = format!(
        "{}?response_type=code&client_id=web&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/oidc/auth"),
        urlencode(CALLBACK)
    );
    let page = hosted_page(&browser, &url).await;
    let code = query(
        &scan_and_continue(&app, &browser, &page, "o-intercepted").await,
        "code",
    )
    .unwrap();
    let wrong_verifier = scangate::crypto::random_token(32);
    for (redirect_uri, verifier) in [
        (CALLBACK, Some(wrong_verifier.as_str())),
        (CALLBACK, None),
        ("http://127.0.0.1:3000/elsewhere", Some(verifier.as_str())),
    ] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let res = token_request(&app, "web", &form).await;
        assert_oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    let res = token_request(
        &app,
        "web",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(
        userinfo_status(&app, tokens["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

/// The hosted page's "Cancel and return" cancels its code on the server, scanned or not: the
/// phone can no longer confirm it, and the app gets `access_denied`.
async fn the_hosted_pages_cancel_cancels_its_code_on_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(APPID, "o-cancel-page").await;
    for scanned in [false, true] {
        let browser = browser();
        let (challenge, _) = pkce();
        let url = format!(
            "{}?response_type=code&client_id=web&redirect_uri={}&scope=openid&state=st&code_challenge={challenge}&code_challenge_method=S256",
            app.url("/oidc/auth"),
            urlencode(CALLBACK)
        );
        let page = hosted_page(&browser, &url).await;
        let random = attr(&page, "data-random");
        if scanned {
            assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
        }
        // The page's "Cancel and return" link, unescaped.
        let end = page.find("cancel=1").unwrap() + "cancel=1".len();
        let from = page[..end].rfind("href=\"").unwrap() + "href=\"".len();
        let cancel = page[from..end].replace("&#38;", "&").replace("&amp;", "&");
        let res = browser.get(app.url(&cancel)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{cancel}");
        assert_eq!(
            query(&location(&res), "error").as_deref(),
            Some("access_denied")
        );
        let status = app.status(&reqwest::Client::new(), &random).await;
        assert_eq!(status["status"], "cancelled", "scanned: {scanned}");
        let res = app.confirm(&token, &random, None).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "scanned: {scanned}");
    }
}

/// `/pools/%ff/oidc/…` names no pool: `404`, never the default pool's documents or page.
async fn a_pool_slug_that_is_not_utf8_names_no_pool(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/pools/%ff/oidc/.well-known/openid-configuration",
        "/pools/%ff/oidc/jwks",
        "/pools/%C3%28/oidc/auth?response_type=code&client_id=web&scope=openid",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        crate::helpers::assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    }
}
