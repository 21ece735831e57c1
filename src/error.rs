//! One error type for every handler.
//!
//! Each client-facing variant carries a stable code from the public contract; infrastructure
//! failures become `unavailable` (503) or a generic 500 whose detail is logged once and never
//! sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidRequest(String),
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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Expired(String),
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
            AppError::InvalidRequest(_) | AppError::InvalidCode(_) | AppError::DecryptFailed(_) => {
                StatusCode::BAD_REQUEST
            }
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Expired(_) => StatusCode::GONE,
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
            AppError::InvalidRequest(_) => "invalid_request",
            AppError::InvalidCode(_) => "invalid_code",
            AppError::DecryptFailed(_) => "decrypt_failed",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Expired(_) => "expired",
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
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Unavailable(e) => {
                tracing::warn!(error = %format!("{e:#}"), "dependency unavailable")
            }
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            _ => {}
        }
        let body = json!({ "error": self.code(), "message": self.message() });
        let mut res = (self.status(), Json(body)).into_response();
        if let AppError::Unavailable(e) = &self {
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
        res
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
