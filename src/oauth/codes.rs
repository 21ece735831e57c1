//! A grant and its one-time authorization code (RFC 6749 §4.1.2), and the redirect that
//! carries the code back to the app (RFC 9207 adds `iss`).

use axum::response::Response;

use super::request::AuthRequest;
use super::{with_query, Issuer, CODE_TTL_SECS};
use crate::clock::Millis;
use crate::crypto::{random_token, sha256_hex};
use crate::error::AppError;
use crate::pages::see_other;
use crate::store::{self, grants::Grant, Db};

/// Creates a grant and its authorization code for `user_id`; returns the code and the grant's
/// id.
pub async fn issue(
    db: &Db,
    now: Millis,
    request: &AuthRequest,
    user_id: &str,
    auth_time: Millis,
) -> Result<(String, String), AppError> {
    let grant = Grant {
        id: store::new_id(),
        pool: request.pool.to_string(),
        client_id: request.client_id.to_string(),
        user_id: user_id.to_owned(),
        scope: request.scope.clone(),
        auth_time,
        created_at: now,
        revoked_at: None,
    };
    store::grants::insert(db, &grant).await?;
    let code = random_token(32);
    store::codes::insert(
        db,
        &store::codes::NewCode {
            code_hash: &sha256_hex(code.as_bytes()),
            grant_id: &grant.id,
            redirect_uri: &request.redirect_uri,
            nonce: request.nonce.as_deref(),
            code_challenge: request.code_challenge.as_deref(),
            created_at: now,
            expires_at: now + CODE_TTL_SECS * 1000,
        },
    )
    .await?;
    Ok((code, grant.id))
}

/// The successful authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`).
pub fn redirect(issuer: &Issuer, request: &AuthRequest, code: &str) -> Response {
    let mut params = vec![("code", code)];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    params.push(("iss", &issuer.url));
    see_other(&with_query(&request.redirect_uri, &params))
}
