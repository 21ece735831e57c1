//! What every server-rendered page shares: rendering a template with the pages' headers, the
//! language choice (zh-CN or English), message pages, and the one `303 See Other` helper.
//!
//! Features render their own templates through [`page`]; an error that reaches a page route is
//! shown as a [`MessagePage`] (see `AppError::page`), never as JSON.

use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Pages load only our own script and style; images may come from anywhere because logos and
/// avatars are URLs; nobody may frame them.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data: http: https:; connect-src 'self'; \
                       frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The language of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[serde(rename = "zh")]
    Zh,
    #[serde(rename = "en")]
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// `zh` or `en`, whichever is this language's.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    fn of_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag == "zh" || tag.starts_with("zh-") {
            Some(Lang::Zh)
        } else if tag == "en" || tag.starts_with("en-") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// From `ui_locales` (the relying party's explicit wish, OIDC Core §3.1.2.1) if it names
    /// a language we have, else from `Accept-Language`, else Chinese. The flag says whether
    /// the choice was explicit, in which case the page keeps it.
    pub fn choose(ui_locales: Option<&str>, accept_language: Option<&str>) -> (Lang, bool) {
        if let Some(lang) = ui_locales.and_then(|l| l.split(' ').find_map(Lang::of_tag)) {
            return (lang, true);
        }
        let mut ranked: Vec<(f32, Lang)> = accept_language
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let lang = Lang::of_tag(it.next()?)?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((q, lang))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        (ranked.first().map_or(Lang::Zh, |(_, l)| *l), false)
    }

    /// The language a request's `Accept-Language` asks for.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Lang::choose(None, accept).0
    }
}

/// A message page: an error the browser cannot be redirected with, or a notice.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub lang: Lang,
    pub error: bool,
    pub title_zh: String,
    pub title_en: String,
    pub text_zh: String,
    pub text_en: String,
    /// The machine-readable reason, shown small.
    pub code: Option<String>,
    pub link: Option<Link>,
}

pub struct Link {
    pub href: String,
    pub zh: &'static str,
    pub en: &'static str,
}

impl MessagePage {
    pub fn error(lang: Lang, code: &str, zh: (&str, &str), en: (&str, &str)) -> Self {
        Self {
            lang,
            error: true,
            title_zh: zh.0.into(),
            title_en: en.0.into(),
            text_zh: zh.1.into(),
            text_en: en.1.into(),
            code: Some(code.into()),
            link: None,
        }
    }

    pub fn with_link(mut self, href: String, zh: &'static str, en: &'static str) -> Self {
        self.link = Some(Link { href, zh, en });
        self
    }

    pub fn respond(&self, status: StatusCode) -> Response {
        let mut res = page(self);
        *res.status_mut() = status;
        res
    }
}

/// The page behind a QR code's `scan_url`, for a phone that opened it with something other
/// than WeChat.
#[derive(Template)]
#[template(path = "scan.html")]
pub struct ScanPage {
    /// The phone simulator for this code, in `dev` mode only.
    pub phone_url: Option<String>,
}

/// Renders a page with the pages' headers: CSP, no caching, no referrer.
pub fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            [
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => crate::error::AppError::from(e).into_response(),
    }
}

/// A `303 See Other` to `location`, not cached.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, v),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => crate::error::AppError::invalid("unusable redirect target").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_locales_wins_over_accept_language() {
        assert_eq!(
            Lang::choose(Some("fr en-US"), Some("zh-CN")),
            (Lang::En, true)
        );
        assert_eq!(
            Lang::choose(None, Some("en;q=0.5, zh-CN")),
            (Lang::Zh, false)
        );
        assert_eq!(
            Lang::choose(None, Some("en-GB,en;q=0.9")),
            (Lang::En, false)
        );
        assert_eq!(Lang::choose(None, None), (Lang::Zh, false));
    }
}
