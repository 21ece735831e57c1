//! The accounts of the admin console: listed, invited, disabled and enabled, reset, given
//! another role or pool scope — by owners of every pool only, each change audited, and never
//! leaving no enabled owner of every pool.
//!
//! An invitation or a reset yields a one-time set-password token, shown once (as a link) and
//! stored as its SHA-256; it expires after [`SETUP_TTL_MS`]. Until it is spent the account has
//! no password at all, and a reset also ends the account's console sessions.

use serde_json::json;

use super::{Actor, Admin, Role};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::store::{
    self,
    admin_accounts::{Account, Change, Outcome},
};

/// How long a set-password token lives: two days.
pub const SETUP_TTL_MS: i64 = 48 * 3600 * 1000;
/// Shortest and longest accepted admin password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// An account and, once, the token of its set-password link.
#[derive(Debug)]
pub struct Invitation {
    pub account: Account,
    pub token: String,
}

/// Who an invitation makes, as a form gives it.
#[derive(Clone, Debug, Default)]
pub struct NewAdmin {
    pub username: String,
    pub role: String,
    /// Empty or absent: every pool.
    pub pool: Option<String>,
}

/// Whether `username` is 3–64 characters of `a-z 0-9 . _ -` (as `scangate admin create`).
pub fn valid_username(username: &str) -> bool {
    (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Admin {
    /// Refuses anyone but an owner of every pool: admin accounts span pools.
    fn require_account_manager(actor: &Actor) -> AppResult<()> {
        actor.require(Role::Owner)?;
        if actor.pool.is_some() {
            return Err(AppError::Forbidden(
                "only an owner of every pool manages admin accounts".into(),
            ));
        }
        Ok(())
    }

    pub async fn list_admins(&self, actor: &Actor) -> AppResult<Vec<Account>> {
        Self::require_account_manager(actor)?;
        Ok(store::admin_accounts::list(&self.db).await?)
    }

    pub async fn admin_account(&self, actor: &Actor, username: &str) -> AppResult<Account> {
        Self::require_account_manager(actor)?;
        store::admin_accounts::get(&self.db, username)
            .await?
            .ok_or_else(|| no_admin(username))
    }

    /// Checks a role and a scope from a form; the scope's pool must exist.
    async fn role_and_scope(
        &self,
        fields: &mut FieldErrors,
        role: &str,
        pool: Option<&str>,
    ) -> AppResult<(Role, Option<PoolSlug>)> {
        let role = Role::parse(role).unwrap_or_else(|| {
            fields.add("role", "must be owner, admin or viewer");
            Role::Viewer
        });
        let pool = match pool.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => match PoolSlug::parse(p) {
                Ok(slug) if store::pools::get(&self.db, &slug).await?.is_some() => Some(slug),
                _ => {
                    fields.add("pool", format!("no pool `{p}`"));
                    None
                }
            },
        };
        Ok((role, pool))
    }

    /// Creates an account without a password and its one-time set-password token.
    pub async fn invite_admin(&self, actor: &Actor, new: NewAdmin) -> AppResult<Invitation> {
        Self::require_account_manager(actor)?;
        let mut fields = FieldErrors::new();
        let username = new.username.trim();
        if !valid_username(username) {
            fields.add(
                "username",
                "must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'",
            );
        }
        let (role, pool) = self
            .role_and_scope(&mut fields, &new.role, new.pool.as_deref())
            .await?;
        fields.into_result()?;
        let token = random_token(32);
        let now = self.clock.now();
        let account = Account {
            username: username.to_owned(),
            role: role.as_str().to_owned(),
            pool: pool.map(String::from),
            created_at: now,
            disabled_at: None,
            setup_expires_at: Some(now + SETUP_TTL_MS),
            invited_by: Some(actor.name.clone()),
        };
        if !store::admin_accounts::invite(&self.db, &account, &sha256_hex(token.as_bytes())).await?
        {
            let mut fields = FieldErrors::new();
            fields.add(
                "username",
                format!("an admin named `{username}` already exists"),
            );
            return Err(AppError::Fields(fields));
        }
        self.record(
            actor,
            None,
            "admin.account.invite",
            &account.username,
            Some(json!({ "role": account.role, "pool": account.pool })),
        )
        .await?;
        Ok(Invitation { account, token })
    }

    /// Disables (or enables again) an account. A disabled account cannot sign in, and its
    /// console sessions end.
    pub async fn set_admin_disabled(
        &self,
        actor: &Actor,
        username: &str,
        disabled: bool,
    ) -> AppResult<Account> {
        Self::require_account_manager(actor)?;
        let at = disabled.then(|| self.clock.now());
        self.apply(username, Change::Disabled(at)).await?;
        if disabled {
            self.end_admin_sessions(username).await?;
        }
        let action = if disabled {
            "admin.account.disable"
        } else {
            "admin.account.enable"
        };
        self.record(actor, None, action, username, None).await?;
        self.admin_account(actor, username).await
    }

    /// Replaces an account's password with a fresh one-time set-password token and ends its
    /// console sessions.
    pub async fn reset_admin(&self, actor: &Actor, username: &str) -> AppResult<Invitation> {
        Self::require_account_manager(actor)?;
        let token = random_token(32);
        let expires_at = self.clock.now() + SETUP_TTL_MS;
        let hash = sha256_hex(token.as_bytes());
        self.apply(
            username,
            Change::Reset {
                token_hash: &hash,
                expires_at,
            },
        )
        .await?;
        self.end_admin_sessions(username).await?;
        self.record(actor, None, "admin.account.reset", username, None)
            .await?;
        let account = self.admin_account(actor, username).await?;
        Ok(Invitation { account, token })
    }

    /// Gives an account another role and pool scope (`None`: every pool).
    pub async fn change_admin_role(
        &self,
        actor: &Actor,
        username: &str,
        role: &str,
        pool: Option<&str>,
    ) -> AppResult<Account> {
        Self::require_account_manager(actor)?;
        let old = self.admin_account(actor, username).await?;
        let mut fields = FieldErrors::new();
        let (role, pool) = self.role_and_scope(&mut fields, role, pool).await?;
        fields.into_result()?;
        self.apply(
            username,
            Change::Role {
                role: role.as_str(),
                pool: pool.as_ref().map(PoolSlug::as_str),
            },
        )
        .await?;
        self.record(
            actor,
            None,
            "admin.account.role",
            username,
            Some(json!({
                "role": { "from": old.role, "to": role.as_str() },
                "pool": { "from": old.pool, "to": pool.as_ref().map(PoolSlug::as_str) },
            })),
        )
        .await?;
        self.admin_account(actor, username).await
    }

    async fn apply(&self, username: &str, change: Change<'_>) -> AppResult<()> {
        match store::admin_accounts::change(&self.db, username, change).await? {
            Outcome::Done => Ok(()),
            Outcome::NoSuchAccount => Err(no_admin(username)),
            Outcome::LastOwner => Err(AppError::Conflict(
                "this would leave no enabled owner of every pool; make another owner first".into(),
            )),
        }
    }

    /// The account a live set-password token belongs to (the set-password page), or
    /// `not_found` for a token unknown, spent or expired.
    pub async fn admin_for_setup_token(&self, token: &str) -> AppResult<Account> {
        if token.is_empty() || token.len() > 128 {
            return Err(expired_link());
        }
        store::admin_accounts::by_setup_token(
            &self.db,
            &sha256_hex(token.as_bytes()),
            self.clock.now(),
        )
        .await?
        .ok_or_else(expired_link)
    }

    /// Sets the password of the account a set-password token belongs to and spends the
    /// token. Audited as the account itself, from `ip`.
    pub async fn set_admin_password(
        &self,
        token: &str,
        password: &str,
        ip: &str,
    ) -> AppResult<Account> {
        self.admin_for_setup_token(token).await?;
        let chars = password.chars().count();
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            let mut fields = FieldErrors::new();
            fields.add(
                "password",
                format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
            );
            fields.into_result()?;
        }
        let owned = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&owned))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(AppError::Internal)?;
        let account = store::admin_accounts::set_password(
            &self.db,
            &sha256_hex(token.as_bytes()),
            &hash,
            self.clock.now(),
        )
        .await?
        .ok_or_else(expired_link)?;
        let me = Actor {
            name: format!("admin:{}", account.username),
            role: Role::parse(&account.role).unwrap_or(Role::Viewer),
            pool: None,
            ip: ip.to_owned(),
        };
        self.record(&me, None, "admin.account.password", &account.username, None)
            .await?;
        Ok(account)
    }

    /// Ends every console session of `username`, on every instance.
    async fn end_admin_sessions(&self, username: &str) -> AppResult<()> {
        store::admins::delete_sessions_of(&self.db, username).await?;
        Ok(())
    }
}

fn no_admin(username: &str) -> AppError {
    AppError::NotFound(format!("no admin named `{username}`"))
}

fn expired_link() -> AppError {
    AppError::NotFound(
        "this set-password link is unknown, used or expired; ask an owner for a new one".into(),
    )
}
