//! The operations pages of the admin console over real HTTP on both backends: users (search,
//! block, sign out, merge, delete), the audit log, signing keys, API keys, admin accounts
//! (invite → set password → sign in, reset, disable, the last owner kept) and WeChat
//! diagnostics — each refusing anonymous access, a viewer's changes and a form without its
//! CSRF token.

use reqwest::header::LOCATION;
use reqwest::StatusCode;

use crate::both_backends;
use crate::console::{browser, console_admin, csrf_of, get, post, sign_in_as, signed_in, PASSWORD};
use crate::helpers::{Backend, TestApp, APPID};
use scangate::admin::users::NewUser;
use scangate::admin::Actor;

both_backends!(
    every_operations_page_refuses_anonymous_access_and_a_viewers_changes,
    operations_forms_without_their_csrf_token_change_nothing,
    the_users_search_finds_a_user_by_each_key,
    block_sign_out_merge_and_delete_work_from_the_console,
    an_invited_admin_sets_a_password_signs_in_and_a_reset_ends_their_sessions,
    the_last_owner_is_never_disabled_reset_or_demoted,
    api_keys_are_shown_once_and_revoked_and_signing_keys_rotate,
    the_audit_log_filters_pages_and_exports,
    the_diagnostics_page_shows_an_error_the_simulator_produced,
);

/// Every GET page of the operations part, with `{user}` standing for a user id.
const PAGES: &[&str] = &[
    "/admin/users",
    "/admin/users/{user}",
    "/admin/users/{user}/merge",
    "/admin/users/{user}/delete",
    "/admin/audit",
    "/admin/audit/export",
    "/admin/keys",
    "/admin/api-keys",
    "/admin/admins",
    "/admin/admins/boss",
    "/admin/miniprograms/wx0123456789abcdef/diagnostics",
];

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A user of the default pool, provisioned with a nickname, a phone and a unionid.
async fn provisioned(app: &TestApp, nickname: &str, phone: &str, unionid: &str) -> String {
    app.state
        .admin
        .provision_user(
            &Actor::cli(),
            "default",
            &NewUser {
                phone: Some(phone.into()),
                unionid: Some(unionid.into()),
                nickname: Some(nickname.into()),
                ..NewUser::default()
            },
        )
        .await
        .unwrap()
        .user
        .id
}

async fn blocked(app: &TestApp, id: &str) -> bool {
    app.state
        .admin
        .user(&Actor::cli(), id)
        .await
        .unwrap()
        .user
        .blocked
}

async fn every_operations_page_refuses_anonymous_access_and_a_viewers_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    console_admin(&app, "watcher", "viewer", None).await;
    let user = provisioned(&app, "Viewer target", "13000000001", "u-viewer").await;
    let anonymous = browser();
    for path in PAGES {
        let path = path.replace("{user}", &user);
        let res = anonymous.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(location(&res).starts_with("/admin/sign-in"), "{path}");
    }
    let res = post(&app, &anonymous, &format!("/admin/users/{user}/block"), &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let (viewer, csrf) = signed_in(&app, "watcher").await;
    let (status, _) = get(&app, &viewer, "/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    let (status, html) = get(&app, &viewer, &format!("/admin/users/{user}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("/block\""),
        "a viewer is offered no block button"
    );
    let changes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/admin/users/{user}/block"), vec![]),
        (format!("/admin/users/{user}/delete"), vec![]),
        (format!("/admin/users/{user}/sign-out"), vec![]),
        ("/admin/keys/default/rotate".into(), vec![("alg", "ES256")]),
        (
            "/admin/api-keys".into(),
            vec![("name", "sneaky"), ("role", "owner")],
        ),
        (
            "/admin/admins".into(),
            vec![("username", "sneaky"), ("role", "owner")],
        ),
        ("/admin/admins/boss/disable".into(), vec![]),
    ];
    let keys_before = app
        .state
        .admin
        .list_keys(&Actor::cli())
        .await
        .unwrap()
        .len();
    // The pool's first signing key is made when first needed, perhaps by a task still
    // running: the JWKS waits for it, so the count below is the settled one.
    let jwks = app.client.get(app.url("/oidc/jwks")).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
    let signing_before = app
        .state
        .admin
        .signing_keys(&Actor::cli(), "default")
        .await
        .unwrap()
        .len();
    for (path, fields) in &changes {
        let mut form = fields.clone();
        form.push(("csrf", &csrf));
        let res = post(&app, &viewer, path, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert!(!blocked(&app, &user).await);
    assert_eq!(
        app.state
            .admin
            .list_keys(&Actor::cli())
            .await
            .unwrap()
            .len(),
        keys_before
    );
    assert_eq!(
        app.state
            .admin
            .signing_keys(&Actor::cli(), "default")
            .await
            .unwrap()
            .len(),
        signing_before
    );
    let admins = app.state.admin.list_admins(&Actor::cli()).await.unwrap();
    assert_eq!(admins.len(), 2);
    assert!(admins.iter().all(|a| a.disabled_at.is_none()));
    // The owners' pages are not a viewer's to read either.
    for path in ["/admin/api-keys", "/admin/admins"] {
        let (status, _) = get(&app, &viewer, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}

async fn operations_forms_without_their_csrf_token_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    let user = provisioned(&app, "Target", "13000000002", "u-csrf").await;
    let (owner, csrf) = signed_in(&app, "boss").await;
    let paths = [
        format!("/admin/users/{user}/block"),
        format!("/admin/users/{user}/delete"),
        "/admin/api-keys".to_owned(),
        "/admin/admins".to_owned(),
        "/admin/keys/default/rotate".to_owned(),
    ];
    for path in &paths {
        for token in [None, Some("wrong-token")] {
            let mut form = vec![
                ("name", "k"),
                ("username", "newbie"),
                ("role", "viewer"),
                ("alg", "ES256"),
            ];
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let res = post(&app, &owner, path, &form).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    assert!(!blocked(&app, &user).await);
    assert!(app
        .state
        .admin
        .list_keys(&Actor::cli())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        app.state
            .admin
            .list_admins(&Actor::cli())
            .await
            .unwrap()
            .len(),
        1
    );
    // With the token, the same form works.
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{user}/block"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(blocked(&app, &user).await);
}

async fn the_users_search_finds_a_user_by_each_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    let id = provisioned(&app, "<b>Zhang</b> 张三", "13912345678", "union-zhang-1").await;
    provisioned(&app, "Other", "13700000000", "union-other").await;
    // The first scan with the same unionid links the openid to the provisioned user.
    app.mp_login_full(APPID, "openid-zhang-1", Some("union-zhang-1"))
        .await;
    let (owner, _) = signed_in(&app, "boss").await;
    let nickname = "<b>Zhang";
    for q in [
        &id[..13],
        nickname,
        "<b>Zhang</b> 张",
        "13912",
        "openid-zhang",
        "union-zhang",
    ] {
        let path = format!(
            "/admin/users?pool=default&q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let (status, html) = get(&app, &owner, &path).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert!(html.contains(&id), "{q} finds the user");
        assert!(!html.contains("13700000000"), "{q} finds only them");
    }
    let (_, html) = get(&app, &owner, "/admin/users?pool=default").await;
    assert!(html.contains("13700000000") && html.contains(&id));
    // Names are escaped.
    assert!(!html.contains("<b>Zhang</b>"));
    assert!(html.contains("&lt;b&gt;Zhang&lt;/b&gt;") || html.contains("&#60;b&#62;Zhang"));
    let (status, html) = get(&app, &owner, &format!("/admin/users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("openid-zhang-1") && html.contains("union-zhang-1"));
    assert!(!html.contains("<b>Zhang</b>"));
    // Wildcards are taken literally.
    for q in ["*", "%", "_", "?", "["] {
        let path = format!(
            "/admin/users?pool=default&q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let (status, html) = get(&app, &owner, &path).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert!(!html.contains(&id), "{q} matches nothing");
    }
    // A search too long is said so, not a 500.
    let (status, html) = get(&app, &owner, &format!("/admin/users?q={}", "x".repeat(80))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("64"));
    // A page at a time.
    for n in 0..55 {
        provisioned(
            &app,
            &format!("bulk {n}"),
            &format!("1360000{n:04}"),
            &format!("ub-{n}"),
        )
        .await;
    }
    let (_, first) = get(&app, &owner, "/admin/users?pool=default").await;
    let next = first
        .split("rel=\"next\"")
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| {
            s[..s.find('"').unwrap()]
                .replace("&amp;", "&")
                .replace("&#38;", "&")
        })
        .unwrap();
    assert!(next.contains("cursor="), "{next}");
    let (status, second) = get(&app, &owner, &next).await;
    assert_eq!(status, StatusCode::OK);
    let rows = |html: &str| {
        html.matches("<a class=\"mono break\" href=\"/admin/users/")
            .count()
    };
    assert_eq!((rows(&first), rows(&second)), (50, 7));
    assert!(!second.contains("rel=\"next\""));
}

async fn block_sign_out_merge_and_delete_work_from_the_console(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    let (owner, csrf) = signed_in(&app, "boss").await;
    let kept = provisioned(&app, "Kept", "13000000010", "u-kept").await;
    let absorbed = provisioned(&app, "Absorbed", "13000000011", "u-absorbed").await;
    app.mp_login_full(APPID, "o-absorbed", Some("u-absorbed"))
        .await;

    // Block asks first, then blocks; unblock.
    let (status, html) = get(&app, &owner, &format!("/admin/users/{kept}/block")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("action=\"/admin/users/{kept}/block\"")));
    assert!(!blocked(&app, &kept).await, "asking changes nothing");
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{kept}/block"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(blocked(&app, &kept).await);
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{kept}/unblock"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!blocked(&app, &kept).await);

    // Sign out everywhere ends the Mini Program session.
    let token = app.mp_login(APPID, "o-absorbed").await;
    let me = app
        .client
        .get(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{absorbed}/sign-out"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let me = app
        .client
        .get(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

    // Merge: an unknown id is said beside the field; a known one is shown, then merged.
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{kept}/merge"),
        &[("csrf", &csrf), ("absorbed", "nobody")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("absorbed-error"));
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{kept}/merge"),
        &[("csrf", &csrf), ("absorbed", &absorbed)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("name=\"confirm\""));
    assert!(
        app.state.admin.user(&Actor::cli(), &absorbed).await.is_ok(),
        "asking merges nothing"
    );
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{kept}/merge"),
        &[("csrf", &csrf), ("absorbed", &absorbed), ("confirm", "1")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(app
        .state
        .admin
        .user(&Actor::cli(), &absorbed)
        .await
        .is_err());
    let detail = app.state.admin.user(&Actor::cli(), &kept).await.unwrap();
    assert!(detail.identities.iter().any(|i| i.openid == "o-absorbed"));

    // Delete asks first, then erases.
    let (status, _) = get(&app, &owner, &format!("/admin/users/{kept}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    let res = post(
        &app,
        &owner,
        &format!("/admin/users/{kept}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(app.state.admin.user(&Actor::cli(), &kept).await.is_err());

    // Each change is audited with the admin's name and address.
    let events = scangate::store::audit::page(
        &app.state.db,
        &scangate::store::audit::Filter {
            actor: Some("admin:boss"),
            ..Default::default()
        },
        None,
        50,
    )
    .await
    .unwrap();
    for action in [
        "admin.user.block",
        "admin.user.unblock",
        "admin.user.sign_out",
        "admin.user.merge",
        "admin.user.delete",
    ] {
        let e = events
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("{action} audited"));
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
    }
}

/// The set-password link on a page (shown once).
fn set_password_path(html: &str) -> String {
    let at = html
        .find("/admin/set-password/")
        .expect("a set-password link");
    let rest = &html[at..];
    rest[..rest.find('<').unwrap()].to_owned()
}

async fn an_invited_admin_sets_a_password_signs_in_and_a_reset_ends_their_sessions(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    let (owner, csrf) = signed_in(&app, "boss").await;
    // Bad input comes back beside its field.
    let res = post(
        &app,
        &owner,
        "/admin/admins",
        &[
            ("csrf", &csrf),
            ("username", "<script>"),
            ("role", "viewer"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("username-error") && !html.contains("<script>"));
    let res = post(
        &app,
        &owner,
        "/admin/admins",
        &[
            ("csrf", &csrf),
            ("username", "newbie"),
            ("role", "admin"),
            ("pool", "nowhere"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("pool-error"));

    let res = post(
        &app,
        &owner,
        "/admin/admins",
        &[
            ("csrf", &csrf),
            ("username", "newbie"),
            ("role", "admin"),
            ("pool", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let link = set_password_path(&html);
    // The link is shown once: the list does not show it again.
    let (_, list) = get(&app, &owner, "/admin/admins").await;
    assert!(!list.contains("/admin/set-password/"));
    assert!(list.contains("newbie"));
    // No password works before it is set.
    let stranger = browser();
    let res = sign_in_as(&app, &stranger, "newbie", "!").await;
    assert_ne!(res.status(), StatusCode::SEE_OTHER);

    let invitee = browser();
    let (status, form) = get(&app, &invitee, &link).await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf_of(&form);
    let res = post(
        &app,
        &invitee,
        &link,
        &[
            ("csrf", &token),
            ("password", "short"),
            ("confirm", "short"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("password-error"));
    let res = post(
        &app,
        &invitee,
        &link,
        &[
            ("csrf", &token),
            ("password", PASSWORD),
            ("confirm", "something else"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("confirm-error"));
    let res = post(
        &app,
        &invitee,
        &link,
        &[
            ("csrf", "wrong"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &app,
        &invitee,
        &link,
        &[
            ("csrf", &token),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The link is spent.
    let (status, _) = get(&app, &invitee, &link).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (newbie, _) = signed_in(&app, "newbie").await;
    let (status, _) = get(&app, &newbie, "/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    // Their history shows the sign-in.
    let (_, page) = get(&app, &owner, "/admin/admins/newbie").await;
    assert!(page.contains("127.0.0.1"));

    // A reset ends their session at once and gives a new link; the old password is gone.
    let (status, _) = get(&app, &owner, "/admin/admins/newbie/reset").await;
    assert_eq!(status, StatusCode::OK);
    let res = post(
        &app,
        &owner,
        "/admin/admins/newbie/reset",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let again = set_password_path(&res.text().await.unwrap());
    assert_ne!(again, link);
    let res = newbie.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the session ended");
    let res = sign_in_as(&app, &browser(), "newbie", PASSWORD).await;
    assert_ne!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the old password is gone"
    );

    // Disabled: cannot sign in, even with a fresh password.
    let (_, form) = get(&app, &invitee, &again).await;
    let res = post(
        &app,
        &invitee,
        &again,
        &[
            ("csrf", &csrf_of(&form)),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (newbie, _) = signed_in(&app, "newbie").await;
    let res = post(
        &app,
        &owner,
        "/admin/admins/newbie/disable",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = newbie.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the session ended");
    let res = sign_in_as(&app, &browser(), "newbie", PASSWORD).await;
    assert_ne!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a disabled admin cannot sign in"
    );
    let res = post(
        &app,
        &owner,
        "/admin/admins/newbie/enable",
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    signed_in(&app, "newbie").await;

    // Role and scope.
    let res = post(
        &app,
        &owner,
        "/admin/admins/newbie",
        &[("csrf", &csrf), ("role", "viewer"), ("pool", "other")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let account = app
        .state
        .admin
        .admin_account(&Actor::cli(), "newbie")
        .await
        .unwrap();
    assert_eq!(
        (account.role.as_str(), account.pool.as_deref()),
        ("viewer", Some("other"))
    );
    let events = scangate::store::audit::page(
        &app.state.db,
        &scangate::store::audit::Filter {
            subject: Some("newbie"),
            ..Default::default()
        },
        None,
        50,
    )
    .await
    .unwrap();
    for action in [
        "admin.account.invite",
        "admin.account.password",
        "admin.account.reset",
        "admin.account.disable",
        "admin.account.enable",
        "admin.account.role",
    ] {
        assert!(
            events.iter().any(|e| e.action == action),
            "{action} audited"
        );
    }
    assert!(
        !format!("{events:?}").contains(&again),
        "no token in the audit log"
    );
}

async fn the_last_owner_is_never_disabled_reset_or_demoted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    console_admin(&app, "scoped", "owner", Some("other")).await;
    let (owner, csrf) = signed_in(&app, "boss").await;
    for (path, form) in [
        ("/admin/admins/boss/disable", vec![]),
        ("/admin/admins/boss/reset", vec![]),
        ("/admin/admins/boss", vec![("role", "admin"), ("pool", "")]),
        (
            "/admin/admins/boss",
            vec![("role", "owner"), ("pool", "default")],
        ),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let res = post(&app, &owner, path, &form).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "{path} {form:?}");
        assert!(res.text().await.unwrap().contains("owner"));
    }
    let boss = app
        .state
        .admin
        .admin_account(&Actor::cli(), "boss")
        .await
        .unwrap();
    assert!(boss.disabled_at.is_none() && boss.role == "owner" && boss.pool.is_none());
    signed_in(&app, "boss").await;
    // A pool-scoped owner manages no accounts.
    let (scoped, _) = signed_in(&app, "scoped").await;
    let (status, _) = get(&app, &scoped, "/admin/admins").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With a second owner of every pool, the first may step down.
    console_admin(&app, "heir", "owner", None).await;
    let res = post(
        &app,
        &owner,
        "/admin/admins/boss",
        &[("csrf", &csrf), ("role", "admin"), ("pool", "")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn api_keys_are_shown_once_and_revoked_and_signing_keys_rotate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    let (owner, csrf) = signed_in(&app, "boss").await;
    let res = post(
        &app,
        &owner,
        "/admin/api-keys",
        &[
            ("csrf", &csrf),
            ("name", ""),
            ("role", "viewer"),
            ("pool", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("name-error"));
    let res = post(
        &app,
        &owner,
        "/admin/api-keys",
        &[
            ("csrf", &csrf),
            ("name", "<i>deploy</i>"),
            ("role", "viewer"),
            ("pool", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    let at = html.find("sgk_").expect("the key is shown");
    let secret = html[at..at + html[at..].find('<').unwrap()].to_owned();
    assert!(html.contains("data-copy=\"new-key\""));
    assert!(!html.contains("<i>deploy</i>"));
    let res = app
        .client
        .get(app.url("/api/admin/v1/pools"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, list) = get(&app, &owner, "/admin/api-keys").await;
    assert!(!list.contains(&secret), "shown once");
    let id = app.state.admin.list_keys(&Actor::cli()).await.unwrap()[0]
        .id
        .clone();
    let (status, _) = get(&app, &owner, &format!("/admin/api-keys/{id}/revoke")).await;
    assert_eq!(status, StatusCode::OK);
    let res = post(
        &app,
        &owner,
        &format!("/admin/api-keys/{id}/revoke"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app
        .client
        .get(app.url("/api/admin/v1/pools"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Signing keys: rotate with the algorithm chosen; the old one is retired, then withdrawn.
    let before = app
        .state
        .admin
        .signing_keys(&Actor::cli(), "default")
        .await
        .unwrap();
    let res = post(
        &app,
        &owner,
        "/admin/keys/default/rotate",
        &[("csrf", &csrf), ("alg", "MD5")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = post(
        &app,
        &owner,
        "/admin/keys/default/rotate",
        &[("csrf", &csrf), ("alg", "EdDSA")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = app
        .state
        .admin
        .signing_keys(&Actor::cli(), "default")
        .await
        .unwrap();
    let active = after.iter().find(|k| k.state == "active").unwrap();
    assert_eq!(active.alg, "EdDSA");
    let (_, html) = get(&app, &owner, "/admin/keys?pool=default").await;
    assert!(html.contains(&active.kid));
    if let Some(old) = before.iter().find(|k| k.state == "active") {
        let res = post(
            &app,
            &owner,
            &format!("/admin/keys/default/{}/retire", old.kid),
            &[("csrf", &csrf)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let left = app
            .state
            .admin
            .signing_keys(&Actor::cli(), "default")
            .await
            .unwrap();
        assert!(left.iter().all(|k| k.kid != old.kid));
    }
}

async fn the_audit_log_filters_pages_and_exports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    let (owner, csrf) = signed_in(&app, "boss").await;
    let user = provisioned(&app, "Audited", "13000000020", "u-audit").await;
    post(
        &app,
        &owner,
        &format!("/admin/users/{user}/block"),
        &[("csrf", &csrf)],
    )
    .await;
    let (status, html) = get(
        &app,
        &owner,
        "/admin/audit?actor=admin%3Aboss&action=admin.user.block",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&user));
    assert!(!html.contains("admin.sign_in<"), "filtered");
    let (status, html) = get(&app, &owner, "/admin/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("since-error"));
    let res = owner
        .get(app.url("/admin/audit/export?action=admin.user.block"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let body = res.text().await.unwrap();
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(body.contains(&user));
}

async fn the_diagnostics_page_shows_an_error_the_simulator_produced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    console_admin(&app, "boss", "owner", None).await;
    app.sim.fail_next("/cgi-bin/stable_token", 40164, 1);
    let token = app.mp_login(APPID, "o-diag").await;
    let code = app.sim.phone_code(APPID, "o-diag", "13000000001", "86");
    app.mp_post(
        &token,
        "/api/mp/v1/me/phone",
        Some(serde_json::json!({ "code": code })),
    )
    .await;
    let (owner, _) = signed_in(&app, "boss").await;
    let path = format!("/admin/miniprograms/{APPID}/diagnostics");
    let (status, mp) = get(&app, &owner, &format!("/admin/miniprograms/{APPID}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        mp.contains(&format!("href=\"{path}\"")),
        "the Mini Program links its diagnostics"
    );
    let zh = owner
        .get(app.url(&path))
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap();
    assert_eq!(zh.status(), StatusCode::OK);
    let zh = zh.text().await.unwrap();
    assert!(zh.contains("40164") && zh.contains("白名单"), "{zh}");
    let en = owner
        .get(app.url(&format!("{path}?lang=en")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("40164") && en.contains("whitelist"));
    assert!(!en.contains(crate::helpers::MP_SECRET));
    let (status, _) = get(
        &app,
        &owner,
        "/admin/miniprograms/wx00000000000000ff/diagnostics",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Every operations page in headless Chromium, in both languages at 1280×800 and 375×667:
/// headings, Chinese text, nothing wider than the screen; screenshots under
/// `target/console-ops-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_pages_render_in_a_real_browser_in_both_languages_and_sizes() {
    crate::js::chromium();
    let app = TestApp::spawn(Backend::Embedded).await;
    console_admin(&app, "boss", "owner", None).await;
    console_admin(&app, "watcher", "viewer", Some("other")).await;
    let id = provisioned(
        &app,
        "张三 <script>alert(1)</script>",
        "13912345678",
        "union-shot",
    )
    .await;
    app.mp_login_full(
        APPID,
        "openid-shot-with-a-rather-long-value-0123456789",
        Some("union-shot"),
    )
    .await;
    provisioned(&app, "李四", "13912345679", "union-shot-2").await;
    // A login, so that the user shows one with its browser.
    app.exchanged("openid-shot-with-a-rather-long-value-0123456789")
        .await;
    // A WeChat error for the diagnostics.
    app.sim.fail_next("/cgi-bin/stable_token", 40164, 1);
    let token = app.mp_login(APPID, "o-shot").await;
    let code = app.sim.phone_code(APPID, "o-shot", "13000000001", "86");
    app.mp_post(
        &token,
        "/api/mp/v1/me/phone",
        Some(serde_json::json!({ "code": code })),
    )
    .await;
    app.sim.fail_next("/wxa/getwxacodeunlimit", 41030, 1);
    let creds = scangate::wechat::Credentials {
        appid: APPID.into(),
        secret: crate::helpers::MP_SECRET.into(),
    };
    let req = scangate::wechat::WxaCodeRequest {
        scene: "s".into(),
        ..Default::default()
    };
    let _ = app.state.wechat.wxacode_unlimit(&creds, &req).await;
    let invitation = app
        .state
        .admin
        .invite_admin(
            &Actor::cli(),
            scangate::admin::admins::NewAdmin {
                username: "newcomer".into(),
                role: "admin".into(),
                pool: None,
            },
        )
        .await
        .unwrap();
    // Some sign-in history for the admin's page.
    signed_in(&app, "boss").await;
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-ops-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let out = crate::js::run_node(
        "console-ops.mjs",
        &[
            ("SCANGATE_URL", app.base.clone()),
            ("USERNAME", "boss".into()),
            ("PASSWORD", PASSWORD.into()),
            ("USER_ID", id),
            ("APPID", APPID.into()),
            (
                "SET_PASSWORD_PATH",
                format!("/admin/set-password/{}", invitation.token),
            ),
            ("ARTIFACTS_DIR", dir.display().to_string()),
        ],
    )
    .await;
    assert!(out.contains("console ops pages: ok"), "{out}");
}
