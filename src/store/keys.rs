//! Signing keys per pool. The private key is sealed; the public JWK is stored as published.

use sqlx::Row as _;

use super::{is_unique_violation, Db};

#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub pool: String,
    pub alg: String,
    pub private_key_enc: String,
    pub public_jwk: String,
    pub active: bool,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Every key of the pool still worth publishing, newest first.
pub async fn list(db: &Db, pool: &str) -> Result<Vec<SigningKey>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kid, pool, alg, private_key_enc, public_jwk, active, created_at, retired_at FROM signing_keys
         WHERE pool = $1 ORDER BY created_at DESC, kid DESC",
    )
    .bind(pool)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SigningKey {
                kid: r.try_get("kid")?,
                pool: r.try_get("pool")?,
                alg: r.try_get("alg")?,
                private_key_enc: r.try_get("private_key_enc")?,
                public_jwk: r.try_get("public_jwk")?,
                active: r.try_get::<i64, _>("active")? != 0,
                created_at: r.try_get("created_at")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect()
}

/// Inserts `key` as the pool's active key unless one exists. Returns false when another
/// instance got there first (the partial unique index decides).
pub async fn insert_first_active(db: &Db, key: &SigningKey) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO signing_keys (kid, pool, alg, private_key_enc, public_jwk, active, created_at) VALUES ($1, $2, $3, $4, $5, 1, $6)",
    )
    .bind(&key.kid)
    .bind(&key.pool)
    .bind(&key.alg)
    .bind(&key.private_key_enc)
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .execute(&db.pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Retires the pool's active key and makes `key` the active one, in one transaction.
pub async fn rotate(db: &Db, key: &SigningKey, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "UPDATE signing_keys SET active = 0, retired_at = $2 WHERE pool = $1 AND active = 1",
    )
    .bind(&key.pool)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, pool, alg, private_key_enc, public_jwk, active, created_at) VALUES ($1, $2, $3, $4, $5, 1, $6)",
    )
    .bind(&key.kid)
    .bind(&key.pool)
    .bind(&key.alg)
    .bind(&key.private_key_enc)
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Moves a retired key's retirement back to `retired_at`, so that it leaves the JWKS when its
/// grace period, counted from then, is over.
pub async fn withdraw(db: &Db, pool: &str, kid: &str, retired_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $3 WHERE pool = $1 AND kid = $2 AND active = 0",
    )
    .bind(pool)
    .bind(kid)
    .bind(retired_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}
