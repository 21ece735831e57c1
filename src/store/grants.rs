//! OAuth grants and the tokens issued under them.
//!
//! A grant is one authorization of an app by a user (one login through the hosted page or a
//! session). Its authorization code, access tokens and refresh tokens form a family:
//! revoking the grant invalidates all of them in one write, which is what code replay and
//! refresh-token reuse call for. Refresh tokens are stored by hash, never in the clear. Access
//! tokens are JWTs that name their grant and are not stored at all; only a revoked one is
//! written down, by `jti`, until it expires.

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

fn token_from_row(r: &Row) -> Result<Token, sqlx::Error> {
    Ok(Token {
        grant: grant_from_row(r)?,
        scope: r.try_get("scope")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// What a valid, unexpired access token's use depends on: whether it was revoked itself and,
/// if issued under a grant, that grant. `None` when the named grant does not exist.
pub async fn access_state(
    db: &Db,
    jti: &str,
    grant_id: Option<&str>,
) -> Result<Option<(bool, Option<Grant>)>, sqlx::Error> {
    const REVOKED: &str =
        "(SELECT COUNT(*) FROM oidc_revoked_access_tokens WHERE jti = $1) AS revoked";
    let row = match grant_id {
        Some(id) => {
            sqlx::query(&format!(
                "SELECT {REVOKED}, {GRANT_COLUMNS} FROM oidc_grants g WHERE g.id = $2"
            ))
            .bind(jti)
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
        }
        None => Some(
            sqlx::query(&format!("SELECT {REVOKED}"))
                .bind(jti)
                .fetch_one(&db.pool)
                .await?,
        ),
    };
    let Some(row) = row else { return Ok(None) };
    let revoked = row.try_get::<i64, _>("revoked")? > 0;
    let grant = grant_id.map(|_| grant_from_row(&row)).transpose()?;
    Ok(Some((revoked, grant)))
}

/// Revokes one access token until it expires (`expires_at`, when the row may go).
pub async fn revoke_access(
    db: &Db,
    jti: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oidc_revoked_access_tokens (jti, revoked_at, expires_at) \
         VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(now)
    .bind(expires_at)
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
         (SELECT MIN(s.created_at) FROM oidc_refresh_tokens s WHERE s.parent_hash = t.token_hash) \
         AS used_at, t.revoked_at AS revoked_at, {GRANT_COLUMNS} \
         FROM oidc_refresh_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
         WHERE t.token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// Rotates a live refresh token of `client_id` under a live grant: stores its successor
/// (`new_hash`, same grant and scope, living until `expires_at`), which marks it used, and
/// returns its grant id and scope. One statement: of any number of concurrent callers exactly
/// one gets it; the others, and every later caller, get `None` and may read [`get_refresh`] to
/// learn why.
pub async fn rotate_refresh(
    db: &Db,
    token_hash: &str,
    new_hash: &str,
    client_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO oidc_refresh_tokens \
         (token_hash, parent_hash, grant_id, scope, created_at, expires_at) \
         SELECT $2, t.token_hash, t.grant_id, t.scope, $3, $4 \
         FROM oidc_refresh_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $3 \
         AND g.client_id = $5 AND g.revoked_at IS NULL \
         RETURNING grant_id, scope",
    )
    .bind(token_hash)
    .bind(new_hash)
    .bind(now)
    .bind(expires_at)
    .bind(client_id)
    .fetch_optional(&db.pool)
    .await;
    match inserted {
        Ok(row) => row
            .map(|r| Ok((r.try_get("grant_id")?, r.try_get("scope")?)))
            .transpose(),
        // It already has a successor.
        Err(e) if super::is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A grant with its user, in one read.
pub async fn get_with_user<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    id: &str,
) -> Result<Option<(Grant, super::users::User)>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {GRANT_COLUMNS}, u.* FROM oidc_grants g JOIN users u ON u.id = g.user_id \
         WHERE g.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.as_ref()
        .map(|r| Ok((grant_from_row(r)?, super::users::from_row(r)?)))
        .transpose()
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

/// A user's live grants (not revoked), newest first.
pub async fn live_of_user(db: &Db, user_id: &str) -> Result<Vec<Grant>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {GRANT_COLUMNS} FROM oidc_grants g WHERE g.user_id = $1 AND g.revoked_at IS NULL
         ORDER BY g.created_at DESC"
    ))
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(grant_from_row).collect()
}
