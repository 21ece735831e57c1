//! The lifecycle of admin console accounts: listed, invited with a one-time set-password
//! token (stored as its SHA-256), disabled and enabled, reset, given another role or scope.
//! Every change that could take the last enabled owner of every pool away is refused in the same
//! transaction that would make it, so two owners demoting each other cannot both succeed.

use sqlx::Row as _;

use super::{Db, Row};

/// An account as the console lists it; never its password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    /// `viewer`, `admin` or `owner`.
    pub role: String,
    /// The one pool the account may see; every pool when `None`.
    pub pool: Option<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// When the pending set-password token expires; `None` when none is pending.
    pub setup_expires_at: Option<i64>,
    /// Who invited the account, as the audit log names them.
    pub invited_by: Option<String>,
}

/// What a password hash is set to while a set-password token is pending: no PHC string, so
/// no password matches it.
pub const NO_PASSWORD: &str = "!";

const COLUMNS: &str = "username, role, pool, created_at, disabled_at, setup_expires_at, invited_by";

fn from_row(r: &Row) -> Result<Account, sqlx::Error> {
    Ok(Account {
        username: r.try_get("username")?,
        role: r.try_get("role")?,
        pool: r.try_get("pool")?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
        setup_expires_at: r.try_get("setup_expires_at")?,
        invited_by: r.try_get("invited_by")?,
    })
}

pub async fn list(db: &Db) -> Result<Vec<Account>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM admins ORDER BY username"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(db: &Db, username: &str) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM admins WHERE username = $1"))
        .bind(username)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A new account without a password, waiting for its set-password token; `false` when the
/// username is taken.
pub async fn invite(db: &Db, account: &Account, token_hash: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO admins (username, password_hash, created_at, role, pool, setup_token_hash, setup_expires_at, invited_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&account.username)
    .bind(NO_PASSWORD)
    .bind(account.created_at)
    .bind(&account.role)
    .bind(&account.pool)
    .bind(token_hash)
    .bind(account.setup_expires_at)
    .bind(&account.invited_by)
    .execute(&db.pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a guarded change did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    NoSuchAccount,
    /// It would have left no enabled owner.
    LastOwner,
}

/// A change to one account: a new role and scope, enabled or disabled, or its password
/// replaced by a fresh set-password token.
#[derive(Debug)]
pub enum Change<'a> {
    Role {
        role: &'a str,
        pool: Option<&'a str>,
    },
    Disabled(Option<i64>),
    Reset {
        token_hash: &'a str,
        expires_at: i64,
    },
}

/// Applies `change` unless it would leave no enabled owner of every pool able to sign in.
pub async fn change(db: &Db, username: &str, change: Change<'_>) -> Result<Outcome, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    // Writing the owners' rows first takes their locks (and SQLite's write lock), so the
    // count below cannot change before this transaction ends.
    sqlx::query("UPDATE admins SET role = role WHERE role = 'owner'")
        .execute(&mut *tx)
        .await?;
    let Some(row) = sqlx::query(
        "SELECT role, pool, disabled_at, setup_token_hash FROM admins WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Outcome::NoSuchAccount);
    };
    let role: String = row.try_get("role")?;
    let scope: Option<String> = row.try_get("pool")?;
    let disabled: Option<i64> = row.try_get("disabled_at")?;
    let pending: Option<String> = row.try_get("setup_token_hash")?;
    let counts_as_owner =
        role == "owner" && scope.is_none() && disabled.is_none() && pending.is_none();
    let stays_owner = match &change {
        Change::Role { role, pool } => *role == "owner" && pool.is_none(),
        Change::Disabled(at) => at.is_none(),
        Change::Reset { .. } => false,
    };
    if counts_as_owner && !stays_owner {
        let others: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM admins WHERE role = 'owner' AND pool IS NULL
             AND disabled_at IS NULL AND setup_token_hash IS NULL AND username <> $1",
        )
        .bind(username)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if others == 0 {
            return Ok(Outcome::LastOwner);
        }
    }
    let query = match change {
        Change::Role { role, pool } => sqlx::query(
            "UPDATE admins SET role = $2, pool = $3 WHERE username = $1",
        )
        .bind(username)
        .bind(role)
        .bind(pool),
        Change::Disabled(at) => {
            sqlx::query("UPDATE admins SET disabled_at = $2 WHERE username = $1")
                .bind(username)
                .bind(at)
        }
        Change::Reset {
            token_hash,
            expires_at,
        } => sqlx::query(
            "UPDATE admins SET password_hash = $2, setup_token_hash = $3, setup_expires_at = $4 WHERE username = $1",
        )
        .bind(username)
        .bind(NO_PASSWORD)
        .bind(token_hash)
        .bind(expires_at),
    };
    query.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Outcome::Done)
}

/// The account a live set-password token belongs to.
pub async fn by_setup_token(
    db: &Db,
    token_hash: &str,
    now: i64,
) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM admins WHERE setup_token_hash = $1 AND setup_expires_at > $2"
    ))
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Sets the password of the account holding this live token and spends the token, at most
/// once: the account, or `None` when the token is unknown, spent or expired.
pub async fn set_password(
    db: &Db,
    token_hash: &str,
    password_hash: &str,
    now: i64,
) -> Result<Option<Account>, sqlx::Error> {
    let Some(account) = by_setup_token(db, token_hash, now).await? else {
        return Ok(None);
    };
    let done = sqlx::query(
        "UPDATE admins SET password_hash = $1, setup_token_hash = NULL, setup_expires_at = NULL
         WHERE username = $2 AND setup_token_hash = $3 AND setup_expires_at > $4",
    )
    .bind(password_hash)
    .bind(&account.username)
    .bind(token_hash)
    .bind(now)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok((done == 1).then_some(Account {
        setup_expires_at: None,
        ..account
    }))
}

/// Whether `username` names a disabled account (`false` for no account).
pub async fn is_disabled(db: &Db, username: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT disabled_at FROM admins WHERE username = $1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        None => false,
    })
}
