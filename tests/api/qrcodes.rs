//! The PC side: create, follow, bind and exchange.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, cookie_client, Backend, TestApp, APPID};

both_backends!(
    create_returns_every_contract_field,
    a_whole_login_ends_in_one_exchange,
    a_long_poll_returns_as_soon_as_the_code_is_scanned,
    a_long_poll_answers_at_once_when_the_known_status_is_stale,
    events_stream_each_change_and_close_after_confirmation,
    another_browser_never_sees_the_ticket,
    the_bind_token_header_proves_binding,
    apps_without_binding_reveal_the_ticket_to_anyone,
    an_expired_code_reads_expired_and_refuses_a_scan,
    images_are_png_and_svg_of_the_requested_size,
    a_cancelled_code_tells_the_browser,
    a_planted_browser_cookie_is_replaced_not_adopted,
    on_https_the_browser_cookie_is_a_host_only_secure_cookie,
    a_mini_program_user_cancels_only_a_code_they_scanned,
);

async fn create_returns_every_contract_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.starts_with("scangate_browser=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let qr: Value = res.json().await.unwrap();
    let random = qr["random"].as_str().unwrap();
    assert!(random.len() >= 22 && random.len() <= 32, "{random}");
    for field in [
        "expires_at",
        "image_url",
        "scan_url",
        "status_url",
        "events_url",
        "bind_token",
    ] {
        assert!(
            qr[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {qr}"
        );
    }
    assert_eq!(qr["expires_in"], 120);
    assert_eq!(qr["scan_url"], app.url(&format!("/q/{random}")));
    assert_eq!(
        qr["status_url"],
        app.url(&format!("/api/v1/qrcodes/{random}"))
    );
    let status = app.status(&app.client, random).await;
    assert_eq!(status["status"], "pending");
    assert!(status.get("ticket").is_none() && status.get("scanned_by").is_none());
    // Two codes never share a random.
    assert_ne!(app.create_qr().await["random"], qr["random"]);
}

async fn a_whole_login_ends_in_one_exchange(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let qr = app.create_qr().await;
    let random = qr["random"].as_str().unwrap();
    let token = app.mp_login(APPID, "o-alice").await;
    let patched = app
        .client
        .patch(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .json(
            &json!({ "nickname": "Alice", "avatar_url": "https://thirdwx.qlogo.cn/mmopen/a/132" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);

    let scan = app.scan(&token, random).await;
    assert_eq!(scan.status(), StatusCode::OK);
    let scan: Value = scan.json().await.unwrap();
    assert_eq!(scan["app"]["name"], "App web");
    assert_eq!(scan["requester"]["ip"], "127.0.0.1");

    let status = app.status(&app.client, random).await;
    assert_eq!(status["status"], "scanned");
    assert_eq!(
        status["scanned_by"],
        json!({ "nickname": "Alice", "avatar_url": "https://thirdwx.qlogo.cn/mmopen/a/132" })
    );
    assert!(status.get("ticket").is_none());

    assert_eq!(
        app.confirm(&token, random, None).await.status(),
        StatusCode::OK
    );
    let status = app.status(&app.client, random).await;
    assert_eq!(status["status"], "confirmed");
    let ticket = status["ticket"].as_str().unwrap();

    let res = app.exchange(&app.client, ticket).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["user"]["nickname"], "Alice");
    assert_eq!(body["user"]["login_count"], 1);
    assert!(body["id_token"].as_str().unwrap().split('.').count() == 3);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    assert_error(
        app.exchange(&app.client, ticket).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

async fn a_long_poll_returns_as_soon_as_the_code_is_scanned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-bob").await;
    // The page says what it last saw, so a scan that lands before the request does is
    // answered at once rather than waited past.
    let url = app.url(&format!("/api/v1/qrcodes/{random}?wait=30&status=pending"));
    let client = app.client.clone();
    let waiter = tokio::spawn(async move {
        client
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    // The waiter may not have subscribed yet; a scan before it subscribes is seen on its first
    // read (it differs from the known status), after it through the notification. Either way it
    // must answer `scanned` long before its 30 s wait.
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let answer = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("long poll answered")
        .unwrap();
    assert_eq!(answer["status"], "scanned");
}

async fn a_long_poll_answers_at_once_when_the_known_status_is_stale(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-carol").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        app.client
            .get(app.url(&format!("/api/v1/qrcodes/{random}?wait=30&status=pending")))
            .send(),
    )
    .await
    .expect("answered at once")
    .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "scanned");
    let res = app
        .client
        .get(app.url(&format!("/api/v1/qrcodes/{random}?wait=31")))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// Reads SSE `status` events in the background until the stream closes: the task yields them
/// all, and the receiver hears the running count as each arrives.
pub fn follow_events(
    res: reqwest::Response,
) -> (
    tokio::task::JoinHandle<Vec<Value>>,
    tokio::sync::mpsc::UnboundedReceiver<usize>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(read_events(res, move |n| {
        let _ = tx.send(n);
    }));
    (reader, rx)
}

async fn read_events(res: reqwest::Response, mut on_event: impl FnMut(usize)) -> Vec<Value> {
    use futures::StreamExt;
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: status") {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                events.push(serde_json::from_str(&data).unwrap());
                on_event(events.len());
            }
        }
    }
    events
}

async fn events_stream_each_change_and_close_after_confirmation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-dave").await;
    let res = app.events(&random).await;
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (reader, mut rx) = follow_events(res);
    assert_eq!(
        rx.recv().await,
        Some(1),
        "first event is the current status"
    );
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    assert_eq!(rx.recv().await, Some(2));
    assert_eq!(
        app.confirm(&token, &random, None).await.status(),
        StatusCode::OK
    );
    let events = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("stream closed")
        .unwrap();
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "scanned", "confirmed"]);
    assert!(
        events[2]["ticket"].is_string(),
        "the creator's stream carries the ticket"
    );
}

async fn another_browser_never_sees_the_ticket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (random, ticket) = app.confirmed_ticket("o-erin").await;
    let stranger = cookie_client();
    let seen = app.status(&stranger, &random).await;
    assert_eq!(seen["status"], "confirmed");
    assert!(seen.get("ticket").is_none(), "{seen}");
    // Even a stolen ticket cannot be exchanged from another browser, and the attempt does not
    // burn it for its owner.
    assert_error(
        app.exchange(&stranger, &ticket).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.exchange(&app.client, &ticket).await.status(),
        StatusCode::OK
    );
}

async fn the_bind_token_header_proves_binding(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let server = cookie_client();
    let qr = app.create_qr_for(&server, "web").await;
    let random = qr["random"].as_str().unwrap();
    let bind = qr["bind_token"].as_str().unwrap();
    let token = app.mp_login(APPID, "o-frank").await;
    app.scan(&token, random).await;
    app.confirm(&token, random, None).await;
    // A cookie-less caller with the header sees the ticket and may exchange it.
    let bare = reqwest::Client::new();
    let seen: Value = bare
        .get(app.url(&format!("/api/v1/qrcodes/{random}")))
        .header("X-ScanGate-Bind", bind)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = seen["ticket"].as_str().expect("ticket with bind header");
    let res = bare
        .post(app.url("/api/v1/qrcodes/exchange"))
        .header("X-ScanGate-Bind", "wrong")
        .json(&json!({ "ticket": ticket }))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = bare
        .post(app.url("/api/v1/qrcodes/exchange"))
        .header("X-ScanGate-Bind", bind)
        .json(&json!({ "ticket": ticket }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn apps_without_binding_reveal_the_ticket_to_anyone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr_for(&app.client, "open").await["random"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.mp_login(APPID, "o-gina").await;
    app.scan(&token, &random).await;
    app.confirm(&token, &random, None).await;
    let stranger = cookie_client();
    let ticket = app.status(&stranger, &random).await["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    assert_eq!(
        app.exchange(&stranger, &ticket).await.status(),
        StatusCode::OK
    );
}

async fn an_expired_code_reads_expired_and_refuses_a_scan(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-hank").await;
    app.clock.advance(Duration::from_secs(121));
    assert_eq!(app.status(&app.client, &random).await["status"], "expired");
    assert_error(app.scan(&token, &random).await, StatusCode::GONE, "expired").await;
    // A long poll on an expired code answers at once.
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        app.client
            .get(app.url(&format!("/api/v1/qrcodes/{random}?wait=30")))
            .send(),
    )
    .await
    .expect("no wait on a final state")
    .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "expired");
}

async fn images_are_png_and_svg_of_the_requested_size(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let qr = app.create_qr().await;
    let png = app
        .client
        .get(qr["image_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&png.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (300, 300));
    let url = format!("{}?size=512", qr["image_url"].as_str().unwrap());
    let img = image::load_from_memory(
        &app.client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(img.width(), 512);
    let svg_url = qr["image_url"]
        .as_str()
        .unwrap()
        .replace("image.png", "image.svg");
    let svg = app.client.get(svg_url).send().await.unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let too_big = format!("{}?size=4096", qr["image_url"].as_str().unwrap());
    assert_error(
        app.client.get(too_big).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

async fn a_cancelled_code_tells_the_browser(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-ivy").await;
    app.scan(&token, &random).await;
    let res = app
        .mp_post(&token, &format!("/api/mp/v1/qrcodes/{random}/cancel"), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.status(&app.client, &random).await["status"],
        "cancelled"
    );
    assert_error(
        app.confirm(&token, &random, None).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

/// The value of the `name` cookie a response sets.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// A `scangate_browser` value the server did not mint (planted from a sibling subdomain, bare
/// or quoted) is replaced when a code is created, never adopted: whoever planted it cannot
/// read the ticket, and the browser holding the minted value can.
async fn a_planted_browser_cookie_is_replaced_not_adopted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let planted = "planted-by-a-sibling-subdomain-0123456789";
    for value in [planted.to_owned(), format!("\"{planted}\"")] {
        let cookie = format!("scangate_browser={value}");
        let res = reqwest::Client::new()
            .post(app.url("/api/v1/qrcodes"))
            .header("cookie", &cookie)
            .json(&json!({ "app_id": "web" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let minted = set_cookie(&res, "scangate_browser").expect("a new browser cookie");
        assert!(!minted.contains(planted), "{minted}");
        let random = res.json::<Value>().await.unwrap()["random"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = app.mp_login(APPID, "o-planted").await;
        assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
        assert_eq!(
            app.confirm(&token, &random, None).await.status(),
            StatusCode::OK
        );
        let status_with = |cookie: String| {
            let url = app.url(&format!("/api/v1/qrcodes/{random}"));
            async move {
                let res = reqwest::Client::new()
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                res.json::<Value>().await.unwrap()
            }
        };
        let planter = status_with(cookie.clone()).await;
        assert_eq!(planter["status"], "confirmed");
        assert!(planter.get("ticket").is_none(), "{planter}");
        let owner = status_with(format!("scangate_browser={minted}")).await;
        assert!(owner["ticket"].is_string(), "{owner}");

        // The minted value is kept by the next creation.
        let res = reqwest::Client::new()
            .post(app.url("/api/v1/qrcodes"))
            .header("cookie", format!("scangate_browser={minted}"))
            .json(&json!({ "app_id": "web" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(set_cookie(&res, "scangate_browser"), None);
    }
}

/// On https the cookie is `__Host-scangate_browser`: Secure, Path=/ and no Domain, so no other
/// host can plant one; a plain `scangate_browser` sent alongside is not adopted.
async fn on_https_the_browser_cookie_is_a_host_only_secure_cookie(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.public_url = "https://id.example.test".parse().unwrap();
    })
    .await;
    let res = reqwest::Client::new()
        .post(app.url("/api/v1/qrcodes"))
        .header(
            "cookie",
            "scangate_browser=planted-by-a-sibling-subdomain-0123456789",
        )
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let header = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-scangate_browser="))
        .expect("a __Host- cookie")
        .to_owned();
    assert!(
        header.contains("Secure") && header.contains("Path=/") && !header.contains("Domain"),
        "{header}"
    );
    let minted = set_cookie(&res, "__Host-scangate_browser").unwrap();
    let random = res.json::<Value>().await.unwrap()["random"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.mp_login(APPID, "o-https").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    assert_eq!(
        app.confirm(&token, &random, None).await.status(),
        StatusCode::OK
    );
    // The planted plain cookie comes first in the header; the __Host- one is what counts.
    let status: Value = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/qrcodes/{random}")))
        .header(
            "cookie",
            format!(
                "scangate_browser=planted-by-a-sibling-subdomain-0123456789; __Host-scangate_browser={minted}"
            ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status["ticket"].is_string(), "{status}");
}

/// Knowing a pending code's `random` does not let a Mini Program user cancel it: only the
/// user who scanned it may.
async fn a_mini_program_user_cancels_only_a_code_they_scanned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let mallory = app.mp_login(APPID, "o-mallory").await;
    let cancel =
        |token: String| app.mp_post_owned(token, format!("/api/mp/v1/qrcodes/{random}/cancel"));
    assert_error(
        cancel(mallory.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(app.status(&app.client, &random).await["status"], "pending");
    let alice = app.mp_login(APPID, "o-alice-cancels").await;
    assert_eq!(app.scan(&alice, &random).await.status(), StatusCode::OK);
    assert_error(cancel(mallory).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(cancel(alice).await.status(), StatusCode::OK);
    assert_eq!(
        app.status(&app.client, &random).await["status"],
        "cancelled"
    );
}
