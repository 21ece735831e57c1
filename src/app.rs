//! Building and running the application: bind the listener, assemble the state
//! (`bootstrap`), mount the routes (`router`), serve until shutdown. Imported by `main.rs` and
//! the tests only.

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Config;
use crate::router::Front;
use crate::server::DrainSignal;
use crate::state::AppState;
use crate::store;

/// What the process brings besides the configuration: never read from a file.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// The clock every expiry reads; tests pass a manual one and move it.
    pub clock: Clock,
    /// `scangate dev`: the demo app, the WeChat simulator and the phone simulator under
    /// `/_dev/`.
    pub dev: bool,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            clock: Clock::System,
            dev: false,
        }
    }
}

/// A built application: a bound listener and the router to serve on it.
pub struct App {
    listener: TcpListener,
    /// The `metrics_listen` listener, bound at build so a taken address stops start-up.
    metrics_listener: Option<TcpListener>,
    router: Front,
    state: AppState,
    drain: DrainSignal,
}

impl App {
    /// Builds the production application on the system clock.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        Self::build_with(config, Runtime::default()).await
    }

    /// Connects storage, applies migrations, upserts the configured Mini Programs and apps,
    /// loads signing keys and binds the listener (port 0 picks a free port).
    pub async fn build_with(mut config: Config, runtime: Runtime) -> anyhow::Result<App> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let port = listener.local_addr()?.port();
        if config.public_url.port() == Some(0) {
            let _ = config.public_url.set_port(Some(port));
        }
        let simulator = runtime.dev.then(|| crate::dev::prepare(&mut config));
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics_listen {addr}"))?,
            ),
            None => None,
        };
        let (drain, draining) = crate::server::draining();
        let state = crate::bootstrap::state(config, runtime.clock, draining, runtime.dev).await?;
        let router = crate::router::front(state.clone(), simulator);
        Ok(App {
            listener,
            metrics_listener,
            router,
            state,
            drain,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tokio::spawn(housekeeping(self.state.clone()));
        tokio::spawn(follow_configuration(self.state.clone()));
        if let Some(listener) = self.metrics_listener {
            let router = crate::ops::metrics::listener_router(self.state.clone());
            let draining = self.state.draining.clone();
            tokio::spawn(async move {
                let stopped = async move { draining.started().await };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }
        let drain = self.drain;
        let shutdown = async move {
            shutdown.await;
            drain.start();
        };
        let connections = &self.state.config.connections;
        let policy = crate::server::ConnectionPolicy {
            per_address: crate::ratelimit::Occupancy::new(connections.per_address),
            proxies: self.state.config.trusted_proxies.clone(),
            body_read_timeout: std::time::Duration::from_secs(connections.body_read_timeout_secs),
        };
        crate::server::serve(self.listener, self.router, policy, shutdown).await;
        Ok(())
    }

    /// Serves until SIGTERM or ctrl-c.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// How often expired rows are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired sessions, codes and tokens now and every [`PURGE_EVERY`] until shutdown.
/// Several instances may do this at once; the deletes do not conflict.
async fn housekeeping(state: AppState) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = state.draining.started() => return,
        }
        match store::purge_expired(&state.db, state.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "purged expired rows"),
            Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
        }
    }
}

/// Whenever configuration changes on any instance (a pool, app, Mini Program or signing key
/// changed through the management API), forgets the signing keys and published documents held
/// here, so discovery, JWKS and the key that signs are read afresh at once. The apps cache
/// follows the same announcements by itself.
async fn follow_configuration(state: AppState) {
    let mut changes = state.tickets.config_changes();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                state.keys.invalidate();
            }
            _ = state.draining.started() => return,
        }
    }
}

/// Resolves on SIGTERM or ctrl-c. The SIGTERM handler is installed here, before serving, so a
/// SIGTERM that arrives right after start-up drains like any other.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down");
    }
}
