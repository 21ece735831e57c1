//! What a stranger can make ScanGate spend, each bound reproduced as an attack: Argon2 checks
//! of client secrets, avatar storage, and image decoding. The tests that read the process's
//! resident memory run alone in a child test process, so that other tests cannot move it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::oidc::login;

both_backends!(
    a_flood_of_wrong_client_secrets_keeps_memory_flat_and_the_real_client_served,
    wrong_client_secrets_are_rate_limited_per_address_and_per_client,
    repeated_avatar_uploads_leave_one_small_stored_avatar,
    an_avatar_no_profile_points_at_is_purged,
    avatar_uploads_are_rate_limited_per_user,
    concurrent_uploads_of_huge_images_keep_memory_bounded,
    a_small_png_declaring_huge_dimensions_is_refused_from_its_header,
    an_animated_gif_avatar_is_refused,
);

/// Which backend a test run alone uses, for the process that runs it.
const FLOOD_BACKEND: &str = "SCANGATE_TEST_FLOOD_BACKEND";

fn flood_backend() -> Backend {
    match std::env::var(FLOOD_BACKEND).as_deref() {
        Ok("Distributed") => Backend::Distributed,
        _ => Backend::Embedded,
    }
}

/// The resident memory of this process, in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Runs [`client_secret_flood`] in a test process of its own, so that the memory it reads is
/// that of one server under attack and not of the tests running beside it.
async fn a_flood_of_wrong_client_secrets_keeps_memory_flat_and_the_real_client_served(
    backend: Backend,
) {
    run_alone("exhaustion::client_secret_flood", backend).await;
}

/// Runs the ignored test `name` alone in a child test process on `backend`, and passes on
/// what it printed.
async fn run_alone(name: &str, backend: Backend) {
    let run = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FLOOD_BACKEND, format!("{backend:?}"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the test ends within five minutes")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} ran: {stdout}");
}

/// 64 connections send wrong client secrets to the token, introspection and revocation
/// endpoints with the rate limits off, so only the verification slots stand in the way. The
/// server's resident memory stays within 100 MB of idle, and a real client logs in meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a process of its own by a_flood_of_wrong_client_secrets_…"]
async fn client_secret_flood() {
    const ATTACKERS: usize = 64;
    const REQUESTS_EACH: usize = 6;
    let app = TestApp::spawn_with(flood_backend(), |c| {
        c.rate_limits.client_auth_failures_per_minute = 0;
        c.rate_limits.client_auth_failures_per_client_per_minute = 0;
    })
    .await;
    // The real client's first token request verifies its secret, as in production.
    login(&app, "web", "openid", "o-before").await;
    let idle = rss();

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = rss();
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak.max(rss())
        })
    };
    let (refused, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            // A client of its own per attacker: its own connection.
            let client = reqwest::Client::new();
            let base = app.base.clone();
            let (refused, busy) = (Arc::clone(&refused), Arc::clone(&busy));
            tokio::spawn(async move {
                for n in 0..REQUESTS_EACH {
                    let path = [
                        "/oidc/token",
                        "/oidc/token/introspection",
                        "/oidc/token/revocation",
                    ][(i + n) % 3];
                    let res = client
                        .post(format!("{base}{path}"))
                        .basic_auth("web", Some(format!("wrong-secret-{i}-{n}")))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", "x"),
                            ("token", "x"),
                        ])
                        .send()
                        .await
                        .unwrap();
                    match res.status() {
                        StatusCode::UNAUTHORIZED => refused.fetch_add(1, Ordering::Relaxed),
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert_eq!(res.headers()["retry-after"], "1");
                            let body: serde_json::Value = res.json().await.unwrap();
                            assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                            busy.fetch_add(1, Ordering::Relaxed)
                        }
                        other => panic!("a wrong secret got {other}"),
                    };
                }
            })
        })
        .collect();

    // Meanwhile a real client completes a login, its grant included.
    let real = Instant::now();
    let (_, tokens) = login(&app, "web", "openid", "o-during").await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let real = real.elapsed();
    let during = attackers.iter().filter(|a| !a.is_finished()).count();

    for a in attackers {
        a.await.unwrap();
    }
    let flood = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let after = rss();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "flood of {} wrong secrets from {ATTACKERS} connections in {:.1} s: {} refused (401), {} told to retry (503); \
         resident memory idle {:.1} MB, peak {:.1} MB (+{:.1} MB), after {:.1} MB; \
         the real client's login took {:.2} s with {during} attackers still running",
        ATTACKERS * REQUESTS_EACH,
        flood.as_secs_f64(),
        refused.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        mb(idle),
        mb(peak),
        mb(peak.saturating_sub(idle)),
        mb(after),
        real.as_secs_f64(),
    );
    assert!(during > 0, "the real login ran during the flood");
    assert!(
        peak.saturating_sub(idle) <= 100 * 1024 * 1024,
        "resident memory grew by {:.1} MB",
        mb(peak.saturating_sub(idle))
    );
}

/// Past `client_auth_failures_per_minute` wrong secrets an address gets `429` without an
/// Argon2 check; past the per-client limit so does every address, for that client only; and
/// a secret already verified is still accepted from the blocked address.
async fn wrong_client_secrets_are_rate_limited_per_address_and_per_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits.client_auth_failures_per_minute = 3;
        c.rate_limits.client_auth_failures_per_client_per_minute = 5;
    })
    .await;
    login(&app, "web", "openid", "o-known").await;
    let introspect = |client: &str, secret: &str, forwarded: &str| {
        app.client
            .post(app.url("/oidc/token/introspection"))
            .header("x-forwarded-for", forwarded.to_owned())
            .basic_auth(client.to_owned(), Some(secret.to_owned()))
            .form(&[("token", "x")])
            .send()
    };
    // The login above verified the real secret once, from 127.0.0.1: one count for `web`.
    for _ in 0..3 {
        let res = introspect("web", "wrong", "203.0.113.7").await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = introspect("web", "wrong", "203.0.113.7").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "60");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // The real secret still works from the blocked address: it needs no Argon2 check.
    let res = introspect("web", crate::helpers::CLIENT_SECRET, "203.0.113.7")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Another address: the client's own count (1 + 3 so far) runs out after one more.
    let res = introspect("web", "wrong", "198.51.100.9").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = introspect("web", "wrong", "198.51.100.9").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client from that address is not held up by the first one's count.
    let res = introspect("open", "wrong", "198.51.100.9").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    app.clock.advance(Duration::from_secs(60));
    let res = introspect("web", "wrong", "203.0.113.7").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// A PNG of `width` × `height` whose pixels depend on `seed`.
fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, seed])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, name: &str) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    app.client
        .post(app.url("/api/mp/v1/me/avatar"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn uploaded(app: &TestApp, token: &str, bytes: Vec<u8>) -> String {
    let res = upload(app, token, bytes, "a.png").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    body["avatar_url"].as_str().unwrap().to_owned()
}

async fn stored_avatars(app: &TestApp) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM avatars")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// Uploading again replaces the avatar: the old one is gone from storage and from its URL,
/// and what is stored is a PNG of at most 512 pixels a side whatever size was sent.
async fn repeated_avatar_uploads_leave_one_small_stored_avatar(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(crate::helpers::APPID, "o-avatars").await;
    let mut urls = Vec::new();
    for seed in 0..3 {
        urls.push(uploaded(&app, &token, png(1600, 1200, seed)).await);
    }
    assert_eq!(stored_avatars(&app).await, 1);
    for old in &urls[..2] {
        let res = app.client.get(old).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{old}");
    }
    let res = app.client.get(&urls[2]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/png");
    let stored = res.bytes().await.unwrap();
    let img = image::load_from_memory_with_format(&stored, image::ImageFormat::Png).unwrap();
    assert_eq!((img.width(), img.height()), (512, 384));
}

/// An uploaded avatar the profile no longer points at is purged once the grace period has
/// passed; before that it is kept.
async fn an_avatar_no_profile_points_at_is_purged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(crate::helpers::APPID, "o-repoint").await;
    let url = uploaded(&app, &token, png(64, 64, 1)).await;
    let res = app
        .client
        .patch(app.url("/api/mp/v1/me"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "avatar_url": "https://thirdwx.qlogo.cn/mmopen/x/132" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Another user's avatar, still in use, stays.
    let other = app.mp_login(crate::helpers::APPID, "o-keeps").await;
    let kept = uploaded(&app, &other, png(64, 64, 2)).await;

    scangate::store::purge_expired(&app.state.db, app.clock.now())
        .await
        .unwrap();
    assert_eq!(stored_avatars(&app).await, 2, "within the grace period");
    app.clock.advance(Duration::from_secs(11 * 60));
    scangate::store::purge_expired(&app.state.db, app.clock.now())
        .await
        .unwrap();
    assert_eq!(stored_avatars(&app).await, 1);
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.client.get(&kept).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Past `avatar_uploads_per_minute` a user's uploads get `429`; another user's do not.
async fn avatar_uploads_are_rate_limited_per_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.rate_limits.avatar_uploads_per_minute = 2).await;
    let token = app.mp_login(crate::helpers::APPID, "o-uploader").await;
    for seed in 0..2 {
        uploaded(&app, &token, png(32, 32, seed)).await;
    }
    let res = upload(&app, &token, png(32, 32, 9), "a.png").await;
    assert_eq!(res.headers()["retry-after"], "60");
    crate::helpers::assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let other = app
        .mp_login(crate::helpers::APPID, "o-other-uploader")
        .await;
    uploaded(&app, &other, png(32, 32, 1)).await;
    app.clock.advance(Duration::from_secs(60));
    uploaded(&app, &token, png(32, 32, 3)).await;
}

/// Runs [`huge_image_uploads`] alone, for the same reason as the secret flood.
async fn concurrent_uploads_of_huge_images_keep_memory_bounded(backend: Backend) {
    run_alone("exhaustion::huge_image_uploads", backend).await;
}

/// 16 concurrent uploads of a 4096 × 4096 PNG (a quarter of a megabyte that decodes to 48 MiB)
/// are accepted and stored small (or, past a 10 s wait for a slot, told to retry), while the server's resident memory grows by no more
/// than two decodes' worth (under 200 MB; unbounded, 16 decodes at once take 800 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a process of its own by concurrent_uploads_of_huge_images_keep_memory_bounded"]
async fn huge_image_uploads() {
    const UPLOADS: usize = 16;
    let app = TestApp::spawn_with(flood_backend(), |c| {
        c.rate_limits.avatar_uploads_per_minute = 0;
    })
    .await;
    let bomb = png(4096, 4096, 0);
    let token = app.mp_login(crate::helpers::APPID, "o-bomb").await;
    // One upload first, so that what every upload needs once is in place before idle is read.
    uploaded(&app, &token, png(64, 64, 0)).await;
    let idle = rss();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = rss();
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak.max(rss())
        })
    };
    let started = Instant::now();
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let (client, url, token, bomb) = (
                reqwest::Client::new(),
                app.url("/api/mp/v1/me/avatar"),
                token.clone(),
                bomb.clone(),
            );
            tokio::spawn(async move {
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(bomb).file_name("bomb.png"),
                );
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .multipart(form)
                    .send()
                    .await
                    .unwrap();
                res.status()
            })
        })
        .collect();
    // On a loaded machine an upload may wait out its turn for a decoding slot and be told to
    // retry: that is the bound at work, not a failure.
    let (mut stored, mut busy) = (0, 0);
    for u in uploads {
        match u.await.unwrap() {
            StatusCode::OK => stored += 1,
            StatusCode::SERVICE_UNAVAILABLE => busy += 1,
            other => panic!("an upload got {other}"),
        }
    }
    assert!(stored > 0, "some uploads were decoded");
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{UPLOADS} concurrent uploads of a {} KB PNG declaring 4096 × 4096 pixels in {:.1} s \
         ({stored} stored, {busy} told to retry): \
         resident memory idle {:.1} MB, peak {:.1} MB (+{:.1} MB)",
        bomb.len() / 1024,
        took.as_secs_f64(),
        mb(idle),
        mb(peak),
        mb(peak.saturating_sub(idle)),
    );
    assert_eq!(stored_avatars(&app).await, 1);
    assert!(
        peak.saturating_sub(idle) <= 200 * 1024 * 1024,
        "resident memory grew by {:.1} MB",
        mb(peak.saturating_sub(idle))
    );
}

/// A PNG whose header declares `width` × `height` but holds almost nothing after it.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of a few zero bytes: far less than the image declares.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A 90-byte PNG that declares 50,000 × 50,000 pixels (10 GB decoded) is refused with its
/// size named, from the header alone.
async fn a_small_png_declaring_huge_dimensions_is_refused_from_its_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(crate::helpers::APPID, "o-header").await;
    let bomb = png_declaring(50_000, 50_000);
    assert!(bomb.len() < 100);
    let res = upload(&app, &token, bomb, "bomb.png").await;
    let body = crate::helpers::assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["message"].as_str().unwrap().contains("50000 × 50000"),
        "{body}"
    );
    assert_eq!(stored_avatars(&app).await, 0);
}

/// An animated GIF is refused: every frame would be another canvas to decode.
async fn an_animated_gif_avatar_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.mp_login(crate::helpers::APPID, "o-gif").await;
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        for shade in [0u8, 255] {
            let frame = image::RgbaImage::from_pixel(32, 32, image::Rgba([shade, 0, 0, 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    let res = upload(&app, &token, gif, "moving.gif").await;
    let body = crate::helpers::assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["message"].as_str().unwrap().contains("animated"),
        "{body}"
    );
    // A still GIF is accepted, and stored as a PNG.
    let mut still = Vec::new();
    image::RgbaImage::from_pixel(32, 32, image::Rgba([0, 0, 255, 255]))
        .write_to(
            &mut std::io::Cursor::new(&mut still),
            image::ImageFormat::Gif,
        )
        .unwrap();
    let url = uploaded(&app, &token, still).await;
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
}
