//! Browser sessions of the hosted login (single sign-on across a pool's apps). The cookie is
//! a random token; only its SHA-256 is stored.

use sqlx::Row as _;

use super::Db;

#[derive(Clone, Debug)]
pub struct BrowserSession {
    pub pool: String,
    pub user_id: String,
    /// When the user last scanned and confirmed.
    pub auth_time: i64,
    pub expires_at: i64,
}

pub async fn insert(
    db: &Db,
    id_hash: &str,
    s: &BrowserSession,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_sessions (id_hash, pool, user_id, auth_time, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(&s.pool)
    .bind(&s.user_id)
    .bind(s.auth_time)
    .bind(now)
    .bind(s.expires_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The live session for a cookie hash.
pub async fn live(db: &Db, id_hash: &str, now: i64) -> Result<Option<BrowserSession>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT pool, user_id, auth_time, expires_at FROM oidc_sessions \
         WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(BrowserSession {
            pool: r.try_get("pool")?,
            user_id: r.try_get("user_id")?,
            auth_time: r.try_get("auth_time")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

pub async fn end(db: &Db, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE oidc_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
        .bind(id_hash)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// How many live browser and Mini Program sessions a user has: (browser, Mini Program).
pub async fn live_counts(db: &Db, user_id: &str, now: i64) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Row as _;
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM oidc_sessions WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2) AS browser,
                (SELECT COUNT(*) FROM mp_sessions WHERE user_id = $1 AND expires_at > $2) AS mp",
    )
    .bind(user_id)
    .bind(now)
    .fetch_one(&db.pool)
    .await?;
    Ok((row.try_get("browser")?, row.try_get("mp")?))
}
