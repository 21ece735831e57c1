//! The Mini Program API: sessions, identities, profile and phone.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, Backend, TestApp, APPID, APPID_2, APPID_OTHER};

both_backends!(
    a_session_creates_a_user_once_and_then_reuses_it,
    a_unionid_links_two_mini_programs_to_one_user,
    a_used_or_unknown_login_code_is_invalid_code,
    another_users_scan_is_a_conflict,
    a_code_of_another_mini_program_is_forbidden,
    only_the_scanner_may_confirm,
    confirm_with_profile_and_phone_code_fills_the_user,
    confirm_with_legacy_encrypted_data_fills_the_user,
    legacy_data_for_another_mini_program_is_refused,
    an_avatar_upload_is_served_back,
    a_phone_code_is_exchanged_through_wechat_once_per_token,
    an_avatar_url_is_ours_or_wechats_and_stored_normalised,
);

async fn an_avatar_url_is_ours_or_wechats_and_stored_normalised(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(APPID, "o-avatar-url").await;
    let patch = |avatar: &str| {
        app.client
            .patch(app.url("/api/mp/v1/me"))
            .bearer_auth(&token)
            .json(&json!({ "avatar_url": avatar }))
            .send()
    };
    for elsewhere in [
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/a.png",
        "https://thirdwx.qlogo.cn:444/x/132",
        "https://thirdwx.qlogo.cn.example.com/x/132",
        &app.url("/media/logos/abc.png"),
    ] {
        assert_error(
            patch(elsewhere).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    let res = patch("HTTP://ThirdWX.qlogo.cn/mmopen/a\"b/132#x")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me = app.get_json_bearer("/api/mp/v1/me", &token).await;
    assert_eq!(
        me["avatar_url"],
        "https://thirdwx.qlogo.cn/mmopen/a%22b/132"
    );
}

async fn a_session_creates_a_user_once_and_then_reuses_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.mp_login_full(APPID, "o-1", None).await;
    assert_eq!(first["user"]["is_new"], true);
    assert_eq!(first["user"]["has_phone"], false);
    assert!(first["expires_in"].as_i64().unwrap() > 0);
    let second = app.mp_login_full(APPID, "o-1", None).await;
    assert_eq!(second["user"]["is_new"], false);
    assert_eq!(first["user"]["id"], second["user"]["id"]);
    assert_ne!(first["token"], second["token"]);
    let me = app
        .get_json_bearer("/api/mp/v1/me", second["token"].as_str().unwrap())
        .await;
    assert_eq!(me["id"], first["user"]["id"]);
}

async fn a_unionid_links_two_mini_programs_to_one_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.mp_login_full(APPID, "o-a", Some("u-same")).await;
    let b = app.mp_login_full(APPID_2, "o-b", Some("u-same")).await;
    assert_eq!(a["user"]["id"], b["user"]["id"]);
    assert_eq!(b["user"]["is_new"], false);
    let c = app.mp_login_full(APPID_2, "o-c", Some("u-other")).await;
    assert_ne!(a["user"]["id"], c["user"]["id"]);
}

async fn a_used_or_unknown_login_code_is_invalid_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let code = app.sim.login_code(APPID, "o-x", None);
    let post = |code: String| {
        app.client
            .post(app.url("/api/mp/v1/session"))
            .json(&json!({ "appid": APPID, "code": code }))
            .send()
    };
    assert_eq!(post(code.clone()).await.unwrap().status(), StatusCode::OK);
    assert_error(
        post(code).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    assert_error(
        post("never-issued".into()).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
}

async fn another_users_scan_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let a = app.mp_login(APPID, "o-a").await;
    let b = app.mp_login(APPID, "o-b").await;
    assert_eq!(app.scan(&a, &random).await.status(), StatusCode::OK);
    assert_eq!(
        app.scan(&a, &random).await.status(),
        StatusCode::OK,
        "rescan by the scanner is fine"
    );
    assert_error(
        app.scan(&b, &random).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

async fn a_code_of_another_mini_program_is_forbidden(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr_for(&app.client, "other").await["random"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.mp_login(APPID, "o-a").await;
    assert_error(
        app.scan(&token, &random).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let other = app.mp_login(APPID_OTHER, "o-a").await;
    assert_eq!(app.scan(&other, &random).await.status(), StatusCode::OK);
}

async fn only_the_scanner_may_confirm(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let a = app.mp_login(APPID, "o-a").await;
    let b = app.mp_login(APPID, "o-b").await;
    assert_error(
        app.confirm(&a, &random, None).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    app.scan(&a, &random).await;
    assert_error(
        app.confirm(&b, &random, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.confirm(&a, &random, None).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.confirm(&a, &random, None).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

async fn exchange_user(app: &TestApp, random: &str) -> Value {
    let ticket = app.status(&app.client, random).await["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app.exchange(&app.client, &ticket).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["user"].clone()
}

async fn confirm_with_profile_and_phone_code_fills_the_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-p").await;
    app.scan(&token, &random).await;
    let phone_code = app.sim.phone_code(APPID, "o-p", "13800138000", "86");
    let body = json!({ "profile": { "nickname": "小明", "avatar_url": "https://thirdwx.qlogo.cn/mmopen/x/132" }, "phone": { "code": phone_code } });
    assert_eq!(
        app.confirm(&token, &random, Some(body)).await.status(),
        StatusCode::OK
    );
    let user = exchange_user(&app, &random).await;
    assert_eq!(user["nickname"], "小明");
    assert_eq!(user["avatar_url"], "https://thirdwx.qlogo.cn/mmopen/x/132");
    assert_eq!(user["phone"], "13800138000");
    assert_eq!(user["phone_country_code"], "86");
}

async fn confirm_with_legacy_encrypted_data_fills_the_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-legacy").await;
    app.scan(&token, &random).await;
    let info = json!({ "openId": "o-legacy", "nickName": "Legacy", "avatarUrl": "https://thirdwx.qlogo.cn/x/132" });
    let (data, iv) = app.sim.encrypt_for(APPID, "o-legacy", &info).unwrap();
    let phone = json!({ "phoneNumber": "13900139000", "purePhoneNumber": "13900139000", "countryCode": 86 });
    let (pdata, piv) = app.sim.encrypt_for(APPID, "o-legacy", &phone).unwrap();
    let body = json!({
        "user_info": { "encrypted_data": data, "iv": iv },
        "phone": { "encrypted_data": pdata, "iv": piv },
    });
    let res = app.confirm(&token, &random, Some(body)).await;
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    let user = exchange_user(&app, &random).await;
    assert_eq!(user["nickname"], "Legacy");
    assert_eq!(user["phone"], "13900139000");
    assert_eq!(user["phone_country_code"], "86");
}

async fn legacy_data_for_another_mini_program_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(APPID, "o-w").await;
    let phone = json!({ "purePhoneNumber": "1", "countryCode": "86", "watermark": { "appid": "wx4f4bc4dec97d474b", "timestamp": 1 } });
    let (data, iv) = app.sim.encrypt_for(APPID, "o-w", &phone).unwrap();
    let res = app
        .mp_post(
            &token,
            "/api/mp/v1/me/phone",
            Some(json!({ "encrypted_data": data, "iv": iv })),
        )
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "decrypt_failed").await;
}

/// A valid 2×2 PNG.
pub fn tiny_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 30, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn an_avatar_upload_is_served_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(APPID, "o-av").await;
    let png = tiny_png();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png.clone()).file_name("a.png"),
    );
    let res = app
        .client
        .post(app.url("/api/mp/v1/me/avatar"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let url = res.json::<Value>().await.unwrap()["avatar_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&app.base));
    let served = app.client.get(&url).send().await.unwrap();
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().to_vec(), png);
    let me: Value = app
        .client
        .get(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["avatar_url"], url);
}

async fn a_phone_code_is_exchanged_through_wechat_once_per_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(APPID, "o-ph").await;
    for phone in ["13000000001", "13000000002", "13000000003"] {
        let code = app.sim.phone_code(APPID, "o-ph", phone, "86");
        let res = app
            .mp_post(&token, "/api/mp/v1/me/phone", Some(json!({ "code": code })))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap()["phone"], phone);
    }
    // One access token served all three calls.
    assert_eq!(app.sim.token_calls(APPID), 1);
    let used = app.sim.phone_code(APPID, "o-ph", "13000000009", "86");
    app.mp_post(&token, "/api/mp/v1/me/phone", Some(json!({ "code": used })))
        .await;
    let res = app
        .mp_post(&token, "/api/mp/v1/me/phone", Some(json!({ "code": used })))
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_code").await;
}
