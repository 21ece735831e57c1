//! QR images: branded PNG and SVG of a code's `scan_url`, or a Mini Program code from WeChat
//! with the app's logo over it.
//!
//! - `encode`: the QR symbol at error-correction level H, with a fast mask choice identical to
//!   the `qrcode` crate's.
//! - `brand`: an app's colours, size, quiet zone, logo and mode, checked at start.
//! - `logo`: logo loading (PNG, JPEG, WebP, SVG), refusal of bad ones, plates per size.
//! - `render`: pixels and bytes — PNG, SVG, and a WeChat code with the logo laid over.
//! - `cache`: each image made once per code and kept until the code expires, within a budget.
//!
//! [`QrImages`] ties them together and lives in the app state.

pub mod brand;
pub mod cache;
pub mod encode;
pub mod logo;
pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use brand::{Branding, BrandingError, Rgb};
pub use cache::{Image, ImageCache, ImageKey};
pub use render::Format;

use crate::config::{AppConfig, Config};

/// Smallest and largest image edge a caller may ask for.
pub const MIN_SIZE: u32 = 128;
pub const MAX_SIZE: u32 = 1024;
/// The width a Mini Program code is fetched from WeChat at (unless the app sets its own): once
/// per code, every size and format is drawn from that one image.
pub const WXACODE_SOURCE_WIDTH: u32 = MAX_SIZE;
pub const DEFAULT_SIZE: u32 = 300;

/// Image bytes kept in memory at most (PNG of 300 px is about 2–10 KiB).
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Images kept at most, whatever their size.
pub const CACHE_ENTRIES: usize = 100_000;

/// Every app's branding and the cache of rendered images.
pub struct QrImages {
    brandings: RwLock<HashMap<String, Arc<Branding>>>,
    /// The branding of apps made through the management API, whose logo ScanGate stores:
    /// plain colours and that logo, made once per logo (by digest).
    stored: RwLock<HashMap<String, Arc<Branding>>>,
    default: Arc<Branding>,
    pub cache: ImageCache,
}

impl QrImages {
    /// Reads and checks the branding of every configured app (their logos included).
    pub fn from_config(config: &Config) -> anyhow::Result<QrImages> {
        let images = QrImages::new();
        for (i, app) in config.apps.iter().enumerate() {
            let branding = Branding::from_app(app).map_err(|e| {
                anyhow::anyhow!(
                    "configuration key `apps[{i}].{}`: app `{}`: {}",
                    e.key,
                    app.client_id,
                    e.message
                )
            })?;
            images.set_branding(&app.client_id, branding);
        }
        Ok(images)
    }

    pub fn new() -> QrImages {
        QrImages {
            brandings: RwLock::new(HashMap::new()),
            stored: RwLock::new(HashMap::new()),
            default: Arc::new(Branding::default()),
            cache: ImageCache::new(CACHE_BYTES, CACHE_ENTRIES),
        }
    }

    /// Replaces an app's branding. Its logo's plates go with the old branding, and images
    /// cached under the old fingerprint are never looked up again (they age out).
    pub fn set_branding(&self, client_id: &str, branding: Branding) {
        self.brandings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.to_owned(), Arc::new(branding));
    }

    /// An app's branding; plain black on white for apps configured elsewhere.
    pub fn branding(&self, client_id: &str) -> Arc<Branding> {
        self.configured(client_id)
            .unwrap_or_else(|| Arc::clone(&self.default))
    }

    /// The branding the config file gives an app, if it is configured there.
    pub fn configured(&self, client_id: &str) -> Option<Arc<Branding>> {
        self.brandings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
            .cloned()
    }

    /// Plain colours with the stored logo `digest` (whose PNG `png` reads), made once.
    pub fn with_stored_logo(
        &self,
        digest: &str,
        png: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Arc<Branding> {
        if let Some(b) = self
            .stored
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Arc::clone(b);
        }
        let branding = png()
            .and_then(|bytes| {
                use base64::Engine as _;
                let app = AppConfig {
                    logo: Some(format!(
                        "data:image/png;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(bytes)
                    )),
                    ..AppConfig::default()
                };
                Branding::from_app(&app).ok()
            })
            .map(Arc::new)
            .unwrap_or_else(|| Arc::clone(&self.default));
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        // A handful of logos per installation; a flood of digests cannot exist (each is a
        // stored logo), but stay bounded anyway.
        if stored.len() >= 1024 {
            stored.clear();
        }
        stored.insert(digest.to_owned(), Arc::clone(&branding));
        branding
    }
}

impl Default for QrImages {
    fn default() -> Self {
        QrImages::new()
    }
}

/// A branded QR code of `data`: encode, draw, serialise. CPU-bound; call it off the async
/// workers.
pub fn render(
    data: &str,
    branding: &Branding,
    size: u32,
    format: Format,
) -> anyhow::Result<Vec<u8>> {
    let matrix = encode::encode(data.as_bytes())?;
    Ok(match format {
        Format::Png => render::png(&matrix, branding, size)?,
        Format::Svg => render::svg(&matrix, branding, size).into_bytes(),
    })
}

/// A WeChat Mini Program code with the logo over it, as `format`.
pub fn render_wxacode(
    code: &[u8],
    branding: &Branding,
    size: u32,
    format: Format,
) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        Format::Png => render::wxacode_png(code, branding, size)?,
        Format::Svg => render::wxacode_svg(code, branding, size)?.into_bytes(),
    })
}

/// A plain PNG of `data` (black on white, no logo), `size` pixels square.
pub fn png(data: &str, size: u32) -> anyhow::Result<Vec<u8>> {
    render(data, &Branding::default(), size, Format::Png)
}

/// A plain SVG of `data`, `size` pixels square.
pub fn svg(data: &str, size: u32) -> anyhow::Result<String> {
    Ok(String::from_utf8(render(
        data,
        &Branding::default(),
        size,
        Format::Svg,
    )?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use image::RgbaImage;

    const URL: &str = "https://login.example.com/q/Zk3_q9vX-2mP8sLwQ4rTyU7aBcDeFgHi";

    fn logo_png() -> Vec<u8> {
        let img = image::RgbImage::from_fn(60, 60, |x, _| {
            image::Rgb(if x < 30 { [220, 20, 60] } else { [30, 60, 200] })
        });
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    fn branding(fg: &str, bg: &str, logo: bool) -> Branding {
        use base64::Engine as _;
        let app = AppConfig {
            qr_foreground: fg.into(),
            qr_background: bg.into(),
            logo: logo.then(|| {
                format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(logo_png())
                )
            }),
            ..AppConfig::default()
        };
        Branding::from_app(&app).unwrap()
    }

    fn pixels(bytes: &[u8], format: Format) -> RgbaImage {
        match format {
            Format::Png => image::load_from_memory(bytes).unwrap().to_rgba8(),
            Format::Svg => {
                let tree = resvg::usvg::Tree::from_data(bytes, &Default::default()).unwrap();
                let size = tree.size().to_int_size();
                let mut pixmap =
                    resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
                resvg::render(
                    &tree,
                    resvg::tiny_skia::Transform::identity(),
                    &mut pixmap.as_mut(),
                );
                RgbaImage::from_raw(size.width(), size.height(), pixmap.take()).unwrap()
            }
        }
    }

    fn decode(img: &RgbaImage) -> Option<String> {
        let gray = image::DynamicImage::ImageRgba8(img.clone()).to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(gray);
        let grids = prepared.detect_grids();
        grids.first().and_then(|g| g.decode().ok()).map(|(_, t)| t)
    }

    #[test]
    fn every_rendering_decodes_back_to_its_data() {
        let sizes = [
            128, 131, 160, 200, 256, 300, 333, 420, 512, 640, 777, 900, 1024,
        ];
        for (fg, bg) in [
            ("#000000", "#ffffff"),
            ("#1b3a6b", "#fff8e7"),
            ("#5a1040", "#e8f4ff"),
        ] {
            for logo in [false, true] {
                let b = branding(fg, bg, logo);
                for &size in &sizes {
                    for format in [Format::Png, Format::Svg] {
                        let bytes = render(URL, &b, size, format).unwrap();
                        let img = pixels(&bytes, format);
                        assert_eq!(img.dimensions(), (size, size));
                        assert_eq!(
                            decode(&img).as_deref(),
                            Some(URL),
                            "{fg} on {bg}, logo {logo}, {size} px, {format:?}"
                        );
                    }
                }
            }
        }
    }

    /// A second, independent decoder: Debian's zbarimg, on PNG files.
    #[test]
    fn zbar_reads_them_too() {
        let dir =
            std::env::temp_dir().join(format!("scangate-zbar-{}", crate::crypto::random_token(6)));
        std::fs::create_dir_all(&dir).unwrap();
        for (fg, bg) in [("#000000", "#ffffff"), ("#1b3a6b", "#fff8e7")] {
            for logo in [false, true] {
                let b = branding(fg, bg, logo);
                for size in [128, 300, 1024] {
                    let path = dir.join(format!("{size}-{logo}-{}.png", &fg[1..]));
                    std::fs::write(&path, render(URL, &b, size, Format::Png).unwrap()).unwrap();
                    let out = std::process::Command::new("zbarimg")
                        .args(["--quiet", "--raw"])
                        .arg(&path)
                        .output()
                        .expect("this test runs Debian's zbarimg: apt-get install zbar-tools");
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert_eq!(text.trim_end(), URL, "{fg} on {bg}, logo {logo}, {size} px");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_plate_sits_in_the_centre_and_holds_the_logo() {
        let b = branding("#000000", "#ffffff", true);
        let matrix = encode::encode(URL.as_bytes()).unwrap();
        for size in [128, 300, 1024] {
            let img = pixels(&render(URL, &b, size, Format::Png).unwrap(), Format::Png);
            let (plate, at) = render::png_plate(matrix.width(), 4, size).unwrap();
            let centre = at + plate / 2;
            let quarter = plate / 5;
            let left = img.get_pixel(centre - quarter, centre).0;
            let right = img.get_pixel(centre + quarter, centre).0;
            let close = |a: &[u8], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 2);
            assert!(close(&left[..3], [220, 20, 60]), "{size}: {left:?}");
            assert!(close(&right[..3], [30, 60, 200]), "{size}: {right:?}");
            // The plate's white margin frames it.
            let edge = img.get_pixel(centre, at + 1).0;
            assert_eq!(&edge[..3], &[255, 255, 255], "{size}");
            // It stays within the share level H can carry.
            let scale = (size / (matrix.width() as u32 + 8)).max(1);
            assert!(
                plate * 10 <= matrix.width() as u32 * scale * 3,
                "{size}: {plate}"
            );
        }
    }

    #[test]
    fn a_png_without_a_logo_is_a_one_bit_palette_image() {
        let bytes = render(URL, &Branding::default(), 300, Format::Png).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.color_type, png::ColorType::Indexed);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        assert!(bytes.len() < 4000, "{} bytes", bytes.len());
    }

    #[test]
    fn changing_the_branding_changes_its_fingerprint() {
        let a = branding("#000000", "#ffffff", false);
        let b = branding("#000000", "#ffffff", true);
        let c = branding("#101010", "#ffffff", false);
        assert_eq!(
            a.fingerprint,
            branding("#000000", "#ffffff", false).fingerprint
        );
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        let images = QrImages::new();
        images.set_branding("app", a.clone());
        assert_eq!(images.branding("app").fingerprint, a.fingerprint);
        images.set_branding("app", b.clone());
        assert_eq!(images.branding("app").fingerprint, b.fingerprint);
        assert_eq!(
            images.branding("other").fingerprint,
            Branding::default().fingerprint
        );
    }
}
