//! The admin console over real HTTP on both backends: sign-in, lockout, sessions that end
//! everywhere, CSRF refusal, anonymous access, security headers, roles, and changes seen at
//! once by a second instance.

use std::time::Duration;

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use reqwest::{Client, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID};

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
pub async fn get(app: &TestApp, client: &Client, path: &str) -> (StatusCode, String) {
    let res = client.get(app.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// `POST path` with `client` and a urlencoded `form`.
pub async fn post(
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
    an_operator_sets_up_an_app_in_a_browser_and_a_login_on_it_is_counted,
    mini_programs_and_apps_are_made_through_their_forms,
    bad_input_gets_the_form_back_with_a_message_beside_the_field,
    the_preview_follows_the_form_and_the_callback_checker_says_why,
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
        "/admin/miniprograms",
        "/admin/miniprograms/new",
        &format!("/admin/miniprograms/{APPID}"),
        "/admin/apps",
        "/admin/apps/new",
        "/admin/apps/web",
        "/admin/apps/web/delete",
        "/admin/apps/web/callback?url=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback%2F",
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
    for path in [
        "/admin",
        "/admin/pools",
        "/admin/pools/default",
        "/admin/apps",
        "/admin/apps/web",
        "/admin/miniprograms",
    ] {
        assert_eq!(get(&app, &client, path).await.0, StatusCode::OK, "{path}");
    }
    let (_, html) = get(&app, &client, "/admin/pools").await;
    assert!(
        !html.contains("/admin/pools/new"),
        "no create button for a viewer"
    );
    // Nor a way to the sections only an owner may open; an owner has both.
    assert!(html.contains(r#"href="/admin/users""#), "{html}");
    for section in [r#"href="/admin/api-keys""#, r#"href="/admin/admins""#] {
        assert!(!html.contains(section), "{section} shown to a viewer");
    }
    console_admin(&app, "boss", "owner", None).await;
    let (boss, _) = signed_in(&app, "boss").await;
    let (_, html) = get(&app, &boss, "/admin/pools").await;
    for section in [r#"href="/admin/api-keys""#, r#"href="/admin/admins""#] {
        assert!(html.contains(section), "{section} shown to an owner");
    }
    let res = post(
        &app,
        &client,
        "/admin/pools",
        &[("csrf", &csrf), ("slug", "mine"), ("name", "Mine")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &app,
        &client,
        "/admin/miniprograms",
        &[
            ("csrf", &csrf),
            ("appid", "wx1111111111111111"),
            ("secret", "0123456789abcdef0123456789abcdef"),
            ("pool", "default"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = client
        .post(app.url("/admin/apps/open"))
        .multipart(app_form(&csrf, "open", "Renamed by a viewer"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (_, html) = get(&app, &client, "/admin/apps/open").await;
    assert!(
        html.contains("<fieldset disabled>"),
        "the app form is read-only"
    );
    assert!(scangate::store::pools::get(&app.state.db, "mine")
        .await
        .unwrap()
        .is_none());
    assert!(
        scangate::store::miniprograms::get(&app.state.db, "wx1111111111111111")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        scangate::store::apps::get(&app.state.db, "open")
            .await
            .unwrap()
            .unwrap()
            .name,
        "App open"
    );
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

/// A multipart app form with every field but the logo.
fn app_form(csrf: &str, client_id: &str, name: &str) -> reqwest::multipart::Form {
    app_form_with(csrf, client_id, name, &[])
}

/// [`app_form`] with some fields set otherwise.
fn app_form_with(
    csrf: &str,
    client_id: &str,
    name: &str,
    set: &[(&'static str, &str)],
) -> reqwest::multipart::Form {
    let mut fields: Vec<(&'static str, String)> = vec![
        ("csrf", csrf.to_owned()),
        ("client_id", client_id.to_owned()),
        ("pool", "default".into()),
        ("name", name.to_owned()),
        ("miniprogram", APPID.into()),
        (
            "redirect_uris",
            "https://shop.example.com/callback\nhttps://shop.example.com/cb2".into(),
        ),
        (
            "post_logout_redirect_uris",
            "https://shop.example.com/".into(),
        ),
        ("allowed_origins", "https://shop.example.com".into()),
        ("qr_ttl_secs", "120".into()),
        ("require_binding", "1".into()),
        ("signup", "open".into()),
        ("logo", "".into()),
        ("action", "save".into()),
    ];
    for (k, v) in set {
        match fields.iter_mut().find(|(f, _)| f == k) {
            Some(field) => field.1 = (*v).to_owned(),
            None => fields.push((k, (*v).to_owned())),
        }
    }
    fields
        .into_iter()
        .fold(reqwest::multipart::Form::new(), |form, (k, v)| {
            form.text(k, v)
        })
}

fn png(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(side, side, image::Rgb([220, 20, 20]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn file(bytes: Vec<u8>, name: &str, kind: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(kind)
        .unwrap()
}

async fn mini_programs_and_apps_are_made_through_their_forms(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        let web = config
            .apps
            .iter_mut()
            .find(|a| a.client_id == "web")
            .unwrap();
        web.qr_foreground = "#1a3a8a".into();
    })
    .await;
    console_admin(&app, "ops", "admin", None).await;
    let (client, csrf) = signed_in(&app, "ops").await;
    let secret = "0123456789abcdef0123456789abcdef";
    app.sim.register_app("wx1111111111111111", secret);
    let res = post(
        &app,
        &client,
        "/admin/miniprograms",
        &[
            ("csrf", &csrf),
            ("appid", "wx1111111111111111"),
            ("secret", secret),
            ("pool", "default"),
            ("name", "Shop 商城"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, html) = get(&app, &client, "/admin/miniprograms/wx1111111111111111").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(secret), "the AppSecret is never shown");
    let res = post(
        &app,
        &client,
        "/admin/miniprograms/wx1111111111111111/check",
        &[("csrf", &csrf)],
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"check-result\""), "{html}");
    assert!(html.contains("alert-ok"), "WeChat accepts the credentials");
    // One declared in the config file is read-only, with a note.
    let (_, html) = get(&app, &client, &format!("/admin/miniprograms/{APPID}")).await;
    assert!(html.contains("[[miniprograms]]"));
    assert!(!html.contains("name=\"secret\""));

    let form = app_form(&csrf, "shop", "Shop 商城")
        .part("logo_file", file(png(64), "logo.png", "image/png"));
    let res = client
        .post(app.url("/admin/apps"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let html = res.text().await.unwrap();
    let shown = html
        .split("id=\"client-secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the client secret is shown once")
        .to_owned();
    let stored = scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .unwrap();
    assert!(scangate::crypto::verify_password(
        &shown,
        stored.client_secret_hash.as_deref().unwrap()
    ));
    assert!(
        stored.logo.as_deref().unwrap().starts_with("/media/logos/"),
        "the upload is stored"
    );
    assert_eq!(stored.redirect_uris.len(), 2);
    let (_, again) = get(&app, &client, "/admin/apps/shop").await;
    assert!(!again.contains(&shown), "shown once only");
    assert!(again.contains("id=\"try-it\""), "Try it");

    // An edit keeps what it does not change and moves the version.
    let version = stored.version.to_string();
    let logo = stored.logo.clone().unwrap();
    let form = app_form_with(
        &csrf,
        "shop",
        "Shop 2",
        &[("version", &version), ("logo", &logo)],
    );
    let res = client
        .post(app.url("/admin/apps/shop"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let edited = scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.name, "Shop 2");
    assert_eq!(edited.logo, stored.logo);
    // A stale version is refused.
    let form = app_form(&csrf, "shop", "Shop 3").text("version", stored.version.to_string());
    let res = client
        .post(app.url("/admin/apps/shop"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);

    // A new secret, shown once; the old one stops working.
    let res = post(&app, &client, "/admin/apps/shop/secret", &[("csrf", &csrf)]).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"client-secret\""));
    assert!(!html.contains(&shown));

    // The config file's apps are read-only.
    let form = app_form(&csrf, "web", "Renamed");
    let (_, html) = get(&app, &client, "/admin/apps/web").await;
    assert!(
        html.contains("value=\"#1a3a8a\""),
        "a config app's preview uses its configured colours"
    );
    let res = client
        .post(app.url("/admin/apps/web"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("[[apps]]"));

    // Delete asks first, then deletes.
    let res = post(&app, &client, "/admin/apps/shop/delete", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .is_none());
    let res = post(
        &app,
        &client,
        "/admin/miniprograms/wx1111111111111111/delete",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let actions = scangate::store::audit::recent_actions(&app.state.db, "default", 20)
        .await
        .unwrap();
    for action in [
        "admin.miniprogram.create",
        "admin.app.create",
        "admin.app.update",
        "admin.app.rotate_secret",
        "admin.app.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    use sqlx::Row as _;
    let row = sqlx::query("SELECT actor, ip FROM audit_events WHERE action = 'admin.app.create'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("actor").unwrap(), "admin:ops");
    assert_eq!(row.try_get::<String, _>("ip").unwrap(), "127.0.0.1");
}

async fn bad_input_gets_the_form_back_with_a_message_beside_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "owner", None).await;
    let (client, csrf) = signed_in(&app, "ops").await;
    let send = |form: reqwest::multipart::Form| {
        let client = client.clone();
        let url = app.url("/admin/apps");
        async move {
            let res = client.post(url).multipart(form).send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let beside = |html: &str, field: &str| html.contains(&format!("id=\"{field}-error\""));

    // Empty.
    let (status, html) = send(
        reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("action", "save"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(
        beside(&html, "name") && beside(&html, "qr_ttl_secs"),
        "{html}"
    );
    // Oversized, wrong types.
    let (status, html) = send(app_form_with(
        &csrf,
        "big",
        &"名".repeat(101),
        &[("qr_ttl_secs", "soon")],
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(beside(&html, "name") && beside(&html, "qr_ttl_secs"));
    let (status, html) = send(app_form_with(
        &csrf,
        "big",
        "Big",
        &[("qr_ttl_secs", "99999")],
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        beside(&html, "qr_ttl_secs"),
        "the management layer's check, beside its field"
    );
    let (status, html) = send(app_form(&csrf, "bad id!", "Big")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(beside(&html, "client_id"));
    let (status, html) = send(
        reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("client_id", "near")
            .text("name", "Near")
            .text("miniprogram", APPID)
            .text("redirect_uris", "https://shop.example.com/cb#frag")
            .text("qr_ttl_secs", "120")
            .text("action", "save"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(beside(&html, "redirect_uris"), "{html}");
    // A 10 MB logo, an SVG with a script, something that is no image.
    let ten_mb = vec![0x89u8; 10 * 1024 * 1024];
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="alert(1)"><rect width="10" height="10"/></svg>"#;
    for (bytes, kind) in [
        (ten_mb, "image/png"),
        (svg.to_vec(), "image/svg+xml"),
        (b"GIF89a not really".to_vec(), "image/gif"),
    ] {
        let (status, html) =
            send(app_form(&csrf, "logoed", "Logoed").part("logo_file", file(bytes, "logo", kind)))
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind}");
        assert!(beside(&html, "logo_file"), "{kind}: {html}");
    }
    // Nothing was made by any of these.
    for id in ["big", "near", "logoed"] {
        assert!(
            scangate::store::apps::get(&app.state.db, id)
                .await
                .unwrap()
                .is_none(),
            "{id}"
        );
    }
    // HTML in a name is shown as text everywhere.
    let evil = "<script>alert('x')</script><b>Evil</b>";
    let res = client
        .post(app.url("/admin/apps"))
        .multipart(app_form(&csrf, "evil", evil))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    for path in ["/admin", "/admin/apps", "/admin/apps/evil"] {
        let (_, html) = get(&app, &client, path).await;
        assert!(!html.contains(evil) && !html.contains("<b>Evil"), "{path}");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{path}"
        );
    }
    let hosted = app
        .client
        .get(app.url("/oidc/auth?response_type=code&client_id=evil&scope=openid&redirect_uri=https%3A%2F%2Fshop.example.com%2Fcallback&code_challenge=abcdefghijabcdefghijabcdefghijabcdefghij123&code_challenge_method=S256"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        hosted.contains("Evil") && !hosted.contains("<b>Evil"),
        "the hosted page escapes it"
    );
    // Pools and Mini Programs say what is wrong beside their fields too.
    let res = post(
        &app,
        &client,
        "/admin/pools",
        &[("csrf", &csrf), ("slug", "Not A Slug"), ("name", "")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(beside(&html, "slug") && beside(&html, "name"));
    let res = post(
        &app,
        &client,
        "/admin/miniprograms",
        &[
            ("csrf", &csrf),
            ("appid", "nope"),
            ("secret", "short"),
            ("pool", "default"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(beside(&html, "appid") && beside(&html, "secret"));
    assert!(
        !html.contains("value=\"short\""),
        "an AppSecret is never filled back in"
    );
}

async fn the_preview_follows_the_form_and_the_callback_checker_says_why(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "ops", "admin", None).await;
    let (client, csrf) = signed_in(&app, "ops").await;
    let preview = |fields: Vec<(&'static str, String)>, token: String| {
        let client = client.clone();
        let url = app.url("/admin/apps/preview");
        async move {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in fields {
                form = form.text(k, v);
            }
            let res = client
                .post(url)
                .header("x-csrf-token", token)
                .multipart(form)
                .send()
                .await
                .unwrap();
            (
                res.status(),
                res.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, black) = preview(vec![("qr_foreground", "#000000".into())], csrf.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, blue) = preview(vec![("qr_foreground", "#1a3a8a".into())], csrf.clone()).await;
    assert!(black["image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/svg+xml;base64,"));
    assert_ne!(
        black["fingerprint"], blue["fingerprint"],
        "a new colour, a new image"
    );
    assert_ne!(black["image"], blue["image"]);
    let (_, pale) = preview(vec![("qr_foreground", "#eeeeee".into())], csrf.clone()).await;
    assert!(pale["errors"]["qr_foreground"].is_string(), "{pale}");
    assert_eq!(pale["warn"], true);
    let (status, _) = preview(vec![("qr_foreground", "#000000".into())], "wrong".into()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the preview needs the token too"
    );
    // Without scripts: the form's Preview button shows the same, saving nothing.
    let form = app_form_with(
        &csrf,
        "draft",
        "Draft",
        &[("qr_foreground", "#1a3a8a"), ("action", "preview")],
    );
    let form = form.part("logo_file", file(png(64), "logo.png", "image/png"));
    let res = client
        .post(app.url("/admin/apps"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(blue["fingerprint"].as_str().unwrap()) || html.contains("data-fingerprint"),
        "a preview"
    );
    assert!(
        html.contains("30 %"),
        "the logo's share of error correction is stated"
    );
    assert!(scangate::store::apps::get(&app.state.db, "draft")
        .await
        .unwrap()
        .is_none());

    let check = |url: &'static str| {
        let client = client.clone();
        let target = app.url(&format!("/admin/apps/web/callback?url={}", urlencode(url)));
        async move {
            client
                .get(target)
                .header("accept-language", "en")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let html = check("http://127.0.0.1:3000/callback/").await;
    assert!(html.contains("trailing slash differs"), "{html}");
    assert!(
        html.contains("callback?url=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback%2F&#38;lang=zh"),
        "the language link keeps the page's query"
    );
    let html = check("http://127.0.0.1:3001/callback").await;
    assert!(html.contains("port differs"));
    let html = check("https://127.0.0.1:3000/callback").await;
    assert!(html.contains("scheme differs"));
    let html = check("http://127.0.0.1:3000/callback").await;
    assert!(html.contains("matches a registered redirect URI exactly"));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Where the browser test leaves its screenshots (under `target/`, never committed).
fn screenshots_dir() -> std::path::PathBuf {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn an_operator_sets_up_an_app_in_a_browser_and_a_login_on_it_is_counted(backend: Backend) {
    crate::js::chromium();
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "operator", "owner", None).await;
    let appid = "wx2222222222222222";
    let secret = "abcdef0123456789abcdef0123456789";
    app.sim.register_app(appid, secret);
    let rp = crate::helpers::serve(axum::Router::new().route(
        "/callback",
        axum::routing::get(|| async { axum::response::Html("<p id=signed-in>code received</p>") }),
    ))
    .await;
    let dir = crate::helpers::tempdir::Dir::new();
    let logo = dir.0.join("logo.png");
    std::fs::write(&logo, png(96)).unwrap();
    let key = app.admin_key("viewer", None).await;
    let shots = match backend {
        Backend::Embedded => screenshots_dir(),
        // One set of screenshots is enough; the other backend's go beside the test's files.
        Backend::Distributed => dir.0.clone(),
    };
    let out = crate::js::run_node(
        "console-browser.mjs",
        &[
            ("SCANGATE_URL", app.base.clone()),
            ("SIM_URL", app.config.wechat.api_base.to_string()),
            ("RP_URL", rp),
            ("USERNAME", "operator".into()),
            ("PASSWORD", PASSWORD.into()),
            ("LOGO_PATH", logo.display().to_string()),
            ("API_KEY", key),
            ("APPID", appid.into()),
            ("APPSECRET", secret.into()),
            ("ARTIFACTS_DIR", shots.display().to_string()),
        ],
    )
    .await;
    for step in [
        "keyboard sign-in: ok",
        "app created: ok",
        "login through the hosted page: ok",
        "keyboard app edit: ok",
        "screenshots: ok",
    ] {
        assert!(out.contains(step), "{step} in\n{out}");
    }
}
