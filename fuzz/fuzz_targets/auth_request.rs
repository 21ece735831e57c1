//! The parsing behind the authorization and logout endpoints on hostile input: OAuth
//! parameters (`oauth::parse_params`), the explanation of a near-miss redirect URI
//! (`oauth::request::explain_mismatch`), the language choice from `ui_locales` and
//! `Accept-Language`, the E.164 form of a phone number, and the values parsed once at the edge
//! (`domain`: registered redirect URIs, QR randoms, client ids, pool slugs). None may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scangate::domain::{parse_redirect_uri, ClientId, PoolSlug, Random};
use scangate::oauth::{parse_params, request::explain_mismatch};
use scangate::pages::Lang;
use scangate::tokens::e164;

const REGISTERED: [&str; 3] = [
    "http://127.0.0.1:3000/callback",
    "https://shop.example/cb?x=1",
    "com.example.app:/oauth",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let registered: Vec<String> = REGISTERED.iter().map(|s| (*s).to_owned()).collect();
    if let Ok(params) = parse_params(&text) {
        if let Some(uri) = params.get("redirect_uri") {
            let (en, zh) = explain_mismatch(uri, &registered);
            assert!(!en.is_empty() && !zh.is_empty());
        }
        let _ = Lang::choose(params.get("ui_locales"), params.get("accept_language"));
        if let Some(phone) = params.get("phone") {
            if let Some(number) = e164(phone, params.get("country")) {
                assert!(number.starts_with('+') && number.len() <= 16);
            }
        }
    }
    let _ = explain_mismatch(&text, &registered);
    if let Ok(uri) = parse_redirect_uri(&text) {
        assert_eq!(
            uri.as_str(),
            text,
            "a registered URI is kept exactly as written"
        );
    }
    let _ = Random::parse(&text);
    let _ = ClientId::parse(&text);
    let _ = PoolSlug::parse(&text);
    let _ = Lang::choose(None, Some(&text));
});
