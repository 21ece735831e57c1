//! `scangate backup --to FILE`: a consistent copy of the embedded SQLite database, taken while
//! ScanGate serves.
//!
//! `VACUUM INTO` writes the database as one read transaction sees it, so the copy is a single
//! moment even while logins go on; writers are not blocked (WAL). The copy is a compact,
//! ordinary SQLite file: to restore, point `database_url` at it. PostgreSQL has its own tool
//! for this, `pg_dump` (README, "Upgrading, rotating keys, backing up"), and is refused here.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::Config;
use crate::store::{Db, DbKind};

/// What was written, and what else the operator must keep.
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    /// The generated key file beside the database, when `secret_key` is not configured: the
    /// copy is of no use without it.
    pub key_file: Option<PathBuf>,
}

pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<Backup> {
    let db = Db::connect(&config.database_url, 1).await?;
    if db.kind != DbKind::Sqlite {
        anyhow::bail!(
            "backup copies a SQLite database; for PostgreSQL use pg_dump (see the README)"
        );
    }
    if to.exists() {
        anyhow::bail!("{} exists already; name a new file", to.display());
    }
    let target = to
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", to.display()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&db.pool)
        .await
        .with_context(|| format!("writing {}", to.display()))?;
    db.pool.close().await;
    let bytes = std::fs::metadata(to)?.len();
    let key_file = config
        .secret_key
        .is_none()
        .then(|| config.data_dir().map(|d| d.join("secret.key")))
        .flatten()
        .filter(|p| p.exists());
    Ok(Backup {
        path: to.to_path_buf(),
        bytes,
        key_file,
    })
}
