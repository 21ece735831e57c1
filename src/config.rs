//! One typed configuration: defaults < TOML file < environment.
//!
//! Every key of the file may be overridden by an environment variable with the `SCANGATE_`
//! prefix and `__` for nesting (`SCANGATE_WECHAT__TIMEOUT_MS=2000`); `DATABASE_URL` and
//! `REDIS_URL` are honoured too. Unknown keys and malformed values stop start-up with a message
//! that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The URL browsers and Mini Programs reach this server at; issuers and QR links derive
    /// from it.
    pub public_url: Url,
    /// `sqlite://…` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// Empty: the in-process ticket store (one instance only). `redis://…`: shared state.
    pub redis_url: String,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_prefix: String,
    /// 32 bytes in base64; encrypts AppSecrets and private keys at rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
    /// Largest PostgreSQL pool (a SQLite pool opens at most two connections).
    pub database_max_connections: u32,
    pub wechat: WechatConfig,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    pub miniprograms: Vec<MiniProgramConfig>,
    pub apps: Vec<AppConfig>,
    pub rate_limits: RateLimits,
    /// What one client address may hold open at once, and how long a request body may take.
    pub connections: ConnectionLimits,
    /// Networks of load balancers on other hosts whose `X-Forwarded-For` is believed (a
    /// loopback peer always is); a list, or one comma-separated string from the environment.
    pub trusted_proxies: crate::proxies::TrustedProxies,
    /// Prometheus metrics: recorded and served at `/metrics` (to loopback peers on `listen`,
    /// to anyone on `metrics_listen`); `false` records nothing.
    pub metrics: bool,
    /// A second listener that serves only `/metrics`, for a scraper on another host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// A MaxMind-format database (`.mmdb`, e.g. GeoLite2 City) to tell the phone roughly where
    /// a login was asked from; absent: no location, and no country or datacenter warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geoip_database: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatConfig {
    /// Base URL of WeChat's server API; tests and the simulator point this elsewhere.
    pub api_base: Url,
    /// Timeout of one call to WeChat.
    pub timeout_ms: u64,
    /// `[wechat.open_link]`: "Open in WeChat" for a browser on a phone.
    pub open_link: OpenLinkConfig,
}

/// "Open in WeChat": a browser on a phone cannot scan its own screen, so the hosted login page
/// and the widget offer a link that opens the Mini Program's confirm page at the same QR code
/// (WeChat's URL Link, or its URL Scheme). The result still goes only to the browser that asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenLinkConfig {
    /// Offer the link to browsers whose user agent is a phone's.
    pub enabled: bool,
    /// `url_link` (`https://wxaurl.cn/…`; URL Scheme when WeChat refuses URL Link to the
    /// account) or `url_scheme` (`weixin://dl/business/?t=…` only).
    pub kind: LinkKind,
    /// The Mini Program page the link opens, without a leading `/` or a query; it is given the
    /// code as `random=<random>` (the reference Mini Program's confirm page reads it).
    pub page: String,
    /// The version of the Mini Program to open: `release`, `trial` or `develop` (WeChat honours
    /// it only when the link is opened outside WeChat).
    pub env_version: String,
}

/// Which of WeChat's links opens the Mini Program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// `POST /wxa/generate_urllink`: an https link that works in any browser.
    #[default]
    UrlLink,
    /// `POST /wxa/generatescheme`: a `weixin://` link the phone hands to WeChat.
    UrlScheme,
}

impl Default for OpenLinkConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kind: LinkKind::UrlLink,
            page: "pages/confirm/confirm".into(),
            env_version: "release".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A Mini Program to upsert at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniProgramConfig {
    pub appid: String,
    pub secret: Secret,
    /// The user pool whose users this Mini Program signs in.
    #[serde(default = "default_pool")]
    pub pool: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// An app (OIDC client) to upsert at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    #[serde(default = "default_pool")]
    pub pool: String,
    pub client_id: String,
    /// Absent: a public client (PKCE).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    pub name: String,
    /// A file path (relative to the working directory), a `data:image/...;base64,` URI or an
    /// `https://` URL. A file or `data:` logo (PNG, JPEG, WebP or SVG) is also drawn in the
    /// centre of the app's QR images; a URL is only shown by the Mini Program.
    #[serde(default)]
    pub logo: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return the browser (exact match); empty: nowhere.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub miniprogram: String,
    #[serde(default = "default_qr_ttl")]
    pub qr_ttl_secs: u64,
    #[serde(default = "default_true")]
    pub require_binding: bool,
    /// `open` (a stranger's first scan creates a user) or `existing_only` (only provisioned
    /// users, linked by unionid or phone, may sign in).
    #[serde(default)]
    pub signup: crate::store::apps::Signup,
    /// The match step: once the code is scanned the PC page shows a two-digit number and the
    /// person taps the same one among three on the phone; a wrong tap cancels the code. Unset:
    /// on for an app that is new, and for one already stored whatever it has (so an upgrade
    /// does not turn the step on under a Mini Program that does not show it).
    #[serde(default)]
    pub match_number: Option<bool>,
    /// Whether the Mini Program asks for the phone number: `required`, `optional` or `off`.
    #[serde(default)]
    pub phone: crate::store::apps::PhoneAsk,
    /// Whether the app may use the device authorization grant (RFC 8628): a device without
    /// a browser shows a code, and the person approves it in the Mini Program. Off unless set.
    #[serde(default)]
    pub device_grant: bool,
    /// Colour of the QR code's dark modules, `#rrggbb`.
    #[serde(default = "default_qr_foreground")]
    pub qr_foreground: String,
    /// Colour of the QR code's light modules and margin, `#rrggbb`.
    #[serde(default = "default_qr_background")]
    pub qr_background: String,
    /// Image edge in pixels when a request names no `?size=` (128–1024).
    #[serde(default = "default_qr_size")]
    pub qr_size: u32,
    /// Light margin around the code, in modules (the standard asks for 4).
    #[serde(default = "default_qr_quiet_zone")]
    pub qr_quiet_zone: u32,
    /// An ordinary QR code of `scan_url`, or a Mini Program code from WeChat.
    #[serde(default)]
    pub qr_mode: QrMode,
    /// `[apps.wxacode]`: what to ask getwxacodeunlimit for in `wxacode` mode.
    #[serde(default)]
    pub wxacode: WxaCodeConfig,
}

/// How an app's QR images are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QrMode {
    /// A QR code of `scan_url`, drawn by ScanGate; WeChat opens the Mini Program through the
    /// "scan an ordinary QR code" rule.
    #[default]
    Qrcode,
    /// A Mini Program code from WeChat's getwxacodeunlimit (`scene` = the code's random), with
    /// the logo laid over its centre; an ordinary QR code when WeChat refuses.
    Wxacode,
}

/// The getwxacodeunlimit parameters of an app (WeChat's defaults where absent).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WxaCodeConfig {
    /// The Mini Program page to open, e.g. `pages/login/login`; the home page when absent.
    pub page: Option<String>,
    /// `release`, `trial` or `develop`.
    pub env_version: Option<String>,
    /// Whether `page` must exist in the released version (WeChat's default: true).
    pub check_path: Option<bool>,
    /// Width to ask WeChat for, 280–1280; by default the requested image size.
    pub width: Option<u32>,
    /// Colour of the code's lines, `#rrggbb`; by default the app's `qr_foreground`.
    pub line_color: Option<String>,
    /// Let WeChat pick the line colour.
    pub auto_color: Option<bool>,
}

impl Default for AppConfig {
    /// An app with every optional key at its default; the required ones are empty.
    fn default() -> Self {
        AppConfig {
            pool: default_pool(),
            client_id: String::new(),
            client_secret: None,
            name: String::new(),
            logo: None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            allowed_origins: Vec::new(),
            miniprogram: String::new(),
            qr_ttl_secs: default_qr_ttl(),
            require_binding: true,
            signup: crate::store::apps::Signup::Open,
            match_number: None,
            phone: crate::store::apps::PhoneAsk::Optional,
            device_grant: false,
            qr_foreground: default_qr_foreground(),
            qr_background: default_qr_background(),
            qr_size: default_qr_size(),
            qr_quiet_zone: default_qr_quiet_zone(),
            qr_mode: QrMode::default(),
            wxacode: WxaCodeConfig::default(),
        }
    }
}

/// What is wrong with one app: the key under `[[apps]]` (`redirect_uris[1]`) and why.
#[derive(Debug)]
pub struct AppConfigError {
    pub key: String,
    pub message: String,
}

impl AppConfig {
    /// The checks serde cannot make: identifiers, URIs, origins, ranges and the QR branding
    /// (a file or `data:` logo is read and decoded here). Start-up and `scangate app create`
    /// both go through this.
    pub fn check(&self) -> Result<(), AppConfigError> {
        let refuse = |key: String, message: String| AppConfigError { key, message };
        crate::domain::ClientId::parse(&self.client_id)
            .map_err(|e| refuse("client_id".into(), e))?;
        crate::domain::AppId::parse(&self.miniprogram)
            .map_err(|e| refuse("miniprogram".into(), e))?;
        if !(30..=3600).contains(&self.qr_ttl_secs) {
            return Err(refuse(
                "qr_ttl_secs".into(),
                "must be between 30 and 3600".into(),
            ));
        }
        for (j, uri) in self.redirect_uris.iter().enumerate() {
            crate::domain::parse_redirect_uri(uri)
                .map_err(|e| refuse(format!("redirect_uris[{j}]"), e))?;
        }
        for (j, uri) in self.post_logout_redirect_uris.iter().enumerate() {
            crate::domain::parse_redirect_uri(uri)
                .map_err(|e| refuse(format!("post_logout_redirect_uris[{j}]"), e))?;
        }
        for (j, origin) in self.allowed_origins.iter().enumerate() {
            crate::domain::parse_origin(origin)
                .map_err(|e| refuse(format!("allowed_origins[{j}]"), e))?;
        }
        crate::qr::Branding::from_app(self).map_err(|e| {
            refuse(
                e.key.into(),
                format!("app `{}`: {}", self.client_id, e.message),
            )
        })?;
        Ok(())
    }
}

fn default_pool() -> String {
    "default".into()
}
fn default_qr_ttl() -> u64 {
    120
}
fn default_true() -> bool {
    true
}
fn default_qr_foreground() -> String {
    "#000000".into()
}
fn default_qr_background() -> String {
    "#ffffff".into()
}
fn default_qr_size() -> u32 {
    crate::qr::DEFAULT_SIZE
}
fn default_qr_quiet_zone() -> u32 {
    4
}

/// A secret string: serialises as itself (the config file is the source) but never prints.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://127.0.0.1:8080").expect("static URL"),
            database_url: "sqlite://data/scangate.db".into(),
            redis_url: String::new(),
            redis_prefix: "scangate".into(),
            secret_key: None,
            database_max_connections: 10,
            wechat: WechatConfig::default(),
            log_format: LogFormat::Text,
            miniprograms: Vec::new(),
            apps: Vec::new(),
            rate_limits: RateLimits::default(),
            connections: ConnectionLimits::default(),
            trusted_proxies: crate::proxies::TrustedProxies::default(),
            metrics: true,
            metrics_listen: None,
            geoip_database: None,
        }
    }
}

/// How many requests one client address may make per minute to the endpoints that create
/// state or call WeChat, counted across every instance; `0` turns a limit off. The defaults
/// leave room for a whole office behind one address.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// QR codes created (every API and the hosted login page).
    pub qrcodes_per_minute: u64,
    /// Mini Program logins: each one costs a call to WeChat.
    pub sessions_per_minute: u64,
    /// Ticket exchanges, failed ones included (slows down ticket guessing).
    pub exchanges_per_minute: u64,
    /// Failed authentications at the management API; past it, a failing address gets 429.
    pub admin_auth_failures_per_minute: u64,
    /// Client secrets checked with Argon2 at the token, revocation and introspection
    /// endpoints (a wrong secret, or a new secret's first use), per address. A secret already
    /// verified is not counted, so a working client is never slowed by it.
    pub client_auth_failures_per_minute: u64,
    /// The same, per `client_id` whatever the address: guessing one client's secret from many
    /// addresses stays as slow as from one.
    pub client_auth_failures_per_client_per_minute: u64,
    /// Avatar uploads per Mini Program user (not per address): each is decoded and stored.
    pub avatar_uploads_per_minute: u64,
    /// Images drawn per QR code (each new size or format of a code is drawn once; served
    /// from memory after that): image requests need no credentials.
    pub image_renders_per_code_per_minute: u64,
    /// "Open in WeChat" links asked for per QR code (by the browser it is bound to): WeChat is
    /// called once per code, so this only bounds the answers.
    pub open_links_per_code_per_minute: u64,
    /// Confirmed logins per Mini Program user: a person approves a few logins a minute at most.
    pub approvals_per_minute: u64,
    /// QR codes one address may have pending (created, not scanned, not expired) at once: a
    /// cap, so that a page farming codes for victims to scan runs out however slowly it asks.
    pub pending_qrcodes_per_address: u64,
    /// Scans per Mini Program user of codes that are not pending (unknown, expired, used,
    /// another's): what guessing or replaying photographed codes looks like.
    pub stale_scans_per_minute: u64,
    /// Device authorization requests (RFC 8628) per address: each stores a request.
    pub device_authorizations_per_minute: u64,
    /// User codes typed on the device verification pages per address, right or wrong: with
    /// about 34 bits per code, guessing one takes billions of tries.
    pub user_codes_per_minute: u64,
    /// Wrong user codes typed for one device request (on its own page) before it is denied
    /// for good; a cap over the request's life, not a rate.
    pub wrong_user_codes_per_device: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            qrcodes_per_minute: 600,
            sessions_per_minute: 300,
            exchanges_per_minute: 600,
            admin_auth_failures_per_minute: 30,
            client_auth_failures_per_minute: 30,
            client_auth_failures_per_client_per_minute: 120,
            avatar_uploads_per_minute: 5,
            image_renders_per_code_per_minute: 16,
            open_links_per_code_per_minute: 10,
            approvals_per_minute: 10,
            pending_qrcodes_per_address: 300,
            stale_scans_per_minute: 30,
            device_authorizations_per_minute: 60,
            user_codes_per_minute: 20,
            wrong_user_codes_per_device: 5,
        }
    }
}

/// Bounds on what one client holds open on an instance, so that a few clients cannot take all
/// its sockets and memory (slow uploads, thousands of event streams). The caps leave room for
/// an office of hundreds behind one address, each with a login page open.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Concurrent connections from one address (IPv6: one /64) that is not a trusted proxy;
    /// past it, a new connection is answered `429` and closed. 0 = no cap.
    pub per_address: usize,
    /// Concurrent event streams (`/events`) per client address, behind proxies too; past it,
    /// `429 rate_limited`. 0 = no cap.
    pub event_streams_per_address: usize,
    /// Seconds a request may take to send its whole body once its head has arrived; a body
    /// still unfinished then is refused (`400`) and the connection closed.
    pub body_read_timeout_secs: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            per_address: 1024,
            event_streams_per_address: 512,
            body_read_timeout_secs: 60,
        }
    }
}

impl Default for WechatConfig {
    fn default() -> Self {
        Self {
            api_base: Url::parse("https://api.weixin.qq.com").expect("static URL"),
            timeout_ms: 5000,
            open_link: OpenLinkConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Parse(format!(
                    "file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        // Each variable is its own provider, so that an error names the variable.
        let mut vars = Vec::new();
        for (k, v) in &env {
            if let Some(rest) = k.strip_prefix("SCANGATE_") {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                vars.push(EnvVar::new(k, key, env_value(v)));
            }
        }
        for (name, key) in [("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")] {
            if let Some((_, v)) = env.iter().find(|(k, _)| k == name) {
                vars.push(EnvVar::new(name, key.into(), v.clone().into()));
            }
        }
        for var in &vars {
            figment = figment.merge(var.clone());
        }
        let _ = Env::raw; // environment is read above with our own nesting rule
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        config.validate().map_err(|e| match e {
            // A value that parsed but is out of bounds: say which variable set it.
            ConfigError::Invalid { key, message } => match vars.iter().rev().find(|v| v.sets(&key))
            {
                Some(var) => ConfigError::Invalid {
                    message: format!("{message} (from environment variable {})", var.name),
                    key,
                },
                None => ConfigError::Invalid { key, message },
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: URL schemes, ranges, cross references.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.public_url.scheme(), "http" | "https") {
            return Err(invalid("public_url", "must be an http or https URL"));
        }
        let db = self.database_url.as_str();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }
        let redis = self.redis_url.as_str();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(invalid(
                "redis_url",
                "must be empty or start with redis:// or rediss://",
            ));
        }
        if let Some(key) = &self.secret_key {
            crate::crypto::SecretBox::from_base64(key.expose())
                .map_err(|e| invalid("secret_key", e.to_string()))?;
        }
        if !(1..=3600).contains(&self.connections.body_read_timeout_secs) {
            return Err(invalid(
                "connections.body_read_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(100..=60_000).contains(&self.wechat.timeout_ms) {
            return Err(invalid(
                "wechat.timeout_ms",
                "must be between 100 and 60000",
            ));
        }
        let link = &self.wechat.open_link;
        if !matches!(link.env_version.as_str(), "release" | "trial" | "develop") {
            return Err(invalid(
                "wechat.open_link.env_version",
                "must be release, trial or develop",
            ));
        }
        if link.page.starts_with('/')
            || link.page.contains(['?', '#'])
            || link.page.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                "wechat.open_link.page",
                "must be a Mini Program page path without a leading / or a query, e.g. pages/confirm/confirm",
            ));
        }
        for (i, mp) in self.miniprograms.iter().enumerate() {
            crate::domain::AppId::parse(&mp.appid)
                .map_err(|e| invalid(format!("miniprograms[{i}].appid"), e))?;
            if mp.secret.expose().is_empty() {
                return Err(invalid(
                    format!("miniprograms[{i}].secret"),
                    "must not be empty",
                ));
            }
        }
        for (i, app) in self.apps.iter().enumerate() {
            app.check()
                .map_err(|e| invalid(format!("apps[{i}].{}", e.key), e.message))?;
        }
        Ok(())
    }

    pub fn wechat_timeout(&self) -> Duration {
        Duration::from_millis(self.wechat.timeout_ms)
    }

    /// Where the embedded default keeps its files (the SQLite database's folder).
    pub fn data_dir(&self) -> Option<PathBuf> {
        let path = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path == ":memory:" {
            return None;
        }
        Some(
            Path::new(path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        )
    }

    pub fn uses_redis(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// The issuer of a pool: `{public_url}/oidc` for the default pool.
    pub fn issuer(&self, pool_slug: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        if pool_slug == "default" {
            format!("{base}/oidc")
        } else {
            format!("{base}/pools/{pool_slug}/oidc")
        }
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

/// Environment values are strings; numbers and booleans are recognised so typed keys parse.
fn env_value(v: &str) -> figment::value::Value {
    use figment::value::Value;
    if let Ok(b) = v.parse::<bool>() {
        return Value::from(b);
    }
    if let Ok(n) = v.parse::<u64>() {
        return Value::from(n);
    }
    Value::from(v.to_owned())
}

/// One environment variable as a configuration source: its value under `key`, with the
/// variable's name as the source an error message gives.
#[derive(Clone)]
struct EnvVar {
    name: String,
    key: String,
    value: figment::value::Value,
}

impl EnvVar {
    fn new(name: &str, key: String, value: figment::value::Value) -> Self {
        EnvVar {
            name: name.to_owned(),
            key,
            value,
        }
    }

    /// Whether this variable set `key` (`wechat.timeout_ms`, `apps[0].name`) or a table
    /// holding it.
    fn sets(&self, key: &str) -> bool {
        key == self.key
            || key
                .strip_prefix(self.key.as_str())
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    }
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable").source(figment::Source::Custom(format!(
            "environment variable {}",
            self.name
        )))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::global(&self.key, &self.value).data()
    }
}

fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let mut msg = e.kind.to_string();
            if !key.is_empty() {
                msg = format!("key `{key}`: {msg}");
            }
            if let Some(src) = &e.metadata.and_then(|m| m.source) {
                msg = format!("{msg} (from {src})");
            }
            msg
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("scangate.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "scangate-config-{}",
            crate::crypto::random_token(6)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_bad_environment_variable_is_named() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let e = Config::load_from(None, env("SCANGATE_LISTEN", "nonsense")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("environment variable SCANGATE_LISTEN"),
            "{text}"
        );
        assert!(text.contains("`listen`") && !text.contains(".rs"), "{text}");
        let e = Config::load_from(None, env("SCANGATE_WECHAT__TIMEOUT_MS", "5")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("SCANGATE_WECHAT__TIMEOUT_MS"), "{text}");
        let e = Config::load_from(None, env("DATABASE_URL", "mysql://x")).unwrap_err();
        assert!(
            e.to_string().contains("environment variable DATABASE_URL"),
            "{e}"
        );
    }

    #[test]
    fn no_configuration_is_the_embedded_default() {
        let c = Config::load_from(None, Vec::new()).unwrap();
        assert_eq!(c.database_url, "sqlite://data/scangate.db");
        assert!(!c.uses_redis());
        assert_eq!(c.issuer("default"), "http://127.0.0.1:8080/oidc");
    }

    #[test]
    fn an_unknown_key_is_named_in_the_error() {
        let d = tmp();
        let p = write(&d, "listen = \"127.0.0.1:1\"\nlisen_typo = 1\n");
        let err = Config::load_from(Some(&p), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen_typo"), "{err}");
    }

    #[test]
    fn an_unknown_nested_key_from_the_environment_is_named() {
        let err = Config::load_from(None, vec![("SCANGATE_WECHAT__TIMEOUT".into(), "5".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let d = tmp();
        let p = write(&d, "[wechat]\ntimeout_ms = 1000\n");
        let c = Config::load_from(
            Some(&p),
            vec![
                ("SCANGATE_WECHAT__TIMEOUT_MS".into(), "2500".into()),
                ("REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.wechat.timeout_ms, 2500);
        assert!(c.uses_redis());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let d = tmp();
        let p = write(
            &d,
            "[[apps]]\nclient_id = \"demo\"\nname = \"x\"\nminiprogram = \"nope\"\n",
        );
        let err = Config::load_from(Some(&p), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("apps[0].miniprogram"), "{err}");
        let p = write(&d, "public_url = \"not a url\"\n");
        let err = Config::load_from(Some(&p), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("public_url"), "{err}");
    }

    #[test]
    fn an_allowed_origin_with_a_trailing_slash_stops_start_up_with_the_reason() {
        let d = tmp();
        let p = write(
            &d,
            "[[miniprograms]]\nappid = \"wx0123456789abcdef\"\nsecret = \"s\"\n\
             [[apps]]\nclient_id = \"demo\"\nname = \"x\"\nminiprogram = \"wx0123456789abcdef\"\n\
             redirect_uris = [\"http://127.0.0.1:3000/callback\"]\n\
             allowed_origins = [\"http://127.0.0.1:3000/\"]\n",
        );
        let err = Config::load_from(Some(&p), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("apps[0].allowed_origins[0]"), "{err}");
        assert!(err.contains("no trailing slash"), "{err}");
    }

    #[test]
    fn a_malformed_secret_key_is_refused() {
        let err = Config::load_from(None, vec![("SCANGATE_SECRET_KEY".into(), "short".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret_key"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
    }
}
