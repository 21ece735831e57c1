//! A stand-in for WeChat's server APIs, for tests and `scangate dev`.
//!
//! It speaks WeChat's paths and JSON (reference §11): errors are HTTP 200 with
//! `{"errcode","errmsg"}`, `wx.login` and phone codes are single-use and live five minutes,
//! session keys are real 16-byte AES keys, so `encryptedData` made here decrypts with
//! [`super::decrypt`]. Tests drive it directly ([`Simulator::login_code`], [`Simulator::fail_next`]
//! …); the dev phone page drives it through the JSON helpers under `/_sim/`. URL Links and URL
//! Schemes it makes are recorded with what they open ([`Simulator::links`]), so a test can tell
//! that a page shows exactly the link made for its code.
//!
//! State is in memory behind one mutex; the simulator is cheap to clone and every clone shares
//! it. Time comes from an injected [`Clock`], so expiry can be tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, Millis};

/// How long `wx.login` and phone codes stay redeemable.
const CODE_TTL_MS: Millis = 300_000;
/// The lifetime of an access token.
const TOKEN_TTL_SECS: i64 = 7200;
/// Stable tokens are rotated when less than this remains, as WeChat does.
const STABLE_TOKEN_ROTATE_MS: Millis = 300_000;
/// The characters a getwxacodeunlimit `scene` may contain besides ASCII letters and digits.
const SCENE_PUNCTUATION: &str = "!#$&'()*+,/:;=?@-._~";
/// What a URL Link's or URL Scheme's `query` may contain besides ASCII letters and digits.
const LINK_QUERY_PUNCTUATION: &str = "!#$&'()*+,/:;=?@-._~%";
/// The longest a link's `query` may be.
const LINK_QUERY_MAX: usize = 1024;
/// The furthest ahead a link may expire: 30 days.
const LINK_MAX_LIFE_SECS: i64 = 30 * 86_400;

/// The simulated WeChat platform. Clones share one state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Decides code and token expiry.
    clock: Clock,
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    apps: HashMap<String, App>,
    /// Every live access token (current ones and expired-but-not-replaced ones) by value.
    tokens: HashMap<String, IssuedToken>,
    /// Injected failures: path → errcodes to answer with, first one next.
    failures: HashMap<String, VecDeque<i64>>,
    /// A pause before every WeChat API reply, to provoke client timeouts.
    delay: Option<Duration>,
    /// Calls received per API path, failed ones included.
    calls: HashMap<String, usize>,
    /// Every URL Link and URL Scheme made, oldest first.
    links: Vec<IssuedLink>,
}

/// A URL Link or URL Scheme the simulator made, with what it opens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IssuedLink {
    /// The Mini Program it opens.
    pub appid: String,
    /// `url_link` or `url_scheme`.
    pub kind: &'static str,
    /// `https://wxaurl.cn/…` or `weixin://dl/business/?t=…`.
    pub url: String,
    /// The page it opens (empty: the home page).
    pub path: String,
    pub query: String,
    pub env_version: String,
    /// Unix seconds after which it opens nothing.
    pub expire_time: i64,
}

/// One Mini Program as WeChat knows it.
#[derive(Default)]
struct App {
    /// Set by [`Simulator::register_app`]; an app known only through minted codes has none and
    /// every API call for it fails with 40013.
    secret: Option<String>,
    /// Users by openid.
    users: HashMap<String, User>,
    /// Minted `wx.login` codes, kept after use until they expire so reuse reports 40163.
    login_codes: HashMap<String, Code<String>>,
    /// Minted phone codes.
    phone_codes: HashMap<String, Code<PhoneGrant>>,
    /// The token `/cgi-bin/token` issued last (each fetch replaces it).
    plain_token: Option<String>,
    /// The token `/cgi-bin/stable_token` hands out until it nears expiry.
    stable_token: Option<String>,
    /// Calls to either token endpoint naming this appid.
    token_calls: usize,
    /// Phone numbers WeChat will still sell this Mini Program; `None`: no limit. At zero,
    /// getuserphonenumber answers 1400001 (the quota is exhausted), as the real one does.
    phone_quota: Option<u64>,
}

struct User {
    /// Base64 of 16 random bytes, as code2Session returns it.
    session_key: String,
    /// Present when the Mini Program is bound to an Open Platform account.
    unionid: Option<String>,
}

/// A single-use code that carries `T` until `expires_at`.
struct Code<T> {
    /// What redeeming the code reveals.
    grant: T,
    /// Minting time plus five minutes; after it the code reads as unknown.
    expires_at: Millis,
    /// Set on first redemption, so a second one reports "code been used".
    used: bool,
}

/// What a phone code reveals.
#[derive(Clone)]
struct PhoneGrant {
    /// The user the code was minted for; a request naming another openid is refused.
    openid: String,
    /// The number without country prefix.
    pure_phone: String,
    /// Digits only, e.g. `86`.
    country_code: String,
}

/// A live access token.
struct IssuedToken {
    /// The Mini Program it acts for.
    appid: String,
    /// After this, calls with the token fail with 42001.
    expires_at: Millis,
}

/// Why a code could not be redeemed.
enum Redeem {
    Unknown,
    Used,
}

impl<T> Code<T> {
    fn new(grant: T, now: Millis) -> Self {
        Self {
            grant,
            expires_at: now + CODE_TTL_MS,
            used: false,
        }
    }
}

/// Redeems `code` once; expired and unknown codes look the same, as they do on WeChat.
fn redeem<T: Clone>(
    codes: &mut HashMap<String, Code<T>>,
    code: &str,
    now: Millis,
) -> Result<T, Redeem> {
    let entry = codes
        .get_mut(code)
        .filter(|c| c.expires_at > now)
        .ok_or(Redeem::Unknown)?;
    if entry.used {
        return Err(Redeem::Used);
    }
    entry.used = true;
    Ok(entry.grant.clone())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes
}

fn new_session_key() -> String {
    STANDARD.encode(random_bytes::<16>())
}

/// A random openid shaped like WeChat's: `o` and 27 URL-safe characters.
fn new_openid() -> String {
    let tail: String = crate::crypto::random_token(21).chars().take(27).collect();
    format!("o{tail}")
}

/// A request id for errmsg, like `652d44d0-1d0af18b-5b069232`.
fn rid() -> String {
    let b = random_bytes::<12>();
    format!(
        "{}-{}-{}",
        hex::encode(&b[..4]),
        hex::encode(&b[4..8]),
        hex::encode(&b[8..])
    )
}

/// WeChat's wording for the errcodes the simulator produces.
fn errmsg(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40097 => "invalid args",
        40125 => "invalid appsecret",
        40129 => "invalid scene",
        40163 => "code been used",
        40169 => "invalid length for scene, or the data is not json string",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code",
        41030 => "invalid page",
        40165 => "invalid path",
        40212 => "invalid query",
        44990 => "reach max api second frequence limit",
        48001 => "api unauthorized",
        85079 => "miniprogram has no online release",
        85401 => "time limit between 1min and 30days",
        85402 => "invalid expire_interval",
        42001 => "access_token expired",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit",
        47001 => "data format error",
        1400001 => "phone number quota exhausted",
        _ => "simulated error",
    }
}

/// A reply with WeChat's JSON content type.
fn wechat_json(body: &Value) -> Response {
    (
        [(CONTENT_TYPE, "application/json; encoding=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// WeChat's error reply: HTTP 200, errcode and an errmsg ending in a request id.
fn wechat_error(errcode: i64) -> Response {
    wechat_json(&json!({
        "errcode": errcode,
        "errmsg": format!("{}, rid: {}", errmsg(errcode), rid()),
    }))
}

fn reply(result: Result<Value, i64>) -> Response {
    match result {
        Ok(body) => wechat_json(&body),
        Err(errcode) => wechat_error(errcode),
    }
}

/// A query or body field that is present and not empty.
fn field<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

fn body_str<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether `scene` uses only the characters getwxacodeunlimit accepts.
fn scene_chars_ok(scene: &str) -> bool {
    scene
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SCENE_PUNCTUATION.contains(c))
}

/// What a URL Link or URL Scheme request asks to open, checked as WeChat does: `target` holds
/// `path`, `query` and `env_version` (the body itself for a URL Link, its `jump_wxa` for a
/// URL Scheme), `body` the expiry.
fn link_ask(
    target: &Value,
    body: &Value,
    now_secs: i64,
) -> Result<(String, String, String, i64), i64> {
    let text = |name: &str| match target.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(47001),
    };
    let path = text("path")?;
    if path.contains(['?', '#']) {
        return Err(40165);
    }
    let query = text("query")?;
    if query.len() > LINK_QUERY_MAX
        || !query
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || LINK_QUERY_PUNCTUATION.contains(c))
    {
        return Err(40212);
    }
    let env_version = match text("env_version")?.as_str() {
        "" => "release".to_owned(),
        e @ ("release" | "trial" | "develop") => e.to_owned(),
        _ => return Err(40097),
    };
    let number = |name: &str| body.get(name).and_then(Value::as_i64);
    let expire_time = match number("expire_type").unwrap_or(0) {
        0 => {
            let at = number("expire_time").ok_or(85401)?;
            if at <= now_secs + 60 || at > now_secs + LINK_MAX_LIFE_SECS {
                return Err(85401);
            }
            at
        }
        1 => {
            let days = number("expire_interval").ok_or(85402)?;
            if !(1..=30).contains(&days) {
                return Err(85402);
            }
            now_secs + days * 86_400
        }
        _ => return Err(40097),
    };
    Ok((path, query, env_version, expire_time))
}

/// Eleven random letters and digits, as WeChat's link ids look.
fn link_id() -> String {
    use rand::Rng as _;
    rand::rngs::OsRng
        .sample_iter(rand::distributions::Alphanumeric)
        .take(11)
        .map(char::from)
        .collect()
}

/// A square image that looks like a Mini Program code and derives from `scene`: a disc of
/// cells in the line colour (their pattern from the scene's SHA-256), three round eyes at the
/// top-left, top-right and bottom-left, and a light grey centre where WeChat puts the Mini
/// Program's avatar. JPEG normally; PNG with a transparent background when `hyaline`
/// (WeChat's content type for that case is unconfirmed, so the simulator sends the harder
/// case: PNG bytes labelled `image/jpeg`).
pub fn wxacode_image(
    scene: &str,
    width: u32,
    line: [u8; 3],
    hyaline: bool,
) -> Result<Vec<u8>, image::ImageError> {
    const SECTORS: f32 = 48.0;
    let digest = Sha256::digest(scene.as_bytes());
    let w = width as f32;
    // Some(colour) inside the code, None for the background.
    let paint = |x: u32, y: u32| -> Option<[u8; 3]> {
        let u = (x as f32 + 0.5) / w - 0.5;
        let v = (y as f32 + 0.5) / w - 0.5;
        let r = (u * u + v * v).sqrt();
        if r > 0.48 {
            return None;
        }
        if r < 0.2 {
            return Some([0xe8, 0xe8, 0xe8]);
        }
        for (ex, ey) in [(-0.27f32, -0.27f32), (0.27, -0.27), (-0.27, 0.27)] {
            let d = ((u - ex).powi(2) + (v - ey).powi(2)).sqrt();
            if d < 0.1 {
                return Some(if (0.045..=0.07).contains(&d) {
                    [255; 3]
                } else {
                    line
                });
            }
        }
        let ring = ((r - 0.2) / 0.04) as usize;
        let sector = ((v.atan2(u) / std::f32::consts::TAU + 0.5) * SECTORS) as usize;
        let i = ring * SECTORS as usize + sector;
        let dark = (digest[(i / 8) % digest.len()] >> (i % 8)) & 1 == 1;
        Some(if dark { line } else { [255; 3] })
    };
    let mut out = Vec::new();
    if hyaline {
        let img = image::RgbaImage::from_fn(width, width, |x, y| match paint(x, y) {
            Some([r, g, b]) => image::Rgba([r, g, b, 255]),
            None => image::Rgba([255, 255, 255, 0]),
        });
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)?;
    } else {
        let img = image::RgbImage::from_fn(width, width, |x, y| {
            image::Rgb(paint(x, y).unwrap_or([255; 3]))
        });
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)?;
    }
    Ok(out)
}

/// What a valid getwxacodeunlimit request asks for.
struct WxaCodeAsk {
    scene: String,
    width: u32,
    line: [u8; 3],
    hyaline: bool,
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator {
    /// A simulator on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Clock::System)
    }

    /// A simulator whose codes and tokens expire by `clock` (a manual clock in tests).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Makes `appid` a Mini Program whose AppSecret is `secret`.
    pub fn register_app(&self, appid: &str, secret: &str) {
        self.state()
            .apps
            .entry(appid.to_owned())
            .or_default()
            .secret = Some(secret.to_owned());
    }

    /// What `wx.login` would give `openid` in `appid`: a fresh single-use code. The user and
    /// their session key are created on first use; later codes keep the key (see
    /// [`Simulator::rotate_session_key`]). A `unionid` given once sticks to the user.
    pub fn login_code(&self, appid: &str, openid: &str, unionid: Option<&str>) -> String {
        let now = self.now();
        let mut state = self.state();
        let app = state.apps.entry(appid.to_owned()).or_default();
        let user = app.users.entry(openid.to_owned()).or_insert_with(|| User {
            session_key: new_session_key(),
            unionid: None,
        });
        if let Some(unionid) = unionid {
            user.unionid = Some(unionid.to_owned());
        }
        app.login_codes.retain(|_, c| c.expires_at > now);
        let code = crate::crypto::random_token(24);
        app.login_codes
            .insert(code.clone(), Code::new(openid.to_owned(), now));
        code
    }

    /// Gives the user a new session key, as a later `wx.login` may; the old one stops working.
    pub fn rotate_session_key(&self, appid: &str, openid: &str) {
        if let Some(user) = self
            .state()
            .apps
            .get_mut(appid)
            .and_then(|a| a.users.get_mut(openid))
        {
            user.session_key = new_session_key();
        }
    }

    /// The user's current session key, for tests that build legacy encrypted data themselves.
    pub fn session_key(&self, appid: &str, openid: &str) -> Option<String> {
        let state = self.state();
        state
            .apps
            .get(appid)?
            .users
            .get(openid)
            .map(|u| u.session_key.clone())
    }

    /// What the getPhoneNumber button would give `openid`: a single-use code for the number.
    pub fn phone_code(
        &self,
        appid: &str,
        openid: &str,
        pure_phone: &str,
        country_code: &str,
    ) -> String {
        let now = self.now();
        let mut state = self.state();
        let app = state.apps.entry(appid.to_owned()).or_default();
        app.phone_codes.retain(|_, c| c.expires_at > now);
        let code = crate::crypto::random_token(24);
        let grant = PhoneGrant {
            openid: openid.to_owned(),
            pure_phone: pure_phone.to_owned(),
            country_code: country_code.to_owned(),
        };
        app.phone_codes.insert(code.clone(), Code::new(grant, now));
        code
    }

    /// `encryptedData` and `iv` of `data` for the user, as the Mini Program would receive them:
    /// a `watermark {appid, timestamp}` is added to an object that has none, and the result is
    /// encrypted with the user's current session key and a random iv. `None` for an unknown
    /// user.
    pub fn encrypt_for(&self, appid: &str, openid: &str, data: &Value) -> Option<(String, String)> {
        let session_key = self.session_key(appid, openid)?;
        let mut data = data.clone();
        if let Some(object) = data.as_object_mut() {
            if !object.contains_key("watermark") {
                let watermark = json!({ "appid": appid, "timestamp": self.now().div_euclid(1000) });
                object.insert("watermark".into(), watermark);
            }
        }
        let iv = random_bytes::<16>();
        let encrypted =
            super::crypt::encrypt(&session_key, iv, data.to_string().as_bytes()).ok()?;
        Some((encrypted, STANDARD.encode(iv)))
    }

    /// Calls to `/cgi-bin/token` and `/cgi-bin/stable_token` naming `appid`, failed ones
    /// included.
    pub fn token_calls(&self, appid: &str) -> usize {
        self.state().apps.get(appid).map_or(0, |a| a.token_calls)
    }

    /// Calls received at `path` (e.g. `/wxa/getwxacodeunlimit`), failed ones included.
    pub fn calls(&self, path: &str) -> usize {
        let path = format!("/{}", path.trim_start_matches('/'));
        self.state().calls.get(&path).copied().unwrap_or(0)
    }

    /// Every URL Link and URL Scheme made so far, oldest first.
    pub fn links(&self) -> Vec<IssuedLink> {
        self.state().links.clone()
    }

    /// Answers the next `times` calls to `path` (e.g. `/sns/jscode2session`) with `errcode`
    /// before looking at them. Appends to failures already queued for that path.
    pub fn fail_next(&self, path: &str, errcode: i64, times: usize) {
        let path = format!("/{}", path.trim_start_matches('/'));
        let mut state = self.state();
        state
            .failures
            .entry(path)
            .or_default()
            .extend(std::iter::repeat_n(errcode, times));
    }

    /// How many more phone numbers `appid` may get (`None`: no limit); at zero every phone
    /// code is refused with 1400001, WeChat's "quota exhausted".
    pub fn set_phone_quota(&self, appid: &str, remaining: Option<u64>) {
        self.state()
            .apps
            .entry(appid.to_owned())
            .or_default()
            .phone_quota = remaining;
    }

    /// Pauses every WeChat API reply by `delay` (`None` to stop).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.state().delay = delay;
    }

    /// Invalidates every access token of `appid`, as a forced refresh elsewhere would: calls
    /// with them fail with 40001 and the next token request gets a new one.
    pub fn revoke_access_tokens(&self, appid: &str) {
        let mut state = self.state();
        state.tokens.retain(|_, t| t.appid != appid);
        if let Some(app) = state.apps.get_mut(appid) {
            app.plain_token = None;
            app.stable_token = None;
        }
    }

    /// WeChat's API under its real paths, plus the `/_sim/` helpers of the dev phone page.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/sns/jscode2session", get(jscode2session_get))
            .route("/cgi-bin/token", get(token_get))
            .route("/cgi-bin/stable_token", post(stable_token_post))
            .route("/wxa/business/getuserphonenumber", post(phone_number_post))
            .route("/wxa/getwxacodeunlimit", post(wxacode_unlimit_post))
            .route("/wxa/generate_urllink", post(url_link_post))
            .route("/wxa/generatescheme", post(url_scheme_post))
            .route("/_sim/login", post(sim_login_post))
            .route("/_sim/phone_code", post(sim_phone_code_post))
            .route("/_sim/encrypt", post(sim_encrypt_post))
            .route("/_sim/phone_quota", post(sim_phone_quota_post))
            .route("/_sim/stats", get(sim_stats_get))
            .route("/_sim/links", get(sim_links_get))
            .route("/_sim/fail_next", post(sim_fail_next_post))
            .with_state(self.clone())
    }

    /// What every API handler does first: the configured delay, then an injected failure.
    async fn intercept(&self, path: &str) -> Option<i64> {
        *self.state().calls.entry(path.to_owned()).or_default() += 1;
        let delay = self.state().delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.state()
            .failures
            .get_mut(path)
            .and_then(VecDeque::pop_front)
    }

    /// The registered app `appid`, checked against `secret`.
    fn app_with_secret<'s>(
        state: &'s mut SimState,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<&'s mut App, i64> {
        let appid = appid.ok_or(41002)?;
        let secret = secret.ok_or(41004)?;
        let app = state
            .apps
            .get_mut(appid)
            .filter(|a| a.secret.is_some())
            .ok_or(40013)?;
        let expected = app.secret.as_deref().unwrap_or_default();
        if !crate::crypto::constant_time_eq(expected, secret) {
            return Err(40125);
        }
        Ok(app)
    }

    fn count_token_call(&self, appid: Option<&str>) {
        let mut state = self.state();
        if let Some(app) = appid.and_then(|a| state.apps.get_mut(a)) {
            app.token_calls += 1;
        }
    }

    fn jscode2session(&self, q: &HashMap<String, String>) -> Result<Value, i64> {
        let now = self.now();
        let mut state = self.state();
        let app = Self::app_with_secret(&mut state, field(q, "appid"), field(q, "secret"))?;
        let code = field(q, "js_code").ok_or(41008)?;
        if field(q, "grant_type") != Some("authorization_code") {
            return Err(40002);
        }
        let openid = redeem(&mut app.login_codes, code, now).map_err(|e| match e {
            Redeem::Unknown => 40029,
            Redeem::Used => 40163,
        })?;
        let user = app.users.get(&openid).ok_or(40029)?;
        let mut body = json!({ "openid": openid, "session_key": user.session_key });
        if let Some(unionid) = &user.unionid {
            body["unionid"] = json!(unionid);
        }
        Ok(body)
    }

    /// Issues a token for `appid`, replacing `old` if given.
    fn issue_token(state: &mut SimState, appid: &str, old: Option<String>, now: Millis) -> String {
        if let Some(old) = old {
            state.tokens.remove(&old);
        }
        let token = crate::crypto::random_token(96);
        state.tokens.insert(
            token.clone(),
            IssuedToken {
                appid: appid.to_owned(),
                expires_at: now + TOKEN_TTL_SECS * 1000,
            },
        );
        token
    }

    /// `GET /cgi-bin/token`: every call issues a new token and invalidates the previous one.
    fn token(&self, q: &HashMap<String, String>) -> Result<Value, i64> {
        let now = self.now();
        let mut state = self.state();
        if field(q, "grant_type") != Some("client_credential") {
            return Err(40002);
        }
        let appid = field(q, "appid");
        let app = Self::app_with_secret(&mut state, appid, field(q, "secret"))?;
        let old = app.plain_token.take();
        let appid = appid.unwrap_or_default();
        let token = Self::issue_token(&mut state, appid, old, now);
        if let Some(app) = state.apps.get_mut(appid) {
            app.plain_token = Some(token.clone());
        }
        Ok(json!({ "access_token": token, "expires_in": TOKEN_TTL_SECS }))
    }

    /// `POST /cgi-bin/stable_token`: the same token while more than five minutes remain,
    /// unless `force_refresh`.
    fn stable_token(&self, body: &Value) -> Result<Value, i64> {
        let now = self.now();
        let mut state = self.state();
        if body_str(body, "grant_type") != Some("client_credential") {
            return Err(40002);
        }
        let appid = body_str(body, "appid");
        let app = Self::app_with_secret(&mut state, appid, body_str(body, "secret"))?;
        let force = body
            .get("force_refresh")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let current = app.stable_token.clone();
        let remaining = current
            .as_ref()
            .and_then(|t| state.tokens.get(t))
            .map_or(0, |t| t.expires_at - now);
        if let (Some(token), false) = (&current, force || remaining < STABLE_TOKEN_ROTATE_MS) {
            return Ok(json!({ "access_token": token, "expires_in": remaining / 1000 }));
        }
        let appid = appid.unwrap_or_default();
        let token = Self::issue_token(&mut state, appid, current, now);
        if let Some(app) = state.apps.get_mut(appid) {
            app.stable_token = Some(token.clone());
        }
        Ok(json!({ "access_token": token, "expires_in": TOKEN_TTL_SECS }))
    }

    /// The appid a live `access_token` belongs to.
    fn check_token(
        state: &SimState,
        q: &HashMap<String, String>,
        now: Millis,
    ) -> Result<String, i64> {
        let token = field(q, "access_token").ok_or(41001)?;
        let issued = state.tokens.get(token).ok_or(40001)?;
        if issued.expires_at <= now {
            return Err(42001);
        }
        Ok(issued.appid.clone())
    }

    fn phone_number(&self, q: &HashMap<String, String>, body: &[u8]) -> Result<Value, i64> {
        let now = self.now();
        let mut state = self.state();
        let appid = Self::check_token(&state, q, now)?;
        let body: Value = serde_json::from_slice(body).map_err(|_| 47001)?;
        let code = body_str(&body, "code").ok_or(41008)?;
        let app = state.apps.get_mut(&appid).ok_or(40013)?;
        if app.phone_quota == Some(0) {
            return Err(1400001);
        }
        let grant = redeem(&mut app.phone_codes, code, now).map_err(|_| 40029)?;
        if body_str(&body, "openid").is_some_and(|o| o != grant.openid) {
            return Err(40029);
        }
        if let Some(left) = app.phone_quota.as_mut() {
            *left -= 1;
        }
        let phone_number = if grant.country_code == "86" {
            grant.pure_phone.clone()
        } else {
            format!("+{}{}", grant.country_code, grant.pure_phone)
        };
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone_number,
                "purePhoneNumber": grant.pure_phone,
                "countryCode": grant.country_code,
                "watermark": { "timestamp": now.div_euclid(1000), "appid": appid },
            },
        }))
    }

    /// generateUrlLink and generateScheme: checks the request, makes the link and records it.
    fn link(
        &self,
        q: &HashMap<String, String>,
        body: &[u8],
        kind: &'static str,
    ) -> Result<Value, i64> {
        let now = self.now();
        let mut state = self.state();
        let appid = Self::check_token(&state, q, now)?;
        let body: Value = serde_json::from_slice(body).map_err(|_| 47001)?;
        let now_secs = now.div_euclid(1000);
        let (target, field, url) = if kind == "url_link" {
            (
                &body,
                "url_link",
                format!("https://wxaurl.cn/{}", link_id()),
            )
        } else {
            // The version belongs inside jump_wxa; beside it WeChat cannot read the body.
            if body.get("env_version").is_some() {
                return Err(47001);
            }
            let target = body
                .get("jump_wxa")
                .filter(|j| j.is_object())
                .ok_or(47001)?;
            (
                target,
                "openlink",
                format!("weixin://dl/business/?t={}", link_id()),
            )
        };
        let (path, query, env_version, expire_time) = link_ask(target, &body, now_secs)?;
        state.links.push(IssuedLink {
            appid,
            kind,
            url: url.clone(),
            path,
            query,
            env_version,
            expire_time,
        });
        Ok(json!({ "errcode": 0, "errmsg": "ok", field: url }))
    }

    /// Validates a getwxacodeunlimit request.
    fn wxacode_request(&self, q: &HashMap<String, String>, body: &[u8]) -> Result<WxaCodeAsk, i64> {
        Self::check_token(&self.state(), q, self.now())?;
        let body: Value = serde_json::from_slice(body).map_err(|_| 40169)?;
        let scene = body
            .get("scene")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if scene.is_empty() || scene.chars().count() > 32 {
            return Err(40169);
        }
        if !scene_chars_ok(scene) {
            return Err(40129);
        }
        if let Some(page) = body.get("page") {
            let page = page.as_str().ok_or(41030)?;
            if page.starts_with('/') || page.contains('?') {
                return Err(41030);
            }
        }
        let env = body
            .get("env_version")
            .map(|v| v.as_str().unwrap_or_default());
        if env.is_some_and(|e| !matches!(e, "release" | "trial" | "develop")) {
            return Err(40097);
        }
        let width = match body.get("width") {
            None => 430,
            Some(w) => w
                .as_u64()
                .filter(|w| (280..=1280).contains(w))
                .ok_or(40097)? as u32,
        };
        let hyaline = body
            .get("is_hyaline")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let line = match body.get("line_color") {
            None => [0, 0, 0],
            Some(c) => {
                let channel = |k: &str| {
                    c.get(k)
                        .and_then(Value::as_u64)
                        .filter(|v| *v <= 255)
                        .map(|v| v as u8)
                        .ok_or(47001)
                };
                [channel("r")?, channel("g")?, channel("b")?]
            }
        };
        Ok(WxaCodeAsk {
            scene: scene.to_owned(),
            width,
            line,
            hyaline,
        })
    }
}

/// code2Session — `GET /sns/jscode2session` (reference §1).
async fn jscode2session_get(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(errcode) = sim.intercept("/sns/jscode2session").await {
        return wechat_error(errcode);
    }
    reply(sim.jscode2session(&q))
}

/// getAccessToken — `GET /cgi-bin/token` (reference §2a).
async fn token_get(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sim.count_token_call(field(&q, "appid"));
    if let Some(errcode) = sim.intercept("/cgi-bin/token").await {
        return wechat_error(errcode);
    }
    reply(sim.token(&q))
}

/// getStableAccessToken — `POST /cgi-bin/stable_token` with a JSON body (reference §2b).
async fn stable_token_post(State(sim): State<Simulator>, body: Bytes) -> Response {
    let body = serde_json::from_slice::<Value>(&body).ok();
    sim.count_token_call(body.as_ref().and_then(|b| body_str(b, "appid")));
    if let Some(errcode) = sim.intercept("/cgi-bin/stable_token").await {
        return wechat_error(errcode);
    }
    match body {
        Some(body) => reply(sim.stable_token(&body)),
        None => wechat_error(47001),
    }
}

/// getPhoneNumber — `POST /wxa/business/getuserphonenumber?access_token=` (reference §3a).
async fn phone_number_post(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(errcode) = sim.intercept("/wxa/business/getuserphonenumber").await {
        return wechat_error(errcode);
    }
    reply(sim.phone_number(&q, &body))
}

/// getUnlimitedQRCode — `POST /wxa/getwxacodeunlimit?access_token=` (reference §4a): image
/// bytes on success, JSON on error.
async fn wxacode_unlimit_post(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(errcode) = sim.intercept("/wxa/getwxacodeunlimit").await {
        return wechat_error(errcode);
    }
    let ask = match sim.wxacode_request(&q, &body) {
        Ok(ask) => ask,
        Err(errcode) => return wechat_error(errcode),
    };
    let made = tokio::task::spawn_blocking(move || {
        wxacode_image(&ask.scene, ask.width, ask.line, ask.hyaline)
    });
    match made.await {
        Ok(Ok(bytes)) => ([(CONTENT_TYPE, "image/jpeg")], bytes).into_response(),
        _ => wechat_error(-1),
    }
}

/// generateUrlLink — `POST /wxa/generate_urllink?access_token=` → `{"url_link"}`.
async fn url_link_post(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(errcode) = sim.intercept("/wxa/generate_urllink").await {
        return wechat_error(errcode);
    }
    reply(sim.link(&q, &body, "url_link"))
}

/// generateScheme — `POST /wxa/generatescheme?access_token=` → `{"openlink"}`.
async fn url_scheme_post(
    State(sim): State<Simulator>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(errcode) = sim.intercept("/wxa/generatescheme").await {
        return wechat_error(errcode);
    }
    reply(sim.link(&q, &body, "url_scheme"))
}

/// A helper's failure: a 4xx with WeChat-style JSON.
fn helper_error(status: StatusCode, errcode: i64) -> Response {
    (
        status,
        Json(json!({ "errcode": errcode, "errmsg": errmsg(errcode) })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct SimLogin {
    appid: String,
    openid: Option<String>,
    unionid: Option<String>,
}

/// `POST /_sim/login {appid, openid?, unionid?}` → `{code, openid}`: `wx.login` for the dev
/// phone page, a new random user when `openid` is absent.
async fn sim_login_post(State(sim): State<Simulator>, Json(req): Json<SimLogin>) -> Response {
    let openid = req
        .openid
        .filter(|o| !o.is_empty())
        .unwrap_or_else(new_openid);
    let code = sim.login_code(
        &req.appid,
        &openid,
        req.unionid.as_deref().filter(|u| !u.is_empty()),
    );
    Json(json!({ "code": code, "openid": openid })).into_response()
}

#[derive(Deserialize)]
struct SimPhoneCode {
    appid: String,
    openid: String,
    phone: String,
    country_code: Option<String>,
}

/// `POST /_sim/phone_code {appid, openid, phone, country_code?}` → `{code}`.
async fn sim_phone_code_post(
    State(sim): State<Simulator>,
    Json(req): Json<SimPhoneCode>,
) -> Response {
    let country = req
        .country_code
        .as_deref()
        .filter(|c| !c.is_empty())
        .unwrap_or("86");
    let code = sim.phone_code(&req.appid, &req.openid, &req.phone, country);
    Json(json!({ "code": code })).into_response()
}

#[derive(Deserialize)]
struct SimPhoneQuota {
    appid: String,
    /// `null`: no limit.
    remaining: Option<u64>,
}

/// `POST /_sim/phone_quota {appid, remaining}`: how many phone numbers WeChat still sells the
/// Mini Program (0: every phone code is refused with 1400001).
async fn sim_phone_quota_post(
    State(sim): State<Simulator>,
    Json(req): Json<SimPhoneQuota>,
) -> Response {
    sim.set_phone_quota(&req.appid, req.remaining);
    Json(json!({ "remaining": req.remaining })).into_response()
}

#[derive(Deserialize)]
struct SimEncrypt {
    appid: String,
    openid: String,
    data: Value,
}

/// `POST /_sim/encrypt {appid, openid, data}` → `{encrypted_data, iv}`.
async fn sim_encrypt_post(State(sim): State<Simulator>, Json(req): Json<SimEncrypt>) -> Response {
    match sim.encrypt_for(&req.appid, &req.openid, &req.data) {
        Some((encrypted_data, iv)) => {
            Json(json!({ "encrypted_data": encrypted_data, "iv": iv })).into_response()
        }
        None => helper_error(StatusCode::NOT_FOUND, 40029),
    }
}

/// `GET /_sim/links` → `{"links": [{appid, kind, url, path, query, env_version, expire_time}]}`:
/// every URL Link and URL Scheme made, oldest first.
async fn sim_links_get(State(sim): State<Simulator>) -> Response {
    Json(json!({ "links": sim.links() })).into_response()
}

#[derive(Deserialize)]
struct SimFailNext {
    path: String,
    errcode: i64,
    times: Option<usize>,
}

/// `POST /_sim/fail_next {path, errcode, times?}`: the next `times` (default 1) calls to `path`
/// (e.g. `/wxa/generate_urllink`) are answered with `errcode`, as [`Simulator::fail_next`].
async fn sim_fail_next_post(
    State(sim): State<Simulator>,
    Json(req): Json<SimFailNext>,
) -> Response {
    sim.fail_next(&req.path, req.errcode, req.times.unwrap_or(1));
    Json(json!({ "path": req.path, "errcode": req.errcode })).into_response()
}

/// `GET /_sim/stats` → `{"token_calls": {appid: n}}`.
async fn sim_stats_get(State(sim): State<Simulator>) -> Response {
    let calls: serde_json::Map<String, Value> = sim
        .state()
        .apps
        .iter()
        .map(|(appid, app)| (appid.clone(), json!(app.token_calls)))
        .collect();
    Json(json!({ "token_calls": calls })).into_response()
}
