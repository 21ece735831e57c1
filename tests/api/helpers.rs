//! Spawning ScanGate for a test: a fresh database (SQLite file, or a PostgreSQL schema), a
//! fresh ticket store (in-process, or a Redis key prefix), a WeChat simulator on its own port,
//! a manual clock, and a cookie-keeping HTTP client.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use scangate::app::{App, Runtime};
use scangate::clock::Clock;
use scangate::config::{AppConfig, Config, MiniProgramConfig, Secret};
use scangate::crypto::{random_token, SecretBox};
use scangate::state::AppState;
use scangate::wechat::Simulator;
use serde_json::{json, Value};

pub const APPID: &str = "wx0123456789abcdef";
/// A second Mini Program in the default pool (unionid linking).
pub const APPID_2: &str = "wx00000000000000bb";
/// A Mini Program of another pool.
pub const APPID_OTHER: &str = "wx00000000000000aa";
pub const MP_SECRET: &str = "sim-app-secret-0123456789";
pub const CLIENT_SECRET: &str = "web-client-secret-abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite + in-process ticket store.
    Embedded,
    /// PostgreSQL + Redis.
    Distributed,
}

pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Every log line of the test process, so tests can look for leaked secrets.
pub fn captured_logs() -> String {
    let buf = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buf).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        log_buffer()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                "debug,sqlx=info,hyper=info,h2=info,reqwest=info,rustls=info,tower=info,redis=info",
            )
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
}

/// Serves a router on a free port in the background; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    format!("http://{addr}")
}

/// A fresh PostgreSQL schema; the returned URL selects it through `search_path`.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let base = postgres_url();
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for the distributed tests (set TEST_DATABASE_URL): {e}"));
    let schema = format!(
        "t_{}",
        random_token(9)
            .to_ascii_lowercase()
            .replace(['-', '_'], "x")
    );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Fails the test when Redis is not there.
pub async fn require_redis() -> String {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!("Redis at {url} is required for the distributed tests (set TEST_REDIS_URL): {e}")
        });
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("redis ping");
    url
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub clock: Clock,
    pub sim: Simulator,
    pub state: AppState,
    pub config: Config,
    /// Starts the server's shutdown; the handle resolves when the server has stopped.
    shutdown: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    _dir: tempdir::Dir,
}

pub mod tempdir {
    /// A temporary folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!(
                "scangate-test-{}",
                scangate::crypto::random_token(8)
            ));
            std::fs::create_dir_all(&p).expect("tempdir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn cookie_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(40))
        .build()
        .expect("client")
}

/// The configuration every test starts from, before the backend is chosen.
#[allow(clippy::field_reassign_with_default)]
pub fn base_config(sim_base: &str) -> Config {
    let app = |client_id: &str, mp: &str, pool: &str, binding: bool| AppConfig {
        pool: pool.into(),
        client_id: client_id.into(),
        client_secret: Some(Secret(CLIENT_SECRET.into())),
        name: format!("App {client_id}"),
        logo: None,
        redirect_uris: vec!["http://127.0.0.1:3000/callback".into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:3000/".into()],
        allowed_origins: vec!["http://127.0.0.1:3000".into()],
        miniprogram: mp.into(),
        qr_ttl_secs: 120,
        require_binding: binding,
        // The match step has its own tests (scanner.rs); elsewhere a confirm sends no number.
        match_number: Some(false),
        ..AppConfig::default()
    };
    let mp = |appid: &str, pool: &str| MiniProgramConfig {
        appid: appid.into(),
        secret: Secret(MP_SECRET.into()),
        pool: pool.into(),
        name: None,
    };
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.public_url = "http://127.0.0.1:0".parse().expect("url");
    config.secret_key = Some(Secret(SecretBox::generate_key()));
    config.wechat.api_base = sim_base.parse().expect("sim url");
    config.wechat.timeout_ms = 2000;
    config.database_max_connections = 5;
    config.miniprograms = vec![
        mp(APPID, "default"),
        mp(APPID_2, "default"),
        mp(APPID_OTHER, "other"),
    ];
    config.apps = vec![
        app("web", APPID, "default", true),
        app("open", APPID, "default", false),
        app("other", APPID_OTHER, "other", true),
    ];
    config
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, customise: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_in(backend, false, customise).await
    }

    /// As `scangate dev` runs: with the demo app and the simulators under `/_dev/`.
    pub async fn spawn_dev(backend: Backend) -> TestApp {
        Self::spawn_in(backend, true, |_| {}).await
    }

    async fn spawn_in(backend: Backend, dev: bool, customise: impl FnOnce(&mut Config)) -> TestApp {
        init_logs();
        let sim = Simulator::new();
        for appid in [APPID, APPID_2, APPID_OTHER] {
            sim.register_app(appid, MP_SECRET);
        }
        let sim_base = serve(sim.router()).await;
        let dir = tempdir::Dir::new();
        let mut config = base_config(&sim_base);
        match backend {
            Backend::Embedded => {
                config.database_url = format!("sqlite://{}/scangate.db", dir.0.display());
            }
            Backend::Distributed => {
                config.database_url = fresh_postgres().await;
                config.redis_url = require_redis().await;
                config.redis_prefix = format!("test-{}", random_token(8));
            }
        }
        customise(&mut config);
        let clock = Clock::manual();
        let runtime = Runtime {
            clock: clock.clone(),
            dev,
        };
        let app = App::build_with(config.clone(), runtime)
            .await
            .expect("app builds");
        let state = app.state().clone();
        let base = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.run_until(async move {
            // Dropping the sender (the test ended) is not a shutdown.
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        TestApp {
            base,
            client: cookie_client(),
            clock,
            sim,
            state,
            config,
            shutdown: Some((stop, served)),
            _dir: dir,
        }
    }

    /// A second instance on the same database and ticket store (and clock), as a fleet
    /// behind a load balancer runs.
    pub async fn peer(&self) -> TestApp {
        let runtime = Runtime {
            clock: self.clock.clone(),
            dev: false,
        };
        let app = App::build_with(self.config.clone(), runtime)
            .await
            .expect("peer builds");
        let state = app.state().clone();
        let base = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.run_until(async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        TestApp {
            base,
            client: cookie_client(),
            clock: self.clock.clone(),
            sim: self.sim.clone(),
            state,
            config: self.config.clone(),
            shutdown: Some((stop, served)),
            _dir: tempdir::Dir::new(),
        }
    }

    /// A management API key of `role`, limited to `pool` when given; returns the key.
    pub async fn admin_key(&self, role: &str, pool: Option<&str>) -> String {
        let role = scangate::admin::Role::parse(role).expect("a role");
        let pool = pool.map(|p| p.parse().expect("a pool slug"));
        self.state
            .admin
            .create_key(&scangate::admin::Actor::cli(), "test", role, pool)
            .await
            .expect("key created")
            .secret
    }

    /// Shuts the server down as SIGTERM would and waits until it has stopped.
    pub async fn shut_down(&mut self) {
        let (stop, served) = self.shutdown.take().expect("server still running");
        stop.send(()).expect("server listens for shutdown");
        served
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path` with this app's client; the JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> Value {
        json_of(self.client.get(self.url(path))).await
    }

    /// Creates a QR code for `app_id` with this app's cookie-keeping client.
    pub async fn create_qr_for(&self, client: &Client, app_id: &str) -> Value {
        let res = client
            .post(self.url("/api/v1/qrcodes"))
            .json(&json!({ "app_id": app_id }))
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), StatusCode::CREATED, "create QR");
        res.json().await.expect("json")
    }

    pub async fn create_qr(&self) -> Value {
        self.create_qr_for(&self.client, "web").await
    }

    pub async fn status(&self, client: &Client, random: &str) -> Value {
        let res = client
            .get(self.url(&format!("/api/v1/qrcodes/{random}")))
            .send()
            .await
            .expect("status");
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.expect("json")
    }

    /// Logs a fake WeChat user into the Mini Program API; returns the bearer token.
    pub async fn mp_login(&self, appid: &str, openid: &str) -> String {
        self.mp_login_full(appid, openid, None).await["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn mp_login_full(&self, appid: &str, openid: &str, unionid: Option<&str>) -> Value {
        let code = self.sim.login_code(appid, openid, unionid);
        let res = self
            .client
            .post(self.url("/api/mp/v1/session"))
            .json(&json!({ "appid": appid, "code": code }))
            .send()
            .await
            .expect("session");
        assert_eq!(res.status(), StatusCode::OK, "session");
        res.json().await.expect("json")
    }

    pub async fn mp_post(&self, token: &str, path: &str, body: Option<Value>) -> Response {
        let mut req = self.client.post(self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("mp request")
    }

    /// [`TestApp::mp_post`] without a body, taking owned arguments (for closures).
    pub async fn mp_post_owned(&self, token: String, path: String) -> Response {
        self.mp_post(&token, &path, None).await
    }

    pub async fn scan(&self, token: &str, random: &str) -> Response {
        self.mp_post(token, &format!("/api/mp/v1/qrcodes/{random}/scan"), None)
            .await
    }

    pub async fn confirm(&self, token: &str, random: &str, body: Option<Value>) -> Response {
        self.mp_post(token, &format!("/api/mp/v1/qrcodes/{random}/confirm"), body)
            .await
    }

    /// Creates a code, scans and confirms it as `openid`; returns (random, ticket).
    pub async fn confirmed_ticket(&self, openid: &str) -> (String, String) {
        let qr = self.create_qr().await;
        let random = qr["random"].as_str().expect("random").to_owned();
        let token = self.mp_login(APPID, openid).await;
        assert_eq!(self.scan(&token, &random).await.status(), StatusCode::OK);
        assert_eq!(
            self.confirm(&token, &random, None).await.status(),
            StatusCode::OK
        );
        let status = self.status(&self.client, &random).await;
        (
            random,
            status["ticket"].as_str().expect("ticket").to_owned(),
        )
    }

    /// Logs `openid` in end to end through the JSON API; the exchange's JSON answer.
    pub async fn exchanged(&self, openid: &str) -> Value {
        let (_, ticket) = self.confirmed_ticket(openid).await;
        self.exchange(&self.client, &ticket)
            .await
            .json()
            .await
            .expect("exchange JSON")
    }

    /// `GET path` with a bearer token; the JSON body, whatever the status.
    pub async fn get_json_bearer(&self, path: &str, token: &str) -> Value {
        json_of(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    /// Opens the event stream of a code with this app's client.
    pub async fn events(&self, random: &str) -> Response {
        let res = self
            .client
            .get(self.url(&format!("/api/v1/qrcodes/{random}/events")))
            .send()
            .await
            .expect("events");
        assert_eq!(res.status(), StatusCode::OK, "events");
        res
    }

    pub async fn exchange(&self, client: &Client, ticket: &str) -> Response {
        client
            .post(self.url("/api/v1/qrcodes/exchange"))
            .json(&json!({ "ticket": ticket }))
            .send()
            .await
            .expect("exchange")
    }
}

async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON body")
}

/// Asserts a native error response: status and code.
pub async fn assert_error(res: Response, status: StatusCode, code: &str) -> Value {
    let got = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(body["message"].is_string(), "message in {body}");
    body
}

/// Generates one `#[tokio::test]` per backend for each listed async fn taking a `Backend`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Embedded).await
                }
            )*
        }
        mod distributed {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Distributed).await
                }
            )*
        }
    };
}

/// A TCP proxy in front of PostgreSQL or Redis that a test can cut and restore, to show how
/// ScanGate behaves while a dependency is away.
pub struct Proxy {
    pub port: u16,
    down: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut down = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Proxy {
            port,
            down: Arc::new(tx),
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.send_replace(true);
    }

    pub fn restore(&self) {
        self.down.send_replace(false);
    }
}

/// Retries `f` until it returns true, for at most `limit`; for waiting on a dependency that
/// reconnects in its own time.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
