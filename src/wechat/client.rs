//! HTTP client for the WeChat server APIs ScanGate calls: code2Session, the stable access
//! token, the phone number, the unlimited Mini Program code, and the URL Link and URL Scheme
//! that open the Mini Program from a phone's browser.
//!
//! WeChat answers errors with HTTP 200 and `{"errcode", "errmsg"}`, so every reply is parsed
//! for `errcode` (absent means 0). Busy replies (-1) are retried a few times with a short
//! exponential backoff. The access token is fetched once for every instance: it lives in the
//! shared [`TicketStore`] cache, a per-appid async mutex keeps this instance to one fetch at a
//! time, and a store lock keeps other instances waiting for the cache instead of calling WeChat
//! as well. A call that reports a stale token drops it from the cache (only if nobody replaced
//! it meanwhile) and is retried once with a fresh one.
//!
//! AppSecrets, session keys and access tokens never reach an error, a log line or a `Debug`
//! output: transport errors lose their URL (whose query holds them) and WeChat's `errmsg` is
//! scrubbed of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use url::Url;

use super::diagnostics::{Diagnostics, TokenState};
use crate::tickets::{StoreError, TicketStore};

/// errcodes that mean the access token we sent is not (or no longer) valid.
const STALE_TOKEN: [i64; 3] = [40001, 40014, 42001];
/// Attempts per call while WeChat answers -1 ("system busy").
const BUSY_ATTEMPTS: u32 = 3;
/// The first pause after a busy reply; doubled before each further attempt.
const BUSY_BACKOFF: Duration = Duration::from_millis(100);
/// A token is dropped from the cache this long before WeChat says it expires (WeChat itself
/// rotates stable tokens five minutes early).
const TOKEN_EARLY_EXPIRY: Duration = Duration::from_secs(300);
/// The shortest time a token is cached, however soon WeChat says it expires.
const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
/// How often an instance waiting for another instance's token fetch looks at the cache.
const TOKEN_POLL: Duration = Duration::from_millis(50);

/// A Mini Program's AppID and AppSecret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub appid: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What code2Session yields. `Debug` never shows the session key.
#[derive(Clone)]
pub struct Session {
    pub openid: String,
    pub session_key: String,
    pub unionid: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("openid", &self.openid)
            .field("session_key", &"<redacted>")
            .field("unionid", &self.unionid)
            .finish()
    }
}

/// A phone number as getuserphonenumber reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneInfo {
    /// With the country prefix for numbers outside mainland China.
    pub phone_number: String,
    /// Without any country prefix.
    pub pure_phone_number: String,
    /// Digits only, e.g. `86`.
    pub country_code: String,
}

/// The body of `POST /wxa/getwxacodeunlimit`; `None` fields take WeChat's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WxaCodeRequest {
    /// Up to 32 characters of `[0-9A-Za-z]` and ``!#$&'()*+,/:;=?@-._~``; the Mini Program
    /// page receives it as its `scene` query parameter.
    pub scene: String,
    /// The page to open, without a leading `/` or a query; the home page when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Whether `page` must exist in the released version (WeChat's default: true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_path: Option<bool>,
    /// `release`, `trial` or `develop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_version: Option<String>,
    /// Image width in pixels, 280..=1280 (WeChat's default: 430).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_color: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_color: Option<LineColor>,
    /// A transparent background.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_hyaline: Option<bool>,
}

/// What a URL Link or URL Scheme opens: a page of the Mini Program with a query, in one of its
/// versions, until `expire_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRequest {
    /// A page path without a query; the home page when empty.
    pub path: String,
    /// Up to 1024 characters of `[0-9A-Za-z]` and ``!#$&'()*+,/:;=?@-._~%``.
    pub query: String,
    /// `release`, `trial` or `develop`; WeChat honours it only outside WeChat.
    pub env_version: String,
    /// Unix seconds after which the link no longer opens anything; WeChat accepts more than a
    /// minute and at most 30 days ahead (85401 otherwise).
    pub expire_time: i64,
}

/// Decimal RGB of the code's lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LineColor {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("the code is invalid, used or expired; call wx.login again")]
    InvalidCode,
    #[error("WeChat refused this user")]
    Refused,
    #[error("WeChat rate limit reached")]
    RateLimited,
    #[error("WeChat is busy")]
    Busy,
    #[error("WeChat rejected our credentials or configuration (errcode {0})")]
    Misconfigured(i64),
    #[error("WeChat could not be reached: {0}")]
    Transport(String),
    /// WeChat answered, but not with what the API promises (no openid, no image, not JSON).
    #[error("WeChat sent an unexpected reply: {0}")]
    BadReply(String),
    /// getPhoneNumber: the Mini Program's paid quota of phone numbers is used up (1400001).
    #[error("the Mini Program's phone number quota is exhausted")]
    PhoneQuotaExhausted,
    #[error("WeChat error {errcode}")]
    Api { errcode: i64, errmsg: String },
    /// The shared token cache failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WechatError> for crate::error::AppError {
    fn from(e: WechatError) -> Self {
        use crate::error::AppError;
        match e {
            WechatError::InvalidCode => AppError::InvalidCode(e.to_string()),
            WechatError::Refused => AppError::Forbidden(e.to_string()),
            WechatError::RateLimited => AppError::RateLimited(e.to_string()),
            WechatError::Store(s) => s.into(),
            // The detail (transport error, unexpected reply) is for the operator's log only.
            other @ (WechatError::Transport(_) | WechatError::BadReply(_)) => {
                tracing::warn!(error = %other, "WeChat call failed");
                AppError::Wechat("WeChat could not be reached or answered unexpectedly".into())
            }
            other => {
                tracing::warn!(error = %other, "WeChat call failed");
                AppError::Wechat(other.to_string())
            }
        }
    }
}

/// Maps WeChat's errcodes (reference §10) to what callers act on.
fn classify(e: WechatError) -> WechatError {
    let WechatError::Api { errcode, errmsg } = e else {
        return e;
    };
    match errcode {
        -1 => WechatError::Busy,
        40029 | 40163 => WechatError::InvalidCode,
        40226 | 50002 => WechatError::Refused,
        // 44990: links made faster than WeChat allows (100 a second).
        44990 | 45009 | 45011 => WechatError::RateLimited,
        1400001 => WechatError::PhoneQuotaExhausted,
        40013 | 40125 | 40164 | 40243 | 41002 | 41004 => WechatError::Misconfigured(errcode),
        _ => WechatError::Api { errcode, errmsg },
    }
}

/// As [`classify`], for the token call itself, where 40001 means a wrong AppSecret.
fn classify_token(e: WechatError) -> WechatError {
    match e {
        WechatError::Api { errcode: 40001, .. } => WechatError::Misconfigured(40001),
        other => classify(other),
    }
}

/// Replaces every occurrence of a secret in `text`.
fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s, "<redacted>"))
}

/// A transport failure described without its URL (whose query holds secrets).
fn transport(e: reqwest::Error, secrets: &[&str]) -> WechatError {
    let timed_out = e.is_timeout();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if timed_out && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    WechatError::Transport(redact(&text, secrets))
}

/// One request to WeChat. `secrets` lists values that must not appear in any error.
struct Call<'a> {
    /// The Mini Program the call is for, under which its errors are recorded.
    appid: String,
    method: Method,
    /// Relative to the API base: no leading `/`.
    path: &'static str,
    query: Vec<(&'static str, &'a str)>,
    /// Sent as JSON when present.
    body: Option<Value>,
    secrets: Vec<&'a str>,
}

/// A successful reply.
enum Reply {
    Json(Value),
    Image {
        bytes: Vec<u8>,
        content_type: String,
    },
}

impl Reply {
    fn into_json(self) -> Result<Value, WechatError> {
        match self {
            Reply::Json(v) => Ok(v),
            Reply::Image { .. } => Err(WechatError::BadReply(
                "an image where JSON was expected".into(),
            )),
        }
    }
}

/// The image type of `bytes` by their magic number.
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        Some("image/png")
    } else {
        None
    }
}

/// Interprets a reply: JSON with a non-zero errcode is [`WechatError::Api`] (errcode 0 or
/// absent is success), image bytes are an image whatever their declared type.
fn parse_reply(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    secrets: &[&str],
) -> Result<Reply, WechatError> {
    let looks_json = content_type.contains("json")
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !looks_json && status.is_success() {
        if let Some(kind) = sniff_image(body) {
            return Ok(Reply::Image {
                bytes: body.to_vec(),
                content_type: kind.to_owned(),
            });
        }
    }
    let parsed = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object);
    let Some(value) = parsed else {
        return Err(if status.is_success() {
            WechatError::BadReply("neither JSON nor an image".into())
        } else {
            WechatError::Transport(format!("HTTP {status}"))
        });
    };
    let errcode = value.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if errcode != 0 {
        let errmsg = value
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(WechatError::Api {
            errcode,
            errmsg: redact(errmsg, secrets),
        });
    }
    if !status.is_success() {
        return Err(WechatError::Transport(format!("HTTP {status}")));
    }
    Ok(Reply::Json(value))
}

/// A string field, or a number written as digits (`countryCode` comes both ways).
fn string_or_number(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `phone_info` of a getuserphonenumber reply.
fn parse_phone_info(reply: &Value) -> Option<PhoneInfo> {
    let info = reply.get("phone_info")?;
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    let pure_phone_number = text("purePhoneNumber").filter(|p| !p.is_empty())?;
    Some(PhoneInfo {
        phone_number: text("phoneNumber").unwrap_or_else(|| pure_phone_number.clone()),
        pure_phone_number,
        country_code: string_or_number(info.get("countryCode")).unwrap_or_default(),
    })
}

fn token_cache_key(appid: &str) -> String {
    format!("wechat:access_token:{appid}")
}

fn token_lock_key(appid: &str) -> String {
    format!("wechat:access_token_lock:{appid}")
}

/// Talks to WeChat (or the simulator) on behalf of every configured Mini Program.
pub struct WechatClient {
    /// WeChat's API root, always ending in `/` so that endpoints join below any path prefix
    /// (the dev simulator lives under `/_dev/wechat/`).
    base: Url,
    /// One connection pool; every request is bounded by `timeout`.
    http: reqwest::Client,
    /// The limit on one request, and the unit of the limits on waiting for a token.
    timeout: Duration,
    /// Holds the access-token cache and lock shared by every instance.
    store: Arc<dyn TicketStore>,
    /// One async mutex per appid, so that concurrent requests on this instance make at most
    /// one token fetch at a time. Grows with the configured Mini Programs only.
    token_fetches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Where calls are counted, when the app records metrics.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Where WeChat's errors and token fetches are recorded for the operator.
    diagnostics: Option<Diagnostics>,
}

impl std::fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatClient")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WechatClient {
    /// `api_base` is `https://api.weixin.qq.com` in production; it may carry a path prefix,
    /// with or without a trailing slash.
    pub fn new(api_base: Url, timeout: Duration, store: Arc<dyn TicketStore>) -> Self {
        let mut base = api_base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would carry the secret-bearing query elsewhere; WeChat never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ScanGate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            base,
            http,
            timeout,
            store,
            token_fetches: Mutex::default(),
            metrics: None,
            diagnostics: None,
        }
    }

    /// Counts every call in `metrics` (by endpoint and errcode, with its latency).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Records WeChat's errors and the access-token fetches in `diagnostics`.
    pub fn with_diagnostics(mut self, diagnostics: Diagnostics) -> Self {
        self.diagnostics = Some(diagnostics);
        self
    }

    /// What the access-token cache holds for `appid` and how its last fetches went: whether
    /// a token is cached now (never the token), when it expires, when it was last fetched and
    /// the last fetch error.
    pub async fn token_state(&self, appid: &str) -> Result<TokenState, WechatError> {
        let cached = self
            .store
            .cache_get(&token_cache_key(appid))
            .await?
            .is_some();
        let recorded = match &self.diagnostics {
            Some(d) => d.token_state(appid).await,
            None => Default::default(),
        };
        Ok(TokenState {
            cached,
            expires_at: recorded.expires_at.filter(|_| cached),
            refreshed_at: recorded.refreshed_at,
            error_at: recorded.error_at,
            error_code: recorded.error_code,
            error_message: recorded.error_message,
        })
    }

    /// code2Session (`GET /sns/jscode2session`): a `wx.login` code → the user's openid,
    /// session key and, when the Mini Program is bound to an Open Platform account, unionid.
    pub async fn code2session(
        &self,
        creds: &Credentials,
        js_code: &str,
    ) -> Result<Session, WechatError> {
        let call = || Call {
            appid: creds.appid.clone(),
            method: Method::GET,
            path: "sns/jscode2session",
            query: vec![
                ("appid", creds.appid.as_str()),
                ("secret", creds.secret.as_str()),
                ("js_code", js_code),
                ("grant_type", "authorization_code"),
            ],
            body: None,
            secrets: vec![creds.secret.as_str(), js_code],
        };
        let reply = self.call(call).await.map_err(classify)?.into_json()?;
        let text = |k: &str| {
            reply
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (Some(openid), Some(session_key)) = (text("openid"), text("session_key")) else {
            return Err(WechatError::BadReply(
                "code2Session without openid or session_key".into(),
            ));
        };
        Ok(Session {
            openid,
            session_key,
            unionid: text("unionid"),
        })
    }

    /// The Mini Program's access token, from the shared cache or, once for all instances,
    /// from `POST /cgi-bin/stable_token`.
    pub async fn access_token(&self, creds: &Credentials) -> Result<String, WechatError> {
        let key = token_cache_key(&creds.appid);
        if let Some(token) = self.store.cache_get(&key).await? {
            return Ok(token);
        }
        let local = self.local_token_mutex(&creds.appid);
        let _one_fetch_here = local.lock().await;

        let lock_key = token_lock_key(&creds.appid);
        let budget = self.fetch_budget();
        let deadline = Instant::now() + budget;
        loop {
            if let Some(token) = self.store.cache_get(&key).await? {
                return Ok(token);
            }
            if let Some(lock) = self.store.lock(&lock_key, budget).await? {
                let result = self.fill_token_cache(creds, &key).await;
                if let Err(e) = self.store.unlock(&lock_key, &lock).await {
                    tracing::warn!(error = %e, "releasing the access token lock failed");
                }
                return result;
            }
            // Another instance is fetching: wait for the cache rather than call WeChat too.
            // If it gives up, its lock is released (or expires) and this loop takes over.
            if Instant::now() >= deadline {
                return Err(WechatError::Transport(
                    "timed out waiting for another instance to fetch the access token".into(),
                ));
            }
            tokio::time::sleep(TOKEN_POLL).await;
        }
    }

    /// getPhoneNumber (`POST /wxa/business/getuserphonenumber`): a phone code from the
    /// Mini Program's button → the user's phone number. With `openid`, WeChat checks that the
    /// code belongs to that user.
    pub async fn phone_number(
        &self,
        creds: &Credentials,
        code: &str,
        openid: Option<&str>,
    ) -> Result<PhoneInfo, WechatError> {
        let mut body = json!({ "code": code });
        if let Some(openid) = openid {
            body["openid"] = json!(openid);
        }
        let reply = self
            .call_with_token(creds, |token| Call {
                appid: creds.appid.clone(),
                method: Method::POST,
                path: "wxa/business/getuserphonenumber",
                query: vec![("access_token", token)],
                body: Some(body.clone()),
                secrets: vec![token],
            })
            .await?
            .into_json()?;
        parse_phone_info(&reply)
            .ok_or_else(|| WechatError::BadReply("getuserphonenumber without phone_info".into()))
    }

    /// getUnlimitedQRCode (`POST /wxa/getwxacodeunlimit`): a Mini Program code image
    /// carrying `scene`. Returns the image bytes and their type (`image/jpeg` or `image/png`,
    /// judged from the bytes).
    pub async fn wxacode_unlimit(
        &self,
        creds: &Credentials,
        req: &WxaCodeRequest,
    ) -> Result<(Vec<u8>, String), WechatError> {
        let body = serde_json::to_value(req)
            .map_err(|e| WechatError::BadReply(format!("request not serialisable: {e}")))?;
        let reply = self
            .call_with_token(creds, |token| Call {
                appid: creds.appid.clone(),
                method: Method::POST,
                path: "wxa/getwxacodeunlimit",
                query: vec![("access_token", token)],
                body: Some(body.clone()),
                secrets: vec![token],
            })
            .await?;
        match reply {
            Reply::Image {
                bytes,
                content_type,
            } => Ok((bytes, content_type)),
            Reply::Json(_) => Err(WechatError::BadReply(
                "JSON where an image was expected".into(),
            )),
        }
    }

    /// generateUrlLink (`POST /wxa/generate_urllink`): an `https://wxaurl.cn/…` link that opens
    /// the Mini Program at `req` from a phone's browser (through WeChat's own landing page) or
    /// inside WeChat. Always a link that expires (`expire_type` 0 at `expire_time`).
    pub async fn url_link(
        &self,
        creds: &Credentials,
        req: &LinkRequest,
    ) -> Result<String, WechatError> {
        let body = json!({
            "path": req.path,
            "query": req.query,
            "env_version": req.env_version,
            "expire_type": 0,
            "expire_time": req.expire_time,
        });
        self.link_call(creds, "wxa/generate_urllink", body, "url_link")
            .await
    }

    /// generateScheme (`POST /wxa/generatescheme`): a `weixin://dl/business/?t=…` link the
    /// phone hands to WeChat. The page, query and version go inside `jump_wxa` (WeChat answers
    /// 47001 to an `env_version` beside it, whatever its documentation's example shows).
    pub async fn url_scheme(
        &self,
        creds: &Credentials,
        req: &LinkRequest,
    ) -> Result<String, WechatError> {
        let body = json!({
            "jump_wxa": {
                "path": req.path,
                "query": req.query,
                "env_version": req.env_version,
            },
            "expire_type": 0,
            "expire_time": req.expire_time,
        });
        self.link_call(creds, "wxa/generatescheme", body, "openlink")
            .await
    }

    /// A link-making call whose reply carries the link in `field`. WeChat's refusals keep their
    /// errcode ([`WechatError::Api`]): whether to try the other kind of link, keep the refusal
    /// or pause depends on which it is.
    async fn link_call(
        &self,
        creds: &Credentials,
        path: &'static str,
        body: Value,
        field: &str,
    ) -> Result<String, WechatError> {
        let reply = self
            .call_with_token_raw(creds, |token| Call {
                appid: creds.appid.clone(),
                method: Method::POST,
                path,
                query: vec![("access_token", token)],
                body: Some(body.clone()),
                secrets: vec![token],
            })
            .await?
            .into_json()?;
        reply
            .get(field)
            .and_then(Value::as_str)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| WechatError::BadReply(format!("{path} without {field}")))
    }

    /// Runs a token-using call; when WeChat calls the token stale, drops it from the cache
    /// and retries once with a fresh one. WeChat's refusals are classified ([`classify`]).
    async fn call_with_token(
        &self,
        creds: &Credentials,
        call: impl Fn(&str) -> Call<'_>,
    ) -> Result<Reply, WechatError> {
        self.call_with_token_raw(creds, call)
            .await
            .map_err(classify)
    }

    /// As [`WechatClient::call_with_token`], with WeChat's refusals left as
    /// [`WechatError::Api`] and their errcode: for callers whose next step depends on it.
    async fn call_with_token_raw(
        &self,
        creds: &Credentials,
        call: impl Fn(&str) -> Call<'_>,
    ) -> Result<Reply, WechatError> {
        let token = self.access_token(creds).await?;
        match self.call(|| call(&token)).await {
            Err(WechatError::Api { errcode, .. }) if STALE_TOKEN.contains(&errcode) => {
                tracing::debug!(errcode, appid = %creds.appid, "access token rejected; refreshing");
                self.store
                    .cache_remove(&token_cache_key(&creds.appid), &token)
                    .await?;
                let fresh = self.access_token(creds).await?;
                self.call(|| call(&fresh)).await
            }
            other => other,
        }
    }

    /// Fetches a token under the store lock and caches it for `expires_in` minus five minutes.
    async fn fill_token_cache(
        &self,
        creds: &Credentials,
        key: &str,
    ) -> Result<String, WechatError> {
        // Another instance may have filled the cache between our look and our lock.
        if let Some(token) = self.store.cache_get(key).await? {
            return Ok(token);
        }
        let body = json!({
            "grant_type": "client_credential",
            "appid": creds.appid,
            "secret": creds.secret,
            "force_refresh": false,
        });
        let call = || Call {
            appid: creds.appid.clone(),
            method: Method::POST,
            path: "cgi-bin/stable_token",
            query: Vec::new(),
            body: Some(body.clone()),
            secrets: vec![creds.secret.as_str()],
        };
        let fetched = self.fetch_token(call, key).await;
        if let Some(d) = &self.diagnostics {
            match &fetched {
                Ok((_, ttl)) => d.refreshed(&creds.appid, *ttl).await,
                Err(e) => d.refresh_failed(&creds.appid, e).await,
            }
        }
        fetched.map(|(token, _)| token).map_err(classify_token)
    }

    /// Calls `stable_token` and caches the token; returns it and how long it is cached. A
    /// refusal keeps WeChat's errcode and errmsg, for the diagnostics to record.
    async fn fetch_token<'a>(
        &self,
        call: impl Fn() -> Call<'a>,
        key: &str,
    ) -> Result<(String, Duration), WechatError> {
        let reply = self.call(call).await?.into_json()?;
        let token = reply
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| WechatError::BadReply("stable_token without access_token".into()))?
            .to_owned();
        let expires_in = reply
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(7200);
        let ttl = Duration::from_secs(expires_in)
            .saturating_sub(TOKEN_EARLY_EXPIRY)
            .max(MIN_TOKEN_TTL);
        self.store.cache_set(key, &token, ttl).await?;
        Ok((token, ttl))
    }

    /// Whether WeChat gives these credentials a token now, asked afresh (`POST
    /// /cgi-bin/stable_token` in normal mode, past the shared cache, which may hold a token
    /// fetched with an earlier secret). An error keeps WeChat's errcode.
    pub async fn check_credentials(&self, creds: &Credentials) -> Result<(), WechatError> {
        let body = json!({
            "grant_type": "client_credential",
            "appid": creds.appid,
            "secret": creds.secret,
            "force_refresh": false,
        });
        let call = || Call {
            appid: creds.appid.clone(),
            method: Method::POST,
            path: "cgi-bin/stable_token",
            query: Vec::new(),
            body: Some(body.clone()),
            secrets: vec![creds.secret.as_str()],
        };
        let reply = self.call(call).await?.into_json()?;
        reply
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|_| ())
            .ok_or_else(|| WechatError::BadReply("stable_token without access_token".into()))
    }

    /// The longest a token fetch can take: every busy attempt timing out, plus the backoff.
    fn fetch_budget(&self) -> Duration {
        let backoff: Duration = (0..BUSY_ATTEMPTS - 1)
            .map(|i| BUSY_BACKOFF * 2u32.pow(i))
            .sum();
        self.timeout * BUSY_ATTEMPTS + backoff
    }

    fn local_token_mutex(&self, appid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.token_fetches.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(appid.to_owned()).or_default())
    }

    /// Sends a call, retrying while WeChat says it is busy (errcode -1).
    async fn call<'a>(&self, call: impl Fn() -> Call<'a>) -> Result<Reply, WechatError> {
        let mut pause = BUSY_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.send(call()).await {
                Err(WechatError::Api { errcode: -1, .. }) if attempt < BUSY_ATTEMPTS => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send(&self, call: Call<'_>) -> Result<Reply, WechatError> {
        let mut url = self.base.join(call.path).map_err(|_| {
            WechatError::Transport("the WeChat API base URL cannot take a path".into())
        })?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let mut request = self.http.request(call.method, url);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let started = std::time::Instant::now();
        let result = async {
            let response = request
                .send()
                .await
                .map_err(|e| transport(e, &call.secrets))?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let body = response
                .bytes()
                .await
                .map_err(|e| transport(e, &call.secrets))?;
            parse_reply(status, &content_type, &body, &call.secrets)
        }
        .await;
        if let (Some(d), Err(WechatError::Api { errcode, errmsg })) = (&self.diagnostics, &result) {
            d.error(&call.appid, *errcode, call.path, errmsg).await;
        }
        if let Some(metrics) = &self.metrics {
            let errcode = match &result {
                Ok(_) => Some(0),
                Err(WechatError::Api { errcode, .. }) => Some(*errcode),
                Err(_) => None,
            };
            metrics.wechat(call.path, errcode, started.elapsed());
        }
        match &result {
            Ok(_) => tracing::debug!(path = call.path, errcode = 0, "WeChat call"),
            Err(WechatError::Api { errcode, .. }) => {
                tracing::debug!(path = call.path, errcode, "WeChat call")
            }
            Err(e) => tracing::debug!(path = call.path, error = %e, "WeChat call failed"),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_or_without_a_path_keep_the_prefix() {
        let store: Arc<dyn TicketStore> = Arc::new(crate::tickets::memory::MemoryStore::new(
            crate::clock::Clock::System,
        ));
        let cases = [
            (
                "https://api.weixin.qq.com",
                "https://api.weixin.qq.com/sns/jscode2session",
            ),
            (
                "https://api.weixin.qq.com/",
                "https://api.weixin.qq.com/sns/jscode2session",
            ),
            (
                "http://h:8080/_dev/wechat",
                "http://h:8080/_dev/wechat/sns/jscode2session",
            ),
            (
                "http://h:8080/_dev/wechat/",
                "http://h:8080/_dev/wechat/sns/jscode2session",
            ),
        ];
        for (base, expected) in cases {
            let base = Url::parse(base).expect("url");
            let client = WechatClient::new(base, Duration::from_secs(1), Arc::clone(&store));
            let url = client.base.join("sns/jscode2session").expect("joins");
            assert_eq!(url.as_str(), expected);
        }
    }

    #[test]
    fn errcodes_map_to_what_callers_act_on() {
        let api = |errcode| WechatError::Api {
            errcode,
            errmsg: String::new(),
        };
        assert!(matches!(classify(api(-1)), WechatError::Busy));
        assert!(matches!(classify(api(40029)), WechatError::InvalidCode));
        assert!(matches!(classify(api(40163)), WechatError::InvalidCode));
        assert!(matches!(classify(api(40226)), WechatError::Refused));
        assert!(matches!(classify(api(50002)), WechatError::Refused));
        assert!(matches!(classify(api(45009)), WechatError::RateLimited));
        assert!(matches!(classify(api(45011)), WechatError::RateLimited));
        assert!(matches!(classify(api(44990)), WechatError::RateLimited));
        for code in [40013, 40125, 40164, 40243, 41002, 41004] {
            assert!(matches!(classify(api(code)), WechatError::Misconfigured(c) if c == code));
        }
        assert!(matches!(
            classify(api(40001)),
            WechatError::Api { errcode: 40001, .. }
        ));
        assert!(matches!(
            classify_token(api(40001)),
            WechatError::Misconfigured(40001)
        ));
        assert!(matches!(
            classify(api(48001)),
            WechatError::Api { errcode: 48001, .. }
        ));
    }

    #[test]
    fn success_replies_may_omit_errcode_or_carry_zero() {
        for body in [
            &br#"{"openid":"o"}"#[..],
            br#"{"errcode":0,"errmsg":"ok","openid":"o"}"#,
        ] {
            let reply = parse_reply(StatusCode::OK, "application/json", body, &[]).expect("ok");
            assert!(matches!(reply, Reply::Json(v) if v["openid"] == "o"));
        }
        let err = parse_reply(
            StatusCode::OK,
            "application/json; encoding=utf-8",
            br#"{"errcode":40029,"errmsg":"invalid code, rid: 1"}"#,
            &[],
        );
        assert!(matches!(err, Err(WechatError::Api { errcode: 40029, .. })));
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0];
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A];
        let reply = parse_reply(StatusCode::OK, "image/jpeg", &png, &[]).expect("image");
        assert!(matches!(reply, Reply::Image { content_type, .. } if content_type == "image/png"));
        let reply = parse_reply(StatusCode::OK, "", &jpeg, &[]).expect("image");
        assert!(matches!(reply, Reply::Image { content_type, .. } if content_type == "image/jpeg"));
        assert!(matches!(
            parse_reply(StatusCode::OK, "text/html", b"<html>", &[]),
            Err(WechatError::BadReply(_))
        ));
        assert!(matches!(
            parse_reply(StatusCode::BAD_GATEWAY, "text/html", b"<html>", &[]),
            Err(WechatError::Transport(_))
        ));
    }

    #[test]
    fn country_code_may_be_a_string_or_a_number() {
        let as_number = json!({"phone_info": {
            "phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": 86}});
        let as_string = json!({"phone_info": {
            "phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": "86"}});
        let expected = PhoneInfo {
            phone_number: "13800138000".into(),
            pure_phone_number: "13800138000".into(),
            country_code: "86".into(),
        };
        assert_eq!(parse_phone_info(&as_number), Some(expected.clone()));
        assert_eq!(parse_phone_info(&as_string), Some(expected));
        assert_eq!(parse_phone_info(&json!({"errcode": 0})), None);
    }

    #[test]
    fn errmsg_is_scrubbed_of_secrets() {
        let err = parse_reply(
            StatusCode::OK,
            "application/json",
            br#"{"errcode":40001,"errmsg":"token TOKEN123 is bad for SECRET9"}"#,
            &["TOKEN123", "SECRET9", ""],
        );
        let Err(WechatError::Api { errmsg, .. }) = err else {
            panic!("expected Api")
        };
        assert_eq!(errmsg, "token <redacted> is bad for <redacted>");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let creds = Credentials {
            appid: "wx1".into(),
            secret: "s3cr3t".into(),
        };
        let session = Session {
            openid: "o".into(),
            session_key: "k3y".into(),
            unionid: None,
        };
        assert!(!format!("{creds:?}").contains("s3cr3t"));
        assert!(!format!("{session:?}").contains("k3y"));
    }
}
