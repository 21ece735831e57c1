//! Logins confirmed on the phone, and what each minted: the person's own list ("is this
//! me?") and what a report of one ends at once.

use sqlx::Row as _;

use super::{Db, Row};

/// One confirmed login.
#[derive(Clone, Debug)]
pub struct Login {
    pub id: String,
    pub pool: String,
    pub user_id: String,
    pub client_id: String,
    pub random: String,
    pub requester_ip: String,
    pub requester_user_agent: String,
    pub confirmed_at: i64,
    pub reported_at: Option<i64>,
    /// The grant the hosted login made of it (its refresh and access tokens).
    pub grant_id: Option<String>,
    /// SHA-256 of the browser session cookie it started.
    pub session_hash: Option<String>,
}

/// How long a login stays in the person's list: 90 days.
pub const KEPT_MS: i64 = 90 * 24 * 3600 * 1000;

/// Deletes the logins confirmed before `before` (and their token records); how many.
pub async fn purge(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "DELETE FROM login_tokens WHERE login_id IN \
         (SELECT id FROM logins WHERE confirmed_at < $1)",
    )
    .bind(before)
    .execute(&db.pool)
    .await?;
    let done = sqlx::query("DELETE FROM logins WHERE confirmed_at < $1")
        .bind(before)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

const COLUMNS: &str = "id, pool, user_id, client_id, random, requester_ip, requester_user_agent, \
                       confirmed_at, reported_at, grant_id, session_hash";

pub async fn insert(db: &Db, l: &Login) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO logins ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&l.id)
    .bind(&l.pool)
    .bind(&l.user_id)
    .bind(&l.client_id)
    .bind(&l.random)
    .bind(&l.requester_ip)
    .bind(&l.requester_user_agent)
    .bind(l.confirmed_at)
    .bind(l.reported_at)
    .bind(&l.grant_id)
    .bind(&l.session_hash)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records the grant and browser session the hosted login made of `id`.
pub async fn set_minted(
    db: &Db,
    id: &str,
    grant_id: &str,
    session_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE logins SET grant_id = $2, session_hash = $3 WHERE id = $1")
        .bind(id)
        .bind(grant_id)
        .bind(session_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Records an access token (by `jti`) minted from `id` without a grant (the native exchange).
pub async fn add_token(db: &Db, id: &str, jti: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_tokens (jti, login_id, expires_at) VALUES ($1, $2, $3)")
        .bind(jti)
        .bind(id)
        .bind(expires_at)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The newest `limit` logins of `user_id`, newest first.
pub async fn recent(db: &Db, user_id: &str, limit: i64) -> Result<Vec<Login>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM logins WHERE user_id = $1 \
         ORDER BY confirmed_at DESC, id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Login>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM logins WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Marks `login` reported and, in one transaction, ends everything minted from it: its grant
/// (refresh tokens, and access tokens, which name it), its browser session, and the access
/// tokens minted without a grant (written to the revocation list by `jti`). `false` when it
/// was reported already (nothing is changed then).
pub async fn report(db: &Db, login: &Login, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let done =
        sqlx::query("UPDATE logins SET reported_at = $2 WHERE id = $1 AND reported_at IS NULL")
            .bind(&login.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some(grant) = &login.grant_id {
        sqlx::query("UPDATE oidc_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(session) = &login.session_hash {
        sqlx::query(
            "UPDATE oidc_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(session)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO oidc_revoked_access_tokens (jti, revoked_at, expires_at) \
         SELECT jti, $2, expires_at FROM login_tokens WHERE login_id = $1 AND expires_at > $2 \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&login.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

fn from_row(r: &Row) -> Result<Login, sqlx::Error> {
    Ok(Login {
        id: r.try_get("id")?,
        pool: r.try_get("pool")?,
        user_id: r.try_get("user_id")?,
        client_id: r.try_get("client_id")?,
        random: r.try_get("random")?,
        requester_ip: r.try_get("requester_ip")?,
        requester_user_agent: r.try_get("requester_user_agent")?,
        confirmed_at: r.try_get("confirmed_at")?,
        reported_at: r.try_get("reported_at")?,
        grant_id: r.try_get("grant_id")?,
        session_hash: r.try_get("session_hash")?,
    })
}
