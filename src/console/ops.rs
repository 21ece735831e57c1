//! What the operations pages (users, audit, keys, API keys, admins, WeChat diagnostics) share:
//! the confirmation step of a destructive action and the choice of a pool.

use askama::Template;

use super::{Chrome, Signed};
use crate::store::pools::Pool;

/// A destructive action, asked first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Block,
    SignOut,
    Delete,
    RetireKey,
    RevokeApiKey,
    DisableAdmin,
    ResetAdmin,
}

impl Kind {
    /// The last path segment the action posts to.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::SignOut => "sign-out",
            Kind::Delete => "delete",
            Kind::RetireKey => "retire",
            Kind::RevokeApiKey => "revoke",
            Kind::DisableAdmin => "disable",
            Kind::ResetAdmin => "reset",
        }
    }

    /// The question, in both languages.
    fn question(self) -> (&'static str, &'static str) {
        match self {
            Kind::Block => ("封禁该用户？", "Block this user?"),
            Kind::SignOut => ("结束该用户的所有会话？", "Sign this user out everywhere?"),
            Kind::Delete => ("删除该用户？", "Delete this user?"),
            Kind::RetireKey => ("立即撤下该签名密钥？", "Withdraw this signing key now?"),
            Kind::RevokeApiKey => ("吊销该 API 密钥？", "Revoke this API key?"),
            Kind::DisableAdmin => ("停用该管理员？", "Disable this admin?"),
            Kind::ResetAdmin => ("重置该管理员的密码？", "Reset this admin's password?"),
        }
    }

    /// What happens, in both languages.
    fn consequence(self) -> (&'static str, &'static str) {
        match self {
            Kind::Block => (
                "该用户将无法登录，其所有会话、刷新令牌和授权立即结束。可随时解除封禁。",
                "They can no longer sign in; every session, refresh token and grant ends at once. You can unblock them later.",
            ),
            Kind::SignOut => (
                "该用户的所有会话和令牌立即结束，需要重新扫码登录。",
                "Every session and token ends at once; they must scan again everywhere.",
            ),
            Kind::Delete => (
                "该用户及其身份、会话和授权将被永久删除，无法恢复。再次扫码会创建新用户。",
                "The user, their identities, sessions and grants are erased for good. Scanning again creates a new user.",
            ),
            Kind::RetireKey => (
                "该密钥立即从 JWKS 中撤下，它签发的令牌将无法再验证。",
                "The key leaves the JWKS at once: tokens it signed no longer verify.",
            ),
            Kind::RevokeApiKey => (
                "使用该密钥的程序将立即无法调用管理 API。",
                "Programs using this key lose access to the management API at once.",
            ),
            Kind::DisableAdmin => (
                "该管理员将无法登录，其所有控制台会话立即结束。可随时重新启用。",
                "They can no longer sign in and their console sessions end at once. You can enable them later.",
            ),
            Kind::ResetAdmin => (
                "其当前密码立即失效，所有控制台会话结束；将生成一个新的一次性设置密码链接。",
                "Their password stops working and their console sessions end at once; a new one-time set-password link is made.",
            ),
        }
    }

    fn button(self) -> (&'static str, &'static str) {
        match self {
            Kind::Block => ("封禁", "Block"),
            Kind::SignOut => ("全部退出", "Sign out everywhere"),
            Kind::Delete => ("删除", "Delete"),
            Kind::RetireKey => ("撤下", "Withdraw"),
            Kind::RevokeApiKey => ("吊销", "Revoke"),
            Kind::DisableAdmin => ("停用", "Disable"),
            Kind::ResetAdmin => ("重置", "Reset"),
        }
    }
}

/// "Do this?" before a destructive action: a form that posts to `action`, or back to `back`.
#[derive(Template)]
#[template(path = "console/ask.html")]
pub struct ActionPage {
    pub c: Chrome,
    pub question: &'static str,
    pub consequence: &'static str,
    pub button: &'static str,
    pub action: String,
    pub back: String,
    /// What the action is done to, as the operator knows it.
    pub name: String,
}

impl ActionPage {
    pub fn new(c: Chrome, kind: Kind, action: String, back: String, name: String) -> Self {
        let pick = |(zh, en): (&'static str, &'static str)| c.lang.pick(zh, en);
        Self {
            question: pick(kind.question()),
            consequence: pick(kind.consequence()),
            button: pick(kind.button()),
            c,
            action,
            back,
            name,
        }
    }
}

/// `?done=` after a change, for the page to say it was done.
#[derive(serde::Deserialize, Default)]
pub struct Notice {
    pub done: Option<String>,
}

/// The pool a page shows: the one asked for if the admin sees it, else the admin's own pool,
/// else `default`, else the first.
pub fn pick_pool(signed: &Signed, pools: &[Pool], asked: Option<&str>) -> String {
    if let Some(asked) = asked.filter(|a| pools.iter().any(|p| p.slug == *a)) {
        return asked.to_owned();
    }
    if let Some(own) = &signed.actor().pool {
        return own.to_string();
    }
    if pools.iter().any(|p| p.slug == "default") {
        return "default".into();
    }
    pools.first().map(|p| p.slug.clone()).unwrap_or_default()
}

/// A time as the console shows it.
pub fn when(at: i64) -> String {
    crate::clock::rfc3339(at)
}

/// A time that may be absent.
pub fn when_opt(at: &Option<i64>) -> String {
    at.map(when).unwrap_or_else(|| "—".into())
}

/// The browser of a login event, as its audit detail names it (older events name none).
pub fn browser(event: &crate::store::audit::Recorded) -> String {
    event
        .detail
        .as_ref()
        .and_then(|d| d.get("user_agent"))
        .and_then(|v| v.as_str())
        .filter(|ua| !ua.is_empty())
        .map(|ua| ua.chars().take(120).collect())
        .unwrap_or_else(|| "—".into())
}
