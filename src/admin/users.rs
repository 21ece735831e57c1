//! Users: list and search, get with identities, block and unblock, sign out everywhere.
//! Blocking takes effect at once: every live session, refresh token and grant ends, and the
//! login paths refuse a blocked user (`accounts`).

use serde_json::json;

use super::{bad_cursor, Actor, Admin, Page, PageRequest, Role};
use crate::error::{AppError, AppResult, FieldErrors};
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

/// A person an operator provisions before their first scan: known by phone number and/or
/// unionid, with the id the site knows them by.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The national number, digits only (`13800000000`).
    pub phone: Option<String>,
    /// The country calling code, digits only; `86` when absent.
    pub phone_country: Option<String>,
    pub unionid: Option<String>,
    pub external_id: Option<String>,
    pub nickname: Option<String>,
}

/// What an import did: how many users it created, and each line it refused and why.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub created: u64,
    pub failed: Vec<ImportFailure>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImportFailure {
    /// 1-based.
    pub line: usize,
    pub error: String,
}

/// The most lines one import takes.
pub const MAX_IMPORT_LINES: usize = 10_000;

fn check_new_user(u: &NewUser) -> AppResult<()> {
    let mut fields = FieldErrors::new();
    let digits = |s: &str, lo: usize, hi: usize| {
        (lo..=hi).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if u.phone.is_none() && u.unionid.is_none() {
        fields.add(
            "phone",
            "give a phone number or a unionid (or both) to link the person by",
        );
    }
    if u.phone.as_deref().is_some_and(|p| !digits(p, 5, 20)) {
        fields.add("phone", "must be the national number, 5 to 20 digits");
    }
    if u.phone_country.as_deref().is_some_and(|c| !digits(c, 1, 4)) {
        fields.add(
            "phone_country",
            "must be the country calling code, 1 to 4 digits",
        );
    }
    let token = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if u.unionid.as_deref().is_some_and(|v| !token(v)) {
        fields.add("unionid", "must be 1 to 64 of A-Z a-z 0-9 - _");
    }
    if u.external_id
        .as_deref()
        .is_some_and(|v| v.is_empty() || v.chars().count() > 128 || v.chars().any(char::is_control))
    {
        fields.add(
            "external_id",
            "must be 1 to 128 characters, none of them control characters",
        );
    }
    if u.nickname
        .as_deref()
        .is_some_and(|v| v.trim().is_empty() || v.chars().count() > 64)
    {
        fields.add("nickname", "must be 1 to 64 characters");
    }
    fields.into_result()
}

impl Admin {
    /// Provisions a user in `pool`: linked to the person at their first login when the
    /// unionid matches, or when the phone number they share does.
    pub async fn provision_user(
        &self,
        actor: &Actor,
        pool: &str,
        new: &NewUser,
    ) -> AppResult<UserDetail> {
        actor.require(Role::Admin)?;
        self.pool(actor, pool).await?;
        check_new_user(new)?;
        let id = store::new_id();
        let record = store::users::Provisioned {
            phone: new.phone.as_deref(),
            phone_country: new
                .phone
                .as_ref()
                .map(|_| new.phone_country.as_deref().unwrap_or("86")),
            unionid: new.unionid.as_deref(),
            external_id: new.external_id.as_deref(),
            nickname: new.nickname.as_deref(),
        };
        if !store::users::provision(&self.db, &id, pool, &record, self.clock.now()).await? {
            return Err(AppError::Conflict(format!(
                "pool `{pool}` already has a user with this external_id"
            )));
        }
        self.record(
            actor,
            Some(pool),
            "admin.user.provision",
            &id,
            Some(json!({ "external_id": new.external_id })),
        )
        .await?;
        self.user(actor, &id).await
    }

    /// Provisions one user per JSON line of `body` (each as [`NewUser`]); a bad line is
    /// reported and the others go ahead.
    pub async fn import_users(&self, actor: &Actor, pool: &str, body: &str) -> AppResult<Imported> {
        actor.require(Role::Admin)?;
        self.pool(actor, pool).await?;
        let lines: Vec<(usize, &str)> = body
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        if lines.len() > MAX_IMPORT_LINES {
            return Err(AppError::PayloadTooLarge(format!(
                "an import takes at most {MAX_IMPORT_LINES} lines; split it"
            )));
        }
        let mut imported = Imported {
            created: 0,
            failed: Vec::new(),
        };
        for (i, line) in lines {
            let outcome = match serde_json::from_str::<NewUser>(line) {
                Ok(new) => self.provision_user(actor, pool, &new).await.map(|_| ()),
                Err(e) => Err(AppError::invalid(format!("not a user: {e}"))),
            };
            match outcome {
                Ok(()) => imported.created += 1,
                Err(e @ (AppError::Unavailable(_) | AppError::Internal(_))) => return Err(e),
                Err(e) => imported.failed.push(ImportFailure {
                    line: i + 1,
                    error: e.message(),
                }),
            }
        }
        Ok(imported)
    }

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
        let limit = page.limit()?;
        let Some(prefix) = prefix else {
            let rows = store::users::page(&self.db, pool, after.as_deref(), limit + 1).await?;
            return page.finish(rows, |u| u.id.clone());
        };
        // A search's cursor is the matched value and the id, NUL between (neither holds one).
        let after = match after {
            None => None,
            Some(key) => {
                let (value, id) = key.rsplit_once('\0').ok_or_else(bad_cursor)?;
                Some(store::users::SearchKey {
                    value: value.to_owned(),
                    id: id.to_owned(),
                })
            }
        };
        if after.as_ref().is_some_and(|a| !a.value.starts_with(prefix)) {
            return Err(bad_cursor());
        }
        let found = store::users::search(&self.db, pool, prefix, after.as_ref(), limit + 1).await?;
        let cursor = |k: &store::users::SearchKey| format!("{}\0{}", k.value, k.id);
        let mut rows = found.users;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|(k, _)| cursor(k))
        } else {
            found.resume.as_ref().map(cursor)
        };
        Ok(Page {
            items: rows.into_iter().map(|(_, u)| u).collect(),
            next_cursor: next.map(|k| super::encode_cursor(&k)),
        })
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
        let moved = store::users::absorb(
            &self.db,
            kept,
            absorbed,
            store::users::Sessions::End,
            self.clock.now(),
        )
        .await?;
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
