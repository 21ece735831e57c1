//! The management service layer: every operation an operator can make — pools, apps, users,
//! the audit log, API keys — with its rules, its authorisation and its audit event. No HTTP:
//! the REST API (`api::admin`) and the CLI call it; neither talks to `store` for a change.
//!
//! Every operation takes the [`Actor`] making it. A viewer reads; an admin also changes apps
//! and users; an owner also manages pools and keys. An actor limited to a pool sees nothing
//! outside it: what lies outside is `not_found`, never `forbidden`, so a scoped key learns
//! nothing of other pools. Each change writes one audit event naming the actor, the address,
//! the action, the subject and the fields changed (never a secret), and tells every instance
//! that configuration changed so their caches drop what they hold.

pub mod admins;
pub mod apps;
pub mod audit;
pub mod console;
pub mod funnel;
pub mod keys;
pub mod miniprograms;
pub mod pools;
pub mod signing;
pub mod users;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult};
use crate::funnel::Funnel;
use crate::store::{audit as events, Db};
use crate::tickets::TicketStore;
use crate::tokens::Keys;
use crate::wechat::WechatClient;

/// What an actor may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything in scope.
    Viewer,
    /// Also changes apps and users.
    Admin,
    /// Also manages pools and API keys.
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// Who is making a call: an API key (or, later, a console account).
#[derive(Clone, Debug)]
pub struct Actor {
    /// As the audit log names it: `key:{name}`.
    pub name: String,
    pub role: Role,
    /// The one pool the actor may see; every pool when `None`.
    pub pool: Option<PoolSlug>,
    pub ip: String,
}

impl Actor {
    /// The actor of the command line on the server itself: an owner of everything.
    pub fn cli() -> Actor {
        Actor {
            name: "cli".into(),
            role: Role::Owner,
            pool: None,
            ip: "local".into(),
        }
    }

    /// Whether `pool` is within the actor's scope.
    pub fn sees(&self, pool: &str) -> bool {
        self.pool.as_ref().is_none_or(|p| p.as_str() == pool)
    }

    /// Refuses an actor below `role`.
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {} role; this key is a {}",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// The management layer's dependencies.
#[derive(Clone)]
pub struct Admin {
    db: Db,
    secrets: SecretBox,
    clock: Clock,
    /// Carries the announcement that configuration changed to every instance.
    tickets: Arc<dyn TicketStore>,
    /// Checks Mini Program credentials.
    wechat: Arc<WechatClient>,
    /// Rotates signing keys.
    keys: Arc<Keys>,
    /// Reads the scan funnel.
    funnel: Arc<Funnel>,
}

/// What the management layer works with.
pub struct Services {
    pub db: Db,
    pub secrets: SecretBox,
    pub clock: Clock,
    pub tickets: Arc<dyn TicketStore>,
    pub wechat: Arc<WechatClient>,
    pub keys: Arc<Keys>,
    pub funnel: Arc<Funnel>,
}

impl Admin {
    pub fn new(s: Services) -> Self {
        Self {
            db: s.db,
            secrets: s.secrets,
            clock: s.clock,
            tickets: s.tickets,
            wechat: s.wechat,
            keys: s.keys,
            funnel: s.funnel,
        }
    }

    /// Writes the audit event of a change made by `actor`.
    async fn record(
        &self,
        actor: &Actor,
        pool: Option<&str>,
        action: &str,
        subject: &str,
        detail: Option<Value>,
    ) -> AppResult<()> {
        events::record(
            &self.db,
            events::Event {
                pool,
                actor: Some(&actor.name),
                action,
                subject: Some(subject),
                ip: Some(&actor.ip),
                detail,
            },
            self.clock.now(),
        )
        .await?;
        Ok(())
    }

    /// Tells every instance that configuration changed. The change is already stored, so a
    /// failed announcement is only logged: other instances then see it within the apps
    /// cache's lifetime.
    async fn announce(&self) {
        if let Err(e) = self.tickets.announce_config_change().await {
            tracing::warn!(error = %e, "could not announce a configuration change");
        }
    }

    /// Audits a refused call (bad key, wrong role) so that probing shows in the log.
    pub async fn record_refusal(&self, who: Option<&str>, ip: &str, why: &str) {
        let result = events::record(
            &self.db,
            events::Event {
                pool: None,
                actor: who,
                action: "admin.refused",
                subject: None,
                ip: Some(ip),
                detail: Some(serde_json::json!({ "reason": why })),
            },
            self.clock.now(),
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not audit a refused management call");
        }
    }
}

/// One page of a list and the cursor of the next, if there is more.
#[derive(Debug, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The largest page a caller may ask for, and the page it gets when it does not say.
pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;

/// A request for one page: how many, and after which cursor.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The limit to use, checked.
    fn limit(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AppError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            ))),
        }
    }

    /// The key the cursor carries: opaque to callers (base64url of the last key seen).
    fn after(&self) -> AppResult<Option<String>> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
        let key = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
        if key.is_empty() || key.len() > 512 {
            return Err(bad_cursor());
        }
        Ok(Some(key))
    }

    /// Builds the page from `limit + 1` rows fetched: the extra one only says there is more.
    fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> AppResult<Page<T>> {
        let limit = self.limit()? as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Ok(Page {
            items: rows,
            next_cursor,
        })
    }
}

/// The cursor a page ends with: the last key seen, opaque to callers.
fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

fn bad_cursor() -> AppError {
    AppError::invalid("the cursor is not one this API returned")
}

/// The version a caller's `If-Match` names, checked against the current one: `None` (no
/// `If-Match`) means "whatever is current".
pub fn expect_version(if_match: Option<i64>, current: i64) -> AppResult<i64> {
    match if_match {
        Some(v) if v != current => Err(stale()),
        _ => Ok(current),
    }
}

/// Another change came first.
pub fn stale() -> AppError {
    AppError::PreconditionFailed(
        "the object changed since it was read; read it again and reapply the change".into(),
    )
}

/// The ETag of an object at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version an `If-Match` value names; anything else matches nothing.
pub fn parse_etag(value: &str) -> Option<i64> {
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_page_carries_a_cursor_only_when_there_is_more() {
        let request = PageRequest {
            limit: Some(2),
            cursor: None,
        };
        let page = request
            .finish(vec!["a", "b", "c"], |s| s.to_string())
            .unwrap();
        assert_eq!(page.items, ["a", "b"]);
        let next = PageRequest {
            limit: Some(2),
            cursor: page.next_cursor,
        };
        assert_eq!(next.after().unwrap().as_deref(), Some("b"));
        let last = next.finish(vec!["c"], |s| s.to_string()).unwrap();
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn bad_cursors_and_limits_are_refused() {
        for cursor in ["%%%", "", "_w"] {
            let request = PageRequest {
                limit: None,
                cursor: Some(cursor.into()),
            };
            assert!(request.after().is_err(), "{cursor}");
        }
        for limit in [0, -1, MAX_LIMIT + 1] {
            let request = PageRequest {
                limit: Some(limit),
                cursor: None,
            };
            assert!(request.limit().is_err(), "{limit}");
        }
    }

    #[test]
    fn etags_round_trip() {
        assert_eq!(parse_etag(&etag(7)), Some(7));
        assert_eq!(parse_etag("W/\"7\""), Some(7));
        assert_eq!(parse_etag("*"), None);
        assert!(expect_version(Some(3), 4).is_err());
        assert_eq!(expect_version(None, 4).unwrap(), 4);
    }
}
