//! User pools: tenants that isolate users and apps.

use sqlx::Row as _;

use super::Db;

#[derive(Clone, Debug)]
pub struct Pool {
    pub slug: String,
    pub name: String,
    /// Moves with every change: the management API's ETag.
    pub version: i64,
    pub created_at: i64,
}

/// Creates the pool if it does not exist.
pub async fn ensure(db: &Db, slug: &str, name: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO pools (slug, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING")
        .bind(slug)
        .bind(name)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn get(db: &Db, slug: &str) -> Result<Option<Pool>, sqlx::Error> {
    let row = sqlx::query("SELECT slug, name, version, created_at FROM pools WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

fn from_row(r: &super::Row) -> Result<Pool, sqlx::Error> {
    Ok(Pool {
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Creates a pool; `false` when the slug is taken.
pub async fn create(db: &Db, slug: &str, name: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO pools (slug, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
    )
    .bind(slug)
    .bind(name)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renames a pool still at `version`; `false` when another change came first.
pub async fn rename(db: &Db, slug: &str, name: &str, version: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE pools SET name = $2, version = version + 1 WHERE slug = $1 AND version = $3",
    )
    .bind(slug)
    .bind(name)
    .bind(version)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many apps, users and Mini Programs a pool holds.
pub async fn dependents(db: &Db, slug: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM apps WHERE pool = $1)
              + (SELECT COUNT(*) FROM users WHERE pool = $1)
              + (SELECT COUNT(*) FROM miniprograms WHERE pool = $1) AS n",
    )
    .bind(slug)
    .fetch_one(&db.pool)
    .await?;
    row.try_get("n")
}

/// Deletes an empty pool still at `version`, with its signing keys and its audit trail's
/// pool reference kept; `false` when another change came first.
pub async fn delete(db: &Db, slug: &str, version: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    for statement in [
        "DELETE FROM signing_keys WHERE pool = $1",
        "DELETE FROM oidc_sessions WHERE pool = $1",
        "DELETE FROM admin_api_keys WHERE pool = $1",
    ] {
        sqlx::query(statement).bind(slug).execute(&mut *tx).await?;
    }
    let done = sqlx::query("DELETE FROM pools WHERE slug = $1 AND version = $2")
        .bind(slug)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn list(db: &Db) -> Result<Vec<Pool>, sqlx::Error> {
    let rows = sqlx::query("SELECT slug, name, version, created_at FROM pools ORDER BY slug")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}
