//! An app's logo for its QR images: read and checked once at start, rasterised once per plate
//! size and kept.
//!
//! PNG, JPEG and WebP are decoded by `image` under size limits; SVG is parsed by `usvg` and
//! rasterised by `resvg` at each plate size, so it stays sharp. An SVG may not refer to
//! anything outside itself (no `href` but `#fragment` or `data:`, no `url(...)` to a file, no
//! `@import`, no DTD): a logo is drawn on the server and must not make it read files or reach
//! the network.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use image::{ImageFormat, Rgba, RgbaImage};
use sha2::{Digest, Sha256};

/// The largest logo file accepted.
pub const MAX_LOGO_BYTES: usize = 1024 * 1024;
/// The largest logo edge accepted, in pixels (raster logos, and an SVG's own size).
pub const MAX_LOGO_EDGE: u32 = 4096;
/// Raster logos are kept at most this large once decoded; a plate is never bigger than 30 % of
/// a 1280-pixel image.
pub const KEEP_EDGE: u32 = 512;
/// Plates kept per logo (one per pixel size asked for); the oldest go when this is reached.
const MAX_PLATES: usize = 64;

/// Why a logo was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoError {
    #[error("cannot read logo file `{path}`: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("logo is {size} bytes; at most {MAX_LOGO_BYTES} are accepted")]
    TooLarge { size: u64 },
    #[error("logo is {width}×{height} pixels; at most {MAX_LOGO_EDGE} on a side")]
    TooManyPixels { width: u64, height: u64 },
    #[error("logo is not a PNG, JPEG, WebP or SVG image{0}")]
    Unsupported(String),
    #[error("logo is corrupt: {0}")]
    Corrupt(String),
    #[error("SVG logo refers to an external resource (`{0}`); embed everything in the file")]
    ExternalReference(String),
    #[error("logo `data:` URI is malformed: {0}")]
    BadDataUri(String),
}

/// Where a logo comes from, as written in the `logo` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogoSource {
    /// An `http(s)://` URL: shown by the Mini Program, not drawn into QR images (ScanGate
    /// does not fetch remote files at start).
    Remote,
    /// A `data:image/...;base64,` URI.
    Data(Vec<u8>),
    /// A file path, relative to the working directory.
    File(String),
    /// A logo ScanGate stores and serves itself at [`media_path`]; named by the SHA-256 of
    /// its PNG. Its bytes are in the database, not in the `logo` value.
    Stored(String),
}

/// The path ScanGate serves a stored logo at: content-addressed, so it can be cached forever.
pub fn media_path(digest: &str) -> String {
    format!("{MEDIA_PREFIX}{digest}.png")
}

/// Where stored logos are served.
pub const MEDIA_PREFIX: &str = "/media/logos/";

/// The digest a stored logo's path names, if `value` is one.
pub fn stored_digest(value: &str) -> Option<&str> {
    value
        .strip_prefix(MEDIA_PREFIX)
        .and_then(|rest| rest.strip_suffix(".png"))
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl LogoSource {
    pub fn parse(value: &str) -> Result<LogoSource, LogoError> {
        let value = value.trim();
        if value.starts_with("http://") || value.starts_with("https://") {
            return Ok(LogoSource::Remote);
        }
        if let Some(digest) = stored_digest(value) {
            return Ok(LogoSource::Stored(digest.to_owned()));
        }
        if let Some(rest) = value.strip_prefix("data:") {
            let (meta, payload) = rest
                .split_once(',')
                .ok_or_else(|| LogoError::BadDataUri("no `,` before the data".into()))?;
            if !meta.ends_with(";base64") {
                return Err(LogoError::BadDataUri("only base64 data is accepted".into()));
            }
            // Refuse before decoding what would decode to too much.
            if payload.len() / 4 * 3 > MAX_LOGO_BYTES + 3 {
                return Err(LogoError::TooLarge {
                    size: (payload.len() / 4 * 3) as u64,
                });
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload.trim())
                .map_err(|e| LogoError::BadDataUri(e.to_string()))?;
            return Ok(LogoSource::Data(bytes));
        }
        Ok(LogoSource::File(value.to_owned()))
    }

    /// The logo's bytes, refusing an oversized file before reading it.
    pub fn read(&self) -> Result<Option<Vec<u8>>, LogoError> {
        match self {
            LogoSource::Remote | LogoSource::Stored(_) => Ok(None),
            LogoSource::Data(bytes) => Ok(Some(bytes.clone())),
            LogoSource::File(path) => {
                let unreadable = |e: std::io::Error| LogoError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                };
                let size = std::fs::metadata(path).map_err(unreadable)?.len();
                if size > MAX_LOGO_BYTES as u64 {
                    return Err(LogoError::TooLarge { size });
                }
                std::fs::read(path).map(Some).map_err(unreadable)
            }
        }
    }
}

enum Art {
    Raster(RgbaImage),
    Svg(Box<resvg::usvg::Tree>),
}

/// A checked logo and the plates made from it so far.
pub struct Logo {
    art: Art,
    /// SHA-256 of the logo's bytes; part of every cached image's key.
    digest: [u8; 32],
    plates: Mutex<PlateCache>,
}

#[derive(Default)]
struct PlateCache {
    by_side: HashMap<u32, Arc<Plate>>,
    order: Vec<u32>,
}

/// The logo centred on a rounded white plate, `side` pixels square, straight (not
/// premultiplied) RGBA; transparent outside the rounded corners.
pub struct Plate {
    pub image: RgbaImage,
    png_base64: OnceLock<String>,
}

impl Plate {
    /// The plate as a base64 PNG, for embedding in an SVG.
    pub fn png_base64(&self) -> &str {
        self.png_base64.get_or_init(|| {
            let mut out = Vec::new();
            // An in-memory PNG of an image we made cannot fail to encode.
            let _ = self
                .image
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png);
            base64::engine::general_purpose::STANDARD.encode(out)
        })
    }
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("digest", &hex::encode(&self.digest[..8]))
            .finish()
    }
}

impl Logo {
    /// Checks and decodes a logo.
    pub fn load(bytes: &[u8]) -> Result<Logo, LogoError> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(LogoError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let digest = Sha256::digest(bytes).into();
        let art = if looks_like_svg(bytes) {
            Art::Svg(Box::new(load_svg(bytes)?))
        } else {
            Art::Raster(load_raster(bytes)?)
        };
        Ok(Logo {
            art,
            digest,
            plates: Mutex::new(PlateCache::default()),
        })
    }

    /// The logo as ScanGate stores and serves it: a PNG whose longer side is at most
    /// [`KEEP_EDGE`] pixels, whatever was sent (an SVG is rasterised, so no script or
    /// reference of it survives).
    pub fn to_png(&self) -> Vec<u8> {
        let art = match &self.art {
            Art::Raster(img) => img.clone(),
            Art::Svg(tree) => rasterise_svg(tree, KEEP_EDGE),
        };
        let mut out = Vec::new();
        // An in-memory PNG of an image we made cannot fail to encode.
        let _ = art.write_to(&mut Cursor::new(&mut out), ImageFormat::Png);
        out
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The plate `side` pixels square, made once per size.
    pub fn plate(&self, side: u32) -> Arc<Plate> {
        let side = side.max(4);
        if let Some(p) = self.lock().by_side.get(&side) {
            return Arc::clone(p);
        }
        let plate = Arc::new(self.make_plate(side));
        let mut cache = self.lock();
        if cache.order.len() >= MAX_PLATES {
            let oldest = cache.order.remove(0);
            cache.by_side.remove(&oldest);
        }
        if cache.by_side.insert(side, Arc::clone(&plate)).is_none() {
            cache.order.push(side);
        }
        plate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlateCache> {
        self.plates.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn make_plate(&self, side: u32) -> Plate {
        let pad = (side / 10).max(1);
        let inner = side.saturating_sub(2 * pad).max(1);
        let art = match &self.art {
            Art::Raster(img) => fit_raster(img, inner),
            Art::Svg(tree) => rasterise_svg(tree, inner),
        };
        let radius = side as f32 * 0.2;
        let mut image = RgbaImage::from_fn(side, side, |x, y| {
            let a = rounded_square_coverage(x, y, side, radius);
            Rgba([255, 255, 255, (a * 255.0).round() as u8])
        });
        let ox = (side - art.width()) / 2;
        let oy = (side - art.height()) / 2;
        for (x, y, p) in art.enumerate_pixels() {
            let dst = image.get_pixel_mut(ox + x, oy + y);
            let a = p[3] as u32;
            for c in 0..3 {
                dst[c] = ((p[c] as u32 * a + dst[c] as u32 * (255 - a) + 127) / 255) as u8;
            }
        }
        Plate {
            image,
            png_base64: OnceLock::new(),
        }
    }
}

/// How much of pixel (x, y) a `side`-square with corners of `radius` covers, 0.0–1.0
/// (sampled at the pixel centre with a one-pixel ramp for smooth corners).
fn rounded_square_coverage(x: u32, y: u32, side: u32, radius: f32) -> f32 {
    let s = side as f32;
    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
    let cx = px.clamp(radius, s - radius);
    let cy = py.clamp(radius, s - radius);
    let d = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt();
    (radius - d + 0.5).clamp(0.0, 1.0)
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    start.is_some_and(|i| text[i] == b'<')
}

fn load_raster(bytes: &[u8]) -> Result<RgbaImage, LogoError> {
    let format = image::guess_format(bytes).map_err(|_| LogoError::Unsupported(String::new()))?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP
    ) {
        return Err(LogoError::Unsupported(format!(
            " (it is {})",
            format.extensions_str().first().unwrap_or(&"another format")
        )));
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| LogoError::Corrupt(e.to_string()))?;
    if width > MAX_LOGO_EDGE || height > MAX_LOGO_EDGE {
        return Err(LogoError::TooManyPixels {
            width: width.into(),
            height: height.into(),
        });
    }
    reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_LOGO_EDGE);
    limits.max_image_height = Some(MAX_LOGO_EDGE);
    limits.max_alloc = Some(128 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| LogoError::Corrupt(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(LogoError::Corrupt("the image is empty".into()));
    }
    let img = if img.width().max(img.height()) > KEEP_EDGE {
        img.resize(KEEP_EDGE, KEEP_EDGE, image::imageops::FilterType::Lanczos3)
    } else {
        img
    };
    Ok(img.to_rgba8())
}

/// Fits a raster logo into an `inner`-pixel square, keeping its proportions.
fn fit_raster(img: &RgbaImage, inner: u32) -> RgbaImage {
    let (w, h) = img.dimensions();
    let scale = inner as f32 / w.max(h) as f32;
    let nw = ((w as f32 * scale).round() as u32).clamp(1, inner);
    let nh = ((h as f32 * scale).round() as u32).clamp(1, inner);
    image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)
}

fn load_svg(bytes: &[u8]) -> Result<resvg::usvg::Tree, LogoError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| LogoError::Corrupt("an SVG logo must be UTF-8 text".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_svg_references(text)?;
    let mut options = resvg::usvg::Options {
        resources_dir: None,
        ..Default::default()
    };
    // Defence in depth behind the check above: never resolve an `href` to a file.
    options.image_href_resolver.resolve_string = Box::new(|_: &str, _: &resvg::usvg::Options| None);
    let tree = resvg::usvg::Tree::from_str(text, &options)
        .map_err(|e| LogoError::Corrupt(format!("not a valid SVG: {e}")))?;
    let size = tree.size();
    if size.width() > MAX_LOGO_EDGE as f32 || size.height() > MAX_LOGO_EDGE as f32 {
        return Err(LogoError::TooManyPixels {
            width: size.width() as u64,
            height: size.height() as u64,
        });
    }
    // The rasteriser (tiny-skia) asserts on coordinates far past the canvas (a circle of
    // radius 3.6e8 in a 11×10 viewBox panics it), so a drawing must stay near its canvas.
    let reach = SVG_REACH * size.width().max(size.height());
    let drawn = tree.root().abs_stroke_bounding_box();
    if [drawn.left(), drawn.top(), drawn.right(), drawn.bottom()]
        .iter()
        .any(|v| !v.is_finite() || v.abs() > reach)
    {
        return Err(LogoError::Corrupt(format!(
            "the SVG draws far outside its canvas (more than {SVG_REACH} times its size away)"
        )));
    }
    Ok(tree)
}

/// How far outside its canvas, in canvas sizes, an SVG logo may draw (whatever lies outside is
/// cut off anyway).
const SVG_REACH: f32 = 16.0;

/// Refuses an SVG that names anything outside itself.
fn check_svg_references(text: &str) -> Result<(), LogoError> {
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| LogoError::Corrupt(format!("not a valid SVG: {e}")))?;
    if doc.root_element().tag_name().name() != "svg" {
        return Err(LogoError::Unsupported(" (an XML document, not SVG)".into()));
    }
    let external = |v: &str| {
        let v = v.trim();
        !(v.is_empty() || v.starts_with('#') || v.starts_with("data:"))
    };
    for node in doc.descendants() {
        if node.is_text() {
            let text = node.text().unwrap_or_default();
            let in_style = node
                .parent_element()
                .is_some_and(|p| p.tag_name().name() == "style");
            if in_style {
                if text.contains("@import") {
                    return Err(LogoError::ExternalReference("@import".into()));
                }
                check_css_urls(text, &external)?;
            }
            continue;
        }
        for attr in node.attributes() {
            if attr.name() == "href" && external(attr.value()) {
                return Err(LogoError::ExternalReference(shorten(attr.value())));
            }
            check_css_urls(attr.value(), &external)?;
        }
    }
    Ok(())
}

fn check_css_urls(text: &str, external: &dyn Fn(&str) -> bool) -> Result<(), LogoError> {
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("url(") {
        let after = &rest[i + 4..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].trim().trim_matches(['"', '\'']);
        if external(target) {
            return Err(LogoError::ExternalReference(shorten(target)));
        }
        rest = &after[end..];
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Rasterises an SVG logo into an `inner`-pixel square, keeping its proportions.
fn rasterise_svg(tree: &resvg::usvg::Tree, inner: u32) -> RgbaImage {
    let size = tree.size();
    let scale = inner as f32 / size.width().max(size.height());
    let w = ((size.width() * scale).round() as u32).clamp(1, inner);
    let h = ((size.height() * scale).round() as u32).clamp(1, inner);
    let Some(mut pixmap) = resvg::tiny_skia::Pixmap::new(w, h) else {
        return RgbaImage::new(1, 1);
    };
    resvg::render(
        tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    // tiny-skia keeps premultiplied alpha; the plate wants straight alpha.
    let mut out = RgbaImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(pixmap.pixels()) {
        let c = src.demultiply();
        *dst = Rgba([c.red(), c.green(), c.blue(), c.alpha()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbaImage::from_pixel(width, height, Rgba([200, 20, 30, 255]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn png_jpeg_webp_and_svg_logos_load() {
        assert!(Logo::load(&png(64, 32)).is_ok());
        let mut jpeg = Vec::new();
        image::RgbImage::from_pixel(40, 40, image::Rgb([1, 2, 3]))
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        assert!(Logo::load(&jpeg).is_ok());
        let mut webp = Vec::new();
        RgbaImage::from_pixel(40, 40, Rgba([1, 2, 3, 255]))
            .write_to(&mut Cursor::new(&mut webp), ImageFormat::WebP)
            .unwrap();
        assert!(Logo::load(&webp).is_ok());
        let svg = br##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#c00"/></svg>"##;
        assert!(Logo::load(svg).is_ok());
    }

    #[test]
    fn a_truncated_png_is_corrupt() {
        let bytes = png(64, 64);
        let err = Logo::load(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, LogoError::Corrupt(_)), "{err}");
    }

    #[test]
    fn an_oversized_file_is_refused_before_decoding() {
        let mut bytes = png(8, 8);
        bytes.resize(10 * 1024 * 1024, 0);
        assert_eq!(
            Logo::load(&bytes).unwrap_err(),
            LogoError::TooLarge {
                size: 10 * 1024 * 1024
            }
        );
    }

    #[test]
    fn an_image_with_too_many_pixels_is_refused() {
        // A small file that declares a 5000×5000 image.
        let img = image::GrayImage::new(5000, 5000);
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        assert!(bytes.len() < MAX_LOGO_BYTES);
        assert!(matches!(
            Logo::load(&bytes).unwrap_err(),
            LogoError::TooManyPixels { .. }
        ));
    }

    #[test]
    fn svg_drawing_far_outside_its_canvas_is_refused() {
        // Found by the `logo` fuzz target: rendering it panicked inside tiny-skia.
        let huge = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 11 10"><circle cx="5" cy="9" r="00000000000000000000000359099624" fill="#07c160"/></svg>"##;
        assert!(matches!(Logo::load(huge), Err(LogoError::Corrupt(_))));
        let fuzzed = include_bytes!("../../fuzz/seeds/logo/regression-huge-circle.svg");
        assert!(matches!(Logo::load(fuzzed), Err(LogoError::Corrupt(_))));
        let near = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="40" fill="#07c160"/></svg>"##;
        let logo = Logo::load(near).expect("a drawing just past its canvas is fine");
        assert!(logo.plate(64).image.width() == 64);
    }

    #[test]
    fn svg_with_external_references_is_refused() {
        for svg in [
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="/etc/passwd" width="1" height="1"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><image href="https://example.com/a.png" width="1" height="1"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><use href="other.svg#x"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1" fill="url(file.svg#g)"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://example.com/x.css);</style></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1" style="fill: url('http://x/y')"/></svg>"#,
        ] {
            let err = Logo::load(svg.as_bytes()).unwrap_err();
            assert!(
                matches!(err, LogoError::ExternalReference(_)),
                "{svg}: {err}"
            );
        }
        let internal = r##"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/></linearGradient></defs><rect width="4" height="4" fill="url(#g)"/></svg>"##;
        assert!(Logo::load(internal.as_bytes()).is_ok());
    }

    #[test]
    fn a_dtd_is_refused() {
        let svg = r#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>"#;
        assert!(Logo::load(svg.as_bytes()).is_err());
    }

    #[test]
    fn other_types_are_unsupported() {
        let mut gif = Vec::new();
        RgbaImage::from_pixel(4, 4, Rgba([0, 0, 0, 255]))
            .write_to(&mut Cursor::new(&mut gif), ImageFormat::Gif)
            .unwrap();
        for bytes in [gif, b"just some text".to_vec(), b"%PDF-1.7 ...".to_vec()] {
            let err = Logo::load(&bytes).unwrap_err();
            assert!(matches!(err, LogoError::Unsupported(_)), "{err}");
        }
    }

    #[test]
    fn a_plate_is_made_once_per_size() {
        let logo = Logo::load(&png(64, 64)).unwrap();
        let a = logo.plate(90);
        let b = logo.plate(90);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.image.dimensions(), (90, 90));
        // The centre is the logo's red; a corner is transparent.
        assert_eq!(a.image.get_pixel(45, 45), &Rgba([200, 20, 30, 255]));
        assert_eq!(a.image.get_pixel(0, 0)[3], 0);
        assert!(!Arc::ptr_eq(&a, &logo.plate(91)));
    }

    #[test]
    fn data_uris_and_paths_are_told_apart() {
        assert_eq!(
            LogoSource::parse("https://example.com/l.png").unwrap(),
            LogoSource::Remote
        );
        assert_eq!(
            LogoSource::parse("data:image/png;base64,AAEC").unwrap(),
            LogoSource::Data(vec![0, 1, 2])
        );
        assert!(LogoSource::parse("data:image/png,raw").is_err());
        assert_eq!(
            LogoSource::parse("branding/logo.svg").unwrap(),
            LogoSource::File("branding/logo.svg".into())
        );
    }
}
