//! Uploaded avatars, kept in the database so every instance serves them: one per user, the
//! one their profile points at. Uploading replaces the previous one, and the housekeeping
//! purge removes any that no profile points at any more.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sqlx::Row as _;

use super::Db;

/// Makes `id` the user's avatar: stores it, points the profile at `url`, and deletes their
/// previous ones, in one transaction. The profile is updated first: its row lock makes
/// concurrent uploads of one user take turns (on PostgreSQL; SQLite has one writer anyway), so
/// each deletes what the one before it stored and one avatar remains.
pub async fn replace(
    db: &Db,
    id: &str,
    user_id: &str,
    url: &str,
    content_type: &str,
    bytes: &[u8],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE users SET avatar_url = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(url)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM avatars WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO avatars (id, user_id, content_type, data, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(user_id)
        .bind(content_type)
        .bind(STANDARD.encode(bytes))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// How long a fresh avatar may go unreferenced: between its upload and the profile update
/// that points at it, the purge must not take it.
pub const UNREFERENCED_GRACE_MS: i64 = 10 * 60 * 1000;

/// Deletes avatars older than the grace period that their user's profile no longer points at
/// (`…/media/avatars/{id}`, whatever the public URL was); returns how many.
pub async fn purge_unreferenced(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM avatars WHERE created_at <= $1 AND NOT EXISTS (
             SELECT 1 FROM users u WHERE u.id = avatars.user_id
             AND substr(u.avatar_url, length(u.avatar_url) - length(avatars.id) - 14)
                 = '/media/avatars/' || avatars.id)",
    )
    .bind(now - UNREFERENCED_GRACE_MS)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
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
