//! "Open in WeChat" on a phone's browser: the link WeChat makes for a code (URL Link, or URL
//! Scheme as the fallback), handed only to the browser the code is bound to, asked of WeChat
//! once per code however many instances and requests ask; what a spent quota leaves (the QR
//! code alone, never a 500); and the hosted page and the widget in Chromium on a phone.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::compat::{phone_env, site};
use crate::helpers::{assert_error, Backend, TestApp, APPID};
use crate::js::{chromium, run_node};
use crate::miniprogram::mp_env;

both_backends!(
    a_phone_browser_gets_the_link_to_its_code_and_no_other_browser_does,
    concurrent_asks_on_every_instance_call_wechat_once_per_code,
    a_spent_quota_leaves_the_hosted_page_with_its_qr_code,
    a_hosted_page_on_a_phone_carries_the_link_and_on_a_desktop_does_not,
    a_refused_url_link_falls_back_to_the_url_scheme,
    a_code_with_under_a_minute_left_gets_no_link,
    links_turned_off_are_never_offered,
    a_phone_opens_wechat_from_the_hosted_page_and_the_widget,
    the_mini_program_opened_by_the_link_confirms_that_code,
);

pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, \
    like Gecko) Chrome/124.0.0.0 Safari/537.36";
const URL_LINK: &str = "/wxa/generate_urllink";
const URL_SCHEME: &str = "/wxa/generatescheme";

/// A cookie-keeping browser with `user_agent`.
fn browser(user_agent: &str) -> Client {
    Client::builder()
        .cookie_store(true)
        .user_agent(user_agent)
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap()
}

async fn create(app: &TestApp, client: &Client) -> Value {
    let res = client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

async fn open_link(client: &Client, url: &str, bind: Option<&str>) -> reqwest::Response {
    let mut req = client.get(url);
    if let Some(bind) = bind {
        req = req.header("x-scangate-bind", bind);
    }
    req.send().await.unwrap()
}

fn link_url(app: &TestApp, random: &str) -> String {
    app.url(&format!("/api/v1/qrcodes/{random}/open_link"))
}

/// The hosted login of the app `web` (its registered callback), in `lang`.
fn auth_path(lang: &str) -> String {
    format!(
        "/oidc/auth?response_type=code&client_id=web&redirect_uri={}&scope=openid&state=s\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256\
         &ui_locales={lang}",
        urlencode("http://127.0.0.1:3000/callback")
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The hosted page's HTML as `client` gets it.
async fn hosted_page(app: &TestApp, client: &Client) -> String {
    let res = client.get(app.url(&auth_path("en"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

/// The `data-random` and the "Open in WeChat" `href` of a hosted page.
fn page_parts(html: &str) -> (String, Option<String>) {
    let attr = |marker: &str, name: &str| {
        let at = html.find(marker)?;
        let rest = &html[at..];
        let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
        let end = rest[start..].find('"')?;
        Some(rest[start..start + end].replace("&amp;", "&"))
    };
    let random = attr("id=\"qr\"", "data-random").expect("the page shows a code");
    (random, attr("id=\"open-in-wechat\"", "href"))
}

async fn a_phone_browser_gets_the_link_to_its_code_and_no_other_browser_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let phone = browser(IPHONE);
    let qr = create(&app, &phone).await;
    let random = qr["random"].as_str().unwrap();
    let bind = qr["bind_token"].as_str().unwrap();
    assert_eq!(qr["open_link_url"], link_url(&app, random));
    // A desktop browser is not offered one.
    let on_desktop = create(&app, &browser(DESKTOP)).await;
    assert!(on_desktop.get("open_link_url").is_none(), "{on_desktop}");

    let res = open_link(&phone, &link_url(&app, random), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let url = body["url"].as_str().unwrap();
    assert_eq!(body["kind"], "url_link");
    // Exactly the link WeChat made, for the confirm page at this code, expiring with it.
    let made = app.sim.links();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].url, url);
    assert_eq!(made[0].appid, APPID);
    assert_eq!(made[0].path, "pages/confirm/confirm");
    assert_eq!(made[0].query, format!("random={random}"));
    assert_eq!(made[0].env_version, "release");
    let expires_at = app
        .state
        .tickets
        .get(random)
        .await
        .unwrap()
        .unwrap()
        .expires_at;
    assert_eq!(made[0].expire_time, expires_at.div_euclid(1000));
    assert!(
        made[0].expire_time * 1000 <= expires_at,
        "never longer than the code"
    );
    assert_eq!(body["expires_in"], 120);

    // Asked again: the same link, and WeChat is not asked again.
    for _ in 0..3 {
        let again: Value = open_link(&phone, &link_url(&app, random), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(again["url"], url);
    }
    assert_eq!(app.sim.calls(URL_LINK), 1);

    // Another browser with the same code: nothing, unless it holds the bind token.
    let stranger = browser(IPHONE);
    let refused = open_link(&stranger, &link_url(&app, random), None).await;
    assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let bound: Value = open_link(&stranger, &link_url(&app, random), Some(bind))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bound["url"], url);

    // Scanned, the link has nothing left to open.
    let token = app.mp_login(APPID, "o-same-device").await;
    assert_eq!(app.scan(&token, random).await.status(), StatusCode::OK);
    let late = open_link(&phone, &link_url(&app, random), None).await;
    assert_error(late, StatusCode::CONFLICT, "conflict").await;
    let unknown = open_link(&phone, &link_url(&app, "AAAAAAAAAAAAAAAAAAAAAA"), None).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.sim.calls(URL_LINK), 1);

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"scangate_open_links_total{outcome="issued"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"scangate_open_links_total{outcome="reused"} 4"#),
        "{metrics}"
    );
}

async fn concurrent_asks_on_every_instance_call_wechat_once_per_code(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    // Two instances share the ticket store only when it is Redis.
    let b = match backend {
        Backend::Distributed => Some(a.peer().await),
        Backend::Embedded => None,
    };
    let phone = browser(IPHONE);
    for _ in 0..2 {
        let qr = create(&a, &phone).await;
        let random = qr["random"].as_str().unwrap().to_owned();
        let bind = qr["bind_token"].as_str().unwrap().to_owned();
        let asks = (0..8).map(|i| {
            let at = match (&b, i % 2) {
                (Some(b), 1) => b,
                _ => &a,
            };
            let url = link_url(at, &random);
            let (phone, bind) = (phone.clone(), bind.clone());
            async move {
                let res = open_link(&phone, &url, Some(&bind)).await;
                assert_eq!(res.status(), StatusCode::OK);
                res.json::<Value>().await.unwrap()["url"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        });
        let urls = join_all(asks).await;
        assert!(urls.iter().all(|u| u == &urls[0]), "{urls:?}");
    }
    // One call per code, however many asked where.
    assert_eq!(a.sim.calls(URL_LINK), 2);
    assert_eq!(a.sim.links().len(), 2);
}

async fn a_spent_quota_leaves_the_hosted_page_with_its_qr_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sim.fail_next(URL_LINK, 45009, 1);
    let phone = browser(IPHONE);
    let html = hosted_page(&app, &phone).await;
    let (random, link) = page_parts(&html);
    assert!(link.is_none(), "no link when WeChat refused");
    assert!(
        html.contains(r#"id="open-in-wechat-unavailable""#),
        "{html}"
    );
    assert!(html.contains("Open in WeChat is not available right now"));
    assert!(html.contains(&format!("/api/v1/qrcodes/{random}/image.svg")));
    assert_eq!(app.sim.calls(URL_LINK), 1);

    // The quota pauses links of the Mini Program: the next codes do not ask WeChat again.
    let html = hosted_page(&app, &phone).await;
    assert!(page_parts(&html).1.is_none());
    let qr = create(&app, &phone).await;
    let refused = open_link(&phone, qr["open_link_url"].as_str().unwrap(), None).await;
    let body = assert_error(refused, StatusCode::BAD_GATEWAY, "wechat_error").await;
    assert!(
        body["message"].as_str().unwrap().contains("45009"),
        "{body}"
    );
    // The refused code keeps its refusal.
    let first = open_link(&phone, &link_url(&app, &random), None).await;
    assert_error(first, StatusCode::BAD_GATEWAY, "wechat_error").await;
    assert_eq!(app.sim.calls(URL_LINK), 1);

    // A minute on, links are asked for again.
    app.clock.advance(Duration::from_secs(61));
    let html = hosted_page(&app, &phone).await;
    let (random, link) = page_parts(&html);
    let made = app.sim.links();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].query, format!("random={random}"));
    assert_eq!(link.as_deref(), Some(made[0].url.as_str()));
    assert_eq!(app.sim.calls(URL_LINK), 2);
}

async fn a_hosted_page_on_a_phone_carries_the_link_and_on_a_desktop_does_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let html = hosted_page(&app, &browser(IPHONE)).await;
    let (random, link) = page_parts(&html);
    let made = app.sim.links();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].query, format!("random={random}"));
    assert_eq!(link.as_deref(), Some(made[0].url.as_str()));
    // A URL Link is WeChat's web page: a new tab, so that this page keeps following its code.
    assert!(html.contains(r#"target="_blank" rel="noopener""#), "{html}");

    let html = hosted_page(&app, &browser(DESKTOP)).await;
    assert!(page_parts(&html).1.is_none());
    assert!(!html.contains("open-in-wechat-unavailable"));
    assert_eq!(app.sim.calls(URL_LINK), 1);
}

async fn a_refused_url_link_falls_back_to_the_url_scheme(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sim.fail_next(URL_LINK, 48001, 1);
    let phone = browser(IPHONE);
    let qr = create(&app, &phone).await;
    let res = open_link(&phone, qr["open_link_url"].as_str().unwrap(), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["kind"], "url_scheme");
    let url = body["url"].as_str().unwrap();
    assert!(url.starts_with("weixin://dl/business/?t="), "{url}");
    let made = app.sim.links();
    assert_eq!(made.len(), 1);
    assert_eq!((made[0].kind, made[0].url.as_str()), ("url_scheme", url));
    assert_eq!(
        made[0].query,
        format!("random={}", qr["random"].as_str().unwrap())
    );
    assert_eq!((app.sim.calls(URL_LINK), app.sim.calls(URL_SCHEME)), (1, 1));

    // A scheme hands over to WeChat and leaves the page be: no new tab on the hosted page.
    app.sim.fail_next(URL_LINK, 48001, 1);
    let html = hosted_page(&app, &phone).await;
    let link = page_parts(&html).1.expect("a link");
    assert!(link.starts_with("weixin://dl/business/?t="), "{link}");
    assert!(!html.contains(r#"target="_blank""#));
}

async fn a_code_with_under_a_minute_left_gets_no_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let phone = browser(IPHONE);
    let qr = create(&app, &phone).await;
    // 120 s codes: 64 s left is under WeChat's minute and the margin.
    app.clock.advance(Duration::from_secs(56));
    let res = open_link(&phone, qr["open_link_url"].as_str().unwrap(), None).await;
    assert_error(res, StatusCode::GONE, "expired").await;
    assert_eq!(app.sim.calls(URL_LINK), 0);
    app.clock.advance(Duration::from_secs(70));
    let res = open_link(&phone, qr["open_link_url"].as_str().unwrap(), None).await;
    assert_error(res, StatusCode::GONE, "expired").await;
}

async fn links_turned_off_are_never_offered(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.wechat.open_link.enabled = false).await;
    let phone = browser(IPHONE);
    let qr = create(&app, &phone).await;
    assert!(qr.get("open_link_url").is_none(), "{qr}");
    let random = qr["random"].as_str().unwrap();
    let res = open_link(&phone, &link_url(&app, random), None).await;
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    let html = hosted_page(&app, &phone).await;
    assert!(page_parts(&html).1.is_none());
    assert!(!html.contains("open-in-wechat-unavailable"));
    assert_eq!(app.sim.calls(URL_LINK), 0);
}

async fn a_phone_opens_wechat_from_the_hosted_page_and_the_widget(backend: Backend) {
    chromium();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{origin}/callback.html");
    let registered = callback.clone();
    let app = TestApp::spawn_with(backend, |c| {
        let web = c.apps.iter_mut().find(|a| a.client_id == "web").unwrap();
        web.allowed_origins.push(origin.clone());
        web.redirect_uris.push(registered);
    })
    .await;
    site(&app, listener).await;
    let mut env = phone_env(&app);
    env.push(("APP_ID", "web".to_owned()));
    env.push(("SITE", origin));
    env.push(("CALLBACK", callback));
    env.push(("BACKEND", format!("{backend:?}").to_lowercase()));
    let out = run_node("same-device.mjs", &env).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
    for part in [
        "hosted en: ok",
        "hosted zh-CN: ok",
        "noscript: ok",
        "desktop: ok",
        "widget zh-CN: ok",
        "widget en: ok",
        "widget desktop: ok",
        "unavailable en: ok",
        "unavailable zh-CN: ok",
    ] {
        assert!(out.contains(part), "{part}: {out}");
    }
    // Each link the pages showed is exactly the one WeChat made for that code, made once.
    let made = app.sim.links();
    let shown: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| {
            l.strip_prefix("link ")
                .or_else(|| l.strip_prefix("widget-link "))
        })
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(shown.len(), 5, "{out}");
    for (random, url) in &shown {
        let for_code: Vec<_> = made
            .iter()
            .filter(|m| m.query == format!("random={random}"))
            .collect();
        assert_eq!(for_code.len(), 1, "one link for {random}");
        assert_eq!(for_code[0].url, *url);
        assert_eq!(for_code[0].path, "pages/confirm/confirm");
    }
    // Five links, and one refusal: the second refused page was paused, WeChat not asked.
    assert_eq!(app.sim.calls(URL_LINK), 6);
}

async fn the_mini_program_opened_by_the_link_confirms_that_code(backend: Backend) {
    chromium();
    let app = TestApp::spawn(backend).await;
    let out = run_node("miniprogram.mjs", &mp_env(&app, backend, "link").await).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
    assert!(out.lines().any(|l| l == "opened from the link"), "{out}");
    assert_eq!(app.sim.calls(URL_LINK), 1);
}
