//! Logos ScanGate serves itself: PNGs named by their SHA-256, so a logo is stored once however
//! many apps show it, and its URL never changes meaning.

use sqlx::Row as _;

use super::Db;

/// Stores a logo under its digest; storing the same one again changes nothing.
pub async fn put(db: &Db, digest: &str, png: &[u8], now: i64) -> Result<(), sqlx::Error> {
    use base64::Engine as _;
    sqlx::query(
        "INSERT INTO logos (digest, data, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING",
    )
    .bind(digest)
    .bind(base64::engine::general_purpose::STANDARD.encode(png))
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The PNG stored under `digest`.
pub async fn get(db: &Db, digest: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    use base64::Engine as _;
    let row = sqlx::query("SELECT data FROM logos WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let data: String = row.try_get("data")?;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map(Some)
        .map_err(|e| sqlx::Error::Decode(e.into()))
}
