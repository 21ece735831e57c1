//! The request parsing of the public endpoints, through ScanGate's whole router in process:
//! the token, introspection and userinfo endpoints (forms, client credentials, bearer JWTs),
//! the Mini Program API (JSON bodies, the avatar's multipart upload and its image decoding),
//! the Authing-compatible API (query strings and JSON), the hosted login and logout. Whatever
//! the bytes, the answer must be a client error or a success, never a 500: the router turns a
//! panic into a 500, so this catches panics and unhandled failures alike.
//!
//! The first byte picks the endpoint; the rest is its body, query or credential. The service
//! runs as in the tests: a scratch SQLite database, the in-process ticket store, the WeChat
//! simulator on a local port, and a Mini Program session made once at start.

#![no_main]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use scangate::clock::Clock;
use scangate::config::{AppConfig, Config, MiniProgramConfig, RateLimits, Secret};
use scangate::crypto::SecretBox;
use scangate::router::Front;
use scangate::wechat::Simulator;
use std::sync::OnceLock;
use tower::Service as _;

const APPID: &str = "wx0123456789abcdef";
const CLIENT_SECRET: &str = "web-client-secret-abcdef";
/// `web:web-client-secret-abcdef` in HTTP Basic.
const BASIC: &str = "Basic d2ViOndlYi1jbGllbnQtc2VjcmV0LWFiY2RlZg==";

struct World {
    runtime: tokio::runtime::Runtime,
    front: Front,
    /// A Mini Program session's bearer token.
    mp_token: String,
    _simulator: Simulator,
}

async fn send(front: &Front, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let mut req = req;
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = match front.clone().call(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status, body)
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("scangate-fuzz-http-{}", std::process::id()));
        let (front, mp_token, simulator) = runtime.block_on(async {
            let simulator = Simulator::new();
            simulator.register_app(APPID, "sim-app-secret-0123456789");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the simulator");
            let sim_url = format!("http://{}", listener.local_addr().expect("addr"));
            let sim_router = simulator.router();
            tokio::spawn(async move {
                let _ = axum::serve(listener, sim_router).await;
            });
            let mut config = Config::default();
            config.public_url = "http://127.0.0.1:8080".parse().expect("url");
            config.database_url = format!("sqlite://{}/scangate.db", dir.display());
            config.secret_key = Some(Secret(SecretBox::generate_key()));
            config.wechat.api_base = sim_url.parse().expect("simulator url");
            config.wechat.timeout_ms = 2000;
            // Every limit off (0): the fuzzer sends far more than any address would.
            config.rate_limits = RateLimits {
                qrcodes_per_minute: 0,
                sessions_per_minute: 0,
                exchanges_per_minute: 0,
                admin_auth_failures_per_minute: 0,
                client_auth_failures_per_minute: 0,
                client_auth_failures_per_client_per_minute: 0,
                avatar_uploads_per_minute: 0,
                image_renders_per_code_per_minute: 0,
                open_links_per_code_per_minute: 0,
                approvals_per_minute: 0,
                pending_qrcodes_per_address: 0,
                stale_scans_per_minute: 0,
                device_authorizations_per_minute: 0,
                user_codes_per_minute: 0,
                wrong_user_codes_per_device: 0,
            };
            config.miniprograms = vec![MiniProgramConfig {
                appid: APPID.into(),
                secret: Secret("sim-app-secret-0123456789".into()),
                pool: "default".into(),
                name: None,
            }];
            config.apps = vec![AppConfig {
                pool: "default".into(),
                client_id: "web".into(),
                client_secret: Some(Secret(CLIENT_SECRET.into())),
                name: "App web".into(),
                redirect_uris: vec!["http://127.0.0.1:3000/callback".into()],
                post_logout_redirect_uris: vec!["http://127.0.0.1:3000/".into()],
                allowed_origins: vec!["http://127.0.0.1:3000".into()],
                miniprogram: APPID.into(),
                ..AppConfig::default()
            }];
            let (_drain, draining) = scangate::server::draining();
            let state = scangate::bootstrap::state(config, Clock::manual(), draining, false)
                .await
                .expect("ScanGate starts");
            let front = scangate::router::front(state, None);
            let code = simulator.login_code(APPID, "o-fuzz", None);
            let body = serde_json::json!({ "appid": APPID, "code": code }).to_string();
            let req = Request::post("/api/mp/v1/session")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .expect("request");
            let (status, body) = send(&front, req).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            let session: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            let token = session["token"].as_str().expect("token").to_owned();
            (front, token, simulator)
        });
        World {
            runtime,
            front,
            mp_token,
            _simulator: simulator,
        }
    })
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let text = String::from_utf8_lossy(rest).into_owned();
    let query: String = url::form_urlencoded::byte_serialize(rest).collect();
    let bearer = format!("Bearer {}", w.mp_token);
    let (method, path, content_type, auth, body): (
        Method,
        String,
        Option<&str>,
        Option<String>,
        Vec<u8>,
    ) = match pick % 16 {
        0 => (
            Method::POST,
            "/oidc/token".into(),
            Some(FORM),
            Some(BASIC.into()),
            rest.to_vec(),
        ),
        1 => (
            Method::POST,
            "/oidc/token".into(),
            Some(FORM),
            None,
            rest.to_vec(),
        ),
        2 => (
            Method::POST,
            "/oidc/token/introspection".into(),
            Some(FORM),
            Some(BASIC.into()),
            rest.to_vec(),
        ),
        3 => (
            Method::GET,
            "/oidc/userinfo".into(),
            None,
            Some(format!("Bearer {text}")),
            Vec::new(),
        ),
        4 => (
            Method::POST,
            "/api/mp/v1/session".into(),
            Some(JSON),
            None,
            rest.to_vec(),
        ),
        5 => (
            Method::POST,
            "/api/mp/v1/qrcodes/AAAAAAAAAAAAAAAAAAAAAA/confirm".into(),
            Some(JSON),
            Some(bearer),
            rest.to_vec(),
        ),
        6 => (
            Method::PATCH,
            "/api/mp/v1/me".into(),
            Some(JSON),
            Some(bearer),
            rest.to_vec(),
        ),
        7 => (
            Method::POST,
            "/api/mp/v1/me/phone".into(),
            Some(JSON),
            Some(bearer),
            rest.to_vec(),
        ),
        8 => (
            Method::POST,
            "/api/mp/v1/me/avatar".into(),
            Some("multipart/form-data; boundary=XyZ"),
            Some(bearer),
            rest.to_vec(),
        ),
        9 => (
            Method::GET,
            format!("/api/v2/qrcode/check?{text}"),
            None,
            None,
            Vec::new(),
        ),
        10 => (
            Method::POST,
            "/api/v2/qrcode/userinfo".into(),
            Some(JSON),
            None,
            rest.to_vec(),
        ),
        11 => (
            Method::POST,
            "/api/v1/qrcodes/exchange".into(),
            Some(JSON),
            None,
            rest.to_vec(),
        ),
        12 => (
            Method::GET,
            format!("/oidc/auth?{text}"),
            None,
            None,
            Vec::new(),
        ),
        13 => (
            Method::POST,
            "/oidc/auth".into(),
            Some(FORM),
            None,
            rest.to_vec(),
        ),
        14 => (
            Method::GET,
            format!("/oidc/session/end?{query}"),
            None,
            None,
            Vec::new(),
        ),
        _ => (
            Method::POST,
            "/oidc/session/end/confirm".into(),
            Some(FORM),
            None,
            rest.to_vec(),
        ),
    };
    // A query that is not a valid URI cannot reach the server at all.
    let Ok(mut req) = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body))
    else {
        return;
    };
    let headers = req.headers_mut();
    headers.insert("x-authing-app-id", "web".parse().expect("header"));
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, ct.parse().expect("header"));
    }
    if let Some(auth) = auth.and_then(|a| a.parse().ok()) {
        headers.insert(header::AUTHORIZATION, auth);
    }
    let (status, body) = w.runtime.block_on(send(&w.front, req));
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        String::from_utf8_lossy(&body)
    );
});
