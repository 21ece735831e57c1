//! Decryption of WeChat open data (placeholder signatures; implementation pending).

#[derive(Debug, thiserror::Error)]
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

pub fn decrypt(_session_key: &str, _iv: &str, _encrypted_data: &str, _appid: &str) -> Result<serde_json::Value, DecryptError> {
    Err(DecryptError::BadKey)
}

pub fn check_signature(_raw_data: &str, _session_key: &str, _signature: &str) -> bool {
    false
}
