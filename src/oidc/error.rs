//! The OAuth 2.0 error response (RFC 6749 §5.2) of the token, revocation and introspection
//! endpoints, and the bearer-token error of userinfo (RFC 6750 §3).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AppError;

/// The error response's body (RFC 6749 §5.2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `authorization_pending`, `slow_down`,
    /// `access_denied`, `expired_token`, `invalid_token`, …
    #[schema(value_type = String, example = "invalid_grant")]
    pub error: &'static str,
    pub error_description: String,
}

#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    /// The registered error code (`invalid_grant`, `invalid_client`, …).
    pub error: &'static str,
    pub description: String,
    /// For 401s: the `WWW-Authenticate` challenge.
    pub challenge: Option<&'static str>,
    /// For 429s and 503s: seconds until a retry may succeed (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
            retry_after: None,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    /// Client authentication failed (RFC 6749 §5.2): 401 with a Basic challenge.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self {
            challenge: Some("Basic realm=\"scangate\""),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }

    /// A request body over the limit: `invalid_request`, with 413 as its status.
    pub fn too_large(d: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }

    /// The device's user has not decided yet (RFC 8628 §3.5): poll again after the interval.
    pub fn authorization_pending(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "authorization_pending", d)
    }

    /// The device polled sooner than its interval (RFC 8628 §3.5), which is now 5 s longer.
    pub fn slow_down(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "slow_down", d)
    }

    /// The person declined the device's request (RFC 8628 §3.5).
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "access_denied", d)
    }

    /// The device code's lifetime has passed (RFC 8628 §3.5).
    pub fn expired_token(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "expired_token", d)
    }

    /// Too busy to check a client secret now (RFC 6749 §4.1.2.1's `temporarily_unavailable`):
    /// 503, retry in a second.
    pub fn busy(d: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                d,
            )
        }
    }

    /// A missing, expired or revoked bearer token (RFC 6750 §3.1).
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self {
            challenge: Some("Bearer error=\"invalid_token\""),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_token", d)
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        match &e {
            AppError::Unavailable(_) => {
                tracing::warn!(error = %format!("{e:#}"), "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "service temporarily unavailable",
                )
            }
            AppError::Internal(inner) => {
                tracing::error!(error = %format!("{inner:#}"), "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                )
            }
            AppError::RateLimited(m) => Self {
                retry_after: Some(60),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", m)
            },
            other => Self::invalid_request(other.message()),
        }
    }
}

impl From<crate::tickets::StoreError> for OAuthError {
    fn from(e: crate::tickets::StoreError) -> Self {
        AppError::from(e).into()
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        AppError::from(e).into()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error,
            error_description: self.description,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(c) = self.challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
