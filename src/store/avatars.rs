//! Uploaded avatars, kept in the database so every instance serves them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sqlx::Row as _;

use super::Db;

pub async fn insert(
    db: &Db,
    id: &str,
    user_id: &str,
    content_type: &str,
    bytes: &[u8],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO avatars (id, user_id, content_type, data, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(user_id)
        .bind(content_type)
        .bind(STANDARD.encode(bytes))
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// (content type, bytes) of an avatar.
pub async fn get(db: &Db, id: &str) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    let row = sqlx::query("SELECT content_type, data FROM avatars WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let data: String = r.try_get("data")?;
    let bytes = STANDARD
        .decode(data)
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(Some((r.try_get("content_type")?, bytes)))
}
