//! The browser session of single sign-on.
//!
//! A successful scan through the hosted page starts a session: a random token in an HttpOnly,
//! SameSite=Lax cookie scoped to the issuer's path (so each pool has its own), Secure when
//! the public URL is https. Only the token's SHA-256 is stored. While it lives, the pool's
//! other apps log the browser in without a scan; RP-initiated logout ends it.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::{Issuer, SESSION_TTL_SECS};
use crate::clock::Millis;
use crate::crypto::{random_token, sha256_hex};
use crate::error::AppError;
use crate::store::{self, browser_sessions::BrowserSession, Db};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "scangate_session";

/// The live session of this browser in the issuer's pool, if any.
pub async fn current(
    db: &Db,
    now: Millis,
    issuer: &Issuer,
    jar: &CookieJar,
) -> Result<Option<BrowserSession>, AppError> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = sha256_hex(cookie.value().as_bytes());
    let session = store::browser_sessions::live(db, &hash, now).await?;
    Ok(session.filter(|s| s.pool == issuer.pool))
}

fn cookie(secure: bool, issuer: &Issuer, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path(issuer.path())
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(SESSION_TTL_SECS))
        .build()
}

/// Ends any session this browser had and starts a new one for `user_id`. `secure`: the
/// public URL is https. Returns the jar with the new cookie and the session's stored hash.
pub async fn start(
    db: &Db,
    now: Millis,
    secure: bool,
    issuer: &Issuer,
    jar: CookieJar,
    user_id: &str,
    auth_time: Millis,
) -> Result<(CookieJar, String), AppError> {
    if let Some(old) = jar.get(SESSION_COOKIE) {
        store::browser_sessions::end(db, &sha256_hex(old.value().as_bytes()), now).await?;
    }
    let token = random_token(32);
    let hash = sha256_hex(token.as_bytes());
    store::browser_sessions::insert(
        db,
        &hash,
        &BrowserSession {
            pool: issuer.pool.to_string(),
            user_id: user_id.to_owned(),
            auth_time,
            expires_at: now + SESSION_TTL_SECS * 1000,
        },
        now,
    )
    .await?;
    Ok((jar.add(cookie(secure, issuer, token)), hash))
}

/// Ends this browser's session, if it has one, and removes its cookie.
pub async fn end(
    db: &Db,
    now: Millis,
    issuer: &Issuer,
    jar: CookieJar,
) -> Result<CookieJar, AppError> {
    let Some(c) = jar.get(SESSION_COOKIE) else {
        return Ok(jar);
    };
    store::browser_sessions::end(db, &sha256_hex(c.value().as_bytes()), now).await?;
    Ok(jar.remove(Cookie::build(SESSION_COOKIE).path(issuer.path()).build()))
}
