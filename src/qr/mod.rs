//! QR image rendering: PNG and SVG of a QR code's `scan_url`, error correction H.

use image::{ImageEncoder, Luma};
use qrcode::{EcLevel, QrCode};

/// Smallest and largest image edge a caller may ask for.
pub const MIN_SIZE: u32 = 128;
pub const MAX_SIZE: u32 = 1024;
pub const DEFAULT_SIZE: u32 = 300;

/// A PNG of `data`, `size` pixels square (quiet zone included).
pub fn png(data: &str, size: u32) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::H)?;
    let img = code
        .render::<Luma<u8>>()
        .max_dimensions(size, size)
        .quiet_zone(true)
        .build();
    let img = if img.width() != size {
        image::imageops::resize(&img, size, size, image::imageops::FilterType::Nearest)
    } else {
        img
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::L8,
    )?;
    Ok(out)
}

/// An SVG of `data`, `size` pixels square.
pub fn svg(data: &str, size: u32) -> anyhow::Result<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::H)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(size, size)
        .max_dimensions(size, size)
        .quiet_zone(true)
        .build())
}
