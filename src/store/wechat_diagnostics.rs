//! What WeChat last said to each Mini Program: errors by errcode and the last access-token
//! fetch. Shared by every instance through the database; never holds a secret.

use sqlx::Row as _;

use super::Db;

/// The longest errmsg kept.
const MAX_MESSAGE: usize = 300;

/// How often and when WeChat last answered a Mini Program with one errcode.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorCount {
    pub errcode: i64,
    pub count: i64,
    pub first_at: i64,
    pub last_at: i64,
    /// The WeChat API that answered so last, e.g. `wxa/getwxacodeunlimit`.
    pub last_path: String,
    /// WeChat's errmsg, scrubbed of secrets.
    pub last_message: String,
}

/// The last access-token fetch of a Mini Program.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenState {
    pub refreshed_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub error_at: Option<i64>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

fn clip(message: &str) -> String {
    message.chars().take(MAX_MESSAGE).collect()
}

/// Counts one more `errcode` answer for `appid`.
pub async fn record_error(
    db: &Db,
    appid: &str,
    errcode: i64,
    path: &str,
    message: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wechat_errors (appid, errcode, count, first_at, last_at, last_path, last_message)
         VALUES ($1, $2, 1, $3, $3, $4, $5)
         ON CONFLICT (appid, errcode) DO UPDATE SET count = wechat_errors.count + 1,
             last_at = excluded.last_at, last_path = excluded.last_path,
             last_message = excluded.last_message",
    )
    .bind(appid)
    .bind(errcode)
    .bind(now)
    .bind(path)
    .bind(clip(message))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The errcodes `appid` met, the most recent first.
pub async fn errors(db: &Db, appid: &str) -> Result<Vec<ErrorCount>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT errcode, count, first_at, last_at, last_path, last_message FROM wechat_errors
         WHERE appid = $1 ORDER BY last_at DESC, errcode",
    )
    .bind(appid)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ErrorCount {
                errcode: r.try_get("errcode")?,
                count: r.try_get("count")?,
                first_at: r.try_get("first_at")?,
                last_at: r.try_get("last_at")?,
                last_path: r.try_get("last_path")?,
                last_message: r.try_get("last_message")?,
            })
        })
        .collect()
}

/// Notes a token fetched at `now`, valid in the cache until `expires_at`.
pub async fn record_refresh(
    db: &Db,
    appid: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wechat_token_state (appid, refreshed_at, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (appid) DO UPDATE SET refreshed_at = excluded.refreshed_at,
             expires_at = excluded.expires_at",
    )
    .bind(appid)
    .bind(now)
    .bind(expires_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Notes a failed token fetch; `errcode` is `None` when WeChat gave none (unreachable,
/// unexpected reply).
pub async fn record_refresh_error(
    db: &Db,
    appid: &str,
    errcode: Option<i64>,
    message: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wechat_token_state (appid, error_at, error_code, error_message) VALUES ($1, $2, $3, $4)
         ON CONFLICT (appid) DO UPDATE SET error_at = excluded.error_at,
             error_code = excluded.error_code, error_message = excluded.error_message",
    )
    .bind(appid)
    .bind(now)
    .bind(errcode)
    .bind(clip(message))
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn token_state(db: &Db, appid: &str) -> Result<TokenState, sqlx::Error> {
    let row = sqlx::query(
        "SELECT refreshed_at, expires_at, error_at, error_code, error_message
         FROM wechat_token_state WHERE appid = $1",
    )
    .bind(appid)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else {
        return Ok(TokenState::default());
    };
    Ok(TokenState {
        refreshed_at: r.try_get("refreshed_at")?,
        expires_at: r.try_get("expires_at")?,
        error_at: r.try_get("error_at")?,
        error_code: r.try_get("error_code")?,
        error_message: r.try_get("error_message")?,
    })
}

/// Forgets what was recorded for `appid` (when the Mini Program is deleted).
pub async fn forget(db: &Db, appid: &str) -> Result<(), sqlx::Error> {
    for table in ["wechat_errors", "wechat_token_state"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE appid = $1"))
            .bind(appid)
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}
