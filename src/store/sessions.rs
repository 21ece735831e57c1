//! Bearer sessions of the Mini Program API. Only the SHA-256 of a token is stored.

use sqlx::Row as _;

use super::Db;

#[derive(Clone, Debug)]
pub struct MpSession {
    pub identity_id: String,
    pub user_id: String,
    pub expires_at: i64,
}

pub async fn insert(
    db: &Db,
    token_hash: &str,
    identity_id: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mp_sessions (token_hash, identity_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(identity_id)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The live session for a token hash.
pub async fn get(db: &Db, token_hash: &str, now: i64) -> Result<Option<MpSession>, sqlx::Error> {
    let row = sqlx::query("SELECT identity_id, user_id, expires_at FROM mp_sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(MpSession {
            identity_id: r.try_get("identity_id")?,
            user_id: r.try_get("user_id")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}
