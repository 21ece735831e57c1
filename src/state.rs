//! The application state: every service a handler may reach, assembled once at start-up
//! (`bootstrap`) and cloned cheaply into each request. Features import this file, never the
//! `app` that builds it; services and the base take only the one part they need.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::admin::Admin;
use crate::clock::Clock;
use crate::config::Config;
use crate::cors::Cors;
use crate::crypto::SecretBox;
use crate::oauth::clients::VerifiedSecrets;
use crate::published::Published;
use crate::qr::QrImages;
use crate::ratelimit::RateLimiter;
use crate::server::Draining;
use crate::store::{apps, Db};
use crate::tickets::{Rendered, TicketStore};
use crate::tokens::Keys;
use crate::wechat::{MiniPrograms, OpenLinks, WechatClient};

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration; apps and Mini Programs in it were stored at start.
    pub config: Arc<Config>,
    /// SQLite or PostgreSQL: users, apps, grants, keys, the audit log.
    pub db: Db,
    /// QR codes, exchange tickets, their change notifications, and small shared counters and
    /// caches (rate limits, the WeChat access token): in-process or Redis.
    pub tickets: Arc<dyn TicketStore>,
    /// Status answers already serialised, kept while their code is unchanged.
    pub rendered: Arc<Rendered>,
    /// WeChat's server API.
    pub wechat: Arc<WechatClient>,
    /// The Mini Programs served and their credentials.
    pub miniprograms: MiniPrograms,
    /// "Open in WeChat" links of codes, made once per code for every instance.
    pub links: Arc<OpenLinks>,
    /// Signing keys per pool: signs and verifies ID and access tokens.
    pub keys: Arc<Keys>,
    /// Client secrets already checked against their Argon2 hash.
    pub client_secrets: Arc<VerifiedSecrets>,
    /// Seals secrets at rest and the hosted page's request.
    pub secrets: SecretBox,
    /// The only source of time; a manual clock in tests.
    pub clock: Clock,
    /// Apps' QR branding and the rendered-image cache.
    pub qr: Arc<QrImages>,
    /// Set once shutdown begins: long polls and event streams end.
    pub draining: Draining,
    /// Apps, read through a short-lived copy in memory.
    pub apps: Arc<apps::Cache>,
    /// Responses kept whole and answered before routing.
    pub published: Arc<Published>,
    /// Per-address limits on what costs us something.
    pub limiter: RateLimiter,
    /// Event streams open per client address on this instance.
    pub event_streams: Arc<crate::ratelimit::Occupancy>,
    /// Avatar decodes that may run at once: each may hold up to 64 MiB of pixels.
    pub avatar_decodes: Arc<tokio::sync::Semaphore>,
    /// The management layer: every operator change, authorised and audited.
    pub admin: Admin,
    /// Prometheus metrics of this process.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Counts each step of a QR login, per app and hour, for the scan funnel (and the metrics).
    pub funnel: Arc<crate::funnel::Funnel>,
    /// Reads who is asking for a login: the browser in words, the place from `geoip_database`.
    pub requesters: Arc<crate::requesters::Requesters>,
}

impl AppState {
    /// Whether browsers reach us over https (cookies are then `Secure`).
    pub fn secure(&self) -> bool {
        self.config.public_url.scheme() == "https"
    }

    /// What cross-origin grants are decided from.
    pub fn cors(&self) -> Cors {
        Cors {
            tickets: Arc::clone(&self.tickets),
            apps: Arc::clone(&self.apps),
        }
    }
}

impl FromRef<AppState> for crate::proxies::TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.config.trusted_proxies.clone()
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Db {
        state.db.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Arc<Config> {
        Arc::clone(&state.config)
    }
}
