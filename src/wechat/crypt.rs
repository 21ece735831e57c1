//! WeChat "open data": AES-128-CBC decryption of `encryptedData` and the SHA-1 signature of
//! `rawData`.
//!
//! The Mini Program receives user data (legacy profile, legacy phone number) encrypted with the
//! user's `session_key`, which only WeChat and this server know. Decryption is strict: standard
//! base64, 16-byte key and iv, PKCS#7 padding of 1..=16 equal bytes, a UTF-8 JSON object, and a
//! `watermark.appid` naming the Mini Program we expect, so that data minted for another Mini
//! Program is never accepted. [`encrypt`] is the inverse, for the simulator and tests.

use aes::Aes128;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha1::{Digest, Sha1};

type Decryptor = cbc::Decryptor<Aes128>;
type Encryptor = cbc::Encryptor<Aes128>;

/// AES block size, and the required length of the key and the iv.
const BLOCK: usize = 16;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("session key is not base64 of 16 bytes")]
    BadKey,
    #[error("iv is not base64 of 16 bytes")]
    BadIv,
    #[error("encrypted_data is not valid base64")]
    BadBase64,
    #[error("decryption failed (bad padding)")]
    BadPadding,
    #[error("decrypted data is not UTF-8 JSON")]
    BadJson,
    #[error("decrypted data belongs to another Mini Program (watermark.appid)")]
    WatermarkMismatch,
}

impl From<DecryptError> for crate::error::AppError {
    fn from(e: DecryptError) -> Self {
        crate::error::AppError::DecryptFailed(e.to_string())
    }
}

/// Decodes standard base64 that must hold exactly 16 bytes.
fn decode_block(text: &str) -> Option<[u8; BLOCK]> {
    let bytes = STANDARD.decode(text).ok()?;
    <[u8; BLOCK]>::try_from(bytes).ok()
}

/// Decrypts `encrypted_data` with the user's session key and checks that the plaintext is a
/// JSON object whose `watermark.appid` is `expected_appid`. All three inputs are standard
/// base64 as the Mini Program receives them.
pub fn decrypt(
    session_key: &str,
    iv: &str,
    encrypted_data: &str,
    expected_appid: &str,
) -> Result<serde_json::Value, DecryptError> {
    let key = decode_block(session_key).ok_or(DecryptError::BadKey)?;
    let iv = decode_block(iv).ok_or(DecryptError::BadIv)?;
    let ciphertext = STANDARD
        .decode(encrypted_data)
        .map_err(|_| DecryptError::BadBase64)?;
    if ciphertext.is_empty() || ciphertext.len() % BLOCK != 0 {
        return Err(DecryptError::BadPadding);
    }
    // The Pkcs7 unpadder is strict: the last byte must be 1..=16 and every padding byte equal.
    let plaintext = Decryptor::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        .map_err(|_| DecryptError::BadPadding)?;
    // `from_slice` rejects invalid UTF-8 as well as invalid JSON.
    let value: serde_json::Value =
        serde_json::from_slice(&plaintext).map_err(|_| DecryptError::BadJson)?;
    if !value.is_object() {
        return Err(DecryptError::BadJson);
    }
    let appid = value
        .pointer("/watermark/appid")
        .and_then(serde_json::Value::as_str);
    if appid != Some(expected_appid) {
        return Err(DecryptError::WatermarkMismatch);
    }
    Ok(value)
}

/// Encrypts `plaintext` the way WeChat does (AES-128-CBC, PKCS#7) and returns standard base64.
/// Used by the simulator to produce `encryptedData`.
pub fn encrypt(
    session_key: &str,
    iv: [u8; BLOCK],
    plaintext: &[u8],
) -> Result<String, DecryptError> {
    let key = decode_block(session_key).ok_or(DecryptError::BadKey)?;
    let ciphertext =
        Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    Ok(STANDARD.encode(ciphertext))
}

/// Whether `signature` is `hex(sha1(raw_data + session_key))`: the rawData bytes exactly as
/// received followed by the session key in its base64 text form. Hex case is ignored; the
/// comparison does not stop at the first difference.
pub fn check_signature(raw_data: &str, session_key: &str, signature: &str) -> bool {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.as_bytes());
    let expected = hex::encode(hasher.finalize());
    crate::crypto::constant_time_eq(&expected, &signature.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sha256_hex;

    const APPID: &str = "wx0123456789abcdef";

    const V1_KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";
    const V1_IV: &str = "EBESExQVFhcYGRobHB0eHw==";
    const V1_DATA: &str = "AEF1Q3woI5VkZ9H+FS6Do3togzk4JoI62TCLobmqicAOmTnPuFCZ3rz6lEEqrm1s7QPTYr2/9/OjTXVqn9pkBzaMic0uc2uGel0A/cKu69iDDiP7nLlvWEgelkX+CKSsVBEVweBsOd+1RN6iX6gWEC2YMTcgDB9qDgSx0ByFi1N1wQS6kpCqTqByMiv/iZI5dGv2m/pl93ATwmtQ9ZSUs4ZzkQhUjRDB12zztyJjPQg6dmFk9LKNjAzst4YibZkRaHEw4qmt38PJZ3Z+Kn+Jb8PmRPr/v8OIFIsDLqE/s+BakKgPmy2hCwWxRyCpLE9gXNY7/iRQFED9zgMhdMttcTLqTJK6K8CLiMGxvPxCsTUtmOHsHAJhy1s2Lr6/8zUdcsZ4o/z49WintSxzQC+SgtxAuFUGMtCjOF0NYBvODpw=";
    const V1_PLAIN: &str = r#"{"openId":"oTestOpenId0000000000000001","nickName":"测试用户","gender":1,"language":"zh_CN","city":"Shenzhen","province":"Guangdong","country":"CN","avatarUrl":"https://thirdwx.qlogo.cn/mmopen/vi_32/test/132","unionId":"oTestUnionId000000000000001","watermark":{"timestamp":1700000000,"appid":"wx0123456789abcdef"}}"#;
    const V1_PLAIN_SHA256: &str =
        "d9959fcf40ee80f44f020b0bee990d7507218280390f00a084c511091b9fa1e6";
    const V1_RAW_DATA: &str = r#"{"nickName":"测试用户","gender":1,"language":"zh_CN","city":"Shenzhen","province":"Guangdong","country":"CN","avatarUrl":"https://thirdwx.qlogo.cn/mmopen/vi_32/test/132"}"#;
    const V1_SIGNATURE: &str = "d9c9789aa003f78a13e38c1973323d8d8e232bf7";

    const V2_KEY: &str = "qKSnwyYno+RUJqxBHvyyPg==";
    const V2_IV: &str = "0Nxscgp7ThNw4vxJuavwcA==";
    const V2_DATA: &str = "yFY5iSwksHOXjeCA/dl0ixoEf/fCJQNngHzeZwaGEAhRU1+4cLe+4cgpP3azHs0djq1f4Rl4zMGtMXbDCJcel1kJI1CBCZiCSrFr0E6OvlsaLrNG4Gft0ljxkd/X3XL2ptMn4kBiBBPd78ae7zNGm/xGXVRoWIG+UXeg41PjKkOJF2thmovoZPT7CQfp2OI6vdhSeO3791QuJGqLI7eg7g==";
    const V2_PLAIN: &str = r#"{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"timestamp":1700000123,"appid":"wx0123456789abcdef"}}"#;
    const V2_PLAIN_SHA256: &str =
        "eb9045cf1e82b7c970cb0293e7099148e1fe90e15661783a12daf8da062f3d34";

    const V3_KEY: &str = "IQWknOlCcQ+wbuWzVRWl2w==";
    const V3_IV: &str = "zU68QQptwKgcsHsV050sqg==";
    const V3_DATA: &str = "hhirUtD2IuQ2FaHZlItJAfDMbfuMXxdm6tzn9ODXDrOvr8sojFoxzG+j8e/UHtq0FITDJfjYpKEGLNCgmQaHgtKzPRDj1EtteMPMHCL6ir/Hn9T8bJLUyfE3BJoqU8fRP+14MkC67mLEvIpN2I0l7Mg3Op2j9NgF9q1HKcFIw/bFbC7/mGYywAwYHMajkRh+1e9Dc/RE8Nb0OGYkRQLvPcmIVHROCMATleKOXfHXqFWckOCrNaLtOs2Tr1EAYfKz30SmjkN+y+evoEhWHgZEnvRueQ7XwCLXC5UroOmin3E=";
    const V3_PLAIN_SHA256: &str =
        "724389c53c9a9addc085ac85ed07fadce7b2b562fcd31336a6f1c7d50e32b023";

    /// WeChat's own WXBizDataCrypt sample.
    const SAMPLE_APPID: &str = "wx4f4bc4dec97d474b";
    const SAMPLE_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const SAMPLE_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const SAMPLE_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    const SAMPLE_PLAIN_SHA256: &str =
        "3237d8a5dbd413523c194882c7156544d8a06e2afcc97383cc300c17bd09391b";
    const SAMPLE_RAW_DATA: &str = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    const SAMPLE_SIGNING_KEY: &str = "HyVFkGl5F5OQWJZZaNzBBg==";
    const SAMPLE_SIGNATURE: &str = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";

    /// The plaintext bytes exactly as they were encrypted, bypassing JSON parsing.
    fn raw_plaintext(key: &str, iv: &str, data: &str) -> Vec<u8> {
        let key = decode_block(key).expect("key");
        let iv = decode_block(iv).expect("iv");
        let ciphertext = STANDARD.decode(data).expect("base64");
        Decryptor::new(&key.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
            .expect("padding")
    }

    /// Encrypts whole blocks without adding padding, to forge malformed padding.
    fn encrypt_unpadded(key: &str, iv: &str, blocks: &[u8]) -> String {
        use cbc::cipher::block_padding::NoPadding;
        let key = decode_block(key).expect("key");
        let iv = decode_block(iv).expect("iv");
        let ciphertext =
            Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<NoPadding>(blocks);
        STANDARD.encode(ciphertext)
    }

    #[test]
    fn v1_user_info_decrypts_to_the_exact_plaintext() {
        let bytes = raw_plaintext(V1_KEY, V1_IV, V1_DATA);
        assert_eq!(bytes.len(), 319);
        assert_eq!(sha256_hex(&bytes), V1_PLAIN_SHA256);
        assert_eq!(bytes, V1_PLAIN.as_bytes());

        let value = decrypt(V1_KEY, V1_IV, V1_DATA, APPID).expect("V1 decrypts");
        assert_eq!(value["nickName"], "测试用户");
        assert_eq!(value["unionId"], "oTestUnionId000000000000001");
        assert_eq!(
            value,
            serde_json::from_str::<serde_json::Value>(V1_PLAIN).expect("json")
        );
    }

    #[test]
    fn v2_phone_number_with_fourteen_bytes_of_padding_decrypts() {
        let bytes = raw_plaintext(V2_KEY, V2_IV, V2_DATA);
        assert_eq!(bytes.len(), 146);
        assert_eq!(sha256_hex(&bytes), V2_PLAIN_SHA256);
        assert_eq!(bytes, V2_PLAIN.as_bytes());

        let value = decrypt(V2_KEY, V2_IV, V2_DATA, APPID).expect("V2 decrypts");
        assert_eq!(value["purePhoneNumber"], "13800138000");
        assert_eq!(value["countryCode"], "86");
    }

    #[test]
    fn v3_plaintext_filling_whole_blocks_loses_its_full_padding_block() {
        let bytes = raw_plaintext(V3_KEY, V3_IV, V3_DATA);
        assert_eq!(bytes.len(), 208);
        assert_eq!(sha256_hex(&bytes), V3_PLAIN_SHA256);

        let value = decrypt(V3_KEY, V3_IV, V3_DATA, APPID).expect("V3 decrypts");
        assert_eq!(value["nickName"], "TesterXXX");
        assert_eq!(value["watermark"]["timestamp"], 1_700_000_456);
    }

    #[test]
    fn wechat_sample_decrypts_for_its_own_appid() {
        let bytes = raw_plaintext(SAMPLE_KEY, SAMPLE_IV, SAMPLE_DATA);
        assert_eq!(bytes.len(), 393);
        assert_eq!(sha256_hex(&bytes), SAMPLE_PLAIN_SHA256);

        let value = decrypt(SAMPLE_KEY, SAMPLE_IV, SAMPLE_DATA, SAMPLE_APPID).expect("decrypts");
        assert_eq!(value["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(value["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(
            decrypt(SAMPLE_KEY, SAMPLE_IV, SAMPLE_DATA, APPID),
            Err(DecryptError::WatermarkMismatch)
        );
    }

    #[test]
    fn v1_signature_matches_raw_data_and_session_key() {
        assert!(check_signature(V1_RAW_DATA, V1_KEY, V1_SIGNATURE));
        assert!(check_signature(
            V1_RAW_DATA,
            V1_KEY,
            &V1_SIGNATURE.to_ascii_uppercase()
        ));
        assert!(!check_signature(V1_RAW_DATA, V2_KEY, V1_SIGNATURE));
        assert!(!check_signature(
            &V1_RAW_DATA.replace("Shenzhen", "Shanghai"),
            V1_KEY,
            V1_SIGNATURE
        ));
        assert!(!check_signature(V1_RAW_DATA, V1_KEY, &V1_SIGNATURE[..39]));
        assert!(!check_signature(V1_RAW_DATA, V1_KEY, ""));
    }

    #[test]
    fn wechat_sample_signature_matches() {
        assert!(check_signature(
            SAMPLE_RAW_DATA,
            SAMPLE_SIGNING_KEY,
            SAMPLE_SIGNATURE
        ));
    }

    #[test]
    fn v2_ciphertext_under_the_v1_key_is_rejected() {
        assert_eq!(
            decrypt(V1_KEY, V2_IV, V2_DATA, APPID),
            Err(DecryptError::BadPadding)
        );
    }

    #[test]
    fn v1_for_another_mini_program_is_a_watermark_mismatch() {
        assert_eq!(
            decrypt(V1_KEY, V1_IV, V1_DATA, "wx4f4bc4dec97d474b"),
            Err(DecryptError::WatermarkMismatch)
        );
    }

    #[test]
    fn a_fifteen_byte_session_key_is_a_bad_key() {
        assert_eq!(
            decrypt("AAECAwQFBgcICQoLDA0O", V1_IV, V1_DATA, APPID),
            Err(DecryptError::BadKey)
        );
        assert_eq!(
            decrypt("not base64!", V1_IV, V1_DATA, APPID),
            Err(DecryptError::BadKey)
        );
        assert_eq!(
            encrypt("AAECAwQFBgcICQoLDA0O", [0; 16], b"{}"),
            Err(DecryptError::BadKey)
        );
    }

    #[test]
    fn an_iv_of_the_wrong_length_is_rejected() {
        // 15 and 17 bytes.
        assert_eq!(
            decrypt(V1_KEY, "EBESExQVFhcYGRobHB0e", V1_DATA, APPID),
            Err(DecryptError::BadIv)
        );
        assert_eq!(
            decrypt(V1_KEY, "EBESExQVFhcYGRobHB0eHyA=", V1_DATA, APPID),
            Err(DecryptError::BadIv)
        );
        assert_eq!(
            decrypt(V1_KEY, "", V1_DATA, APPID),
            Err(DecryptError::BadIv)
        );
    }

    #[test]
    fn encrypted_data_that_is_not_standard_base64_is_rejected() {
        assert_eq!(
            decrypt(V1_KEY, V1_IV, "not*base64", APPID),
            Err(DecryptError::BadBase64)
        );
        // The URL-safe alphabet is not what WeChat sends.
        let url_safe = V1_DATA.replace('+', "-").replace('/', "_");
        assert_eq!(
            decrypt(V1_KEY, V1_IV, &url_safe, APPID),
            Err(DecryptError::BadBase64)
        );
    }

    #[test]
    fn truncated_or_empty_ciphertext_is_rejected() {
        let bytes = STANDARD.decode(V1_DATA).expect("base64");
        let ragged = STANDARD.encode(&bytes[..bytes.len() - 1]);
        assert_eq!(
            decrypt(V1_KEY, V1_IV, &ragged, APPID),
            Err(DecryptError::BadPadding)
        );
        // Dropping the last block leaves block-aligned data whose final byte is not padding.
        let short = STANDARD.encode(&bytes[..bytes.len() - 16]);
        assert_eq!(
            decrypt(V1_KEY, V1_IV, &short, APPID),
            Err(DecryptError::BadPadding)
        );
        assert_eq!(
            decrypt(V1_KEY, V1_IV, "", APPID),
            Err(DecryptError::BadPadding)
        );
    }

    #[test]
    fn padding_must_be_one_to_sixteen_equal_bytes() {
        let mut block = [b'x'; 16];
        block[13..].copy_from_slice(&[3, 2, 3]);
        let unequal = encrypt_unpadded(V1_KEY, V1_IV, &block);
        assert_eq!(
            decrypt(V1_KEY, V1_IV, &unequal, APPID),
            Err(DecryptError::BadPadding)
        );

        block[15] = 0;
        let zero = encrypt_unpadded(V1_KEY, V1_IV, &block);
        assert_eq!(
            decrypt(V1_KEY, V1_IV, &zero, APPID),
            Err(DecryptError::BadPadding)
        );

        let seventeen = encrypt_unpadded(V1_KEY, V1_IV, &[17; 32]);
        assert_eq!(
            decrypt(V1_KEY, V1_IV, &seventeen, APPID),
            Err(DecryptError::BadPadding)
        );
    }

    #[test]
    fn plaintext_that_is_not_a_json_object_is_rejected() {
        for plaintext in [&b"hello"[..], b"[1,2,3]", b"\"text\"", b"\xff\xfe{}"] {
            let data = encrypt(V1_KEY, [7; 16], plaintext).expect("encrypts");
            assert_eq!(
                decrypt(V1_KEY, "BwcHBwcHBwcHBwcHBwcHBw==", &data, APPID),
                Err(DecryptError::BadJson),
                "{plaintext:?}"
            );
        }
    }

    #[test]
    fn data_without_a_watermark_is_a_mismatch() {
        let iv = "BwcHBwcHBwcHBwcHBwcHBw==";
        for plaintext in [
            &br#"{"nickName":"x"}"#[..],
            br#"{"watermark":{}}"#,
            br#"{"watermark":{"appid":42}}"#,
        ] {
            let data = encrypt(V1_KEY, [7; 16], plaintext).expect("encrypts");
            assert_eq!(
                decrypt(V1_KEY, iv, &data, APPID),
                Err(DecryptError::WatermarkMismatch)
            );
        }
    }

    #[test]
    fn encrypt_reproduces_v1_byte_for_byte() {
        let iv: [u8; 16] = std::array::from_fn(|i| 0x10 + i as u8);
        let data = encrypt(V1_KEY, iv, V1_PLAIN.as_bytes()).expect("encrypts");
        assert_eq!(data, V1_DATA);
    }
}
