//! Drawing a QR matrix (or a Mini Program code) as PNG or SVG, with the app's colours and the
//! logo plate.
//!
//! Modules are whole pixels (the largest integer scale that fits, the rest of the edge added
//! to the margin), so edges stay crisp at every size. A PNG without a logo is a two-colour
//! palette image, one bit per pixel; with a logo it is 8-bit RGB. Either way rows are filtered
//! with `Up` — every row of a module band repeats the one above and filters to zeros — and
//! deflated with the `fdeflate` fast path, which is built for exactly such data.
//!
//! The logo plate is at most [`PLATE_SHARE`] of the code's width, so it hides at most 9 % of
//! the modules. Level H restores up to 30 % of each block's codewords; even counting every
//! codeword the plate's edge merely grazes, the damage stays well under that, leaving most of
//! the margin for print and camera noise. The plate never reaches the finder patterns.

use image::{Rgb as Pixel, RgbImage};

use super::brand::Branding;
use super::encode::Matrix;

/// The plate's share of the code's width (quiet zone excluded).
pub const PLATE_SHARE: f32 = 0.3;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
}

/// Where the code sits in a square image.
struct Layout {
    /// The image edge in pixels.
    side: u32,
    /// Pixels per module.
    scale: u32,
    /// Pixel offset of the symbol's first module (quiet zone before it).
    origin: u32,
    /// Modules across the symbol.
    width: u32,
}

impl Layout {
    fn new(width: usize, quiet_zone: u32, size: u32) -> Layout {
        let width = width as u32;
        let modules = width + 2 * quiet_zone;
        let scale = (size / modules).max(1);
        let side = size.max(modules * scale);
        let origin = (side - modules * scale) / 2 + quiet_zone * scale;
        Layout {
            side,
            scale,
            origin,
            width,
        }
    }

    /// The plate's edge and top-left corner, in pixels.
    fn plate(&self) -> (u32, u32) {
        let code = self.width * self.scale;
        let plate = (code as f32 * PLATE_SHARE) as u32;
        (plate, self.origin + (code - plate) / 2)
    }
}

/// A branded PNG of `matrix`, `size` pixels square.
pub fn png(matrix: &Matrix, branding: &Branding, size: u32) -> anyhow::Result<Vec<u8>> {
    let layout = Layout::new(matrix.width(), branding.quiet_zone, size);
    match &branding.logo {
        None => png_two_colour(matrix, branding, &layout),
        Some(logo) => {
            let mut img = RgbImage::new(layout.side, layout.side);
            paint_modules(&mut img, matrix, branding, &layout);
            let (plate_side, at) = layout.plate();
            overlay(&mut img, &logo.plate(plate_side).image, at, at);
            encode_rgb(&img)
        }
    }
}

/// One bit per pixel: 0 background, 1 foreground.
fn png_two_colour(
    matrix: &Matrix,
    branding: &Branding,
    layout: &Layout,
) -> anyhow::Result<Vec<u8>> {
    let side = layout.side as usize;
    let stride = side.div_ceil(8);
    let mut data = vec![0u8; stride * side];
    let mut row = vec![0u8; stride];
    for y in 0..matrix.width() {
        row.fill(0);
        for (x, &dark) in matrix.row(y).iter().enumerate() {
            if dark {
                let start = layout.origin as usize + x * layout.scale as usize;
                for px in start..start + layout.scale as usize {
                    row[px / 8] |= 0x80 >> (px % 8);
                }
            }
        }
        let top = layout.origin as usize + y * layout.scale as usize;
        for line in top..top + layout.scale as usize {
            data[line * stride..(line + 1) * stride].copy_from_slice(&row);
        }
    }
    let mut palette = Vec::with_capacity(6);
    palette.extend_from_slice(&branding.background.0);
    palette.extend_from_slice(&branding.foreground.0);
    let mut out = Vec::with_capacity(side * side / 40 + 256);
    let mut encoder = png::Encoder::new(&mut out, layout.side, layout.side);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_palette(palette);
    fast(&mut encoder);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&data)?;
    writer.finish()?;
    Ok(out)
}

fn fast(encoder: &mut png::Encoder<'_, &mut Vec<u8>>) {
    encoder.set_deflate_compression(png::DeflateCompression::FdeflateUltraFast);
    encoder.set_filter(png::Filter::Up);
}

fn encode_rgb(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 20 + 256);
    let mut encoder = png::Encoder::new(&mut out, img.width(), img.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    fast(&mut encoder);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(img.as_raw())?;
    writer.finish()?;
    Ok(out)
}

/// Paints background and modules into an RGB image, one pixel row per module band.
fn paint_modules(img: &mut RgbImage, matrix: &Matrix, branding: &Branding, layout: &Layout) {
    let side = layout.side as usize;
    let (bg, fg) = (branding.background.0, branding.foreground.0);
    let buf: &mut [u8] = img;
    for px in buf.chunks_exact_mut(3) {
        px.copy_from_slice(&bg);
    }
    let mut row = vec![0u8; side * 3];
    for y in 0..matrix.width() {
        for px in row.chunks_exact_mut(3) {
            px.copy_from_slice(&bg);
        }
        for (x, &dark) in matrix.row(y).iter().enumerate() {
            if dark {
                let start = layout.origin as usize + x * layout.scale as usize;
                for px in row[start * 3..(start + layout.scale as usize) * 3].chunks_exact_mut(3) {
                    px.copy_from_slice(&fg);
                }
            }
        }
        let top = layout.origin as usize + y * layout.scale as usize;
        for line in top..top + layout.scale as usize {
            buf[line * side * 3..(line + 1) * side * 3].copy_from_slice(&row);
        }
    }
}

/// Alpha-blends `top` (straight RGBA) onto `img` at (x0, y0).
fn overlay(img: &mut RgbImage, top: &image::RgbaImage, x0: u32, y0: u32) {
    for (x, y, p) in top.enumerate_pixels() {
        let a = p[3] as u32;
        if a == 0 || x0 + x >= img.width() || y0 + y >= img.height() {
            continue;
        }
        let dst = img.get_pixel_mut(x0 + x, y0 + y);
        if a == 255 {
            *dst = Pixel([p[0], p[1], p[2]]);
            continue;
        }
        for c in 0..3 {
            dst[c] = ((p[c] as u32 * a + dst[c] as u32 * (255 - a) + 127) / 255) as u8;
        }
    }
}

/// A branded SVG of `matrix`, `size` pixels square: one path, horizontal runs merged, laid
/// out on the same whole-pixel grid as the PNG so it is as crisp at its nominal size.
pub fn svg(matrix: &Matrix, branding: &Branding, size: u32) -> String {
    use std::fmt::Write as _;
    let layout = Layout::new(matrix.width(), branding.quiet_zone, size);
    let (side, scale, origin) = (layout.side, layout.scale, layout.origin);
    let mut out = String::with_capacity(256 + matrix.width() * matrix.width() * 4);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" viewBox="0 0 {side} {side}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="{}"/><path fill="{}" transform="matrix({scale} 0 0 {scale} {origin} {origin})" d=""#,
        branding.background.hex(),
        branding.foreground.hex()
    );
    for y in 0..matrix.width() {
        let row = matrix.row(y);
        let mut x = 0;
        while x < row.len() {
            if !row[x] {
                x += 1;
                continue;
            }
            let start = x;
            while x < row.len() && row[x] {
                x += 1;
            }
            let len = x - start;
            let _ = write!(out, "M{start} {y}h{len}v1h-{len}z");
        }
    }
    out.push_str("\"/>");
    if let Some(logo) = &branding.logo {
        let (plate, at) = layout.plate();
        let _ = write!(
            out,
            r#"<image x="{at}" y="{at}" width="{plate}" height="{plate}" href="data:image/png;base64,{}"/>"#,
            logo.plate(plate).png_base64()
        );
    }
    out.push_str("</svg>");
    out
}

/// A Mini Program code from WeChat, scaled to `size` if it is not that size already, with the
/// logo plate over its centre (where WeChat itself puts the Mini Program's avatar).
pub fn wxacode_png(code: &[u8], branding: &Branding, size: u32) -> anyhow::Result<Vec<u8>> {
    encode_rgb(&wxacode_image(code, branding, size)?)
}

/// As [`wxacode_png`], as an SVG wrapping the PNG.
pub fn wxacode_svg(code: &[u8], branding: &Branding, size: u32) -> anyhow::Result<String> {
    use base64::Engine as _;
    let png = wxacode_png(code, branding, size)?;
    Ok(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}"><image width="{size}" height="{size}" href="data:image/png;base64,{}"/></svg>"#,
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

fn wxacode_image(code: &[u8], branding: &Branding, size: u32) -> anyhow::Result<RgbImage> {
    let decoded = image::load_from_memory(code)?;
    // A transparent code (is_hyaline) is laid on the app's background.
    let rgba = decoded.to_rgba8();
    let mut img = RgbImage::from_pixel(rgba.width(), rgba.height(), Pixel(branding.background.0));
    overlay(&mut img, &rgba, 0, 0);
    if img.width() != size || img.height() != size {
        img = image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle);
    }
    if let Some(logo) = &branding.logo {
        let plate = (size as f32 * PLATE_SHARE) as u32;
        let at = (size - plate) / 2;
        overlay(&mut img, &logo.plate(plate).image, at, at);
    }
    Ok(img)
}

/// The plate's edge and offset for a `size`-pixel wxacode image (for tests).
pub fn wxacode_plate(size: u32) -> (u32, u32) {
    let plate = (size as f32 * PLATE_SHARE) as u32;
    (plate, (size - plate) / 2)
}

/// The plate's edge and offset in a `size`-pixel PNG of a `width`-module code (for tests).
pub fn png_plate(width: usize, quiet_zone: u32, size: u32) -> Option<(u32, u32)> {
    Some(Layout::new(width, quiet_zone, size).plate())
}
