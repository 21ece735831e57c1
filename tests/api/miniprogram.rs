//! The reference Mini Program (`miniprogram/`): its own pages and code, run in Node by
//! `miniprogram-simulate` with a `wx` whose requests reach this ScanGate over real HTTP and whose
//! `wx.login` codes come from the WeChat simulator (`tests/js/miniprogram.mjs`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::post;
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;
use crate::js::{chromium, run_node};

both_backends!(
    the_mini_program_signs_in_with_its_own_pages_and_declines,
    the_mini_program_shows_the_victim_of_a_qrljacking_who_is_asking,
    the_mini_program_shows_a_clear_screen_for_each_refusal,
    the_mini_program_approves_and_declines_a_device_showing_its_code,
);

/// ScanGate with a GeoIP database (a US datacenter, a Shanghai ISP) and the match step on.
async fn spawn(backend: Backend, dir: &tempdir::Dir) -> TestApp {
    let place = |city: &str, region: &str, code: &str, country: &str| {
        json!({
            "city": { "names": { "en": city } },
            "subdivisions": [{ "names": { "en": region } }],
            "country": { "iso_code": code, "names": { "en": country } },
        })
    };
    let mut datacenter = place("Ashburn", "Virginia", "US", "United States");
    datacenter["traits"] = json!({ "is_hosting_provider": true });
    let db = crate::mmdb::write(&[
        (Ipv4Addr::new(198, 51, 100, 0), 24, datacenter),
        (
            Ipv4Addr::new(203, 0, 113, 0),
            24,
            place("Shanghai", "Shanghai", "CN", "China"),
        ),
    ]);
    let path = dir.0.join("test.mmdb");
    std::fs::write(&path, db).unwrap();
    TestApp::spawn_with(backend, move |config| {
        crate::device::with_device_clients(config);
        config.geoip_database = Some(path);
        for app in &mut config.apps {
            app.match_number = Some(true);
        }
    })
    .await
}

/// What `miniprogram.mjs` needs: ScanGate, the simulator, the Mini Program, its apps, and
/// `POST {CONTROL}/advance?secs=`, which moves ScanGate's manual clock. The pages are drawn by
/// Chromium for the screenshots on one backend only.
pub(crate) async fn mp_env(
    app: &TestApp,
    backend: Backend,
    part: &str,
) -> Vec<(&'static str, String)> {
    let clock = app.clock.clone();
    let control = serve(axum::Router::new().route(
        "/advance",
        post(move |Query(q): Query<HashMap<String, u64>>| {
            clock.advance(Duration::from_secs(q.get("secs").copied().unwrap_or(0)));
            async { "ok" }
        }),
    ))
    .await;
    vec![
        ("SCANGATE", app.base.clone()),
        ("SIMULATOR", app.config.wechat.api_base.to_string()),
        ("MP_APPID", APPID.to_owned()),
        ("APP_ID", "web".to_owned()),
        ("OTHER_APP_ID", "other".to_owned()),
        ("DEVICE_CLIENT_ID", "tv".to_owned()),
        ("CONTROL", control),
        ("PART", part.to_owned()),
        // Screenshots of the pages (tests/artifacts/miniprogram-*.png), once per run.
        (
            "SCREENSHOTS",
            u8::from(backend == Backend::Embedded).to_string(),
        ),
    ]
}

async fn the_mini_program_signs_in_with_its_own_pages_and_declines(backend: Backend) {
    chromium();
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let out = run_node("miniprogram.mjs", &mp_env(&app, backend, "login").await).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // Each step that can only run against this ScanGate did run.
    for step in ["reported", "wrong match refused"] {
        assert!(out.lines().any(|l| l == step), "{step}: {out}");
    }
    // The login the pages made is the one ScanGate recorded, with what the person filled in.
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("user "))
        .expect("a login");
    let user = scangate::store::users::get(&app.state.db.pool, id)
        .await
        .unwrap()
        .expect("the user exists");
    assert_eq!(user.nickname.as_deref(), Some("Alice 小程序"));
    assert_eq!(user.phone.as_deref(), Some("13800138000"));
    assert!(user.login_count >= 1);
}

async fn the_mini_program_shows_the_victim_of_a_qrljacking_who_is_asking(backend: Backend) {
    chromium();
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let out = run_node(
        "miniprogram.mjs",
        &mp_env(&app, backend, "qrljacking").await,
    )
    .await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // The wrong tap was the victim's, and it is on record.
    use sqlx::Row as _;
    let audited: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE action = $1")
        .bind("qrcode.wrong_match_number")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(audited, 1);
}

async fn the_mini_program_shows_a_clear_screen_for_each_refusal(backend: Backend) {
    chromium();
    let app = TestApp::spawn(backend).await;
    let out = run_node("miniprogram.mjs", &mp_env(&app, backend, "refusals").await).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

async fn the_mini_program_approves_and_declines_a_device_showing_its_code(backend: Backend) {
    chromium();
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let out = run_node("miniprogram.mjs", &mp_env(&app, backend, "device").await).await;
    assert!(out.trim_end().ends_with("ok"), "{out}");
    for step in ["device approved", "device declined"] {
        assert!(out.lines().any(|l| l == step), "{step}: {out}");
    }
    use sqlx::Row as _;
    let decided: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action IN ('device.approve', 'device.deny')",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(decided, 2);
}
