//! API keys of the management API: only their SHA-256 is stored; the key is shown once.

use sqlx::Row as _;

use super::{Db, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// `viewer`, `admin` or `owner`.
    pub role: String,
    /// The one pool the key may see; every pool when `None`.
    pub pool: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, role, pool, created_at, last_used_at, revoked_at";

pub async fn insert(db: &Db, key: &ApiKey, key_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_api_keys (id, name, role, pool, key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(&key.role)
    .bind(&key.pool)
    .bind(key_hash)
    .bind(key.created_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The live key with this hash, marked as used now.
pub async fn use_key(db: &Db, key_hash: &str, now: i64) -> Result<Option<ApiKey>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM admin_api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
    ))
    .bind(key_hash)
    .fetch_optional(&db.pool)
    .await?;
    let Some(key) = row.as_ref().map(from_row).transpose()? else {
        return Ok(None);
    };
    sqlx::query("UPDATE admin_api_keys SET last_used_at = $2 WHERE id = $1")
        .bind(&key.id)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(Some(ApiKey {
        last_used_at: Some(now),
        ..key
    }))
}

pub async fn get(db: &Db, id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM admin_api_keys WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every key, oldest first.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM admin_api_keys ORDER BY created_at, id"
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Revokes a live key; `false` when it is unknown or already revoked.
pub async fn revoke(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE admin_api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn from_row(r: &Row) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        pool: r.try_get("pool")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}
