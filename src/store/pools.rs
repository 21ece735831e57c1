//! User pools: tenants that isolate users and apps.

use sqlx::Row as _;

use super::Db;

#[derive(Clone, Debug)]
pub struct Pool {
    pub slug: String,
    pub name: String,
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
    let row = sqlx::query("SELECT slug, name FROM pools WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(Pool {
            slug: r.try_get("slug")?,
            name: r.try_get("name")?,
        })
    })
    .transpose()
}

pub async fn list(db: &Db) -> Result<Vec<Pool>, sqlx::Error> {
    let rows = sqlx::query("SELECT slug, name FROM pools ORDER BY slug")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Pool {
                slug: r.try_get("slug")?,
                name: r.try_get("name")?,
            })
        })
        .collect()
}
