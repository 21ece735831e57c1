//! The audit log: who did what, when, from where. Never holds secrets.

use sqlx::Row as _;

use super::{new_id, Db};

#[derive(Clone, Debug, Default)]
pub struct Event<'a> {
    pub pool: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

pub async fn record(db: &Db, event: Event<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_events (id, pool, at, actor, action, subject, ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(new_id())
        .bind(event.pool)
        .bind(now)
        .bind(event.actor)
        .bind(event.action)
        .bind(event.subject)
        .bind(event.ip)
        .bind(event.detail.map(|d| d.to_string()))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The most recent actions of a pool, newest first (for tests and the console).
pub async fn recent_actions(db: &Db, pool: &str, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT action FROM audit_events WHERE pool = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(pool)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| r.try_get("action")).collect()
}
