//! QR image rendering throughput on one thread: branded 300-pixel PNG and SVG (logo, colours),
//! and a plain PNG, each of a fresh `scan_url` as a real ticket would have. The logo's plate is
//! made once, as in the server. Prints one JSON object per case.
//!
//! Run through `bench/qr/run.sh`, which pins it to one core beside the npm `qrcode` package.

use std::time::{Duration, Instant};

use base64::Engine as _;
use scangate::config::AppConfig;
use scangate::qr::{render, Branding, Format};

/// A logo like a real one: a 256-pixel RGBA mark with soft edges and a gradient.
fn logo() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(256, 256, |x, y| {
        let (dx, dy) = (x as f32 - 128.0, y as f32 - 128.0);
        let r = (dx * dx + dy * dy).sqrt();
        let alpha = (120.0 - r).clamp(0.0, 1.0);
        image::Rgba([
            (40 + x / 3) as u8,
            (90 + y / 4) as u8,
            200,
            (alpha * 255.0) as u8,
        ])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("logo encodes");
    out
}

fn branding(with_logo: bool) -> Branding {
    let app = AppConfig {
        qr_foreground: "#1b3a6b".into(),
        qr_background: "#fff8e7".into(),
        logo: with_logo.then(|| {
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(logo())
            )
        }),
        ..AppConfig::default()
    };
    Branding::from_app(&app).expect("bench branding is valid")
}

/// Distinct scan URLs with 32-character randoms, like the server's.
fn urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let random = format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            );
            format!("https://login.example.com/q/{}", &random[..32])
        })
        .collect()
}

fn run(name: &str, branding: &Branding, format: Format, seconds: f64) {
    let urls = urls(4096);
    for url in urls.iter().take(200) {
        render(url, branding, 300, format).expect("renders");
    }
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let (mut count, mut bytes) = (0usize, 0usize);
    while start.elapsed() < budget {
        for url in urls.iter().skip(count % 4096).take(64) {
            bytes += render(url, branding, 300, format).expect("renders").len();
            count += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"name\":\"{name}\",\"renders\":{count},\"per_sec\":{:.0},\"micros_each\":{:.1},\"avg_bytes\":{}}}",
        count as f64 / elapsed,
        elapsed * 1e6 / count as f64,
        bytes / count
    );
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` this is only a quick smoke run.
    let benching = std::env::args().any(|a| a == "--bench");
    let seconds: f64 = std::env::var("QR_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 3.0 } else { 0.05 });
    let branded = branding(true);
    run("branded_png_300", &branded, Format::Png, seconds);
    run("branded_svg_300", &branded, Format::Svg, seconds);
    run("plain_png_300", &branding(false), Format::Png, seconds);
}
