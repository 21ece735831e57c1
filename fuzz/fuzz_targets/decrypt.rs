//! WeChat open-data decryption (`wechat::decrypt`) on hostile input: whatever the base64, iv,
//! padding, JSON or watermark, it must answer `Ok` or a `DecryptError`, never panic.
//!
//! The first byte picks the mode. Raw mode splits the rest on newlines into session key, iv
//! and encrypted data, to try the base64 and length checks. Sealed mode encrypts the rest with
//! a fixed key, so the fuzzer reaches the padding, JSON and watermark checks behind AES.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scangate::wechat::{decrypt, encrypt};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";
const IV: [u8; 16] = [
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
];
const IV_B64: &str = "EBESExQVFhcYGRobHB0eHw==";
const APPID: &str = "wx0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let mut parts = text.splitn(3, '\n');
        let key = parts.next().unwrap_or_default();
        let iv = parts.next().unwrap_or_default();
        let encrypted = parts.next().unwrap_or_default();
        let _ = decrypt(key, iv, encrypted, APPID);
    } else if let Ok(sealed) = encrypt(KEY, IV, rest) {
        if let Ok(value) = decrypt(KEY, IV_B64, &sealed, APPID) {
            // Accepted data is an object carrying the right watermark.
            assert_eq!(value["watermark"]["appid"], APPID);
        }
    }
});
