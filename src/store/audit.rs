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

/// One event as the audit log shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    pub id: String,
    pub pool: Option<String>,
    pub at: i64,
    pub actor: Option<String>,
    pub action: String,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// What to list; every filter is optional.
#[derive(Clone, Debug, Default)]
pub struct Filter<'a> {
    pub pool: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// Milliseconds, inclusive.
    pub since: Option<i64>,
    /// Milliseconds, exclusive.
    pub until: Option<i64>,
}

/// One page of events, newest first (ids are time-ordered UUIDv7s), before the id `before`.
pub async fn page(
    db: &Db,
    filter: &Filter<'_>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Recorded>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, pool, at, actor, action, subject, ip, detail FROM audit_events
         WHERE ($1 IS NULL OR pool = $1) AND ($2 IS NULL OR actor = $2)
           AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR subject = $4)
           AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6)
           AND ($7 IS NULL OR id < $7)
         ORDER BY id DESC LIMIT $8",
    )
    .bind(filter.pool)
    .bind(filter.actor)
    .bind(filter.action)
    .bind(filter.subject)
    .bind(filter.since)
    .bind(filter.until)
    .bind(before)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Recorded {
                id: r.try_get("id")?,
                pool: r.try_get("pool")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                subject: r.try_get("subject")?,
                ip: r.try_get("ip")?,
                detail: r
                    .try_get::<Option<String>, _>("detail")?
                    .and_then(|d| serde_json::from_str(&d).ok()),
            })
        })
        .collect()
}
