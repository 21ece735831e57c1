//! Start-up: the key that seals secrets, storage connections and migrations, the state every
//! request shares, and the configured pools, Mini Programs and apps written to the database.
//!
//! Configured apps and Mini Programs are upserted at every start: the file is the truth for
//! what it names, and everything else in the database is left alone.

use std::sync::Arc;

use anyhow::Context as _;

use crate::admin::{Admin, Services};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::secret_box;
use crate::published::Published;
use crate::ratelimit::RateLimiter;
use crate::server::Draining;
use crate::state::AppState;
use crate::store::{self, Db};
use crate::tickets::memory::MemoryStore;
use crate::tickets::TicketStore;
use crate::tokens::Keys;
use crate::wechat::{Diagnostics, MiniPrograms, OpenLinks, WechatClient};

/// The ticket store the configuration names: Redis, or the in-process store.
pub async fn connect_tickets(
    config: &Config,
    clock: &Clock,
) -> anyhow::Result<Arc<dyn TicketStore>> {
    Ok(if config.uses_redis() {
        Arc::new(
            crate::tickets::redis::RedisStore::connect(
                &config.redis_url,
                &config.redis_prefix,
                clock.clone(),
            )
            .await?,
        )
    } else {
        Arc::new(MemoryStore::new(clock.clone()))
    })
}

/// Connects storage, applies migrations, assembles the state and stores the configured pools,
/// Mini Programs and apps. `dev`: `scangate dev`, whose ticket store also notes the latest
/// demo code for the phone simulator.
pub async fn state(
    config: Config,
    clock: Clock,
    draining: Draining,
    dev: bool,
) -> anyhow::Result<AppState> {
    // Logos are read and checked before anything else starts.
    let qr = Arc::new(crate::qr::QrImages::from_config(&config)?);
    let secrets = secret_box(&config)?;
    let db = Db::connect(&config.database_url, config.database_max_connections).await?;
    db.migrate().await.context("applying database migrations")?;
    let mut tickets = connect_tickets(&config, &clock).await?;
    if dev {
        tickets = crate::dev::latest::noting(tickets);
    }
    let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics));
    let wechat = Arc::new(
        WechatClient::new(
            config.wechat.api_base.clone(),
            config.wechat_timeout(),
            Arc::clone(&tickets),
        )
        .with_metrics(Arc::clone(&metrics))
        .with_diagnostics(Diagnostics::new(db.clone(), clock.clone())),
    );
    let published = Arc::new(Published::new(clock.clone()));
    let keys = Arc::new(Keys::new(
        db.clone(),
        secrets.clone(),
        clock.clone(),
        Arc::clone(&published),
    ));
    let apps = Arc::new(store::apps::Cache::new(
        db.clone(),
        tickets.config_changes(),
    ));
    let limiter = RateLimiter::new(
        config.rate_limits.clone(),
        Arc::clone(&tickets),
        clock.clone(),
    );
    let funnel = Arc::new(crate::funnel::Funnel::new(
        Arc::clone(&tickets),
        clock.clone(),
        Arc::clone(&metrics),
    ));
    let admin = Admin::new(Services {
        db: db.clone(),
        secrets: secrets.clone(),
        clock: clock.clone(),
        tickets: Arc::clone(&tickets),
        wechat: Arc::clone(&wechat),
        keys: Arc::clone(&keys),
        funnel: Arc::clone(&funnel),
    });
    let event_streams =
        crate::ratelimit::Occupancy::new(config.connections.event_streams_per_address);
    let requesters = Arc::new(crate::requesters::Requesters::open(
        config.geoip_database.as_deref(),
    )?);
    let miniprograms = MiniPrograms::new(db.clone(), secrets.clone());
    let links = Arc::new(
        OpenLinks::new(
            config.wechat.open_link.clone(),
            Arc::clone(&wechat),
            Arc::clone(&tickets),
            miniprograms.clone(),
            config.wechat_timeout(),
        )
        .with_metrics(Arc::clone(&metrics)),
    );
    let state = AppState {
        event_streams,
        links,
        requesters,
        admin,
        miniprograms,
        config: Arc::new(config),
        db,
        tickets,
        rendered: Arc::default(),
        wechat,
        keys,
        client_secrets: Arc::default(),
        secrets,
        clock,
        qr,
        draining,
        apps,
        published,
        limiter,
        funnel,
        metrics,
        avatar_decodes: Arc::new(tokio::sync::Semaphore::new(2)),
    };
    upsert_configured(&state).await?;
    Ok(state)
}

/// Upserts the configured pools, Mini Programs and apps, and makes sure the default pool has a
/// signing key.
async fn upsert_configured(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let db = &state.db;
    store::pools::ensure(db, "default", "Default", now).await?;
    for mp in &state.config.miniprograms {
        store::pools::ensure(db, &mp.pool, &mp.pool, now).await?;
        let record = store::miniprograms::MiniProgram {
            appid: mp.appid.clone(),
            pool: mp.pool.clone(),
            name: mp.name.clone(),
            secret_enc: state.secrets.seal(mp.secret.expose().as_bytes()),
            managed_by: store::apps::ManagedBy::Config,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        store::miniprograms::upsert(db, &record, now).await?;
    }
    for app in &state.config.apps {
        let mut record = crate::admin::apps::record(
            db,
            &state.secrets,
            app,
            store::apps::ManagedBy::Config,
            now,
        )
        .await?;
        if app.match_number.is_none() {
            // Not set in the file: a stored app keeps what it has.
            if let Some(stored) = store::apps::get(db, record.client_id.as_str()).await? {
                record.match_number = stored.match_number;
            }
        }
        store::apps::upsert(db, &record, now).await?;
    }
    // Existing keys load now, so a wrong `secret_key` stops start-up. The very first start
    // generates the key (RSA: most of a second) in the background instead, so the instance
    // answers at once; a token request meanwhile waits for that same generation.
    let has_key = store::keys::list(db, "default")
        .await?
        .iter()
        .any(|k| k.active);
    if has_key {
        state
            .keys
            .for_pool("default")
            .await
            .context("loading signing keys")?;
    } else {
        let keys = Arc::clone(&state.keys);
        tokio::spawn(async move {
            if let Err(e) = keys.for_pool("default").await {
                tracing::error!(error = %format!("{e:#}"), "generating the first signing key");
            }
        });
    }
    Ok(())
}
