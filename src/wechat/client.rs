//! HTTP client for WeChat's server APIs (placeholder signatures; implementation pending).

use std::sync::Arc;
use std::time::Duration;

use crate::tickets::TicketStore;

/// A Mini Program's AppID and AppSecret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub appid: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("appid", &self.appid).field("secret", &"<redacted>").finish()
    }
}

/// What code2Session yields. `Debug` never shows the session key.
#[derive(Clone)]
pub struct Session {
    pub openid: String,
    pub session_key: String,
    pub unionid: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("openid", &self.openid)
            .field("session_key", &"<redacted>")
            .field("unionid", &self.unionid)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneInfo {
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("the code is invalid, used or expired; call wx.login again")]
    InvalidCode,
    #[error("WeChat refused this user")]
    Refused,
    #[error("WeChat rate limit reached")]
    RateLimited,
    #[error("WeChat is busy")]
    Busy,
    #[error("WeChat rejected our credentials or configuration (errcode {0})")]
    Misconfigured(i64),
    #[error("WeChat could not be reached: {0}")]
    Transport(String),
    #[error("WeChat error {errcode}")]
    Api { errcode: i64, errmsg: String },
}

impl From<WechatError> for crate::error::AppError {
    fn from(e: WechatError) -> Self {
        use crate::error::AppError;
        match e {
            WechatError::InvalidCode => AppError::InvalidCode(e.to_string()),
            WechatError::Refused => AppError::Forbidden(e.to_string()),
            WechatError::RateLimited => AppError::RateLimited(e.to_string()),
            other => AppError::Wechat(other.to_string()),
        }
    }
}

pub struct WechatClient {
    _store: Arc<dyn TicketStore>,
}

impl WechatClient {
    pub fn new(_api_base: url::Url, _timeout: Duration, store: Arc<dyn TicketStore>) -> Self {
        Self { _store: store }
    }

    pub async fn code2session(&self, _creds: &Credentials, _js_code: &str) -> Result<Session, WechatError> {
        Err(WechatError::Busy)
    }

    pub async fn access_token(&self, _creds: &Credentials) -> Result<String, WechatError> {
        Err(WechatError::Busy)
    }

    pub async fn phone_number(
        &self,
        _creds: &Credentials,
        _code: &str,
        _openid: Option<&str>,
    ) -> Result<PhoneInfo, WechatError> {
        Err(WechatError::Busy)
    }
}
