//! Mini Programs: AppID, the sealed AppSecret, and the pool whose users they sign in.

use sqlx::Row as _;

use super::apps::ManagedBy;
use super::{Db, Row};

#[derive(Clone)]
pub struct MiniProgram {
    pub appid: String,
    pub pool: String,
    pub name: Option<String>,
    /// The AppSecret sealed with `secret_key`.
    pub secret_enc: String,
    pub managed_by: ManagedBy,
    /// Moves with every change: the management API's ETag. Ignored on insert.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for MiniProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniProgram")
            .field("appid", &self.appid)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "appid, pool, name, secret_enc, managed_by, version, created_at, updated_at";

/// Inserts or replaces a Mini Program (the config bootstrap).
pub async fn upsert(db: &Db, mp: &MiniProgram, now: i64) -> Result<(), sqlx::Error> {
    insert(
        db,
        mp,
        now,
        "ON CONFLICT (appid) DO UPDATE SET pool = excluded.pool, name = excluded.name,
             secret_enc = excluded.secret_enc, managed_by = excluded.managed_by,
             version = miniprograms.version + 1, updated_at = excluded.updated_at",
    )
    .await
}

/// Inserts a new Mini Program; `false` when its AppID is taken.
pub async fn create(db: &Db, mp: &MiniProgram, now: i64) -> Result<bool, sqlx::Error> {
    match insert(db, mp, now, "").await {
        Ok(()) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn insert(db: &Db, mp: &MiniProgram, now: i64, on_conflict: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO miniprograms (appid, pool, name, secret_enc, managed_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) {on_conflict}"
    ))
    .bind(&mp.appid)
    .bind(&mp.pool)
    .bind(&mp.name)
    .bind(&mp.secret_enc)
    .bind(mp.managed_by.as_str())
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Writes the name and sealed secret if the Mini Program is still at `version`.
pub async fn update(
    db: &Db,
    mp: &MiniProgram,
    version: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE miniprograms SET name = $3, secret_enc = $4, version = version + 1, updated_at = $5
         WHERE appid = $1 AND version = $2",
    )
    .bind(&mp.appid)
    .bind(version)
    .bind(&mp.name)
    .bind(&mp.secret_enc)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many apps and identities use a Mini Program.
pub async fn dependents(db: &Db, appid: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM apps WHERE miniprogram = $1)
              + (SELECT COUNT(*) FROM identities WHERE appid = $1) AS n",
    )
    .bind(appid)
    .fetch_one(&db.pool)
    .await?;
    row.try_get("n")
}

/// Deletes an unused Mini Program still at `version`.
pub async fn delete(db: &Db, appid: &str, version: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM miniprograms WHERE appid = $1 AND version = $2")
        .bind(appid)
        .bind(version)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(db: &Db, appid: &str) -> Result<Option<MiniProgram>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM miniprograms WHERE appid = $1"
    ))
    .bind(appid)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every Mini Program of `pool` (all pools when `None`), by AppID.
pub async fn list(db: &Db, pool: Option<&str>) -> Result<Vec<MiniProgram>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM miniprograms WHERE ($1 IS NULL OR pool = $1) ORDER BY appid"
    ))
    .bind(pool)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &Row) -> Result<MiniProgram, sqlx::Error> {
    Ok(MiniProgram {
        appid: r.try_get("appid")?,
        pool: r.try_get("pool")?,
        name: r.try_get("name")?,
        secret_enc: r.try_get("secret_enc")?,
        managed_by: ManagedBy::parse(&r.try_get::<String, _>("managed_by")?),
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}
