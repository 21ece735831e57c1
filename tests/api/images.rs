//! QR images over HTTP: they decode to `scan_url` with a real decoder, carry the app's logo and
//! colours, are cached with validators, and in `wxacode` mode are WeChat's code with the logo
//! laid over (or an ordinary QR code when WeChat refuses).

use std::io::Cursor;

use image::{Rgb, RgbImage, RgbaImage};
use reqwest::StatusCode;
use scangate::config::{AppConfig, Config, QrMode, WxaCodeConfig};

use crate::both_backends;
use crate::helpers::{captured_logs, tempdir, Backend, TestApp, APPID};

const RED: [u8; 3] = [220, 20, 60];
const BLUE: [u8; 3] = [30, 60, 200];
const INK: &str = "#1b3a6b";
const PAPER: &str = "#fff8e7";

/// A logo whose left half is red and right half blue, so orientation shows too.
fn logo_png() -> Vec<u8> {
    let img = RgbImage::from_fn(80, 80, |x, _| Rgb(if x < 40 { RED } else { BLUE }));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn logo_svg() -> &'static str {
    r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40"><rect width="20" height="40" fill="#dc143c"/><rect x="20" width="20" height="40" fill="#1e3cc8"/></svg>"##
}

fn app(client_id: &str, customise: impl FnOnce(&mut AppConfig)) -> AppConfig {
    let mut app = AppConfig {
        client_id: client_id.into(),
        name: format!("App {client_id}"),
        miniprogram: APPID.into(),
        redirect_uris: vec!["http://127.0.0.1:3000/callback".into()],
        ..AppConfig::default()
    };
    customise(&mut app);
    app
}

/// Spawns ScanGate with three branded apps besides the plain `web`: `brand` (PNG logo,
/// coloured), `vector` (SVG logo, dark on light) and `mini` (wxacode mode, PNG logo).
async fn spawn(backend: Backend, dir: &tempdir::Dir) -> TestApp {
    let png = dir.0.join("logo.png");
    let svg = dir.0.join("logo.svg");
    std::fs::write(&png, logo_png()).unwrap();
    std::fs::write(&svg, logo_svg()).unwrap();
    let (png, svg) = (png.display().to_string(), svg.display().to_string());
    TestApp::spawn_with(backend, move |c| {
        // The simulator draws a full-width Mini Program code in unoptimised code: on a busy
        // machine that may take longer than the tests' usual WeChat timeout.
        c.wechat.timeout_ms = 15_000;
        c.apps.push(app("brand", |a| {
            a.logo = Some(png.clone());
            a.qr_foreground = INK.into();
            a.qr_background = PAPER.into();
        }));
        c.apps.push(app("vector", |a| a.logo = Some(svg)));
        c.apps.push(app("mini", |a| {
            a.logo = Some(png);
            a.qr_mode = QrMode::Wxacode;
            a.wxacode = WxaCodeConfig {
                page: Some("pages/login/login".into()),
                env_version: Some("develop".into()),
                check_path: Some(false),
                ..WxaCodeConfig::default()
            };
        }));
    })
    .await
}

async fn create(app: &TestApp, client_id: &str) -> (String, String) {
    let qr = app.create_qr_for(&app.client, client_id).await;
    (
        qr["random"].as_str().unwrap().to_owned(),
        qr["scan_url"].as_str().unwrap().to_owned(),
    )
}

async fn fetch(app: &TestApp, random: &str, ext: &str, size: u32) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/qrcodes/{random}/image.{ext}?size={size}")))
        .send()
        .await
        .unwrap()
}

/// The image's pixels: PNG decoded, SVG rasterised with resvg at its own size.
async fn pixels(res: reqwest::Response, ext: &str) -> RgbaImage {
    assert_eq!(res.status(), StatusCode::OK);
    let want = if ext == "png" {
        "image/png"
    } else {
        "image/svg+xml"
    };
    assert_eq!(res.headers()["content-type"], want);
    let bytes = res.bytes().await.unwrap();
    if ext == "png" {
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .unwrap()
            .to_rgba8()
    } else {
        rasterise(&bytes)
    }
}

fn rasterise(svg: &[u8]) -> RgbaImage {
    let tree = resvg::usvg::Tree::from_data(svg, &resvg::usvg::Options::default()).unwrap();
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    RgbaImage::from_raw(size.width(), size.height(), pixmap.take()).unwrap()
}

/// What a real decoder reads from an SVG QR code (None when it finds no code).
pub fn decode_svg(svg: &[u8]) -> Option<String> {
    decode(&rasterise(svg))
}

/// What a real decoder reads from the image (None when it finds no code).
fn decode(img: &RgbaImage) -> Option<String> {
    let gray = image::DynamicImage::ImageRgba8(img.clone()).to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(gray);
    let grids = prepared.detect_grids();
    grids
        .first()
        .and_then(|g| g.decode().ok())
        .map(|(_, text)| text)
}

fn close(a: &[u8], b: &[u8], tolerance: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as i32 - *y as i32).abs() <= tolerance)
}

async fn every_image_decodes_to_its_scan_url(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    for client_id in ["web", "brand", "vector"] {
        let (random, scan_url) = create(&app, client_id).await;
        for size in [128, 200, 300, 517, 1024] {
            for ext in ["png", "svg"] {
                let img = pixels(fetch(&app, &random, ext, size).await, ext).await;
                assert_eq!(img.dimensions(), (size, size), "{client_id} {ext} {size}");
                assert_eq!(
                    decode(&img).as_deref(),
                    Some(scan_url.as_str()),
                    "{client_id} {ext} at {size} px"
                );
            }
        }
    }
}

async fn the_logo_and_colours_are_really_there(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    for (client_id, ink) in [("brand", Some([0x1b, 0x3a, 0x6b])), ("vector", None)] {
        let (random, _) = create(&app, client_id).await;
        for ext in ["png", "svg"] {
            let img = pixels(fetch(&app, &random, ext, 300).await, ext).await;
            // Left of centre is the logo's red, right of centre its blue: the logo, not modules.
            let (c, d) = (150, 12);
            for y in c - d..c + d {
                assert!(
                    close(&img.get_pixel(c - d, y).0[..3], &RED, 24),
                    "{client_id} {ext} left at y={y}: {:?}",
                    img.get_pixel(c - d, y)
                );
                assert!(
                    close(&img.get_pixel(c + d, y).0[..3], &BLUE, 24),
                    "{client_id} {ext} right at y={y}: {:?}",
                    img.get_pixel(c + d, y)
                );
            }
            if let Some(ink) = ink {
                // The corner finder pattern is in the app's ink on its paper.
                let colours: std::collections::HashSet<[u8; 3]> = (0..60)
                    .flat_map(|x| (0..60).map(move |y| (x, y)))
                    .map(|(x, y)| {
                        let p = img.get_pixel(x, y).0;
                        [p[0], p[1], p[2]]
                    })
                    .collect();
                assert!(colours.contains(&ink), "{client_id} {ext}: {colours:?}");
                assert!(colours.contains(&[0xff, 0xf8, 0xe7]), "{client_id} {ext}");
            }
        }
    }
    // Without a logo the centre is modules only: foreground and background.
    let (random, _) = create(&app, "web").await;
    let img = pixels(fetch(&app, &random, "png", 300).await, "png").await;
    for y in 130..170 {
        for x in 130..170 {
            let p = img.get_pixel(x, y).0;
            assert!(p[..3] == [0, 0, 0] || p[..3] == [255, 255, 255], "{p:?}");
        }
    }
}

async fn images_are_made_once_and_revalidated(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let (random, _) = create(&app, "brand").await;
    let first = fetch(&app, &random, "png", 300).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let cache_control = first.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let max_age: i64 = cache_control
        .strip_prefix("private, max-age=")
        .expect(&cache_control)
        .parse()
        .unwrap();
    assert!((1..=120).contains(&max_age), "{cache_control}");
    let body = first.bytes().await.unwrap();
    let (_, entries) = app.state.qr.cache.usage();

    let again = fetch(&app, &random, "png", 300).await;
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(again.bytes().await.unwrap(), body);
    assert_eq!(
        app.state.qr.cache.usage().1,
        entries,
        "served from the cache"
    );

    let res = app
        .client
        .get(app.url(&format!("/api/v1/qrcodes/{random}/image.png?size=300")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    assert!(res.bytes().await.unwrap().is_empty());

    // Another size or format is another image.
    let other = fetch(&app, &random, "png", 301).await;
    assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);
    let svg = fetch(&app, &random, "svg", 300).await;
    assert_ne!(svg.headers()["etag"].to_str().unwrap(), etag);
    let stale = app
        .client
        .get(app.url(&format!("/api/v1/qrcodes/{random}/image.png?size=300")))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);

    // Time passes: the lifetime announced shrinks with the code's.
    app.clock.advance(std::time::Duration::from_secs(60));
    let later = fetch(&app, &random, "png", 300).await;
    let later_age: i64 = later.headers()["cache-control"]
        .to_str()
        .unwrap()
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(later_age <= max_age - 60, "{later_age} vs {max_age}");
}

async fn wxacode_mode_lays_the_logo_over_wechats_code(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let (random, _) = create(&app, "mini").await;
    let size = 430;
    let png = fetch(&app, &random, "png", size).await;
    let ours = pixels(png, "png").await;
    // What the simulator sends for this scene and line colour (the default ink), at the one
    // width ScanGate fetches, drawn at the size asked for.
    let source = scangate::qr::WXACODE_SOURCE_WIDTH;
    let theirs = scangate::wechat::simulator::wxacode_image(&random, source, [0, 0, 0], false)
        .map(|bytes| image::load_from_memory(&bytes).unwrap().to_rgb8())
        .unwrap();
    let theirs =
        image::imageops::resize(&theirs, size, size, image::imageops::FilterType::Triangle);
    let (plate, at) = scangate::qr::render::wxacode_plate(size);
    let mut compared = 0;
    for (x, y, p) in theirs.enumerate_pixels() {
        let inside = (at..at + plate).contains(&x) && (at..at + plate).contains(&y);
        if !inside {
            assert_eq!(&ours.get_pixel(x, y).0[..3], &p.0[..], "at ({x}, {y})");
            compared += 1;
        }
    }
    assert!(compared > 150_000);
    let c = size / 2;
    assert!(close(&ours.get_pixel(c - 15, c).0[..3], &RED, 24));
    assert!(close(&ours.get_pixel(c + 15, c).0[..3], &BLUE, 24));
    // It is WeChat's code, not a QR code.
    assert_eq!(decode(&ours), None);

    let svg = fetch(&app, &random, "svg", size).await;
    let raster = pixels(svg, "svg").await;
    assert!(close(&raster.get_pixel(c - 15, c).0[..3], &RED, 24));
    assert_eq!(decode(&raster), None);
}

async fn a_wechat_refusal_falls_back_to_an_ordinary_qr_code(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let (random, scan_url) = create(&app, "mini").await;
    // 41030: the page is not in the released Mini Program.
    app.sim.fail_next("/wxa/getwxacodeunlimit", 41030, 1);
    let img = pixels(fetch(&app, &random, "png", 300).await, "png").await;
    assert_eq!(decode(&img).as_deref(), Some(scan_url.as_str()));
    let c = 150;
    assert!(
        close(&img.get_pixel(c - 12, c).0[..3], &RED, 24),
        "the logo is on the fallback too"
    );
    let logs = captured_logs();
    assert!(
        logs.lines().any(|l| l.contains("WARN")
            && l.contains("getwxacodeunlimit failed")
            && l.contains("41030")
            && l.contains("mini")),
        "no warning logged"
    );
}

async fn one_wechat_call_draws_every_size_and_format_of_a_mini_program_code(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let (random, _) = create(&app, "mini").await;
    let sizes = [128, 200, 300, 430, 512, 777, 1024];
    let requests = sizes
        .iter()
        .flat_map(|size| ["png", "svg"].map(|ext| (ext, *size)))
        .map(|(ext, size)| {
            let app = &app;
            let random = random.clone();
            async move { fetch(app, &random, ext, size).await.status() }
        });
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(app.sim.calls("/wxa/getwxacodeunlimit"), 1);

    // A second code is a second call; the first code's are all served from memory.
    let (other, _) = create(&app, "mini").await;
    assert_eq!(
        fetch(&app, &other, "png", 300).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        fetch(&app, &random, "png", 777).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.sim.calls("/wxa/getwxacodeunlimit"), 2);
}

async fn drawing_many_sizes_of_one_code_is_rate_limited(backend: Backend) {
    let dir = tempdir::Dir::new();
    let app = spawn(backend, &dir).await;
    let (random, _) = create(&app, "web").await;
    let limit = app.config.rate_limits.image_renders_per_code_per_minute as u32;
    for size in 200..200 + limit {
        assert_eq!(
            fetch(&app, &random, "png", size).await.status(),
            StatusCode::OK
        );
    }
    let over = fetch(&app, &random, "png", 200 + limit).await;
    assert!(over.headers().contains_key("retry-after"));
    crate::helpers::assert_error(over, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // What was drawn is still served, and another code is not affected.
    assert_eq!(
        fetch(&app, &random, "png", 200).await.status(),
        StatusCode::OK
    );
    let (other, _) = create(&app, "web").await;
    assert_eq!(
        fetch(&app, &other, "png", 999).await.status(),
        StatusCode::OK
    );
    app.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(
        fetch(&app, &random, "png", 999).await.status(),
        StatusCode::OK
    );
}

both_backends!(
    one_wechat_call_draws_every_size_and_format_of_a_mini_program_code,
    drawing_many_sizes_of_one_code_is_rate_limited,
    every_image_decodes_to_its_scan_url,
    the_logo_and_colours_are_really_there,
    images_are_made_once_and_revalidated,
    wxacode_mode_lays_the_logo_over_wechats_code,
    a_wechat_refusal_falls_back_to_an_ordinary_qr_code,
);

/// A config file naming `logo` as the app's logo.
fn config_with_logo(dir: &tempdir::Dir, logo: &str) -> Result<Config, String> {
    let path = dir.0.join("scangate.toml");
    std::fs::write(
        &path,
        format!(
            "[[apps]]\nclient_id = \"shop\"\nname = \"Shop\"\nminiprogram = \"{APPID}\"\nlogo = \"{logo}\"\n"
        ),
    )
    .unwrap();
    Config::load_from(Some(&path), Vec::new()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn bad_logos_stop_start_up_with_a_clear_error() {
    let dir = tempdir::Dir::new();
    let good = logo_png();
    let mut gif = Vec::new();
    image::RgbImage::new(4, 4)
        .write_to(&mut Cursor::new(&mut gif), image::ImageFormat::Gif)
        .unwrap();
    let mut huge = good.clone();
    huge.resize(10 * 1024 * 1024, 7);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.png", good[..good.len() / 2].to_vec(), "corrupt"),
        ("huge.png", huge, "at most 1048576 are accepted"),
        (
            "external.svg",
            br#"<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd" width="9" height="9"/></svg>"#.to_vec(),
            "external resource",
        ),
        ("animated.gif", gif, "not a PNG, JPEG, WebP or SVG"),
        ("notes.txt", b"hello".to_vec(), "not a PNG, JPEG, WebP or SVG"),
    ];
    for (name, bytes, reason) in cases {
        let path = dir.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = config_with_logo(&dir, &path.display().to_string()).unwrap_err();
        assert!(err.contains("apps[0].logo"), "{name}: {err}");
        assert!(err.contains("app `shop`"), "{name}: {err}");
        assert!(err.contains(reason), "{name}: {err}");
    }
    let missing = config_with_logo(&dir, "/nonexistent/logo.png").unwrap_err();
    assert!(missing.contains("cannot read logo file"), "{missing}");

    // Built directly (no file), the app refuses to start too: no bad logo reaches a render.
    let path = dir.0.join("truncated.png");
    let mut config = crate::helpers::base_config("http://127.0.0.1:9");
    config.database_url = format!("sqlite://{}/x.db", dir.0.display());
    config.apps[0].logo = Some(path.display().to_string());
    let err = match scangate::app::App::build(config).await {
        Ok(_) => panic!("started with a corrupt logo"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("apps[0].logo") && err.contains("corrupt"),
        "{err}"
    );

    // And good ones start.
    let ok = dir.0.join("ok.png");
    std::fs::write(&ok, logo_png()).unwrap();
    assert!(config_with_logo(&dir, &ok.display().to_string()).is_ok());
}

#[tokio::test]
async fn colours_without_contrast_are_refused() {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("scangate.toml");
    for (fg, bg, key) in [
        ("#777777", "#888888", "qr_foreground"),
        ("#ffffff", "#000000", "qr_foreground"),
        ("blue", "#ffffff", "qr_foreground"),
        ("#000000", "#12345", "qr_background"),
    ] {
        std::fs::write(
            &path,
            format!("[[apps]]\nclient_id = \"shop\"\nname = \"Shop\"\nminiprogram = \"{APPID}\"\nqr_foreground = \"{fg}\"\nqr_background = \"{bg}\"\n"),
        )
        .unwrap();
        let err = Config::load_from(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("apps[0].{key}")),
            "{fg} on {bg}: {err}"
        );
    }
}
