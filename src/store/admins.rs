//! Admin console accounts, their sessions and their sign-in attempts.

use sqlx::Row as _;

use super::{new_id, Db};

#[derive(Clone)]
pub struct Admin {
    pub username: String,
    /// Argon2id hash (PHC string).
    pub password_hash: String,
    pub created_at: i64,
    /// `owner`, `admin` or `viewer` (as `admin::Role` spells them).
    pub role: String,
    /// The one pool the account may see; every pool when `None`.
    pub pool: Option<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Inserts a new admin; `false` when the username is taken (nothing is changed then).
pub async fn create(db: &Db, admin: &Admin) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO admins (username, password_hash, created_at, role, pool) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&admin.username)
    .bind(&admin.password_hash)
    .bind(admin.created_at)
    .bind(&admin.role)
    .bind(&admin.pool)
    .execute(&db.pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

const COLUMNS: &str = "username, password_hash, created_at, role, pool";

fn admin_of(r: &super::Row) -> Result<Admin, sqlx::Error> {
    Ok(Admin {
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        created_at: r.try_get("created_at")?,
        role: r.try_get("role")?,
        pool: r.try_get("pool")?,
    })
}

pub async fn get(db: &Db, username: &str) -> Result<Option<Admin>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admins WHERE username = $1"))
        .bind(username)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(admin_of).transpose()
}

/// Every admin, by username.
pub async fn list(db: &Db) -> Result<Vec<Admin>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM admins ORDER BY username"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(admin_of).collect()
}

/// A console session as stored: the cookie's hash, never the cookie.
#[derive(Clone)]
pub struct Session {
    pub id_hash: String,
    pub username: String,
    pub csrf: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

pub async fn insert_session(db: &Db, s: &Session) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_sessions (id_hash, username, csrf, ip, user_agent, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&s.id_hash)
    .bind(&s.username)
    .bind(&s.csrf)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The session of a cookie hash still alive at `now`: created after `created_after` and seen
/// after `seen_after`.
pub async fn live_session(
    db: &Db,
    id_hash: &str,
    created_after: i64,
    seen_after: i64,
) -> Result<Option<Session>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id_hash, username, csrf, ip, user_agent, created_at, last_seen_at FROM admin_sessions \
         WHERE id_hash = $1 AND created_at > $2 AND last_seen_at > $3",
    )
    .bind(id_hash)
    .bind(created_after)
    .bind(seen_after)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(Session {
            id_hash: r.try_get("id_hash")?,
            username: r.try_get("username")?,
            csrf: r.try_get("csrf")?,
            ip: r.try_get("ip")?,
            user_agent: r.try_get("user_agent")?,
            created_at: r.try_get("created_at")?,
            last_seen_at: r.try_get("last_seen_at")?,
        })
    })
    .transpose()
}

pub async fn touch_session(db: &Db, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE admin_sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn delete_session(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Ends every session of `username`; how many there were.
pub async fn delete_sessions_of(db: &Db, username: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM admin_sessions WHERE username = $1")
        .bind(username)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Forgets sessions neither used since `seen_before` nor younger than `created_before`.
pub async fn purge_sessions(
    db: &Db,
    created_before: i64,
    seen_before: i64,
) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM admin_sessions WHERE created_at <= $1 OR last_seen_at <= $2")
            .bind(created_before)
            .bind(seen_before)
            .execute(&db.pool)
            .await?;
    Ok(done.rows_affected())
}

/// One sign-in attempt.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub username: String,
    pub at: i64,
    pub ip: String,
    pub user_agent: String,
    pub ok: bool,
}

pub async fn record_sign_in(db: &Db, s: &SignIn) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_sign_ins (id, username, at, ip, user_agent, ok) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(&s.username)
    .bind(s.at)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .bind(i64::from(s.ok))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Failed sign-ins of `username` since `since`, not counting those before its last success.
pub async fn failures_of_account(db: &Db, username: &str, since: i64) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM admin_sign_ins WHERE username = $1 AND ok = 0 AND at > $2 \
         AND at > COALESCE((SELECT MAX(at) FROM admin_sign_ins WHERE username = $1 AND ok = 1), 0)",
    )
    .bind(username)
    .bind(since)
    .fetch_one(&db.pool)
    .await?;
    row.try_get("n")
}

/// Failed sign-ins from `ip` since `since`, whatever account they named.
pub async fn failures_from(db: &Db, ip: &str, since: i64) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM admin_sign_ins WHERE ip = $1 AND ok = 0 AND at > $2",
    )
    .bind(ip)
    .bind(since)
    .fetch_one(&db.pool)
    .await?;
    row.try_get("n")
}

/// The latest sign-in attempts naming `username`, newest first.
pub async fn sign_ins_of(db: &Db, username: &str, limit: i64) -> Result<Vec<SignIn>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT username, at, ip, user_agent, ok FROM admin_sign_ins WHERE username = $1 \
         ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(username)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SignIn {
                username: r.try_get("username")?,
                at: r.try_get("at")?,
                ip: r.try_get("ip")?,
                user_agent: r.try_get("user_agent")?,
                ok: r.try_get::<i64, _>("ok")? != 0,
            })
        })
        .collect()
}
