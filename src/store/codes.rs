//! Authorization codes (RFC 6749 §4.1.2): single use, short-lived, stored as SHA-256.

use sqlx::Row as _;

use super::grants::{grant_from_row, Grant, GRANT_COLUMNS};
use super::Db;

#[derive(Clone, Debug)]
pub struct Code {
    pub grant: Grant,
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub grant_id: &'a str,
    pub redirect_uri: &'a str,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert(db: &Db, c: &NewCode<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_codes (code_hash, grant_id, redirect_uri, nonce, code_challenge, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.code_hash)
    .bind(c.grant_id)
    .bind(c.redirect_uri)
    .bind(c.nonce)
    .bind(c.code_challenge)
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A code by hash, whatever its state.
pub async fn get(db: &Db, code_hash: &str) -> Result<Option<Code>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT c.redirect_uri AS redirect_uri, c.nonce AS nonce, c.code_challenge AS code_challenge, \
         c.expires_at AS expires_at, c.used_at AS used_at, {GRANT_COLUMNS} \
         FROM oidc_codes c JOIN oidc_grants g ON g.id = c.grant_id WHERE c.code_hash = $1"
    ))
    .bind(code_hash)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(Code {
            grant: grant_from_row(&r)?,
            redirect_uri: r.try_get("redirect_uri")?,
            nonce: r.try_get("nonce")?,
            code_challenge: r.try_get("code_challenge")?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
        })
    })
    .transpose()
}

/// Uses a live code up. Exactly one of any number of concurrent callers gets `true`.
pub async fn take(db: &Db, code_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE oidc_codes SET used_at = $2 \
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(code_hash)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
