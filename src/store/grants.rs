//! OAuth grants and the tokens issued under them.
//!
//! A grant is one authorization of an app by a user (one login through the hosted page or a
//! session). Its authorization code, access tokens and refresh tokens form a family:
//! revoking the grant invalidates all of them in one write, which is what code replay and
//! refresh-token reuse call for. Tokens are stored by hash (refresh tokens) or by `jti`
//! (access tokens, which are JWTs), never in the clear.

use sqlx::Row as _;

use super::{Db, Row};

#[derive(Clone, Debug)]
pub struct Grant {
    pub id: String,
    pub pool: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The grant's columns, aliased so they can sit beside a token's in one row.
pub(crate) const GRANT_COLUMNS: &str =
    "g.id AS g_id, g.pool AS g_pool, g.client_id AS g_client_id, \
     g.user_id AS g_user_id, g.scope AS g_scope, g.auth_time AS g_auth_time, \
     g.created_at AS g_created_at, g.revoked_at AS g_revoked_at";

pub(crate) fn grant_from_row(r: &Row) -> Result<Grant, sqlx::Error> {
    Ok(Grant {
        id: r.try_get("g_id")?,
        pool: r.try_get("g_pool")?,
        client_id: r.try_get("g_client_id")?,
        user_id: r.try_get("g_user_id")?,
        scope: r.try_get("g_scope")?,
        auth_time: r.try_get("g_auth_time")?,
        created_at: r.try_get("g_created_at")?,
        revoked_at: r.try_get("g_revoked_at")?,
    })
}

pub async fn insert(db: &Db, g: &Grant) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_grants (id, pool, client_id, user_id, scope, auth_time, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&g.id)
    .bind(&g.pool)
    .bind(&g.client_id)
    .bind(&g.user_id)
    .bind(&g.scope)
    .bind(g.auth_time)
    .bind(g.created_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Revokes a grant and with it every token issued under it. Returns whether it was live.
pub async fn revoke(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE oidc_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&db.pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Records an access token's `jti` so it can be checked and revoked.
pub async fn insert_access(
    db: &Db,
    jti: &str,
    grant_id: &str,
    scope: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_access_tokens (jti, grant_id, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(jti)
    .bind(grant_id)
    .bind(scope)
    .bind(now)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A token row with its grant.
#[derive(Clone, Debug)]
pub struct Token {
    pub grant: Grant,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Token {
    /// Usable at `now`: unexpired, unused, and neither it nor its grant revoked.
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now
            && self.used_at.is_none()
            && self.revoked_at.is_none()
            && self.grant.revoked_at.is_none()
    }
}

fn token_from_row(r: &Row, has_used: bool) -> Result<Token, sqlx::Error> {
    Ok(Token {
        grant: grant_from_row(r)?,
        scope: r.try_get("scope")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: if has_used {
            r.try_get("used_at")?
        } else {
            None
        },
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// An access token by `jti`, whatever its state.
pub async fn get_access(db: &Db, jti: &str) -> Result<Option<Token>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT t.scope AS scope, t.created_at AS created_at, t.expires_at AS expires_at, \
         t.revoked_at AS revoked_at, {GRANT_COLUMNS} \
         FROM oidc_access_tokens t JOIN oidc_grants g ON g.id = t.grant_id WHERE t.jti = $1"
    ))
    .bind(jti)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(|r| token_from_row(r, false)).transpose()
}

pub async fn revoke_access(db: &Db, jti: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE oidc_access_tokens SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL",
    )
    .bind(jti)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn insert_refresh(
    db: &Db,
    token_hash: &str,
    grant_id: &str,
    scope: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_refresh_tokens (token_hash, grant_id, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(grant_id)
    .bind(scope)
    .bind(now)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A refresh token by hash, whatever its state.
pub async fn get_refresh(db: &Db, token_hash: &str) -> Result<Option<Token>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT t.scope AS scope, t.created_at AS created_at, t.expires_at AS expires_at, \
         t.used_at AS used_at, t.revoked_at AS revoked_at, {GRANT_COLUMNS} \
         FROM oidc_refresh_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
         WHERE t.token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(|r| token_from_row(r, true)).transpose()
}

/// Marks a live refresh token used. Exactly one of any number of concurrent callers gets
/// `true`; the others (and every later caller) get `false`.
pub async fn use_refresh(db: &Db, token_hash: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE oidc_refresh_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_refresh(db: &Db, token_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE oidc_refresh_tokens SET revoked_at = $2 \
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}
