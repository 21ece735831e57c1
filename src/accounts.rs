//! Users as the login paths see them: who may still sign in, and the one step that completes
//! a login once a ticket has been taken — the native exchange, the Authing-compatible
//! `userinfo` and the hosted page's continue step all end here.

use serde_json::json;

use crate::clock::Millis;
use crate::error::{AppError, AppResult};
use crate::store::{self, audit, users::User, Db};

/// A user who may still sign in and get tokens: present and not blocked.
pub fn active(user: Option<User>) -> Option<User> {
    user.filter(|u| !u.blocked)
}

/// One completed login, as the audit log records it.
pub struct Login<'a> {
    pub pool: &'a str,
    /// The app signed in to.
    pub client_id: &'a str,
    pub ip: &'a str,
    /// The browser's `User-Agent`, kept (shortened) in the audit event for the console.
    pub user_agent: &'a str,
    /// The audit action: `login.exchange`, `login.oidc`.
    pub action: &'static str,
    /// The QR code that carried the login.
    pub random: &'a str,
}

/// Completes a login of `user_id`: refuses a user who is gone (`not_found`) or blocked
/// (`forbidden`), counts the login, audits it, and returns the user as it now is.
pub async fn complete_login(
    db: &Db,
    user_id: &str,
    login: Login<'_>,
    now: Millis,
) -> AppResult<User> {
    let user = store::users::get(&db.pool, user_id)
        .await?
        .ok_or_else(|| AppError::NotFound("the user no longer exists".into()))?;
    if user.blocked {
        return Err(AppError::Forbidden("this user is blocked".into()));
    }
    store::users::record_login(db, &user.id, login.ip, now).await?;
    audit::record(
        db,
        audit::Event {
            pool: Some(login.pool),
            actor: Some(&user.id),
            action: login.action,
            subject: Some(login.client_id),
            ip: Some(login.ip),
            detail: Some(json!({
                "random": login.random,
                "user_agent": login.user_agent.chars().take(200).collect::<String>(),
            })),
        },
        now,
    )
    .await?;
    Ok(User {
        login_count: user.login_count + 1,
        last_login_at: Some(now),
        last_ip: Some(login.ip.to_owned()),
        ..user
    })
}
