//! The `/q/{random}` page: what a phone shows when it opens a QR code with something other than
//! WeChat.

use reqwest::header;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};

async fn landing(app: &TestApp, random: &str) -> (reqwest::header::HeaderMap, String) {
    let res = app
        .client
        .get(app.url(&format!("/q/{random}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    (headers, res.text().await.unwrap())
}

fn assert_no_inline_script(html: &str) {
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(open.contains("src="), "inline script: {open}");
        assert!(tag[tag.find('>').unwrap() + 1..].starts_with("</script>"));
    }
    assert!(!html.contains(" onclick="));
    assert!(!html.contains("<style"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_is_bilingual_and_strict() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let qr = app.create_qr().await;
    let random = qr["random"].as_str().unwrap();
    let (headers, html) = landing(&app, random).await;
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(html.contains("请用微信扫码"), "{html}");
    assert!(html.contains("Scan with WeChat"), "{html}");
    assert!(html.contains("data-lang-toggle"));
    assert!(html.contains(&scangate::assets::url("login.css")));
    assert_no_inline_script(&html);
    // Outside dev mode there is no simulator to point at.
    assert!(!html.contains("/_dev/"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dev_mode_the_landing_page_links_to_the_phone_simulator() {
    let app = TestApp::spawn_dev(Backend::Embedded).await;
    let qr = app.create_qr().await;
    let random = qr["random"].as_str().unwrap();
    let (_, html) = landing(&app, random).await;
    assert!(
        html.contains(&format!(r#"href="/_dev/phone?random={random}""#)),
        "{html}"
    );
    assert_no_inline_script(&html);
    // Whatever the path holds, only a well-formed code reaches the link.
    let (_, html) = landing(&app, "%22%3E%3Cscript%3Ex").await;
    assert!(html.contains(r#"href="/_dev/phone?random=""#), "{html}");
    assert!(!html.contains("\"><script>x"));
}
