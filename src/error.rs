//! One error type for every handler.
//!
//! Each client-facing variant carries a stable code from the public contract; infrastructure
//! failures become `unavailable` (503) or a generic 500 whose detail is logged once and never
//! sent to the client. An error renders as the native JSON envelope (`into_response`), or as
//! a page for routes a person looks at (`into_page`); the OAuth endpoints' own format is
//! `oidc::OAuthError`, which converts from this one. A form's errors name their fields
//! ([`AppError::Fields`]), so a page can show each beside its field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::pages::{Lang, MessagePage};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Fields of a request that are wrong, each with what is wrong with it (`invalid_request`).
    #[error("{}", .0.summary())]
    Fields(FieldErrors),
    /// WeChat refused a `wx.login` or phone code: invalid, used or expired.
    #[error("{0}")]
    InvalidCode(String),
    /// Bad base64, iv, padding, JSON or `watermark.appid` in encrypted data.
    #[error("{0}")]
    DecryptFailed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// The person tapped a number the PC page did not show: the code is cancelled.
    #[error("{0}")]
    WrongMatchNumber(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Expired(String),
    /// An `If-Match` names a version that is no longer current (RFC 9110 §13.1.1).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RateLimited(String),
    /// WeChat is busy or our credentials for it are wrong.
    #[error("{0}")]
    Wechat(String),
    /// Our database or Redis cannot be reached.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug. Logged, never described to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::InvalidRequest(_)
            | AppError::Fields(_)
            | AppError::InvalidCode(_)
            | AppError::DecryptFailed(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::WrongMatchNumber(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Expired(_) => StatusCode::GONE,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Wechat(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code of the contract.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidRequest(_) | AppError::Fields(_) => "invalid_request",
            AppError::InvalidCode(_) => "invalid_code",
            AppError::DecryptFailed(_) => "decrypt_failed",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::WrongMatchNumber(_) => "wrong_match_number",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Expired(_) => "expired",
            AppError::PreconditionFailed(_) => "precondition_failed",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::RateLimited(_) => "rate_limited",
            AppError::Wechat(_) => "wechat_error",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// Human text safe to show a client.
    pub fn message(&self) -> String {
        self.to_string()
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        AppError::InvalidRequest(msg.into())
    }

    /// Logs what the client is not told: the detail of an outage or a bug, once.
    fn log(&self) {
        match self {
            AppError::Unavailable(e) => {
                tracing::warn!(error = %format!("{e:#}"), "dependency unavailable")
            }
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            _ => {}
        }
    }

    /// The error as a page in `lang`, with the same status (and `Retry-After`) as the JSON.
    pub fn into_page(self, lang: Lang) -> Response {
        self.log();
        let (zh, en) = self.titles();
        let detail = self.message();
        let page = MessagePage::error(
            lang,
            self.code(),
            (zh, &format!("{}（{detail}）", self.hint_zh())),
            (en, &detail),
        );
        let mut res = page.respond(self.status());
        self.finish(&mut res);
        res
    }

    /// Page titles: (Chinese, English).
    fn titles(&self) -> (&'static str, &'static str) {
        match self.status() {
            StatusCode::BAD_REQUEST => ("请求有误", "This request cannot be used"),
            StatusCode::UNAUTHORIZED => ("需要登录", "Sign-in required"),
            StatusCode::FORBIDDEN => ("无权访问", "Not allowed"),
            StatusCode::NOT_FOUND => ("找不到页面", "Not found"),
            StatusCode::CONFLICT => ("操作冲突", "Conflict"),
            StatusCode::GONE => ("已过期", "Expired"),
            StatusCode::PAYLOAD_TOO_LARGE => ("内容过大", "Too large"),
            StatusCode::TOO_MANY_REQUESTS => ("请求过于频繁", "Too many requests"),
            StatusCode::BAD_GATEWAY => ("微信暂时无法访问", "WeChat is not answering"),
            StatusCode::SERVICE_UNAVAILABLE => {
                ("服务暂时不可用", "Service temporarily unavailable")
            }
            _ => ("出错了", "Something went wrong"),
        }
    }

    /// What a person can do, in Chinese (the detail after it is the English message).
    fn hint_zh(&self) -> &'static str {
        match self.status() {
            StatusCode::TOO_MANY_REQUESTS => "请一分钟后再试。",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => "请稍后再试。",
            StatusCode::INTERNAL_SERVER_ERROR => "请稍后再试；如果问题持续，请联系网站管理员。",
            _ => "请返回网站重新开始。",
        }
    }

    /// What both renderings carry besides the body: `Retry-After`, and for the metrics which
    /// storage failed.
    fn finish(&self, res: &mut Response) {
        if let AppError::Unavailable(e) = self {
            let backend = if e.downcast_ref::<sqlx::Error>().is_some() {
                "database"
            } else {
                "redis"
            };
            res.extensions_mut()
                .insert(crate::metrics::StorageFailure(backend));
        }
        if let AppError::RateLimited(_) = self {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("60"),
            );
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            error: self.code().into(),
            message: self.message(),
            fields: match &self {
                AppError::Fields(fields) => Some(fields.to_map()),
                _ => None,
            },
        };
        let mut res = (self.status(), Json(body)).into_response();
        self.finish(&mut res);
        res
    }
}

/// The native error envelope: a stable code, a message for people, and for a form or JSON
/// body, what is wrong with each field.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code from the public contract (`invalid_request`, `not_found`, …).
    #[schema(example = "not_found")]
    pub error: String,
    pub message: String,
    /// Each wrong field and what is wrong with it, in the order found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What is wrong with each field of a form or JSON body, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is wrong; the first message for a field is kept.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        if self.get(&field).is_none() {
            self.0.push((field, message.into()));
        }
    }

    /// What is wrong with `field`, for showing beside it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every field and its message, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_str()))
    }

    /// `Ok` when nothing was wrong, else the error naming every field.
    pub fn into_result(self) -> AppResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::Fields(self))
        }
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(f, m)| (f.clone(), serde_json::Value::String(m.clone())))
            .collect()
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => AppError::Unavailable(e.into()),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        AppError::Unavailable(e.into())
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn body(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_page_route_shows_the_error_as_a_page_with_the_same_status() {
        let res = AppError::RateLimited("too many qrcodes requests".into()).into_page(Lang::En);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[axum::http::header::RETRY_AFTER], "60");
        assert!(res.headers()[axum::http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = body(res).await;
        assert!(html.contains("Too many requests"));
        assert!(html.contains("rate_limited"));
    }

    #[tokio::test]
    async fn an_internal_error_page_says_nothing_of_the_cause() {
        let res = AppError::Internal(anyhow::anyhow!("secret detail")).into_page(Lang::Zh);
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let html = body(res).await;
        assert!(!html.contains("secret detail"));
        assert!(html.contains("出错了"));
    }

    #[tokio::test]
    async fn field_errors_name_each_field_in_the_json() {
        let mut fields = FieldErrors::new();
        fields.add("name", "must not be empty");
        fields.add("qr_ttl_secs", "must be between 30 and 3600");
        fields.add("name", "a second message is not kept");
        assert_eq!(fields.get("name"), Some("must not be empty"));
        let res = fields.into_result().unwrap_err().into_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
        assert_eq!(json["error"], "invalid_request");
        assert_eq!(json["fields"]["name"], "must not be empty");
        assert_eq!(json["fields"]["qr_ttl_secs"], "must be between 30 and 3600");
        assert!(json["message"]
            .as_str()
            .unwrap()
            .contains("name: must not be empty"));
    }

    #[test]
    fn no_field_errors_is_ok() {
        assert!(FieldErrors::new().into_result().is_ok());
    }
}
