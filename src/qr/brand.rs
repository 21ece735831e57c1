//! An app's QR branding, parsed and checked from its `[[apps]]` entry once, at start.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::config::{AppConfig, QrMode};
use crate::wechat::{LineColor, WxaCodeRequest};

use super::logo::{Logo, LogoSource};
use super::{MAX_SIZE, MIN_SIZE};

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    pub const BLACK: Rgb = Rgb([0, 0, 0]);
    pub const WHITE: Rgb = Rgb([255, 255, 255]);

    /// `#rrggbb` or `#rgb`.
    pub fn parse(s: &str) -> Result<Rgb, String> {
        let hex = s
            .trim()
            .strip_prefix('#')
            .ok_or_else(|| format!("`{s}` is not a colour; write it as #rrggbb"))?;
        let digits: Vec<u8> = match hex.len() {
            3 => hex.chars().flat_map(|c| [c, c]).map(|c| c as u8).collect(),
            6 => hex.bytes().collect(),
            _ => return Err(format!("`{s}` is not a colour; write it as #rrggbb")),
        };
        let mut rgb = [0u8; 3];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).unwrap_or("");
            rgb[i] = u8::from_str_radix(text, 16)
                .map_err(|_| format!("`{s}` is not a colour; write it as #rrggbb"))?;
        }
        Ok(Rgb(rgb))
    }

    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{}", hex::encode(self.0))
    }

    /// Relative luminance (WCAG 2.x), 0.0 black to 1.0 white.
    fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.0[0]) + 0.7152 * channel(self.0[1]) + 0.0722 * channel(self.0[2])
    }
}

/// The smallest contrast ratio (WCAG) between foreground and background we accept: below it
/// phone cameras in poor light stop telling modules apart.
pub const MIN_CONTRAST: f64 = 3.0;

/// The getwxacodeunlimit parameters of an app in `wxacode` mode (scene and width are per
/// image).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WxaCodeOptions {
    pub page: Option<String>,
    pub env_version: Option<String>,
    pub check_path: Option<bool>,
    pub width: Option<u32>,
    pub line_color: Rgb,
    pub auto_color: Option<bool>,
}

impl Default for Rgb {
    fn default() -> Self {
        Rgb::BLACK
    }
}

impl WxaCodeOptions {
    /// The request for a code carrying `scene`, `width` pixels wide unless configured.
    pub fn request(&self, scene: &str, width: u32) -> WxaCodeRequest {
        let [r, g, b] = self.line_color.0;
        WxaCodeRequest {
            scene: scene.to_owned(),
            page: self.page.clone(),
            check_path: self.check_path,
            env_version: self.env_version.clone(),
            width: Some(self.width.unwrap_or(width.clamp(280, 1280))),
            auto_color: self.auto_color,
            line_color: Some(LineColor { r, g, b }),
            is_hyaline: None,
        }
    }
}

/// Everything that decides how an app's QR images look.
#[derive(Clone, Debug)]
pub struct Branding {
    pub foreground: Rgb,
    pub background: Rgb,
    /// Image edge when a request names none.
    pub size: u32,
    /// Light modules around the code.
    pub quiet_zone: u32,
    pub logo: Option<Arc<Logo>>,
    pub mode: QrMode,
    pub wxacode: WxaCodeOptions,
    /// A digest of all the above; changes whenever the branding does, so cached images made
    /// with older branding are never served.
    pub fingerprint: u64,
}

/// A branding key that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BrandingError {
    /// The key under `[[apps]]`, e.g. `logo` or `wxacode.width`.
    pub key: &'static str,
    pub message: String,
}

fn refuse(key: &'static str, message: impl Into<String>) -> BrandingError {
    BrandingError {
        key,
        message: message.into(),
    }
}

impl Default for Branding {
    fn default() -> Self {
        let mut b = Branding {
            foreground: Rgb::BLACK,
            background: Rgb::WHITE,
            size: super::DEFAULT_SIZE,
            quiet_zone: 4,
            logo: None,
            mode: QrMode::Qrcode,
            wxacode: WxaCodeOptions::default(),
            fingerprint: 0,
        };
        b.fingerprint = b.digest();
        b
    }
}

impl Branding {
    /// Parses an app's branding keys, reading and checking its logo.
    pub fn from_app(app: &AppConfig) -> Result<Branding, BrandingError> {
        let foreground = Rgb::parse(&app.qr_foreground).map_err(|m| refuse("qr_foreground", m))?;
        let background = Rgb::parse(&app.qr_background).map_err(|m| refuse("qr_background", m))?;
        let (light, dark) = (background.luminance(), foreground.luminance());
        if dark >= light {
            return Err(refuse(
                "qr_foreground",
                "must be darker than qr_background (scanners read dark modules on a light ground)",
            ));
        }
        let contrast = (light + 0.05) / (dark + 0.05);
        if contrast < MIN_CONTRAST {
            return Err(refuse(
                "qr_foreground",
                format!(
                    "contrast with qr_background is {contrast:.1}:1; at least {MIN_CONTRAST}:1 is needed"
                ),
            ));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&app.qr_size) {
            return Err(refuse(
                "qr_size",
                format!("must be between {MIN_SIZE} and {MAX_SIZE}"),
            ));
        }
        if !(1..=16).contains(&app.qr_quiet_zone) {
            return Err(refuse(
                "qr_quiet_zone",
                "must be between 1 and 16 modules (4 is the standard's)",
            ));
        }
        let logo = match &app.logo {
            None => None,
            Some(value) => {
                let source = LogoSource::parse(value).map_err(|e| refuse("logo", e.to_string()))?;
                match source.read().map_err(|e| refuse("logo", e.to_string()))? {
                    None => None,
                    Some(bytes) => Some(Arc::new(
                        Logo::load(&bytes).map_err(|e| refuse("logo", e.to_string()))?,
                    )),
                }
            }
        };
        let w = &app.wxacode;
        if let Some(page) = &w.page {
            if page.is_empty() || page.starts_with('/') || page.contains('?') {
                return Err(refuse(
                    "wxacode.page",
                    "must be a page path without a leading `/` or a query, e.g. pages/login/login",
                ));
            }
        }
        if let Some(env) = &w.env_version {
            if !matches!(env.as_str(), "release" | "trial" | "develop") {
                return Err(refuse(
                    "wxacode.env_version",
                    "must be release, trial or develop",
                ));
            }
        }
        if let Some(width) = w.width {
            if !(280..=1280).contains(&width) {
                return Err(refuse("wxacode.width", "must be between 280 and 1280"));
            }
        }
        let line_color = match &w.line_color {
            Some(c) => Rgb::parse(c).map_err(|m| refuse("wxacode.line_color", m))?,
            None => foreground,
        };
        let mut branding = Branding {
            foreground,
            background,
            size: app.qr_size,
            quiet_zone: app.qr_quiet_zone,
            logo,
            mode: app.qr_mode,
            wxacode: WxaCodeOptions {
                page: w.page.clone(),
                env_version: w.env_version.clone(),
                check_path: w.check_path,
                width: w.width,
                line_color,
                auto_color: w.auto_color,
            },
            fingerprint: 0,
        };
        branding.fingerprint = branding.digest();
        Ok(branding)
    }

    fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.foreground.hash(&mut h);
        self.background.hash(&mut h);
        self.size.hash(&mut h);
        self.quiet_zone.hash(&mut h);
        self.logo.as_ref().map(|l| *l.digest()).hash(&mut h);
        (self.mode == QrMode::Wxacode).hash(&mut h);
        self.wxacode.hash(&mut h);
        h.finish()
    }
}
