//! The admin console over real HTTP on both backends: sign-in, lockout, sessions that end
//! everywhere, CSRF refusal, anonymous access, security headers, roles, and changes seen at
//! once by a second instance.

use std::time::Duration;

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use reqwest::{Client, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

/// A password long enough for `scangate admin create`.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates a console account of `role` (limited to `pool`) with [`PASSWORD`].
pub async fn console_admin(app: &TestApp, username: &str, role: &str, pool: Option<&str>) {
    let hash = scangate::crypto::hash_password(PASSWORD).unwrap();
    let created = scangate::store::admins::create(
        &app.state.db,
        &scangate::store::admins::Admin {
            username: username.into(),
            password_hash: hash,
            created_at: app.clock.now(),
            role: role.into(),
            pool: pool.map(str::to_owned),
        },
    )
    .await
    .unwrap();
    assert!(created);
}

/// A browser of the console: keeps cookies, follows no redirect.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The value of the first `name="csrf"` field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("a csrf field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Posts the sign-in form as a browser would (the form's token first); the answer.
pub async fn sign_in_as(
    app: &TestApp,
    client: &Client,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let form = client
        .get(app.url("/admin/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    client
        .post(app.url("/admin/sign-in"))
        .form(&[
            ("csrf", csrf_of(&form).as_str()),
            ("next", "/admin"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// A browser signed in as `username`, and the CSRF token of its session.
pub async fn signed_in(app: &TestApp, username: &str) -> (Client, String) {
    let client = browser();
    let res = sign_in_as(app, &client, username, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed in");
    assert_eq!(res.headers()[LOCATION], "/admin");
    let csrf = csrf_token(app, &client).await;
    (client, csrf)
}

/// The CSRF token the console's pages give this browser.
pub async fn csrf_token(app: &TestApp, client: &Client) -> String {
    let res = client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    csrf_of(&res.text().await.unwrap())
}

/// `GET path` with `client`: the status and the body.
async fn get(app: &TestApp, client: &Client, path: &str) -> (StatusCode, String) {
    let res = client.get(app.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn post(
    app: &TestApp,
    client: &Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client.post(app.url(path)).form(form).send().await.unwrap()
}

fn is_sign_in_redirect(res: &reqwest::Response) -> bool {
    res.status() == StatusCode::SEE_OTHER
        && res
            .headers()
            .get(LOCATION)
            .is_some_and(|l| l.to_str().unwrap().starts_with("/admin/sign-in"))
}

both_backends!(
    an_admin_signs_in_and_a_session_replayed_after_sign_out_is_refused,
    a_wrong_password_is_refused_and_repeated_failures_lock_account_and_address,
    sign_out_everywhere_ends_every_session_of_the_account,
    sessions_end_after_30_minutes_idle_and_12_hours_in_all,
    a_form_without_or_with_a_wrong_csrf_token_changes_nothing,
    every_page_refuses_anonymous_access_and_carries_the_security_headers,
    a_viewer_reads_but_cannot_change_anything,
    a_change_made_on_one_instance_shows_on_the_next_request_to_another,
);

async fn an_admin_signs_in_and_a_session_replayed_after_sign_out_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let client = browser();
    let res = sign_in_as(&app, &client, "ops", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set_cookie: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set_cookie
        .iter()
        .find(|c| c.starts_with("scangate_admin="))
        .expect("a session cookie");
    for attribute in [
        "Path=/admin",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=43200",
    ] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    let value = session.split(';').next().unwrap().to_owned();

    let (status, html) = get(&app, &client, "/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ops"), "the admin's name is shown");

    // Another client holding the same cookie is the same session — until sign-out.
    let thief = browser();
    let replay = |client: Client, app_url: String, value: String| async move {
        client
            .get(app_url)
            .header("cookie", value)
            .send()
            .await
            .unwrap()
    };
    let res = replay(thief.clone(), app.url("/admin/pools"), value.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);

    let csrf = csrf_token(&app, &client).await;
    let res = post(&app, &client, "/admin/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(is_sign_in_redirect(&res));
    let res = replay(thief, app.url("/admin/pools"), value.clone()).await;
    assert!(is_sign_in_redirect(&res), "the replayed session is over");
    // On another instance too: the session is gone from the database.
    let peer = app.peer().await;
    let res = replay(browser(), peer.url("/admin"), value).await;
    assert!(is_sign_in_redirect(&res));

    let events = audit_actions(&app).await;
    assert!(events.contains(&"admin.sign_in".to_owned()), "{events:?}");
    assert!(events.contains(&"admin.sign_out".to_owned()), "{events:?}");
}

/// Actions of the audit log that name no pool, newest first, with who made them.
async fn audit_actions(app: &TestApp) -> Vec<String> {
    use sqlx::Row as _;
    sqlx::query(
        "SELECT action, actor, ip FROM audit_events WHERE pool IS NULL ORDER BY at DESC, id DESC",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let actor: Option<String> = r.try_get("actor").unwrap();
        let ip: Option<String> = r.try_get("ip").unwrap();
        assert!(
            actor.is_some() && ip.is_some(),
            "actor and address recorded"
        );
        r.try_get::<String, _>("action").unwrap()
    })
    .collect()
}

async fn a_wrong_password_is_refused_and_repeated_failures_lock_account_and_address(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let client = browser();
    let res = sign_in_as(&app, &client, "ops", "not the password at all").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = res.text().await.unwrap();
    assert!(html.contains("用户名或密码不正确") || html.contains("Wrong username or password"));
    assert!(
        html.contains("value=\"ops\""),
        "the username is kept in the form"
    );
    // An unknown account gets the same answer.
    let res = sign_in_as(&app, &client, "nobody", "not the password at all").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    for _ in 0..4 {
        let res = sign_in_as(&app, &client, "ops", "still not the password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Five failures: locked, even with the right password, from any instance.
    let res = sign_in_as(&app, &client, "ops", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let peer = app.peer().await;
    let res = sign_in_as(&peer, &browser(), "ops", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // The lock lifts once the failures are older than the window.
    app.clock.advance(Duration::from_secs(16 * 60));
    let res = sign_in_as(&app, &client, "ops", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "unlocked");

    // Twenty failures from one address, each naming another account, lock the address.
    console_admin(&app, "second", "viewer", None).await;
    for i in 0..20 {
        let res = sign_in_as(&app, &browser(), &format!("guess{i}"), "nope nope nope").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = sign_in_as(&app, &browser(), "second", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    let history = scangate::store::admins::sign_ins_of(&app.state.db, "ops", 50)
        .await
        .unwrap();
    assert_eq!(history.iter().filter(|s| s.ok).count(), 1, "one success");
    assert_eq!(history.iter().filter(|s| !s.ok).count(), 5, "five failures");
    assert!(history.iter().all(|s| s.ip == "127.0.0.1"));
}

async fn sign_out_everywhere_ends_every_session_of_the_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    console_admin(&app, "other", "owner", None).await;
    let (laptop, csrf) = signed_in(&app, "ops").await;
    let (phone, _) = signed_in(&app, "ops").await;
    let (colleague, _) = signed_in(&app, "other").await;
    let res = post(
        &app,
        &laptop,
        "/admin/sign-out-everywhere",
        &[("csrf", &csrf)],
    )
    .await;
    assert!(is_sign_in_redirect(&res));
    for client in [&laptop, &phone] {
        let res = client.get(app.url("/admin")).send().await.unwrap();
        assert!(is_sign_in_redirect(&res));
    }
    let (status, _) = get(&app, &colleague, "/admin").await;
    assert_eq!(status, StatusCode::OK, "another account's session is kept");
}

async fn sessions_end_after_30_minutes_idle_and_12_hours_in_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let (idle, _) = signed_in(&app, "ops").await;
    app.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(get(&app, &idle, "/admin").await.0, StatusCode::OK);
    app.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(
        get(&app, &idle, "/admin").await.0,
        StatusCode::OK,
        "use restarts the idle timer"
    );
    app.clock.advance(Duration::from_secs(31 * 60));
    let res = idle.get(app.url("/admin")).send().await.unwrap();
    assert!(is_sign_in_redirect(&res), "idle for 31 minutes");

    let (busy, _) = signed_in(&app, "ops").await;
    for _ in 0..(12 * 3 - 1) {
        app.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(get(&app, &busy, "/admin/pools").await.0, StatusCode::OK);
    }
    app.clock.advance(Duration::from_secs(20 * 60 + 1));
    let res = busy.get(app.url("/admin/pools")).send().await.unwrap();
    assert!(
        is_sign_in_redirect(&res),
        "12 hours after sign-in, however busy"
    );
}

async fn a_form_without_or_with_a_wrong_csrf_token_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let (client, csrf) = signed_in(&app, "ops").await;
    let attempts: [&[(&str, &str)]; 3] = [
        &[("slug", "forged"), ("name", "Forged")],
        &[("csrf", "wrong"), ("slug", "forged"), ("name", "Forged")],
        &[("csrf", ""), ("slug", "forged"), ("name", "Forged")],
    ];
    for form in attempts {
        let res = post(&app, &client, "/admin/pools", form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    // A token of another session does not do either.
    console_admin(&app, "other", "owner", None).await;
    let (_, others) = signed_in(&app, "other").await;
    let res = post(
        &app,
        &client,
        "/admin/pools",
        &[("csrf", &others), ("slug", "forged"), ("name", "Forged")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Nor does a sign-out without a token.
    let res = post(&app, &client, "/admin/sign-out", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(scangate::store::pools::get(&app.state.db, "forged")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        get(&app, &client, "/admin").await.0,
        StatusCode::OK,
        "still signed in"
    );

    // With the token, the same form works.
    let res = post(
        &app,
        &client,
        "/admin/pools",
        &[("csrf", &csrf), ("slug", "forged"), ("name", "Forged")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(scangate::store::pools::get(&app.state.db, "forged")
        .await
        .unwrap()
        .is_some());
    // The sign-in form needs its own token too.
    let res = post(
        &app,
        &browser(),
        "/admin/sign-in",
        &[("username", "ops"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// Every page of the console, as a signed-in owner sees it.
fn pages() -> Vec<String> {
    [
        "/admin",
        "/admin/pools",
        "/admin/pools/new",
        "/admin/pools/default",
        "/admin/pools/other/delete",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn every_page_refuses_anonymous_access_and_carries_the_security_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let (client, _) = signed_in(&app, "ops").await;
    let anonymous = browser();
    for path in pages() {
        let res = anonymous.get(app.url(&path)).send().await.unwrap();
        assert!(is_sign_in_redirect(&res), "{path}: {}", res.status());
        let next = res.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            next.contains("next=%2Fadmin"),
            "{path}: back to where it was: {next}"
        );

        let res = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers();
        let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let html = res.text().await.unwrap();
        assert!(!html.contains("<script>"), "{path}: no inline script");
        assert!(!html.contains(" style=\""), "{path}: no inline style");
    }
    // The sign-in page itself is open, with the same headers.
    let res = anonymous
        .get(app.url("/admin/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // A state-changing request without a session is refused, not redirected.
    let res = post(
        &app,
        &anonymous,
        "/admin/pools",
        &[("slug", "x"), ("name", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn a_viewer_reads_but_cannot_change_anything(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "watcher", "viewer", None).await;
    let (client, csrf) = signed_in(&app, "watcher").await;
    for path in ["/admin", "/admin/pools", "/admin/pools/default"] {
        assert_eq!(get(&app, &client, path).await.0, StatusCode::OK, "{path}");
    }
    let (_, html) = get(&app, &client, "/admin/pools").await;
    assert!(
        !html.contains("/admin/pools/new"),
        "no create button for a viewer"
    );
    let res = post(
        &app,
        &client,
        "/admin/pools",
        &[("csrf", &csrf), ("slug", "mine"), ("name", "Mine")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(scangate::store::pools::get(&app.state.db, "mine")
        .await
        .unwrap()
        .is_none());
}

async fn a_change_made_on_one_instance_shows_on_the_next_request_to_another(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let peer = app.peer().await;
    let (client, csrf) = signed_in(&app, "ops").await;
    let res = post(
        &app,
        &client,
        "/admin/pools",
        &[("csrf", &csrf), ("slug", "shop"), ("name", "Shop 商城")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The same browser on the other instance: same session, the new pool is there.
    let (status, html) = get(&peer, &client, "/admin/pools").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Shop 商城"), "{html}");
}
