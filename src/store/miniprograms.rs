//! Mini Programs: AppID, the sealed AppSecret, and the pool whose users they sign in.

use sqlx::Row as _;

use super::Db;

#[derive(Clone)]
pub struct MiniProgram {
    pub appid: String,
    pub pool: String,
    pub name: Option<String>,
    /// The AppSecret sealed with `secret_key`.
    pub secret_enc: String,
}

impl std::fmt::Debug for MiniProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniProgram")
            .field("appid", &self.appid)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

pub async fn upsert(db: &Db, mp: &MiniProgram, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO miniprograms (appid, pool, name, secret_enc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (appid) DO UPDATE SET pool = excluded.pool, name = excluded.name,
             secret_enc = excluded.secret_enc, updated_at = excluded.updated_at",
    )
    .bind(&mp.appid)
    .bind(&mp.pool)
    .bind(&mp.name)
    .bind(&mp.secret_enc)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, appid: &str) -> Result<Option<MiniProgram>, sqlx::Error> {
    let row =
        sqlx::query("SELECT appid, pool, name, secret_enc FROM miniprograms WHERE appid = $1")
            .bind(appid)
            .fetch_optional(&db.pool)
            .await?;
    row.map(|r| {
        Ok(MiniProgram {
            appid: r.try_get("appid")?,
            pool: r.try_get("pool")?,
            name: r.try_get("name")?,
            secret_enc: r.try_get("secret_enc")?,
        })
    })
    .transpose()
}
