//! OpenID Connect provider: discovery and JWKS per pool (OIDC Discovery 1.0 §3–4, RFC 7517).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/oidc/.well-known/openid-configuration",
            get(default_discovery_get),
        )
        .route("/oidc/jwks", get(default_jwks_get))
        .route(
            "/pools/{slug}/oidc/.well-known/openid-configuration",
            get(discovery_get),
        )
        .route("/pools/{slug}/oidc/jwks", get(jwks_get))
}

async fn default_discovery_get(State(state): State<AppState>) -> AppResult<Response> {
    discovery(&state, "default").await
}

async fn discovery_get(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> AppResult<Response> {
    discovery(&state, &slug).await
}

async fn default_jwks_get(State(state): State<AppState>) -> AppResult<Response> {
    jwks(&state, "default").await
}

async fn jwks_get(State(state): State<AppState>, Path(slug): Path<String>) -> AppResult<Response> {
    jwks(&state, &slug).await
}

async fn known_pool(state: &AppState, slug: &str) -> AppResult<()> {
    if slug == "default" || store::pools::get(&state.db, slug).await?.is_some() {
        Ok(())
    } else {
        Err(AppError::NotFound("no such user pool".into()))
    }
}

/// OpenID Provider Metadata (OIDC Discovery 1.0 §3).
async fn discovery(state: &AppState, slug: &str) -> AppResult<Response> {
    known_pool(state, slug).await?;
    let issuer = state.config.issuer(slug);
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        "revocation_endpoint": format!("{issuer}/token/revocation"),
        "introspection_endpoint": format!("{issuer}/token/introspection"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "phone", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "nickname", "name", "picture", "phone_number", "phone_number_verified"],
    });
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response())
}

/// The pool's JSON Web Key Set (RFC 7517 §5), served pre-serialised.
async fn jwks(state: &AppState, slug: &str) -> AppResult<Response> {
    known_pool(state, slug).await?;
    let keys = state
        .keys
        .for_pool(slug)
        .await
        .map_err(AppError::Internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        axum::body::Bytes::copy_from_slice(&keys.jwks),
    )
        .into_response())
}
