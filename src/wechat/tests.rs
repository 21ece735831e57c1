//! The client against the simulator over real HTTP: error mapping, the shared access token,
//! retries, timeouts, and that no secret leaks into an error.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use url::Url;

use super::*;
use crate::clock::Clock;
use crate::tickets::memory::MemoryStore;
use crate::tickets::TicketStore;

const APPID: &str = "wx0123456789abcdef";
const SECRET: &str = "the-app-secret-0123456789";
const OPENID: &str = "oTestOpenId0000000000000001";

/// A simulator served on a free port, and what a client needs to reach it.
struct Fixture {
    sim: Simulator,
    base: Url,
    clock: Clock,
    store: Arc<MemoryStore>,
    creds: Credentials,
}

impl Fixture {
    async fn start() -> Self {
        let clock = Clock::manual();
        let sim = Simulator::with_clock(clock.clone());
        sim.register_app(APPID, SECRET);
        let base = serve(sim.router()).await;
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let creds = Credentials {
            appid: APPID.into(),
            secret: SECRET.into(),
        };
        Self {
            sim,
            base,
            clock,
            store,
            creds,
        }
    }

    /// A client on the shared store, as one instance of ScanGate.
    fn client(&self) -> WechatClient {
        self.client_with_timeout(Duration::from_secs(5))
    }

    fn client_with_timeout(&self, timeout: Duration) -> WechatClient {
        let store: Arc<dyn TicketStore> = self.store.clone();
        WechatClient::new(self.base.clone(), timeout, store)
    }
}

/// Serves `router` on 127.0.0.1 and returns its base URL. The listener is bound before this
/// returns, so requests queue until the server task runs.
async fn serve(router: axum::Router) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Url::parse(&format!("http://{addr}/")).expect("url")
}

#[tokio::test]
async fn code2session_returns_the_users_openid_session_key_and_unionid() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, Some("oUnion1"));
    let session = f
        .client()
        .code2session(&f.creds, &code)
        .await
        .expect("session");
    assert_eq!(session.openid, OPENID);
    assert_eq!(
        Some(session.session_key.clone()),
        f.sim.session_key(APPID, OPENID)
    );
    assert_eq!(session.unionid.as_deref(), Some("oUnion1"));

    // Later codes keep the same key and the unionid.
    let again = f.sim.login_code(APPID, OPENID, None);
    let second = f
        .client()
        .code2session(&f.creds, &again)
        .await
        .expect("session");
    assert_eq!(second.session_key, session.session_key);
    assert_eq!(second.unionid.as_deref(), Some("oUnion1"));
}

#[tokio::test]
async fn code2session_without_a_unionid_leaves_it_empty() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    let session = f
        .client()
        .code2session(&f.creds, &code)
        .await
        .expect("session");
    assert_eq!(session.unionid, None);
}

#[tokio::test]
async fn code2session_rejects_an_unknown_code() {
    let f = Fixture::start().await;
    let err = f
        .client()
        .code2session(&f.creds, "not-a-code")
        .await
        .expect_err("rejected");
    assert!(matches!(err, WechatError::InvalidCode), "{err:?}");
}

#[tokio::test]
async fn code2session_rejects_a_code_used_twice() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    let client = f.client();
    client
        .code2session(&f.creds, &code)
        .await
        .expect("first use");
    let err = client
        .code2session(&f.creds, &code)
        .await
        .expect_err("second use");
    assert!(matches!(err, WechatError::InvalidCode), "{err:?}");
}

#[tokio::test]
async fn code2session_rejects_a_code_older_than_five_minutes() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    f.clock.advance(Duration::from_secs(301));
    let err = f
        .client()
        .code2session(&f.creds, &code)
        .await
        .expect_err("expired");
    assert!(matches!(err, WechatError::InvalidCode), "{err:?}");
}

#[tokio::test]
async fn code2session_with_a_wrong_secret_is_a_configuration_error() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    let creds = Credentials {
        appid: APPID.into(),
        secret: "wrong-secret".into(),
    };
    let err = f
        .client()
        .code2session(&creds, &code)
        .await
        .expect_err("rejected");
    assert!(matches!(err, WechatError::Misconfigured(40125)), "{err:?}");
}

#[tokio::test]
async fn code2session_for_an_unknown_appid_is_a_configuration_error() {
    let f = Fixture::start().await;
    let code = f.sim.login_code("wx1111111111111111", OPENID, None);
    let creds = Credentials {
        appid: "wx1111111111111111".into(),
        secret: SECRET.into(),
    };
    let err = f
        .client()
        .code2session(&creds, &code)
        .await
        .expect_err("rejected");
    assert!(matches!(err, WechatError::Misconfigured(40013)), "{err:?}");
}

#[tokio::test]
async fn code2session_maps_refusals_and_rate_limits() {
    let f = Fixture::start().await;
    let client = f.client();
    let code = f.sim.login_code(APPID, OPENID, None);
    f.sim.fail_next("/sns/jscode2session", 40226, 1);
    f.sim.fail_next("sns/jscode2session", 45011, 1);
    let err = client
        .code2session(&f.creds, &code)
        .await
        .expect_err("refused");
    assert!(matches!(err, WechatError::Refused), "{err:?}");
    let err = client
        .code2session(&f.creds, &code)
        .await
        .expect_err("limited");
    assert!(matches!(err, WechatError::RateLimited), "{err:?}");
    // Injected failures do not consume the code.
    client
        .code2session(&f.creds, &code)
        .await
        .expect("code still valid");
}

#[tokio::test]
async fn a_base_url_with_a_path_reaches_the_nested_simulator() {
    let sim = Simulator::new();
    sim.register_app(APPID, SECRET);
    let root = serve(axum::Router::new().nest_service("/_dev/wechat", sim.router())).await;
    let store: Arc<dyn TicketStore> = Arc::new(MemoryStore::new(Clock::System));
    let creds = Credentials {
        appid: APPID.into(),
        secret: SECRET.into(),
    };
    for base in ["_dev/wechat", "_dev/wechat/"] {
        let base = root.join(base).expect("url");
        let client = WechatClient::new(base, Duration::from_secs(5), Arc::clone(&store));
        let code = sim.login_code(APPID, OPENID, None);
        let session = client.code2session(&creds, &code).await.expect("session");
        assert_eq!(session.openid, OPENID);
    }
}

#[tokio::test]
async fn twenty_concurrent_callers_fetch_the_access_token_once() {
    let f = Fixture::start().await;
    let client = f.client();
    let tokens = join_all((0..20).map(|_| client.access_token(&f.creds))).await;
    let tokens: Vec<String> = tokens.into_iter().map(|t| t.expect("token")).collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_eq!(f.sim.token_calls(APPID), 1);
}

#[tokio::test]
async fn two_instances_sharing_a_store_fetch_the_access_token_once() {
    let f = Fixture::start().await;
    let (a, b) = (f.client(), f.client());
    let calls = (0..10).flat_map(|_| [a.access_token(&f.creds), b.access_token(&f.creds)]);
    let tokens: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .map(|t| t.expect("token"))
        .collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_eq!(f.sim.token_calls(APPID), 1);
}

#[tokio::test]
async fn the_access_token_is_cached_until_five_minutes_before_it_expires() {
    let f = Fixture::start().await;
    let client = f.client();
    let first = client.access_token(&f.creds).await.expect("token");
    assert_eq!(
        f.store
            .cache_get(&format!("wechat:access_token:{APPID}"))
            .await
            .expect("cache"),
        Some(first.clone())
    );

    f.clock.advance(Duration::from_secs(7200 - 300 - 1));
    assert_eq!(client.access_token(&f.creds).await.expect("token"), first);
    assert_eq!(f.sim.token_calls(APPID), 1);

    f.clock.advance(Duration::from_secs(2));
    let second = client.access_token(&f.creds).await.expect("token");
    assert_ne!(second, first);
    assert_eq!(f.sim.token_calls(APPID), 2);
}

#[tokio::test]
async fn a_revoked_access_token_is_refreshed_and_the_call_retried_once() {
    let f = Fixture::start().await;
    let client = f.client();
    let stale = client.access_token(&f.creds).await.expect("token");
    f.sim.revoke_access_tokens(APPID);

    let code = f.sim.phone_code(APPID, OPENID, "13800138000", "86");
    let info = client
        .phone_number(&f.creds, &code, Some(OPENID))
        .await
        .expect("phone");
    assert_eq!(info.pure_phone_number, "13800138000");
    assert_eq!(f.sim.token_calls(APPID), 2);
    let fresh = client.access_token(&f.creds).await.expect("token");
    assert_ne!(fresh, stale);
}

#[tokio::test]
async fn a_token_that_stays_rejected_is_retried_only_once() {
    let f = Fixture::start().await;
    let client = f.client();
    f.sim
        .fail_next("/wxa/business/getuserphonenumber", 42001, 5);
    let code = f.sim.phone_code(APPID, OPENID, "13800138000", "86");
    let err = client
        .phone_number(&f.creds, &code, None)
        .await
        .expect_err("rejected");
    assert!(
        matches!(err, WechatError::Api { errcode: 42001, .. }),
        "{err:?}"
    );
    assert_eq!(f.sim.token_calls(APPID), 2);
}

#[tokio::test]
async fn token_call_failures_are_configuration_errors() {
    let f = Fixture::start().await;
    let wrong = Credentials {
        appid: APPID.into(),
        secret: "wrong-secret".into(),
    };
    let err = f.client().access_token(&wrong).await.expect_err("rejected");
    assert!(matches!(err, WechatError::Misconfigured(40125)), "{err:?}");

    f.sim.fail_next("/cgi-bin/stable_token", 40001, 1);
    let err = f
        .client()
        .access_token(&f.creds)
        .await
        .expect_err("rejected");
    assert!(matches!(err, WechatError::Misconfigured(40001)), "{err:?}");

    // A failed fetch leaves neither a token nor the lock behind.
    f.client().access_token(&f.creds).await.expect("token");
}

#[tokio::test]
async fn a_busy_reply_twice_then_success_is_retried() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    f.sim.fail_next("/sns/jscode2session", -1, 2);
    let session = f
        .client()
        .code2session(&f.creds, &code)
        .await
        .expect("third attempt");
    assert_eq!(session.openid, OPENID);
}

#[tokio::test]
async fn a_busy_reply_three_times_is_busy() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    f.sim.fail_next("/sns/jscode2session", -1, 3);
    let err = f
        .client()
        .code2session(&f.creds, &code)
        .await
        .expect_err("busy");
    assert!(matches!(err, WechatError::Busy), "{err:?}");
}

#[tokio::test]
async fn phone_number_reports_number_and_country_code() {
    let f = Fixture::start().await;
    let client = f.client();
    let code = f.sim.phone_code(APPID, OPENID, "61234567", "852");
    let info = client
        .phone_number(&f.creds, &code, Some(OPENID))
        .await
        .expect("phone");
    assert_eq!(
        info,
        PhoneInfo {
            phone_number: "+85261234567".into(),
            pure_phone_number: "61234567".into(),
            country_code: "852".into(),
        }
    );
}

#[tokio::test]
async fn phone_codes_are_single_use_and_bound_to_their_user() {
    let f = Fixture::start().await;
    let client = f.client();
    let code = f.sim.phone_code(APPID, OPENID, "13800138000", "86");
    let err = client
        .phone_number(&f.creds, &code, Some("oSomebodyElse"))
        .await
        .expect_err("other user");
    assert!(matches!(err, WechatError::InvalidCode), "{err:?}");

    let code = f.sim.phone_code(APPID, OPENID, "13800138000", "86");
    client
        .phone_number(&f.creds, &code, Some(OPENID))
        .await
        .expect("first use");
    let err = client
        .phone_number(&f.creds, &code, Some(OPENID))
        .await
        .expect_err("second use");
    assert!(matches!(err, WechatError::InvalidCode), "{err:?}");
}

#[tokio::test]
async fn wxacode_unlimit_returns_a_jpeg() {
    let f = Fixture::start().await;
    let req = WxaCodeRequest {
        scene: "r=AbC-12_x".into(),
        page: Some("pages/login/login".into()),
        check_path: Some(false),
        env_version: Some("develop".into()),
        width: Some(280),
        ..WxaCodeRequest::default()
    };
    let (bytes, content_type) = f
        .client()
        .wxacode_unlimit(&f.creds, &req)
        .await
        .expect("image");
    assert_eq!(content_type, "image/jpeg");
    let image =
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("jpeg");
    assert_eq!(image.width(), 280);
}

#[tokio::test]
async fn wxacode_unlimit_reports_a_png_by_its_bytes() {
    let f = Fixture::start().await;
    let req = WxaCodeRequest {
        scene: "abc".into(),
        is_hyaline: Some(true),
        ..WxaCodeRequest::default()
    };
    let (bytes, content_type) = f
        .client()
        .wxacode_unlimit(&f.creds, &req)
        .await
        .expect("image");
    assert_eq!(content_type, "image/png");
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).expect("png");
}

#[tokio::test]
async fn wxacode_unlimit_rejects_bad_scenes_widths_and_versions() {
    let f = Fixture::start().await;
    let client = f.client();
    let cases = [
        (
            WxaCodeRequest {
                scene: String::new(),
                ..Default::default()
            },
            40169,
        ),
        (
            WxaCodeRequest {
                scene: "x".repeat(33),
                ..Default::default()
            },
            40169,
        ),
        (
            WxaCodeRequest {
                scene: "100%".into(),
                ..Default::default()
            },
            40129,
        ),
        (
            WxaCodeRequest {
                scene: "登录".into(),
                ..Default::default()
            },
            40129,
        ),
        (
            WxaCodeRequest {
                scene: "ok".into(),
                width: Some(279),
                ..Default::default()
            },
            40097,
        ),
        (
            WxaCodeRequest {
                scene: "ok".into(),
                env_version: Some("beta".into()),
                ..Default::default()
            },
            40097,
        ),
    ];
    for (req, expected) in cases {
        let err = client
            .wxacode_unlimit(&f.creds, &req)
            .await
            .expect_err("rejected");
        assert!(
            matches!(err, WechatError::Api { errcode, .. } if errcode == expected),
            "{req:?}: {err:?}"
        );
    }
    let longest = WxaCodeRequest {
        scene: "a".repeat(32),
        ..Default::default()
    };
    client
        .wxacode_unlimit(&f.creds, &longest)
        .await
        .expect("32 characters are allowed");
}

#[tokio::test]
async fn a_wechat_that_does_not_answer_is_a_transport_error_within_the_timeout() {
    let f = Fixture::start().await;
    f.sim.set_delay(Some(Duration::from_secs(30)));
    let timeout = Duration::from_millis(300);
    let client = f.client_with_timeout(timeout);
    let started = std::time::Instant::now();
    let err = client
        .code2session(&f.creds, "some-code")
        .await
        .expect_err("timed out");
    assert!(matches!(err, WechatError::Transport(_)), "{err:?}");
    assert!(
        started.elapsed() < timeout * 3,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn errors_never_contain_the_secret_or_the_access_token() {
    let f = Fixture::start().await;
    let client = f.client_with_timeout(Duration::from_millis(300));
    let token = client.access_token(&f.creds).await.expect("token");
    f.sim.set_delay(Some(Duration::from_secs(30)));

    let code = f.sim.phone_code(APPID, OPENID, "13800138000", "86");
    let errors = [
        client
            .phone_number(&f.creds, &code, None)
            .await
            .expect_err("timed out"),
        client
            .code2session(&f.creds, "some-code")
            .await
            .expect_err("timed out"),
    ];
    f.sim.set_delay(None);
    f.sim
        .fail_next("/wxa/business/getuserphonenumber", 48001, 1);
    let errors = errors.into_iter().chain([client
        .phone_number(&f.creds, &code, None)
        .await
        .expect_err("unauthorised")]);
    for err in errors {
        for text in [
            err.to_string(),
            format!("{err:?}"),
            crate::error::AppError::from(err).message(),
        ] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(&token), "{text}");
        }
    }
}

#[tokio::test]
async fn simulated_encrypted_data_decrypts_with_the_session_key_from_code2session() {
    let f = Fixture::start().await;
    let code = f.sim.login_code(APPID, OPENID, None);
    let session = f
        .client()
        .code2session(&f.creds, &code)
        .await
        .expect("session");
    let (data, iv) = f
        .sim
        .encrypt_for(
            APPID,
            OPENID,
            &json!({"purePhoneNumber": "13800138000", "countryCode": "86"}),
        )
        .expect("known user");
    let value = decrypt(&session.session_key, &iv, &data, APPID).expect("decrypts");
    assert_eq!(value["purePhoneNumber"], "13800138000");
    assert_eq!(value["watermark"]["appid"], APPID);

    f.sim.rotate_session_key(APPID, OPENID);
    let (data, iv) = f
        .sim
        .encrypt_for(APPID, OPENID, &json!({"x": 1}))
        .expect("known user");
    assert!(decrypt(&session.session_key, &iv, &data, APPID).is_err());
    assert!(f.sim.encrypt_for(APPID, "oNobody", &json!({})).is_none());
}

#[tokio::test]
async fn the_helper_endpoints_drive_the_simulator_over_http() {
    let f = Fixture::start().await;
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(f.base.join("_sim/login").expect("url"))
        .json(&json!({ "appid": APPID }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let openid = login["openid"].as_str().expect("openid").to_owned();
    let code = login["code"].as_str().expect("code");
    let client = f.client();
    let session = client.code2session(&f.creds, code).await.expect("session");
    assert_eq!(session.openid, openid);

    let phone: serde_json::Value = http
        .post(f.base.join("_sim/phone_code").expect("url"))
        .json(&json!({ "appid": APPID, "openid": openid, "phone": "13900139000" }))
        .send()
        .await
        .expect("phone code")
        .json()
        .await
        .expect("json");
    let info = client
        .phone_number(
            &f.creds,
            phone["code"].as_str().expect("code"),
            Some(&openid),
        )
        .await
        .expect("phone");
    assert_eq!(
        (info.pure_phone_number.as_str(), info.country_code.as_str()),
        ("13900139000", "86")
    );

    let sealed: serde_json::Value = http
        .post(f.base.join("_sim/encrypt").expect("url"))
        .json(&json!({ "appid": APPID, "openid": openid, "data": {"nickName": "Sim"} }))
        .send()
        .await
        .expect("encrypt")
        .json()
        .await
        .expect("json");
    let value = decrypt(
        &session.session_key,
        sealed["iv"].as_str().expect("iv"),
        sealed["encrypted_data"].as_str().expect("data"),
        APPID,
    )
    .expect("decrypts");
    assert_eq!(value["nickName"], "Sim");

    let stats: serde_json::Value = http
        .get(f.base.join("_sim/stats").expect("url"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["token_calls"][APPID], 1);
}

#[tokio::test]
async fn the_plain_token_endpoint_invalidates_the_previous_token() {
    let f = Fixture::start().await;
    let http = reqwest::Client::new();
    let mut url = f.base.join("cgi-bin/token").expect("url");
    url.query_pairs_mut()
        .append_pair("grant_type", "client_credential")
        .append_pair("appid", APPID)
        .append_pair("secret", SECRET);
    let fetch = || async {
        let body: serde_json::Value = http
            .get(url.clone())
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    };
    let first = fetch().await;
    let second = fetch().await;
    assert_ne!(first, second);
    assert_eq!(f.sim.token_calls(APPID), 2);

    // A client holding the first token is told it is not the latest.
    f.store
        .cache_set(
            &format!("wechat:access_token:{APPID}"),
            &first,
            Duration::from_secs(600),
        )
        .await
        .expect("cache");
    let code = f.sim.phone_code(APPID, OPENID, "13800138000", "86");
    f.client()
        .phone_number(&f.creds, &code, None)
        .await
        .expect("refreshed and retried");
    assert_eq!(f.sim.token_calls(APPID), 3);
}

/// A link request for the confirm page that expires `secs` from the fixture's clock.
fn link_request(f: &Fixture, secs: i64) -> LinkRequest {
    LinkRequest {
        path: "pages/confirm/confirm".into(),
        query: "random=AbC-12_xYz0123456789abcd".into(),
        env_version: "trial".into(),
        expire_time: f.clock.now_secs() + secs,
    }
}

#[tokio::test]
async fn url_link_and_url_scheme_open_the_asked_page_until_the_asked_time() {
    let f = Fixture::start().await;
    let client = f.client();
    let req = link_request(&f, 120);
    let link = client.url_link(&f.creds, &req).await.expect("url link");
    let scheme = client.url_scheme(&f.creds, &req).await.expect("url scheme");
    assert!(link.starts_with("https://wxaurl.cn/"), "{link}");
    assert!(scheme.starts_with("weixin://dl/business/?t="), "{scheme}");
    let issued = f.sim.links();
    assert_eq!(issued.len(), 2);
    for (made, kind, url) in [
        (&issued[0], "url_link", &link),
        (&issued[1], "url_scheme", &scheme),
    ] {
        assert_eq!(made.kind, kind);
        assert_eq!(&made.url, url);
        assert_eq!(made.appid, APPID);
        assert_eq!(made.path, req.path);
        assert_eq!(made.query, req.query);
        // The version reached WeChat where each API reads it (the scheme: inside jump_wxa).
        assert_eq!(made.env_version, "trial");
        assert_eq!(made.expire_time, req.expire_time);
    }
}

#[tokio::test]
async fn links_that_expire_within_a_minute_or_after_thirty_days_are_refused() {
    let f = Fixture::start().await;
    let client = f.client();
    for secs in [30, 60, 31 * 86_400] {
        let err = client
            .url_link(&f.creds, &link_request(&f, secs))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, WechatError::Api { errcode: 85401, .. }),
            "{secs}: {err:?}"
        );
    }
    let mut bad_query = link_request(&f, 120);
    bad_query.query = "random=中文".into();
    let err = client
        .url_scheme(&f.creds, &bad_query)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, WechatError::Api { errcode: 40212, .. }),
        "{err:?}"
    );
    assert!(f.sim.links().is_empty());
}

#[tokio::test]
async fn a_link_refusal_keeps_its_errcode() {
    let f = Fixture::start().await;
    f.sim.fail_next("/wxa/generate_urllink", 45009, 1);
    let err = f
        .client()
        .url_link(&f.creds, &link_request(&f, 120))
        .await
        .expect_err("quota");
    assert!(
        matches!(err, WechatError::Api { errcode: 45009, .. }),
        "{err:?}"
    );
}
