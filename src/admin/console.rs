//! Console accounts signing in: password check (Argon2id), lockout, sessions kept in the
//! database so that signing out ends a session on every instance, and each account's sign-in
//! history. A signed-in account is an [`Actor`] with its role and pool scope, named
//! `admin:{username}` in the audit log.

use std::sync::OnceLock;

use super::{Actor, Admin, Role};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult};
use crate::store::admins::{self as accounts, SignIn};

/// A session ends after this long without a request.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// And this long after sign-in, however busy.
pub const ABSOLUTE_MS: i64 = 12 * 3_600_000;
/// A session's last use is written down at most this often.
const TOUCH_EVERY_MS: i64 = 10_000;
/// Failures counted for lockout are those of the last this long.
pub const LOCK_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed sign-ins of one account within the window that lock it.
pub const ACCOUNT_FAILURES: i64 = 5;
/// Failed sign-ins from one address within the window (whatever accounts they named) that
/// lock the address.
pub const ADDRESS_FAILURES: i64 = 20;

/// A live console session: who, and the token its forms must carry.
#[derive(Clone, Debug)]
pub struct ConsoleSession {
    pub actor: Actor,
    pub username: String,
    /// The CSRF token of this session.
    pub csrf: String,
    pub created_at: i64,
    id_hash: String,
}

/// A sign-in that worked: the cookie's value (shown to the browser only) and the session.
pub struct SignedIn {
    pub token: String,
    pub session: ConsoleSession,
}

impl Admin {
    /// Checks a username and password. Refused while the account or the address is locked
    /// (`rate_limited`, checked before any hashing), or when either is wrong (`unauthorized`,
    /// the same answer and about the same time whether the account exists or not). Every
    /// attempt is written down; a success is audited.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        ip: &str,
        user_agent: &str,
    ) -> AppResult<SignedIn> {
        let username: String = username.trim().chars().take(64).collect();
        let now = self.clock.now();
        let since = now - LOCK_WINDOW_MS;
        if accounts::failures_from(&self.db, ip, since).await? >= ADDRESS_FAILURES
            || accounts::failures_of_account(&self.db, &username, since).await? >= ACCOUNT_FAILURES
        {
            return Err(locked());
        }
        let account = accounts::get(&self.db, &username).await?;
        // An account waiting for its set-password link has no hash; it is checked against
        // the dummy, so that it takes as long and matches nothing.
        let hash = account
            .as_ref()
            .map(|a| a.password_hash.clone())
            .filter(|h| h.starts_with('$'));
        let disabled = crate::store::admin_accounts::is_disabled(&self.db, &username).await?;
        let typed = password.chars().take(1024).collect::<String>();
        let matches = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
            crate::crypto::verify_password(&typed, &hash)
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
        let actor = account
            .filter(|_| matches && !disabled)
            .and_then(|a| actor_of(&a, ip).ok());
        accounts::record_sign_in(
            &self.db,
            &SignIn {
                username: username.clone(),
                at: now,
                ip: ip.to_owned(),
                user_agent: user_agent.chars().take(256).collect(),
                ok: actor.is_some(),
            },
        )
        .await?;
        let Some(actor) = actor else {
            self.record_refusal(
                Some(&format!("admin:{username}")),
                ip,
                "wrong username or password",
            )
            .await;
            return Err(AppError::Unauthorized("wrong username or password".into()));
        };
        accounts::purge_sessions(&self.db, now - ABSOLUTE_MS, now - IDLE_MS).await?;
        let token = random_token(32);
        let session = accounts::Session {
            id_hash: sha256_hex(token.as_bytes()),
            username: username.clone(),
            csrf: random_token(24),
            ip: ip.to_owned(),
            user_agent: user_agent.chars().take(256).collect(),
            created_at: now,
            last_seen_at: now,
        };
        accounts::insert_session(&self.db, &session).await?;
        self.record(&actor, None, "admin.sign_in", &username, None)
            .await?;
        Ok(SignedIn {
            token,
            session: ConsoleSession {
                actor,
                username,
                csrf: session.csrf,
                created_at: now,
                id_hash: session.id_hash,
            },
        })
    }

    /// The live session a cookie names, its idle timer restarted; `None` when it ended
    /// (signed out, idle, too old, or the account is gone).
    pub async fn console_session(
        &self,
        token: &str,
        ip: &str,
    ) -> AppResult<Option<ConsoleSession>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let now = self.clock.now();
        let id_hash = sha256_hex(token.as_bytes());
        let Some(stored) =
            accounts::live_session(&self.db, &id_hash, now - ABSOLUTE_MS, now - IDLE_MS).await?
        else {
            return Ok(None);
        };
        let Some(account) = accounts::get(&self.db, &stored.username).await? else {
            return Ok(None);
        };
        if crate::store::admin_accounts::is_disabled(&self.db, &stored.username).await? {
            return Ok(None);
        }
        let Ok(actor) = actor_of(&account, ip) else {
            return Ok(None);
        };
        if now - stored.last_seen_at >= TOUCH_EVERY_MS {
            accounts::touch_session(&self.db, &id_hash, now).await?;
        }
        Ok(Some(ConsoleSession {
            actor,
            username: stored.username,
            csrf: stored.csrf,
            created_at: stored.created_at,
            id_hash,
        }))
    }

    /// Ends this session, on every instance.
    pub async fn sign_out(&self, session: &ConsoleSession) -> AppResult<()> {
        accounts::delete_session(&self.db, &session.id_hash).await?;
        self.record(
            &session.actor,
            None,
            "admin.sign_out",
            &session.username,
            None,
        )
        .await
    }

    /// Ends every session of the account, wherever it was started; how many.
    pub async fn sign_out_everywhere(&self, session: &ConsoleSession) -> AppResult<u64> {
        let ended = accounts::delete_sessions_of(&self.db, &session.username).await?;
        self.record(
            &session.actor,
            None,
            "admin.sign_out_everywhere",
            &session.username,
            Some(serde_json::json!({ "sessions": ended })),
        )
        .await?;
        Ok(ended)
    }

    /// The latest sign-in attempts naming `username`: an owner of every pool sees anyone's,
    /// everyone else only their own.
    pub async fn sign_in_history(
        &self,
        actor: &Actor,
        username: &str,
        limit: i64,
    ) -> AppResult<Vec<SignIn>> {
        let own = actor.name == format!("admin:{username}");
        if !own && (actor.require(Role::Owner).is_err() || actor.pool.is_some()) {
            return Err(AppError::NotFound(format!("no admin `{username}`")));
        }
        Ok(accounts::sign_ins_of(&self.db, username, limit.clamp(1, 200)).await?)
    }
}

fn locked() -> AppError {
    AppError::RateLimited("too many failed sign-ins; wait 15 minutes and try again".into())
}

/// The actor a console account stands for, from `ip`.
fn actor_of(account: &accounts::Admin, ip: &str) -> AppResult<Actor> {
    let bad = || {
        AppError::Internal(anyhow::anyhow!(
            "admin `{}` has an unreadable role or pool",
            account.username
        ))
    };
    let role = Role::parse(&account.role).ok_or_else(bad)?;
    let pool = account
        .pool
        .as_deref()
        .map(PoolSlug::parse)
        .transpose()
        .map_err(|_| bad())?;
    Ok(Actor {
        name: format!("admin:{}", account.username),
        role,
        pool,
        ip: ip.to_owned(),
    })
}

/// A hash checked when the account does not exist, so that the answer takes as long.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crate::crypto::hash_password(&random_token(16)).unwrap_or_default())
}
