//! Users: list and search, get with identities, block and unblock, sign out everywhere.
//! Blocking takes effect at once: every live session, refresh token and grant ends, and the
//! login paths refuse a blocked user (`accounts`).

use serde_json::json;

use super::{Actor, Admin, Page, PageRequest, Role};
use crate::error::{AppError, AppResult};
use crate::store::audit::{Filter, Recorded};
use crate::store::{self, grants::Grant, identities::Identity, users::User};

/// A user with the identities they sign in with, what they are signed in to, and their last
/// logins.
pub struct UserDetail {
    pub user: User,
    pub identities: Vec<Identity>,
    /// Live grants: the apps that hold their tokens.
    pub grants: Vec<Grant>,
    /// Live browser (single sign-on) and Mini Program sessions.
    pub sessions: (i64, i64),
    /// The most recent logins, newest first, from the audit log.
    pub last_logins: Vec<Recorded>,
}

impl Admin {
    /// One page of a pool's users in creation order; with `prefix`, only those whose id,
    /// nickname, phone, openid or unionid starts with it.
    pub async fn list_users(
        &self,
        actor: &Actor,
        pool: &str,
        prefix: Option<&str>,
        page: &PageRequest,
    ) -> AppResult<Page<User>> {
        self.pool(actor, pool).await?;
        let prefix = prefix.map(str::trim).filter(|p| !p.is_empty());
        if prefix.is_some_and(|p| p.chars().count() > 64) {
            return Err(AppError::invalid("q must be at most 64 characters"));
        }
        let after = page.after()?;
        let rows =
            store::users::page(&self.db, pool, prefix, after.as_deref(), page.limit()? + 1).await?;
        page.finish(rows, |u| u.id.clone())
    }

    /// A user in the actor's scope, with identities, or `not_found`.
    pub async fn user(&self, actor: &Actor, id: &str) -> AppResult<UserDetail> {
        let user = store::users::get(&self.db.pool, id)
            .await?
            .filter(|u| actor.sees(&u.pool))
            .ok_or_else(|| AppError::NotFound(format!("no user `{id}`")))?;
        let identities = store::identities::of_user(&self.db, &user.id).await?;
        let grants = store::grants::live_of_user(&self.db, &user.id).await?;
        let sessions =
            store::browser_sessions::live_counts(&self.db, &user.id, self.clock.now()).await?;
        let mut last_logins = Vec::new();
        for action in ["login.exchange", "login.oidc", "login.sso"] {
            let filter = Filter {
                actor: Some(&user.id),
                action: Some(action),
                ..Filter::default()
            };
            last_logins.extend(store::audit::page(&self.db, &filter, None, 10).await?);
        }
        last_logins.sort_by(|a, b| b.id.cmp(&a.id));
        last_logins.truncate(10);
        Ok(UserDetail {
            user,
            identities,
            grants,
            sessions,
            last_logins,
        })
    }

    /// Blocks or unblocks a user. Blocking also signs them out everywhere.
    pub async fn set_blocked(
        &self,
        actor: &Actor,
        id: &str,
        blocked: bool,
    ) -> AppResult<UserDetail> {
        actor.require(Role::Admin)?;
        let before = self.user(actor, id).await?.user;
        let now = self.clock.now();
        store::users::set_blocked(&self.db, id, blocked, now).await?;
        let revoked = if blocked {
            store::users::sign_out_everywhere(&self.db, id, now).await?
        } else {
            0
        };
        let action = if blocked {
            "admin.user.block"
        } else {
            "admin.user.unblock"
        };
        self.record(
            actor,
            Some(&before.pool),
            action,
            id,
            Some(json!({
                "changed": { "blocked": { "from": before.blocked, "to": blocked } },
                "grants_revoked": revoked,
            })),
        )
        .await?;
        self.user(actor, id).await
    }

    /// Erases a user and everything that signs them in. The audit event names only the id.
    pub async fn delete_user(&self, actor: &Actor, id: &str) -> AppResult<()> {
        actor.require(Role::Admin)?;
        let user = self.user(actor, id).await?.user;
        if !store::users::delete(&self.db, id).await? {
            return Err(AppError::NotFound(format!("no user `{id}`")));
        }
        self.record(actor, Some(&user.pool), "admin.user.delete", id, None)
            .await?;
        Ok(())
    }

    /// Merges `absorbed` into `kept` (same pool): identities move, `absorbed`'s tokens and
    /// sessions end and it is erased; `kept` keeps its own profile and takes what it lacks.
    pub async fn merge_users(
        &self,
        actor: &Actor,
        kept: &str,
        absorbed: &str,
    ) -> AppResult<UserDetail> {
        actor.require(Role::Admin)?;
        if kept == absorbed {
            return Err(AppError::invalid("a user cannot be merged into itself"));
        }
        let into = self.user(actor, kept).await?.user;
        let from = self.user(actor, absorbed).await?.user;
        if into.pool != from.pool {
            return Err(AppError::Conflict(
                "users of different pools cannot be merged".into(),
            ));
        }
        let moved = store::users::merge(&self.db, kept, absorbed, self.clock.now()).await?;
        self.record(
            actor,
            Some(&into.pool),
            "admin.user.merge",
            kept,
            Some(json!({ "absorbed": absorbed, "identities_moved": moved })),
        )
        .await?;
        self.user(actor, kept).await
    }

    /// Ends every session and token of a user; they must scan again everywhere.
    pub async fn sign_out_user(&self, actor: &Actor, id: &str) -> AppResult<u64> {
        actor.require(Role::Admin)?;
        let user = self.user(actor, id).await?.user;
        let revoked = store::users::sign_out_everywhere(&self.db, id, self.clock.now()).await?;
        self.record(
            actor,
            Some(&user.pool),
            "admin.user.sign_out",
            id,
            Some(json!({ "grants_revoked": revoked })),
        )
        .await?;
        Ok(revoked)
    }
}
