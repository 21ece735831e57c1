//! Logo decoding (`qr::logo`) on hostile input: PNG, JPEG, WebP and SVG bytes, and the `logo`
//! setting itself (a path, a `data:` URI or a URL). A logo is refused on its byte size and its
//! declared dimensions before it is decoded, so no input may panic, nor take more memory than
//! libFuzzer's limit (2 GiB by default), nor draw a plate that fails.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scangate::qr::logo::{Logo, LogoSource};

fuzz_target!(|data: &[u8]| {
    if let Ok(logo) = Logo::load(data) {
        // A logo that loads can be drawn: the plate of a small code.
        let _ = logo.plate(64);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(LogoSource::Data(bytes)) = LogoSource::parse(text) {
            let _ = Logo::load(&bytes);
        }
    }
});
