//! Relational storage: SQLite (embedded default) or PostgreSQL through one `sqlx::AnyPool`.
//!
//! SQL is grouped by aggregate, one module each; every statement is portable (`$n` placeholders
//! work on both, times are BIGINT milliseconds, booleans BIGINT 0/1). The one dialect difference
//! that matters — how a unique violation is reported — is handled by [`is_unique_violation`].
//! `migrations/` is the schema of both; `migrations/postgres/` adds what PostgreSQL alone needs
//! (indexes in the byte-order collation for prefix searches), applied in the same version order.

pub mod admin_accounts;
pub mod admin_keys;
pub mod admins;
pub mod apps;
pub mod audit;
pub mod avatars;
pub mod browser_sessions;
pub mod codes;
pub mod grants;
pub mod identities;
pub mod keys;
pub mod logins;
pub mod logos;
pub mod miniprograms;
pub mod pools;
pub mod sessions;
pub mod users;
pub mod wechat_diagnostics;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use sqlx::any::AnyRow as Row;

/// The database pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub kind: DbKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// The most connections a SQLite pool opens, whatever `database_max_connections` says.
const SQLITE_MAX_CONNECTIONS: u32 = 2;

/// The migrations both databases apply.
static SHARED: Migrator = sqlx::migrate!("./migrations");
/// What PostgreSQL applies besides: indexes SQLite has no words for (see the files).
static POSTGRES_ONLY: Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations of a database of `kind`, in version order: one migrator, so that a
/// migration applied but no longer known is still refused.
fn migrator(kind: DbKind) -> Migrator {
    let mut migrations = SHARED.migrations.to_vec();
    if kind == DbKind::Postgres {
        migrations.extend(POSTGRES_ONLY.migrations.iter().cloned());
        migrations.sort_by_key(|m| m.version);
    }
    Migrator {
        migrations: std::borrow::Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

impl Db {
    /// Connects lazily: start-up does not fail if the database is briefly away, and a pool
    /// recovers by itself when it returns.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        };
        let url = match kind {
            DbKind::Sqlite => sqlite_url(url)?,
            DbKind::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        // SQLite writes one transaction at a time whatever the pool, and each connection keeps
        // its own page cache, which a write through another connection throws away: beyond one
        // connection reading beside the writer, more connections only cost (measured: a
        // refresh-token grant takes about 15 % more CPU with 8 than with 2).
        let max_connections = match kind {
            DbKind::Sqlite => max_connections.min(SQLITE_MAX_CONNECTIONS),
            DbKind::Postgres => max_connections,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == DbKind::Sqlite {
                        // WAL lets readers run beside the writer; the busy timeout makes
                        // writers queue instead of failing under contention.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool, kind })
    }

    /// Applies pending migrations; returns how many this call applied (0: already up to date).
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        // A database never migrated has no table to count in yet. The table is not created
        // here: that happens under the migrator's lock, so simultaneous starts stay safe.
        let before = self.applied_migrations().await.unwrap_or(0);
        migrator(self.kind).run(&self.pool).await?;
        Ok(self.applied_migrations().await?.saturating_sub(before))
    }

    /// How many migrations the database records as applied.
    async fn applied_migrations(&self) -> Result<usize, sqlx::migrate::MigrateError> {
        use sqlx::migrate::Migrate as _;
        let mut conn = self.pool.acquire().await?;
        Ok(conn.list_applied_migrations().await?.len())
    }

    /// Fails when the database cannot answer.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Tables whose rows are of no use once `expires_at` has passed: a used code or a rotated
/// refresh token only matters (for replay detection) while it could still have been used.
const EXPIRING: [&str; 6] = [
    "mp_sessions",
    "oidc_codes",
    "oidc_refresh_tokens",
    "oidc_revoked_access_tokens",
    "oidc_sessions",
    "login_tokens",
];

/// Deletes every row that expired before `now`, and avatars no profile points at; returns
/// how many.
pub async fn purge_expired(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut deleted = avatars::purge_unreferenced(db, now).await?;
    deleted += logins::purge(db, now - logins::KEPT_MS).await?;
    for table in EXPIRING {
        deleted += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
            .bind(now)
            .execute(&db.pool)
            .await?
            .rows_affected();
    }
    Ok(deleted)
}

/// Adds `mode=rwc` (create if missing) and makes sure the file's folder exists.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.is_empty() && path != ":memory:" {
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Whether `e` is a unique-constraint violation, on either database.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// A new id: UUIDv7 text, sortable by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn from_json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
