//! The operator commands besides serving: `app create`, `app list`, `admin create` and
//! `keys rotate`. They
//! apply pending migrations, then work on the database directly; running instances see a new
//! app at once (apps are read from the database per request). Also what `migrate` and
//! `keys rotate` print, and whether logs are coloured, so that tests can hold them to it.

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::{AppConfig, Config, Secret};
use crate::store::{self, Db};

/// A new app and, for a confidential one, its client secret in clear (shown once, never stored).
pub struct CreatedApp {
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// The `app create` flag that sets a key under `[[apps]]` (`redirect_uris[1]` → `--redirect-uri`).
pub fn app_flag(key: &str) -> String {
    let base = key.split(['[', '.']).next().unwrap_or(key);
    let flag = match base {
        "redirect_uris" => "redirect-uri",
        "post_logout_redirect_uris" => "post-logout-redirect-uri",
        "allowed_origins" => "allowed-origin",
        other => return format!("--{}", other.replace('_', "-")),
    };
    format!("--{flag}")
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, 2).await?;
    db.migrate().await.context("applying database migrations")?;
    Ok(db)
}

/// Checks `app` as start-up checks `[[apps]]`, generates a client secret unless `public`, and
/// stores the app. An existing client id is refused, never overwritten.
pub async fn create_app(
    config: &Config,
    mut app: AppConfig,
    public: bool,
) -> anyhow::Result<CreatedApp> {
    if let Err(e) = app.check() {
        let value = flag_value(&app, &e.key);
        anyhow::bail!("{}{value}: {}", app_flag(&e.key), e.message);
    }
    let secret = (!public).then(|| crate::crypto::random_token(32));
    app.client_secret = secret.clone().map(Secret);
    let db = connect(config).await?;
    let now = Clock::System.now();
    if store::apps::get(&db, &app.client_id).await?.is_some() {
        anyhow::bail!(already_exists(&app.client_id));
    }
    let secrets = crate::crypto::secret_box(config)?;
    let record =
        crate::admin::apps::record(&db, &secrets, &app, store::apps::ManagedBy::Api, now).await?;
    if !store::apps::create(&db, &record, now).await? {
        anyhow::bail!(already_exists(&app.client_id));
    }
    Ok(CreatedApp {
        client_id: app.client_id,
        client_secret: secret,
    })
}

fn already_exists(client_id: &str) -> String {
    format!("an app with client id `{client_id}` already exists; choose another --client-id")
}

/// The offending value of a list flag, to show beside the flag (` \`value\``), if any.
fn flag_value(app: &AppConfig, key: &str) -> String {
    let index = key
        .split_once('[')
        .and_then(|(_, rest)| rest.trim_end_matches(']').parse::<usize>().ok());
    let list = match key.split('[').next() {
        Some("redirect_uris") => &app.redirect_uris,
        Some("post_logout_redirect_uris") => &app.post_logout_redirect_uris,
        Some("allowed_origins") => &app.allowed_origins,
        _ => return String::new(),
    };
    index
        .and_then(|i| list.get(i))
        .map(|v| format!(" `{v}`"))
        .unwrap_or_default()
}

/// Every stored app (no secrets).
pub async fn list_apps(config: &Config) -> anyhow::Result<Vec<store::apps::App>> {
    let db = connect(config).await?;
    Ok(store::apps::list(&db).await?)
}

/// Shortest accepted admin password.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Creates an admin account of `role` (`owner`, `admin` or `viewer`), limited to `pool` when
/// given; with no `password`, generates one. Returns the password when it was generated (to
/// show once).
pub async fn create_admin(
    config: &Config,
    username: &str,
    password: Option<String>,
    role: &str,
    pool: Option<&str>,
) -> anyhow::Result<Option<String>> {
    check_username(username)?;
    let role = crate::admin::Role::parse(role)
        .ok_or_else(|| anyhow::anyhow!("--role must be viewer, admin or owner"))?;
    let pool = pool
        .map(crate::domain::PoolSlug::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--pool: {e}"))?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(|| crate::crypto::random_token(18));
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password must be at least {MIN_PASSWORD_CHARS} characters long");
    }
    if chars > 1024 {
        anyhow::bail!("the password must be at most 1024 characters long");
    }
    let db = connect(config).await?;
    if store::admins::get(&db, username).await?.is_some() {
        anyhow::bail!(admin_exists(username));
    }
    if let Some(pool) = &pool {
        if store::pools::get(&db, pool).await?.is_none() {
            anyhow::bail!("--pool: no pool `{pool}`");
        }
    }
    let hashed = password.clone();
    let password_hash =
        tokio::task::spawn_blocking(move || crate::crypto::hash_password(&hashed)).await??;
    let admin = store::admins::Admin {
        username: username.to_owned(),
        password_hash,
        created_at: Clock::System.now(),
        role: role.as_str().to_owned(),
        pool: pool.map(String::from),
    };
    if !store::admins::create(&db, &admin).await? {
        anyhow::bail!(admin_exists(username));
    }
    Ok(generated.then_some(password))
}

fn admin_exists(username: &str) -> String {
    format!("an admin named `{username}` already exists")
}

/// 3–64 characters of `a-z 0-9 . _ -`.
fn check_username(username: &str) -> anyhow::Result<()> {
    let ok = (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        anyhow::bail!("--username must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

/// `scangate admin key create`: a management API key of `role` (limited to `pool`), as an
/// owner on the server itself would make it. Returns its id and, once, the key.
pub async fn create_api_key(
    config: &Config,
    name: &str,
    role: &str,
    pool: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let role = crate::admin::Role::parse(role)
        .ok_or_else(|| anyhow::anyhow!("--role must be viewer, admin or owner"))?;
    let pool = pool
        .map(crate::domain::PoolSlug::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--pool {e}"))?;
    let db = connect(config).await?;
    let secrets = crate::crypto::secret_box(config)?;
    // A key changes no cached configuration, so no other instance needs to hear of it; the
    // command's own in-process store stands in for the fleet's.
    let quiet: std::sync::Arc<dyn crate::tickets::TicketStore> =
        std::sync::Arc::new(crate::tickets::memory::MemoryStore::new(Clock::System));
    let published = std::sync::Arc::new(crate::published::Published::new(Clock::System));
    let admin = crate::admin::Admin::new(crate::admin::Services {
        keys: std::sync::Arc::new(crate::tokens::Keys::new(
            db.clone(),
            secrets.clone(),
            Clock::System,
            published,
        )),
        wechat: std::sync::Arc::new(crate::wechat::WechatClient::new(
            config.wechat.api_base.clone(),
            config.wechat_timeout(),
            std::sync::Arc::clone(&quiet),
        )),
        funnel: std::sync::Arc::new(crate::funnel::Funnel::new(
            std::sync::Arc::clone(&quiet),
            Clock::System,
            std::sync::Arc::new(crate::metrics::Metrics::new(false)),
        )),
        db,
        secrets,
        clock: Clock::System,
        tickets: quiet,
    });
    let made = admin
        .create_key(&crate::admin::Actor::cli(), name, role, pool)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    Ok((made.key.id, made.secret))
}

/// `scangate keys rotate`: connects to the configured database and rotates `pool`'s key.
/// Running instances pick the new key up within [`crate::tokens::RELOAD_AFTER`].
pub async fn rotate_keys(
    config: &Config,
    pool: &str,
    alg: crate::tokens::KeyAlg,
) -> anyhow::Result<String> {
    let secrets = crate::crypto::secret_box(config)?;
    let db = Db::connect(&config.database_url, 2).await?;
    db.migrate().await?;
    if store::pools::get(&db, pool).await?.is_none() {
        anyhow::bail!(
            "no user pool `{pool}` in this database: a pool is stored when the server first \
             starts with it configured (scangate serve, or scangate dev)"
        );
    }
    let clock = Clock::System;
    let published = std::sync::Arc::new(crate::published::Published::new(clock.clone()));
    let keys = crate::tokens::Keys::new(db, secrets, clock, published);
    keys.rotate(pool, alg).await
}

/// What `migrate` prints after applying `applied` migrations.
pub fn migrated(applied: usize) -> String {
    match applied {
        0 => "the database is up to date: no migration to apply".into(),
        1 => "applied 1 migration".into(),
        n => format!("applied {n} migrations"),
    }
}

/// What `keys rotate` prints: the new key, and when it takes effect where.
pub fn rotated(pool: &str, alg: &str, kid: &str) -> String {
    let reload = crate::tokens::RELOAD_AFTER.as_secs();
    let grace = crate::tokens::RETIRED_KEY_GRACE_SECS / 60;
    format!(
        "pool {pool}: new {alg} signing key {kid} added.\n\
         It signs at once on servers started from now on; running instances switch to it \
         within {reload} seconds. The previous key stays in the JWKS for {grace} minutes, so \
         tokens it signed keep verifying."
    )
}

/// Whether logs carry colour codes: only on a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>).
pub fn log_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colour(true, None));
        assert!(log_colour(true, Some(OsStr::new(""))));
        assert!(!log_colour(true, Some(OsStr::new("1"))));
        assert!(!log_colour(false, None));
        assert!(!log_colour(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn migrate_says_how_many_it_applied() {
        assert!(migrated(0).contains("up to date"));
        assert_eq!(migrated(1), "applied 1 migration");
        assert_eq!(migrated(12), "applied 12 migrations");
    }

    #[test]
    fn keys_map_to_their_flags() {
        assert_eq!(app_flag("redirect_uris[2]"), "--redirect-uri");
        assert_eq!(app_flag("allowed_origins[0]"), "--allowed-origin");
        assert_eq!(
            app_flag("post_logout_redirect_uris[0]"),
            "--post-logout-redirect-uri"
        );
        assert_eq!(app_flag("client_id"), "--client-id");
        assert_eq!(app_flag("qr_ttl_secs"), "--qr-ttl-secs");
    }

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("ops.admin-1").is_ok());
        for bad in ["ab", "Admin", "a b", "x".repeat(65).as_str(), "名字名"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
