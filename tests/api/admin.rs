//! The management API: apps, pools, users, the audit log and API keys, changed while the
//! service runs and seen at once by every instance.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp, APPID, APPID_2, APPID_OTHER};

both_backends!(
    an_app_made_through_the_api_logs_people_in_at_once,
    a_deleted_app_stops_its_codes_and_its_page,
    exactly_one_of_two_updates_with_one_if_match_wins,
    roles_and_pool_scopes_are_enforced_and_refusals_audited,
    apps_from_the_config_file_are_read_only,
    blocking_a_user_stops_their_tokens_sessions_and_scans_at_once,
    pools_are_created_renamed_and_deleted_only_when_empty,
    users_are_listed_a_page_at_a_time_and_found_by_prefix,
    a_search_pages_through_every_match_once_in_the_order_of_what_matched,
    every_change_is_audited_with_its_fields_and_no_secret,
    bad_input_gets_its_documented_error,
    a_mini_program_registered_through_the_api_is_checked_and_signs_people_in,
    signing_keys_are_rotated_and_withdrawn,
    an_uploaded_logo_is_served_and_shown_everywhere,
    the_audit_log_exports_whole_as_json_lines,
    a_deleted_user_is_erased_and_signs_up_afresh,
    the_scan_funnel_counts_each_step_per_hour,
    two_users_merge_into_one,
    a_provisioned_person_is_linked_not_created_and_strangers_are_refused,
    a_deleted_pool_and_a_rotated_key_are_seen_at_once_everywhere,
);

const CALLBACK: &str = "https://shop.example/callback";

/// A management API call with `key`; the response.
async fn call(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method, app.url(&format!("/api/admin/v1{path}")))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn json_ok(res: reqwest::Response, status: StatusCode) -> Value {
    let got = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

fn shop(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "name": "Shop",
        "redirect_uris": [CALLBACK],
        "allowed_origins": ["https://shop.example"],
        "miniprogram": APPID,
        "qr_ttl_secs": 60,
    })
}

/// The confirm body that taps the number the PC shows: an app made through the API has the
/// match step on.
async fn shown_number(app: &TestApp, random: &str) -> Option<Value> {
    let shown = app.status(&app.client, random).await["match_number"].clone();
    shown.is_number().then(|| json!({ "match_number": shown }))
}

/// Creates a QR code for `client_id`, scans and confirms it as `openid`; the ticket.
async fn confirmed(app: &TestApp, client_id: &str, openid: &str) -> String {
    let qr = app.create_qr_for(&app.client, client_id).await;
    let random = qr["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, openid).await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    assert_eq!(
        app.confirm(&token, &random, shown_number(app, &random).await)
            .await
            .status(),
        StatusCode::OK
    );
    app.status(&app.client, &random).await["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn authorize_status(app: &TestApp, client_id: &str, redirect_uri: &str) -> StatusCode {
    let url = format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s",
        app.url("/oidc/auth"),
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>(),
    );
    crate::helpers::cookie_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .status()
}

async fn an_app_made_through_the_api_logs_people_in_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    let made = json_ok(
        call(&app, &key, Method::POST, "/apps", Some(shop("shop"))).await,
        StatusCode::CREATED,
    )
    .await;
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "a generated secret, shown once");
    assert_eq!(made["managed_by"], "api");
    assert_eq!(made["public"], false);

    // A QR login on the new app, with no restart.
    let ticket = confirmed(&app, "shop", "o-shopper").await;
    let res = app.exchange(&app.client, &ticket).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Its secret works at the token endpoint: a wrong grant, but the client authenticates.
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .form(&[
            ("client_id", "shop"),
            ("client_secret", secret.as_str()),
            ("grant_type", "authorization_code"),
            ("code", "nope"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // The hosted page serves it, on this instance and on another.
    let peer = match backend {
        Backend::Distributed => Some(app.peer().await),
        Backend::Embedded => None,
    };
    let other = peer.as_ref().unwrap_or(&app);
    assert_eq!(
        authorize_status(other, "shop", CALLBACK).await,
        StatusCode::OK
    );

    // Remove the callback: the very next authorization request is refused, on either.
    let res = call(
        &app,
        &key,
        Method::PATCH,
        "/apps/shop",
        Some(json!({ "redirect_uris": ["https://shop.example/other"] })),
    )
    .await;
    let changed = json_ok(res, StatusCode::OK).await;
    assert_eq!(
        changed["redirect_uris"],
        json!(["https://shop.example/other"])
    );
    assert_eq!(
        authorize_status(other, "shop", CALLBACK).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        authorize_status(&app, "shop", CALLBACK).await,
        StatusCode::BAD_REQUEST
    );
}

async fn a_deleted_app_stops_its_codes_and_its_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    json_ok(
        call(&app, &key, Method::POST, "/apps", Some(shop("gone"))).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        authorize_status(&app, "gone", CALLBACK).await,
        StatusCode::OK
    );
    let qr = app.create_qr_for(&app.client, "gone").await;
    let random = qr["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-late").await;

    let res = call(&app, &key, Method::DELETE, "/apps/gone", None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_error(
        call(&app, &key, Method::GET, "/apps/gone", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Its code cannot be scanned any more, and its login page is gone.
    assert_error(
        app.scan(&token, &random).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        authorize_status(&app, "gone", CALLBACK).await,
        StatusCode::BAD_REQUEST
    );
    let res = app
        .client
        .post(app.url("/api/v1/qrcodes"))
        .json(&json!({ "app_id": "gone" }))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
}

async fn exactly_one_of_two_updates_with_one_if_match_wins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    let res = call(&app, &key, Method::POST, "/apps", Some(shop("race"))).await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.status(), StatusCode::CREATED);
    let update = |name: &'static str| {
        let req = app
            .client
            .patch(app.url("/api/admin/v1/apps/race"))
            .bearer_auth(&key)
            .header("if-match", &etag)
            .json(&json!({ "name": name }));
        async move { req.send().await.unwrap().status() }
    };
    let statuses: Vec<StatusCode> =
        futures::future::join_all(["A", "B", "C", "D", "E", "F"].into_iter().map(update)).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let stale = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((won, stale), (1, 5), "{statuses:?}");
    // The stale ETag stays stale; the current one works.
    let res = app
        .client
        .patch(app.url("/api/admin/v1/apps/race"))
        .bearer_auth(&key)
        .header("if-match", &etag)
        .json(&json!({ "name": "Z" }))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    let res = call(&app, &key, Method::GET, "/apps/race", None).await;
    let current = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(current, etag);
    let res = app
        .client
        .patch(app.url("/api/admin/v1/apps/race"))
        .bearer_auth(&key)
        .header("if-match", &current)
        .json(&json!({ "name": "Z" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn roles_and_pool_scopes_are_enforced_and_refusals_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.admin_key("owner", None).await;
    let viewer = app.admin_key("viewer", None).await;
    let scoped = app.admin_key("admin", Some("other")).await;

    // A viewer reads but cannot write.
    json_ok(
        call(&app, &viewer, Method::GET, "/apps", None).await,
        StatusCode::OK,
    )
    .await;
    assert_error(
        call(&app, &viewer, Method::POST, "/apps", Some(shop("v"))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        call(&app, &viewer, Method::GET, "/keys", None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // A key limited to pool `other` sees its pool's apps only; the rest does not exist.
    let apps = json_ok(
        call(&app, &scoped, Method::GET, "/apps", None).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["other"]);
    for path in ["/apps/web", "/pools/default", "/pools/default/users"] {
        assert_error(
            call(&app, &scoped, Method::GET, path, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let mut other_app = shop("scoped-shop");
    other_app["pool"] = json!("other");
    other_app["miniprogram"] = json!(APPID_OTHER);
    json_ok(
        call(&app, &scoped, Method::POST, "/apps", Some(other_app)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_error(
        call(&app, &scoped, Method::POST, "/apps", Some(shop("outside"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // No key, a made-up key and a revoked key are all 401.
    let res = app
        .client
        .get(app.url("/api/admin/v1/apps"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(
        call(&app, "sgk_madeup", Method::GET, "/apps", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let keys = json_ok(
        call(&app, &owner, Method::GET, "/keys", None).await,
        StatusCode::OK,
    )
    .await;
    let viewer_id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = json_ok(
        call(
            &app,
            &owner,
            Method::DELETE,
            &format!("/keys/{viewer_id}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(revoked["revoked_at"].is_string());
    assert_error(
        call(&app, &viewer, Method::GET, "/apps", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    // Every refusal is in the audit log.
    let refused = json_ok(
        call(
            &app,
            &owner,
            Method::GET,
            "/audit?action=admin.refused",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(refused["items"].as_array().unwrap().len() >= 3, "{refused}");
}

async fn apps_from_the_config_file_are_read_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("owner", None).await;
    let web = json_ok(
        call(&app, &key, Method::GET, "/apps/web", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(web["managed_by"], "config");
    for (method, path, body) in [
        (
            Method::PATCH,
            "/apps/web",
            Some(json!({ "name": "Renamed" })),
        ),
        (Method::DELETE, "/apps/web", None),
        (Method::POST, "/apps/web/secret", None),
    ] {
        let body = assert_error(
            call(&app, &key, method, path, body).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(body["message"].as_str().unwrap().contains("config file"));
    }
}

async fn blocking_a_user_stops_their_tokens_sessions_and_scans_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    let exchanged = app.exchanged("o-blocked").await;
    let user_id = exchanged["user"]["id"].as_str().unwrap().to_owned();
    let access = exchanged["access_token"].as_str().unwrap().to_owned();
    let mp_token = app.mp_login(APPID, "o-blocked").await;
    let userinfo = |token: String| {
        let req = app.client.get(app.url("/oidc/userinfo")).bearer_auth(token);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(userinfo(access.clone()).await, StatusCode::OK);

    let blocked = json_ok(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/users/{user_id}/block"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(blocked["blocked"], true);
    assert_eq!(blocked["identities"][0]["appid"], APPID);
    assert_eq!(userinfo(access.clone()).await, StatusCode::UNAUTHORIZED);
    // The Mini Program session ended, and a new one cannot scan.
    let qr = app.create_qr().await;
    let random = qr["random"].as_str().unwrap();
    assert_eq!(
        app.scan(&mp_token, random).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.mp_login(APPID, "o-blocked").await;
    assert_error(
        app.scan(&fresh, random).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    json_ok(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/users/{user_id}/unblock"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.scan(&fresh, random).await.status(), StatusCode::OK);
}

async fn pools_are_created_renamed_and_deleted_only_when_empty(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.admin_key("owner", None).await;
    let admin = app.admin_key("admin", None).await;
    assert_error(
        call(
            &app,
            &admin,
            Method::POST,
            "/pools",
            Some(json!({ "slug": "x", "name": "X" })),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let made = call(
        &app,
        &owner,
        Method::POST,
        "/pools",
        Some(json!({ "slug": "tenant-a", "name": "Tenant A" })),
    )
    .await;
    let etag = made.headers()["etag"].to_str().unwrap().to_owned();
    json_ok(made, StatusCode::CREATED).await;
    assert_error(
        call(
            &app,
            &owner,
            Method::POST,
            "/pools",
            Some(json!({ "slug": "tenant-a", "name": "Again" })),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // Its issuer exists at once.
    let discovery = app
        .get_json("/pools/tenant-a/oidc/.well-known/openid-configuration")
        .await;
    assert!(discovery["issuer"]
        .as_str()
        .unwrap()
        .ends_with("/pools/tenant-a/oidc"));
    let res = app
        .client
        .patch(app.url("/api/admin/v1/pools/tenant-a"))
        .bearer_auth(&owner)
        .header("if-match", &etag)
        .json(&json!({ "name": "Tenant Alpha" }))
        .send()
        .await
        .unwrap();
    let renamed = json_ok(res, StatusCode::OK).await;
    assert_eq!(renamed["name"], "Tenant Alpha");
    // A pool with apps or users is kept.
    assert_error(
        call(&app, &owner, Method::DELETE, "/pools/other", None).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let res = call(&app, &owner, Method::DELETE, "/pools/tenant-a", None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_error(
        call(&app, &owner, Method::GET, "/pools/tenant-a", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn users_are_listed_a_page_at_a_time_and_found_by_prefix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("viewer", None).await;
    for openid in ["o-ann", "o-bob", "o-cat", "o-dan", "o-eve"] {
        app.mp_login(APPID, openid).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/pools/default/users?limit=2&cursor={c}"),
            None => "/pools/default/users?limit=2".to_owned(),
        };
        let page = json_ok(
            call(&app, &key, Method::GET, &path, None).await,
            StatusCode::OK,
        )
        .await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "every user once: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5);

    let found = json_ok(
        call(&app, &key, Method::GET, "/pools/default/users?q=o-ca", None).await,
        StatusCode::OK,
    )
    .await;
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{found}");
    let detail = json_ok(
        call(
            &app,
            &key,
            Method::GET,
            &format!("/users/{}", items[0]["id"].as_str().unwrap()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["identities"][0]["openid"], "o-cat");
}

/// Users found under several keys (an openid and a unionid, and a nickname, all starting with
/// `o-`) come once each, at the least of their matching values, however small the pages.
async fn a_search_pages_through_every_match_once_in_the_order_of_what_matched(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("viewer", None).await;
    let mut expected = Vec::new();
    for n in 1..=7 {
        let openid = format!("o-open-{n}");
        let unionid = format!("o-union-{n}");
        let session = app.mp_login_full(APPID, &openid, Some(&unionid)).await;
        let id = session["user"]["id"].as_str().unwrap().to_owned();
        // Three users are named so that their nickname is their least matching value; one
        // is named outside the prefix.
        let nickname = match n {
            2 | 5 | 6 => Some(format!("o-a nickname {n}")),
            3 => Some("somebody".to_owned()),
            _ => None,
        };
        if let Some(nickname) = &nickname {
            let res = app
                .client
                .patch(app.url("/api/mp/v1/me"))
                .bearer_auth(session["token"].as_str().unwrap())
                .json(&json!({ "nickname": nickname }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        let least = nickname.filter(|n| n.starts_with("o-")).unwrap_or(openid);
        expected.push((least, id));
    }
    // One user who does not match at all.
    app.mp_login(APPID, "x-other").await;
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    for limit in [1, 2, 3, 50] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let path = match &cursor {
                Some(c) => format!("/pools/default/users?q=o-&limit={limit}&cursor={c}"),
                None => format!("/pools/default/users?q=o-&limit={limit}"),
            };
            let page = json_ok(
                call(&app, &key, Method::GET, &path, None).await,
                StatusCode::OK,
            )
            .await;
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= limit, "{page}");
            seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "pages of {limit}");
    }
    // A list's cursor is not a search's.
    let first = json_ok(
        call(
            &app,
            &key,
            Method::GET,
            "/pools/default/users?limit=1",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let list_cursor = first["next_cursor"].as_str().unwrap();
    assert_error(
        call(
            &app,
            &key,
            Method::GET,
            &format!("/pools/default/users?q=o-&cursor={list_cursor}"),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

async fn every_change_is_audited_with_its_fields_and_no_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("owner", None).await;
    let mut bodies = Vec::new();
    let made = json_ok(
        call(&app, &key, Method::POST, "/apps", Some(shop("audited"))).await,
        StatusCode::CREATED,
    )
    .await;
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    let rotated = json_ok(
        call(&app, &key, Method::POST, "/apps/audited/secret", None).await,
        StatusCode::OK,
    )
    .await;
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(second, secret);
    bodies.push(
        json_ok(
            call(
                &app,
                &key,
                Method::PATCH,
                "/apps/audited",
                Some(json!({ "qr_ttl_secs": 90 })),
            )
            .await,
            StatusCode::OK,
        )
        .await,
    );
    bodies.push(
        json_ok(
            call(&app, &key, Method::GET, "/apps/audited", None).await,
            StatusCode::OK,
        )
        .await,
    );
    bodies.push(
        json_ok(
            call(&app, &key, Method::GET, "/apps", None).await,
            StatusCode::OK,
        )
        .await,
    );
    let audit = json_ok(
        call(&app, &key, Method::GET, "/audit?subject=audited", None).await,
        StatusCode::OK,
    )
    .await;
    bodies.push(audit.clone());
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "admin.app.update",
            "admin.app.rotate_secret",
            "admin.app.create"
        ]
    );
    let update = &audit["items"][0];
    assert_eq!(update["actor"], "key:test");
    assert_eq!(
        update["detail"]["changed"]["qr_ttl_secs"],
        json!({ "from": 60, "to": 90 })
    );
    let stored = scangate::store::apps::get(&app.state.db, "audited")
        .await
        .unwrap()
        .unwrap();
    let hash = stored.client_secret_hash.unwrap();
    for body in &bodies {
        let text = body.to_string();
        for secret in [secret.as_str(), second.as_str(), hash.as_str()] {
            assert!(!text.contains(secret), "a secret leaked into {text}");
        }
        assert!(!text.contains("client_secret"), "{text}");
    }
}

/// What is sent, and the status and error code it must get.
type Case = (
    &'static str,
    Method,
    String,
    Option<Value>,
    StatusCode,
    &'static str,
);

async fn bad_input_gets_its_documented_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("owner", None).await;
    json_ok(
        call(&app, &key, Method::POST, "/apps", Some(shop("target"))).await,
        StatusCode::CREATED,
    )
    .await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = shop("new-app");
        f(&mut v);
        Some(v)
    };
    let cases: Vec<Case> = vec![
        (
            "unknown field",
            Method::POST,
            "/apps".into(),
            with(&|v| v["colour"] = json!("red")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "ttl of the wrong type",
            Method::POST,
            "/apps".into(),
            with(&|v| v["qr_ttl_secs"] = json!("long")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "ttl too short",
            Method::POST,
            "/apps".into(),
            with(&|v| v["qr_ttl_secs"] = json!(5)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "ttl too long",
            Method::POST,
            "/apps".into(),
            with(&|v| v["qr_ttl_secs"] = json!(99999)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "redirect with a fragment",
            Method::POST,
            "/apps".into(),
            with(&|v| v["redirect_uris"] = json!(["https://a.example/cb#x"])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "relative redirect",
            Method::POST,
            "/apps".into(),
            with(&|v| v["redirect_uris"] = json!(["/cb"])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "javascript redirect",
            Method::POST,
            "/apps".into(),
            with(&|v| v["redirect_uris"] = json!(["javascript:alert(1)"])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "origin with a path",
            Method::POST,
            "/apps".into(),
            with(&|v| v["allowed_origins"] = json!(["https://a.example/x"])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad client id",
            Method::POST,
            "/apps".into(),
            with(&|v| v["client_id"] = json!("has space")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "malformed appid",
            Method::POST,
            "/apps".into(),
            with(&|v| v["miniprogram"] = json!("wx1")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown Mini Program",
            Method::POST,
            "/apps".into(),
            with(&|v| v["miniprogram"] = json!("wx9999999999999999")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "Mini Program of another pool",
            Method::POST,
            "/apps".into(),
            with(&|v| v["miniprogram"] = json!(APPID_OTHER)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown pool",
            Method::POST,
            "/apps".into(),
            with(&|v| v["pool"] = json!("nope")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "taken client id",
            Method::POST,
            "/apps".into(),
            Some(shop("target")),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "missing name",
            Method::POST,
            "/apps".into(),
            Some(json!({ "client_id": "x", "miniprogram": APPID })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "not JSON",
            Method::POST,
            "/apps".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "patch unknown field",
            Method::PATCH,
            "/apps/target".into(),
            Some(json!({ "client_secret": "x" })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "patch bad uri",
            Method::PATCH,
            "/apps/target".into(),
            Some(json!({ "redirect_uris": ["ftp://x"] })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "patch unknown app",
            Method::PATCH,
            "/apps/nope".into(),
            Some(json!({ "name": "x" })),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "get unknown app",
            Method::GET,
            "/apps/nope".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "delete unknown app",
            Method::DELETE,
            "/apps/nope".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "bad cursor",
            Method::GET,
            "/apps?cursor=%25%25".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "limit zero",
            Method::GET,
            "/apps?limit=0".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "limit too big",
            Method::GET,
            "/apps?limit=100000".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "limit not a number",
            Method::GET,
            "/apps?limit=many".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown query parameter",
            Method::GET,
            "/apps?sort=name".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad pool slug",
            Method::POST,
            "/pools".into(),
            Some(json!({ "slug": "Bad Slug", "name": "x" })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "empty pool name",
            Method::POST,
            "/pools".into(),
            Some(json!({ "slug": "ok", "name": " " })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "delete the default pool",
            Method::DELETE,
            "/pools/default".into(),
            None,
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "users of an unknown pool",
            Method::GET,
            "/pools/nope/users".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "unknown user",
            Method::GET,
            "/users/nope".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "block an unknown user",
            Method::POST,
            "/users/nope/block".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "search too long",
            Method::GET,
            format!("/pools/default/users?q={}", "x".repeat(65)),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "audit since not a time",
            Method::GET,
            "/audit?since=yesterday".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "audit range backwards",
            Method::GET,
            "/audit?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "key with a bad role",
            Method::POST,
            "/keys".into(),
            Some(json!({ "name": "k", "role": "god" })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "key for an unknown pool",
            Method::POST,
            "/keys".into(),
            Some(json!({ "name": "k", "role": "viewer", "pool": "nope" })),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "key with an empty name",
            Method::POST,
            "/keys".into(),
            Some(json!({ "name": "", "role": "viewer" })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "revoke an unknown key",
            Method::DELETE,
            "/keys/nope".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "an unknown route",
            Method::GET,
            "/nothing".into(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    assert!(cases.len() >= 40);
    for (what, method, path, body, status, code) in cases {
        let mut req = app
            .client
            .request(method, app.url(&format!("/api/admin/v1{path}")))
            .bearer_auth(&key);
        req = match body {
            Some(b) => req.json(&b),
            None if what == "not JSON" => req.header("content-type", "application/json").body("{"),
            None => req,
        };
        let res = req.send().await.unwrap();
        let got = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(got, status, "{what}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(body["error"], code, "{what}: {text}");
        assert!(
            !text.contains("sqlx") && !text.contains("SELECT"),
            "{what}: {text}"
        );
    }
    // A stale If-Match.
    let res = app
        .client
        .patch(app.url("/api/admin/v1/apps/target"))
        .bearer_auth(&key)
        .header("if-match", "\"999\"")
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    // An oversized body.
    let res = app
        .client
        .post(app.url("/api/admin/v1/apps"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(3 * 1024 * 1024)))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

async fn a_mini_program_registered_through_the_api_is_checked_and_signs_people_in(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    const NEW: &str = "wx00000000000000cc";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    app.sim.register_app(NEW, SECRET);
    let made = json_ok(
        call(
            &app,
            &key,
            Method::POST,
            "/miniprograms",
            Some(json!({ "appid": NEW, "secret": SECRET, "name": "New shop" })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(made["managed_by"], "api");
    let check = json_ok(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/miniprograms/{NEW}/check"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(check["ok"], true, "{check}");

    // An app on it, and a scan through it.
    let mut new_app = shop("on-new-mp");
    new_app["miniprogram"] = json!(NEW);
    json_ok(
        call(&app, &key, Method::POST, "/apps", Some(new_app)).await,
        StatusCode::CREATED,
    )
    .await;
    let token = app.mp_login(NEW, "o-new").await;
    let qr = app.create_qr_for(&app.client, "on-new-mp").await;
    let res = app.scan(&token, qr["random"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);

    // A wrong secret is explained; the secret is never shown.
    let res = call(
        &app,
        &key,
        Method::PATCH,
        &format!("/miniprograms/{NEW}"),
        Some(json!({ "secret": "ffffffffffffffffffffffffffffffff" })),
    )
    .await;
    let changed = json_ok(res, StatusCode::OK).await;
    let check = json_ok(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/miniprograms/{NEW}/check"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["errcode"], 40125);
    assert!(check["message"]
        .as_str()
        .unwrap()
        .contains("AppSecret is wrong"));
    let listed = json_ok(
        call(&app, &key, Method::GET, "/miniprograms", None).await,
        StatusCode::OK,
    )
    .await;
    let audit = json_ok(
        call(
            &app,
            &key,
            Method::GET,
            &format!("/audit?subject={NEW}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    for body in [&made, &changed, &listed, &audit] {
        let text = body.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("ffffffffffffffff"),
            "{text}"
        );
        assert!(!text.contains("secret_enc"), "{text}");
    }
    // In use: kept. From the config file: read-only.
    assert_error(
        call(
            &app,
            &key,
            Method::DELETE,
            &format!("/miniprograms/{NEW}"),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let body = assert_error(
        call(
            &app,
            &key,
            Method::PATCH,
            &format!("/miniprograms/{APPID}"),
            Some(json!({ "name": "x" })),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert!(body["message"].as_str().unwrap().contains("config file"));
    let bad = assert_error(
        call(
            &app,
            &key,
            Method::POST,
            "/miniprograms",
            Some(json!({ "appid": "wx1", "secret": "short" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(
        bad["fields"]["appid"].is_string() && bad["fields"]["secret"].is_string(),
        "{bad}"
    );
}

async fn signing_keys_are_rotated_and_withdrawn(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.admin_key("owner", None).await;
    let admin = app.admin_key("admin", None).await;
    // The first key is made in the background at the first start.
    let jwks_kids = || async {
        let jwks = app.get_json("/oidc/jwks").await;
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let first = jwks_kids().await;
    assert_eq!(first.len(), 1);
    assert_error(
        call(
            &app,
            &admin,
            Method::POST,
            "/pools/default/signing-keys",
            Some(json!({ "alg": "ES256" })),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let rotated = json_ok(
        call(
            &app,
            &owner,
            Method::POST,
            "/pools/default/signing-keys",
            Some(json!({ "alg": "ES256" })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(rotated["alg"], "ES256");
    assert_eq!(rotated["state"], "active");
    let listed = json_ok(
        call(
            &app,
            &owner,
            Method::GET,
            "/pools/default/signing-keys",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let old = items
        .iter()
        .find(|k| k["kid"] == first[0].as_str())
        .unwrap();
    assert_eq!(old["state"], "retired");
    assert!(old["retires_at"].is_string());
    assert!(!listed.to_string().contains("private"));
    assert_eq!(jwks_kids().await.len(), 2);

    assert_error(
        call(
            &app,
            &owner,
            Method::DELETE,
            &format!(
                "/pools/default/signing-keys/{}",
                rotated["kid"].as_str().unwrap()
            ),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let res = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/pools/default/signing-keys/{}", first[0]),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        jwks_kids().await,
        [rotated["kid"].as_str().unwrap().to_owned()]
    );
    assert_error(
        call(
            &app,
            &owner,
            Method::POST,
            "/pools/default/signing-keys",
            Some(json!({ "alg": "HS256" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

/// A solid red square PNG, `side` pixels.
fn red_png(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(side, side, image::Rgb([220, 20, 20]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn an_uploaded_logo_is_served_and_shown_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    json_ok(
        call(&app, &key, Method::POST, "/apps", Some(shop("logoed"))).await,
        StatusCode::CREATED,
    )
    .await;
    let upload = |body: Vec<u8>, kind: &'static str| {
        let req = app
            .client
            .put(app.url("/api/admin/v1/apps/logoed/logo"))
            .bearer_auth(&key)
            .header("content-type", kind)
            .body(body);
        async move { req.send().await.unwrap() }
    };
    let res = upload(red_png(900), "image/png").await;
    let changed = json_ok(res, StatusCode::OK).await;
    let path = changed["logo"].as_str().unwrap().to_owned();
    assert!(
        path.starts_with("/media/logos/") && path.ends_with(".png"),
        "{path}"
    );

    // Served at a stable, cacheable URL, normalised to at most 512 px.
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let stored = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((stored.width(), stored.height()), (512, 512));

    // The hosted page shows it, the phone gets its absolute URL, the QR code carries it.
    let url = format!(
        "{}?response_type=code&client_id=logoed&redirect_uri={}&scope=openid&state=s",
        app.url("/oidc/auth"),
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>(),
    );
    let page = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&path), "the hosted page shows the logo");
    let qr = app.create_qr_for(&app.client, "logoed").await;
    let random = qr["random"].as_str().unwrap();
    let token = app.mp_login(APPID, "o-logo").await;
    let scanned: Value = app.scan(&token, random).await.json().await.unwrap();
    assert_eq!(scanned["app"]["logo_url"], app.url(&path));
    let png = app
        .client
        .get(app.url(&format!("/api/v1/qrcodes/{random}/image.png?size=300")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let centre = image::load_from_memory(&png).unwrap().to_rgb8();
    let p = centre.get_pixel(150, 150).0;
    assert!(
        p[0] > 180 && p[1] < 80 && p[2] < 80,
        "the logo's red at the centre: {p:?}"
    );

    // What is refused, and how.
    assert_error(
        upload(b"not an image".to_vec(), "image/png").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        upload(red_png(10), "text/plain").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        upload(vec![0u8; 2 * 1024 * 1024], "image/png").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10" fill="red"/></svg>"#;
    let res = upload(svg.to_vec(), "image/svg+xml").await;
    let body = json_ok(res, StatusCode::OK).await;
    let served = app
        .client
        .get(app.url(body["logo"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        served.starts_with(b"\x89PNG"),
        "an SVG is stored as a PNG, without its script"
    );
    let refused = assert_error(
        call(
            &app,
            &key,
            Method::PATCH,
            "/apps/logoed",
            Some(json!({ "logo": "/etc/passwd" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(refused["fields"]["logo"].is_string(), "{refused}");
    let removed = json_ok(
        call(&app, &key, Method::DELETE, "/apps/logoed/logo", None).await,
        StatusCode::OK,
    )
    .await;
    assert!(removed["logo"].is_null());
    assert_error(
        app.client
            .get(app.url("/media/logos/nope.png"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn the_audit_log_exports_whole_as_json_lines(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.admin_key("owner", None).await;
    let scoped = app.admin_key("viewer", Some("other")).await;
    let now = app.clock.now();
    // More than one batch, and a subject that tries to break the line format.
    for i in 0..1_100 {
        let (pool, subject) = if i % 10 == 0 {
            ("other", "o\"ther\n{\"x\":1}".to_owned())
        } else {
            ("default", format!("s-{i}"))
        };
        scangate::store::audit::record(
            &app.state.db,
            scangate::store::audit::Event {
                pool: Some(pool),
                actor: Some("seed"),
                action: "seed.event",
                subject: Some(&subject),
                ip: None,
                detail: None,
            },
            now + i,
        )
        .await
        .unwrap();
    }
    let export = |key: String, query: &'static str| {
        let req = app
            .client
            .get(app.url(&format!("/api/admin/v1/audit/export{query}")))
            .bearer_auth(key);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["content-type"], "application/x-ndjson");
            res.text().await.unwrap()
        }
    };
    let all = export(owner.clone(), "?action=seed.event").await;
    let lines: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 1_100);
    let ids: std::collections::HashSet<&str> =
        lines.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1_100, "no event twice");
    assert!(lines[0]["at"].as_str().unwrap() >= lines[1_099]["at"].as_str().unwrap());
    let other = export(scoped, "?action=seed.event").await;
    assert_eq!(
        other.lines().count(),
        110,
        "a pool-scoped key exports its pool only"
    );
    assert!(other
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).unwrap()["pool"] == "other"));
}

async fn a_deleted_user_is_erased_and_signs_up_afresh(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    let exchanged = app.exchanged("o-forget-me").await;
    let id = exchanged["user"]["id"].as_str().unwrap().to_owned();
    let access = exchanged["access_token"].as_str().unwrap().to_owned();
    let mp_token = app.mp_login(APPID, "o-forget-me").await;
    let res = call(&app, &key, Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_error(
        call(&app, &key, Method::GET, &format!("/users/{id}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let userinfo = app
        .client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    let qr = app.create_qr().await;
    assert_eq!(
        app.scan(&mp_token, qr["random"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let again = app.mp_login_full(APPID, "o-forget-me", None).await;
    assert_eq!(again["user"]["is_new"], true);
    assert_ne!(again["user"]["id"], id.as_str());
    let audit = json_ok(
        call(
            &app,
            &key,
            Method::GET,
            &format!("/audit?subject={id}&action=admin.user.delete"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
    assert!(audit["items"][0]["detail"].is_null());
}

async fn the_scan_funnel_counts_each_step_per_hour(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("viewer", None).await;
    // Start just after a day begins, so every step falls in one daily bucket.
    let day = 24 * 3_600_000;
    let into_day = app.clock.now().rem_euclid(day);
    app.clock
        .advance(Duration::from_millis((day - into_day + 60_000) as u64));
    // Two logins (each scanned 7 s before it was confirmed), one scanned then cancelled, one
    // left pending.
    for openid in ["o-f1", "o-f2"] {
        let qr = app.create_qr().await;
        let random = qr["random"].as_str().unwrap();
        let token = app.mp_login(APPID, openid).await;
        assert_eq!(app.scan(&token, random).await.status(), StatusCode::OK);
        app.clock.advance(Duration::from_secs(7));
        assert_eq!(
            app.confirm(&token, random, None).await.status(),
            StatusCode::OK
        );
        let ticket = app.status(&app.client, random).await["ticket"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            app.exchange(&app.client, &ticket).await.status(),
            StatusCode::OK
        );
    }
    let qr = app.create_qr().await;
    let token = app.mp_login(APPID, "o-f3").await;
    assert_eq!(
        app.scan(&token, qr["random"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let cancel = app
        .mp_post(
            &token,
            &format!(
                "/api/mp/v1/qrcodes/{}/cancel",
                qr["random"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    app.create_qr().await;
    // Polls count nothing.
    for _ in 0..5 {
        app.status(&app.client, qr["random"].as_str().unwrap())
            .await;
    }
    let report = json_ok(
        call(&app, &key, Method::GET, "/apps/web/funnel?bucket=day", None).await,
        StatusCode::OK,
    )
    .await;
    let rows = report["items"].as_array().unwrap();
    let total = |field: &str| rows.iter().map(|r| r[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (
            total("created"),
            total("scanned"),
            total("confirmed"),
            total("cancelled"),
            total("exchanged")
        ),
        (4, 3, 2, 1, 2),
        "{report}"
    );
    let today = rows
        .iter()
        .rev()
        .find(|r| r["confirmed"].as_u64() == Some(2))
        .unwrap();
    assert_eq!(
        today["median_scan_to_confirm_secs"], 10,
        "7 s falls in the 5–10 s bucket"
    );
    assert!(
        today["expired"].is_null(),
        "a bucket still open does not guess its expiries"
    );
    // The next day the bucket is closed: one code expired.
    app.clock.advance(Duration::from_secs(26 * 3600));
    let later = json_ok(
        call(&app, &key, Method::GET, "/apps/web/funnel?bucket=day", None).await,
        StatusCode::OK,
    )
    .await;
    let closed = later["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["created"].as_u64() == Some(4))
        .unwrap()
        .clone();
    assert_eq!(closed["expired"], 1, "{later}");
    assert_error(
        call(
            &app,
            &key,
            Method::GET,
            "/apps/web/funnel?bucket=week",
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        call(
            &app,
            &key,
            Method::GET,
            "/apps/web/funnel?since=2026-01-01T00:00:00Z",
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        call(&app, &key, Method::GET, "/apps/nope/funnel", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn two_users_merge_into_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    let kept = app.exchanged("o-kept").await;
    let kept_id = kept["user"]["id"].as_str().unwrap().to_owned();
    let other = app.mp_login_full(APPID_2, "o-second-phone", None).await;
    let absorbed_id = other["user"]["id"].as_str().unwrap().to_owned();
    let absorbed_token = other["token"].as_str().unwrap().to_owned();
    assert_ne!(kept_id, absorbed_id);

    let merged = json_ok(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/users/{kept_id}/merge"),
            Some(json!({ "absorb": absorbed_id })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let appids: Vec<&str> = merged["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["appid"].as_str().unwrap())
        .collect();
    assert_eq!(appids.len(), 2, "{merged}");
    assert!(appids.contains(&APPID) && appids.contains(&APPID_2));
    assert_eq!(merged["last_logins"][0]["how"], "login.exchange");
    assert_eq!(merged["sessions"]["miniprogram"], 1, "{merged}");
    assert_error(
        call(
            &app,
            &key,
            Method::GET,
            &format!("/users/{absorbed_id}"),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The absorbed user's session is over; signing in again lands on the kept user.
    let qr = app.create_qr().await;
    assert_eq!(
        app.scan(&absorbed_token, qr["random"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let again = app.mp_login_full(APPID_2, "o-second-phone", None).await;
    assert_eq!(again["user"]["id"], kept_id.as_str());
    assert_eq!(again["user"]["is_new"], false);
    assert_error(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/users/{kept_id}/merge"),
            Some(json!({ "absorb": kept_id })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let elsewhere = app.mp_login_full(APPID_OTHER, "o-other-pool", None).await;
    assert_error(
        call(
            &app,
            &key,
            Method::POST,
            &format!("/users/{kept_id}/merge"),
            Some(json!({ "absorb": elsewhere["user"]["id"] })),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

/// The claims of a JWT, unverified (the tests of `tokens` verify them).
fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn a_provisioned_person_is_linked_not_created_and_strangers_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key("admin", None).await;
    let by_unionid = json_ok(
        call(
            &app,
            &key,
            Method::POST,
            "/pools/default/users",
            Some(json!({ "unionid": "u-ann", "external_id": "crm-7", "nickname": "Ann" })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(by_unionid["provisioned"], true);
    let imported = json_ok(
        app.client
            .post(app.url("/api/admin/v1/pools/default/users/import"))
            .bearer_auth(&key)
            .header("content-type", "application/x-ndjson")
            .body("{\"phone\":\"13900000042\",\"external_id\":\"crm-8\"}\nnot json\n{\"external_id\":\"crm-9\"}\n{\"phone\":\"13900000043\",\"external_id\":\"crm-7\"}\n")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(imported["created"], 1, "{imported}");
    let failed: Vec<u64> = imported["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        failed,
        [2, 3, 4],
        "bad JSON, nothing to link by, a taken external id"
    );
    let mut members = shop("members");
    members["signup"] = json!("existing_only");
    json_ok(
        call(&app, &key, Method::POST, "/apps", Some(members)).await,
        StatusCode::CREATED,
    )
    .await;
    let qr = || async {
        app.create_qr_for(&app.client, "members").await["random"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // A stranger is refused, with a message that says what to do.
    let stranger = app.mp_login(APPID, "o-stranger").await;
    let refused = assert_error(
        app.scan(&stranger, &qr().await).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("phone number"));

    // Linked by unionid at the first login: the provisioned user, with the site's id.
    let ann = app.mp_login_full(APPID, "o-ann", Some("u-ann")).await;
    assert_eq!(ann["user"]["id"], by_unionid["id"]);
    assert_eq!(ann["user"]["is_new"], false);
    let random = qr().await;
    let token = ann["token"].as_str().unwrap();
    assert_eq!(app.scan(token, &random).await.status(), StatusCode::OK);
    assert_eq!(
        app.confirm(token, &random, shown_number(&app, &random).await)
            .await
            .status(),
        StatusCode::OK
    );
    let ticket = app.status(&app.client, &random).await["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchanged: Value = app
        .exchange(&app.client, &ticket)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(exchanged["id_token"].as_str().unwrap())["preferred_username"],
        "crm-7"
    );

    // Linked by the phone number the person shares: the phone stays signed in, as them.
    let bob = app.mp_login_full(APPID, "o-bob", None).await;
    let bob_token = bob["token"].as_str().unwrap();
    let code = app.sim.phone_code(APPID, "o-bob", "13900000042", "86");
    let me: Value = app
        .mp_post(
            bob_token,
            "/api/mp/v1/me/phone",
            Some(json!({ "code": code })),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(me["id"], bob["user"]["id"], "{me}");
    let random = qr().await;
    assert_eq!(app.scan(bob_token, &random).await.status(), StatusCode::OK);
    let again = app.mp_login_full(APPID, "o-bob", None).await;
    assert_eq!(again["user"]["id"], me["id"]);
}

async fn a_deleted_pool_and_a_rotated_key_are_seen_at_once_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.admin_key("owner", None).await;
    let peer = match backend {
        Backend::Distributed => Some(app.peer().await),
        Backend::Embedded => None,
    };
    let other = peer.as_ref().unwrap_or(&app);
    json_ok(
        call(
            &app,
            &owner,
            Method::POST,
            "/pools",
            Some(json!({ "slug": "brief", "name": "Brief" })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let discovery = "/pools/brief/oidc/.well-known/openid-configuration";
    let status = |who: &TestApp| {
        let req = who.client.get(who.url(discovery));
        async move { req.send().await.unwrap().status() }
    };
    // Served, and so kept in memory, on both instances.
    assert_eq!(status(other).await, StatusCode::OK);
    assert_eq!(status(&app).await, StatusCode::OK);
    let kids = |who: &TestApp| {
        let req = who.client.get(who.url("/oidc/jwks"));
        async move {
            let jwks: Value = req.send().await.unwrap().json().await.unwrap();
            jwks["keys"].as_array().unwrap().len()
        }
    };
    assert_eq!(kids(other).await, 1);
    json_ok(
        call(
            &app,
            &owner,
            Method::POST,
            "/pools/default/signing-keys",
            Some(json!({ "alg": "EdDSA" })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let res = call(&app, &owner, Method::DELETE, "/pools/brief", None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The other instance hears of both within its bounded wait, long before any cache expires.
    let seen = crate::helpers::eventually(Duration::from_secs(5), || async {
        status(other).await == StatusCode::NOT_FOUND && kids(other).await == 2
    })
    .await;
    assert!(seen, "the other instance still serves the old documents");
    assert_eq!(status(&app).await, StatusCode::NOT_FOUND);
}
