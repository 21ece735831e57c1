//! Apps: list, get, create, update, delete, rotate the client secret. Every rule `[[apps]]`
//! follows (exact URIs, TTL bounds, origin syntax) applies here with the same messages, since
//! both go through `AppConfig::check`. Apps the config file declares are read-only here.

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use super::{expect_version, stale, Actor, Admin, Page, PageRequest, Role};
use crate::config::{AppConfig, Secret};
use crate::crypto::SecretBox;
use crate::domain::{AppId, ClientId, PoolSlug};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::qr::logo::{media_path, Logo, LogoSource};
use crate::store::{self, apps::App, apps::ManagedBy, apps::PhoneAsk, apps::Signup, Db};

/// A new app as an operator describes it.
#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    pub client_id: String,
    #[serde(default = "default_pool")]
    pub pool: String,
    pub name: String,
    #[serde(default)]
    pub logo: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub miniprogram: String,
    #[serde(default = "default_ttl")]
    pub qr_ttl_secs: u64,
    #[serde(default = "default_true")]
    pub require_binding: bool,
    /// A public client (PKCE, no secret); by default an app is confidential and gets a secret.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub signup: Signup,
    /// The match step (a number on the PC, tapped on the phone); on for a new app.
    #[serde(default = "default_true")]
    pub match_number: bool,
    #[serde(default)]
    pub phone: PhoneAsk,
    /// The device authorization grant (RFC 8628); off for a new app.
    #[serde(default)]
    pub device_grant: bool,
}

fn default_pool() -> String {
    "default".into()
}
fn default_ttl() -> u64 {
    120
}
fn default_true() -> bool {
    true
}

/// A change to an app: every field given is set, the rest left as they are.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppChange {
    pub name: Option<String>,
    /// `null` removes the logo.
    #[serde(default, with = "double_option")]
    pub logo: Option<Option<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub miniprogram: Option<String>,
    pub qr_ttl_secs: Option<u64>,
    pub require_binding: Option<bool>,
    pub signup: Option<Signup>,
    pub match_number: Option<bool>,
    pub phone: Option<PhoneAsk>,
    pub device_grant: Option<bool>,
}

/// `"logo": null` (remove) apart from an absent `logo` (keep).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// An app and, when one was just made, its client secret (shown once).
pub struct WithSecret {
    pub app: App,
    pub client_secret: Option<String>,
}

impl Admin {
    /// One page of the apps in the actor's scope, by client id.
    pub async fn list_apps(&self, actor: &Actor, page: &PageRequest) -> AppResult<Page<App>> {
        let after = page.after()?;
        let rows = store::apps::page(
            &self.db,
            actor.pool.as_deref(),
            after.as_deref(),
            page.limit()? + 1,
        )
        .await?;
        page.finish(rows, |a| a.client_id.to_string())
    }

    /// An app in the actor's scope, or `not_found`.
    pub async fn app(&self, actor: &Actor, client_id: &str) -> AppResult<App> {
        store::apps::get(&self.db, client_id)
            .await?
            .filter(|a| actor.sees(&a.pool))
            .ok_or_else(|| AppError::NotFound(format!("no app `{client_id}`")))
    }

    /// Creates an app; a confidential one gets a generated client secret, returned once.
    pub async fn create_app(&self, actor: &Actor, new: NewApp) -> AppResult<WithSecret> {
        actor.require(Role::Admin)?;
        if !actor.sees(&new.pool) {
            return Err(AppError::NotFound(format!("no pool `{}`", new.pool)));
        }
        let secret = (!new.public).then(|| crate::crypto::random_token(32));
        let config = AppConfig {
            pool: new.pool,
            client_id: new.client_id,
            client_secret: secret.clone().map(Secret),
            name: new.name,
            logo: new.logo,
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            allowed_origins: new.allowed_origins,
            miniprogram: new.miniprogram,
            qr_ttl_secs: new.qr_ttl_secs,
            require_binding: new.require_binding,
            signup: new.signup,
            match_number: Some(new.match_number),
            phone: new.phone,
            device_grant: new.device_grant,
            ..AppConfig::default()
        };
        refuse_file_logo(config.logo.as_deref())?;
        check(&config)?;
        self.require_miniprogram_of(&config.miniprogram, &config.pool)
            .await?;
        if store::pools::get(&self.db, &config.pool).await?.is_none() {
            return Err(field("pool", format!("no pool `{}`", config.pool)));
        }
        let now = self.clock.now();
        let record = record(&self.db, &self.secrets, &config, ManagedBy::Api, now)
            .await
            .map_err(AppError::Internal)?;
        if !store::apps::create(&self.db, &record, now).await? {
            return Err(AppError::Conflict(format!(
                "an app with client id `{}` already exists",
                config.client_id
            )));
        }
        self.record(
            actor,
            Some(&record.pool),
            "admin.app.create",
            &record.client_id,
            Some(json!({ "fields": view_fields(&record) })),
        )
        .await?;
        self.announce().await;
        Ok(WithSecret {
            app: self.app(actor, &record.client_id).await?,
            client_secret: secret,
        })
    }

    /// Changes an app if it is still at `if_match` (when given).
    pub async fn update_app(
        &self,
        actor: &Actor,
        client_id: &str,
        change: AppChange,
        if_match: Option<i64>,
    ) -> AppResult<App> {
        actor.require(Role::Admin)?;
        let old = self.writable_app(actor, client_id).await?;
        let version = expect_version(if_match, old.version)?;
        let mut config = as_config(&old);
        if let Some(v) = change.name {
            config.name = v;
        }
        if let Some(v) = change.logo {
            config.logo = v;
        }
        if let Some(v) = change.redirect_uris {
            config.redirect_uris = v;
        }
        if let Some(v) = change.post_logout_redirect_uris {
            config.post_logout_redirect_uris = v;
        }
        if let Some(v) = change.allowed_origins {
            config.allowed_origins = v;
        }
        if let Some(v) = change.miniprogram {
            config.miniprogram = v;
        }
        if let Some(v) = change.qr_ttl_secs {
            config.qr_ttl_secs = v;
        }
        if let Some(v) = change.require_binding {
            config.require_binding = v;
        }
        if let Some(v) = change.signup {
            config.signup = v;
        }
        if let Some(v) = change.match_number {
            config.match_number = Some(v);
        }
        if let Some(v) = change.phone {
            config.phone = v;
        }
        if let Some(v) = change.device_grant {
            config.device_grant = v;
        }
        refuse_file_logo(config.logo.as_deref())?;
        check(&config)?;
        let logo = match &config.logo {
            Some(value) if Some(value) != old.logo.as_ref() => Some(
                keep_logo(&self.db, value, self.clock.now())
                    .await
                    .map_err(|e| field("logo", format!("{e:#}")))?,
            ),
            other => other.clone(),
        };
        if config.miniprogram != old.miniprogram.as_str() {
            self.require_miniprogram_of(&config.miniprogram, &config.pool)
                .await?;
        }
        let new = App {
            name: config.name.clone(),
            logo,
            redirect_uris: config.redirect_uris.clone(),
            post_logout_redirect_uris: config.post_logout_redirect_uris.clone(),
            allowed_origins: config.allowed_origins.clone(),
            miniprogram: AppId::parse(&config.miniprogram).map_err(AppError::invalid)?,
            qr_ttl_secs: config.qr_ttl_secs as i64,
            require_binding: config.require_binding,
            signup: config.signup,
            match_number: config.match_number.unwrap_or(old.match_number),
            phone: config.phone,
            device_grant: config.device_grant,
            ..old.clone()
        };
        if !store::apps::update(&self.db, &new, version, self.clock.now()).await? {
            return Err(stale());
        }
        self.record(
            actor,
            Some(&old.pool),
            "admin.app.update",
            client_id,
            Some(json!({ "changed": diff(&view_fields(&old), &view_fields(&new)) })),
        )
        .await?;
        self.announce().await;
        self.app(actor, client_id).await
    }

    /// Deletes an app with every grant, code and token issued to it.
    pub async fn delete_app(
        &self,
        actor: &Actor,
        client_id: &str,
        if_match: Option<i64>,
    ) -> AppResult<()> {
        actor.require(Role::Admin)?;
        let app = self.writable_app(actor, client_id).await?;
        let version = expect_version(if_match, app.version)?;
        if !store::apps::delete(&self.db, client_id, version).await? {
            return Err(stale());
        }
        self.record(actor, Some(&app.pool), "admin.app.delete", client_id, None)
            .await?;
        self.announce().await;
        Ok(())
    }

    /// Gives a confidential app a new client secret (returned once); the old one stops
    /// working at once. A public app becomes confidential.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        client_id: &str,
        if_match: Option<i64>,
    ) -> AppResult<WithSecret> {
        actor.require(Role::Admin)?;
        let old = self.writable_app(actor, client_id).await?;
        let version = expect_version(if_match, old.version)?;
        let secret = crate::crypto::random_token(32);
        let hashed = secret.clone();
        let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&hashed))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(AppError::Internal)?;
        let new = App {
            client_secret_hash: Some(hash),
            client_secret_fingerprint: Some(self.secrets.fingerprint(secret.as_bytes())),
            ..old.clone()
        };
        if !store::apps::update(&self.db, &new, version, self.clock.now()).await? {
            return Err(stale());
        }
        self.record(
            actor,
            Some(&old.pool),
            "admin.app.rotate_secret",
            client_id,
            None,
        )
        .await?;
        self.announce().await;
        Ok(WithSecret {
            app: self.app(actor, client_id).await?,
            client_secret: Some(secret),
        })
    }

    /// Gives an app an uploaded logo (PNG, JPEG, WebP, or SVG, which is rasterised), stored
    /// as a PNG of at most 512 px and served at its media path.
    pub async fn set_logo(
        &self,
        actor: &Actor,
        client_id: &str,
        image: Vec<u8>,
        if_match: Option<i64>,
    ) -> AppResult<App> {
        actor.require(Role::Admin)?;
        self.writable_app(actor, client_id).await?;
        let path = keep_logo_bytes(&self.db, image, self.clock.now())
            .await
            .map_err(|e| field("logo", format!("{e:#}")))?;
        let change = AppChange {
            logo: Some(Some(path)),
            ..AppChange::default()
        };
        self.update_app(actor, client_id, change, if_match).await
    }

    /// An app the actor may change: in scope and not declared by the config file.
    async fn writable_app(&self, actor: &Actor, client_id: &str) -> AppResult<App> {
        let app = self.app(actor, client_id).await?;
        if app.managed_by == ManagedBy::Config {
            return Err(AppError::Conflict(format!(
                "app `{client_id}` is declared in the config file ([[apps]]); change it there and restart"
            )));
        }
        Ok(app)
    }

    /// The Mini Program must exist and serve the app's pool.
    async fn require_miniprogram_of(&self, appid: &str, pool: &str) -> AppResult<()> {
        match store::miniprograms::get(&self.db, appid).await? {
            None => Err(field("miniprogram", format!("no Mini Program {appid}"))),
            Some(mp) if mp.pool != pool => Err(field(
                "miniprogram",
                format!(
                    "Mini Program {appid} serves pool `{}`, not `{pool}`",
                    mp.pool
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

fn field(name: &str, message: String) -> AppError {
    let mut fields = FieldErrors::new();
    fields.add(name, message);
    AppError::Fields(fields)
}

/// The API takes a logo as a URL or a `data:` URI; a path would read the server's own files.
fn refuse_file_logo(logo: Option<&str>) -> AppResult<()> {
    match logo.map(LogoSource::parse) {
        Some(Ok(LogoSource::File(_))) => Err(field(
            "logo",
            "must be an https:// URL or a data:image/…;base64, URI (or upload the image with PUT /apps/{client_id}/logo)".into(),
        )),
        _ => Ok(()),
    }
}

/// The checks of `[[apps]]`, reported against the field they concern.
fn check(config: &AppConfig) -> AppResult<()> {
    config.check().map_err(|e| field(&e.key, e.message))
}

/// An app as the config checks see it.
fn as_config(app: &App) -> AppConfig {
    AppConfig {
        pool: app.pool.to_string(),
        client_id: app.client_id.to_string(),
        client_secret: None,
        name: app.name.clone(),
        logo: app.logo.clone(),
        redirect_uris: app.redirect_uris.clone(),
        post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
        allowed_origins: app.allowed_origins.clone(),
        miniprogram: app.miniprogram.to_string(),
        qr_ttl_secs: app.qr_ttl_secs.max(0) as u64,
        require_binding: app.require_binding,
        signup: app.signup,
        match_number: Some(app.match_number),
        phone: app.phone,
        device_grant: app.device_grant,
        ..AppConfig::default()
    }
}

/// The fields an operator sets, as the audit log records them: never the secret.
fn view_fields(app: &App) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(app.name));
    m.insert("logo".into(), json!(app.logo));
    m.insert("redirect_uris".into(), json!(app.redirect_uris));
    m.insert(
        "post_logout_redirect_uris".into(),
        json!(app.post_logout_redirect_uris),
    );
    m.insert("allowed_origins".into(), json!(app.allowed_origins));
    m.insert("miniprogram".into(), json!(app.miniprogram));
    m.insert("qr_ttl_secs".into(), json!(app.qr_ttl_secs));
    m.insert("require_binding".into(), json!(app.require_binding));
    m.insert("signup".into(), json!(app.signup));
    m.insert("match_number".into(), json!(app.match_number));
    m.insert("phone".into(), json!(app.phone));
    m.insert("device_grant".into(), json!(app.device_grant));
    m.insert("public".into(), json!(app.client_secret_hash.is_none()));
    m
}

/// `{field: {"from", "to"}}` for every field that differs.
fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Value {
    let changed: Map<String, Value> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), json!({ "from": old.get(k), "to": v })))
        .collect();
    Value::Object(changed)
}

/// Where a logo value is shown from: a URL stays as it is; a file or `data:` logo is checked,
/// normalised to a PNG, stored, and from then on served by ScanGate at its media path, so
/// the hosted page, the phone and the widget can all show it.
pub async fn keep_logo(db: &Db, value: &str, now: i64) -> anyhow::Result<String> {
    let source = LogoSource::parse(value)?;
    let Some(bytes) = source.read()? else {
        return Ok(value.trim().to_owned());
    };
    keep_logo_bytes(db, bytes, now).await
}

/// Checks, normalises and stores a logo; its media path.
async fn keep_logo_bytes(db: &Db, bytes: Vec<u8>, now: i64) -> anyhow::Result<String> {
    let png = tokio::task::spawn_blocking(move || Logo::load(&bytes).map(|l| l.to_png())).await??;
    let digest = crate::crypto::sha256_hex(&png);
    store::logos::put(db, &digest, &png, now).await?;
    Ok(media_path(&digest))
}

/// The stored form of an app described as in `[[apps]]`: its Mini Program must already be
/// stored and serve the app's pool (created here if new); a client secret is hashed with
/// Argon2id, unless the stored app has this very secret already (its keyed fingerprint
/// matches), so a restart does not pay tens of milliseconds per app again. Used by start-up
/// (`ManagedBy::Config`), `scangate app create` and the API (`ManagedBy::Api`).
pub async fn record(
    db: &Db,
    secrets: &SecretBox,
    app: &AppConfig,
    managed_by: ManagedBy,
    now: i64,
) -> anyhow::Result<App> {
    let mp = store::miniprograms::get(db, &app.miniprogram)
        .await?
        .with_context(|| {
            format!(
                "app `{}`: Mini Program {} is not configured",
                app.client_id, app.miniprogram
            )
        })?;
    if mp.pool != app.pool {
        anyhow::bail!(
            "app `{}` is in pool `{}` but its Mini Program serves pool `{}`",
            app.client_id,
            app.pool,
            mp.pool
        );
    }
    store::pools::ensure(db, &app.pool, &app.pool, now).await?;
    let logo = match &app.logo {
        Some(value) => Some(keep_logo(db, value, now).await?),
        None => None,
    };
    let fingerprint = app
        .client_secret
        .as_ref()
        .map(|s| secrets.fingerprint(s.expose().as_bytes()));
    let client_secret_hash = match &app.client_secret {
        None => None,
        Some(secret) => {
            let stored = store::apps::get(db, &app.client_id)
                .await?
                .filter(|stored| stored.client_secret_fingerprint == fingerprint)
                .and_then(|stored| stored.client_secret_hash);
            match stored {
                Some(hash) => Some(hash),
                None => {
                    let secret = secret.expose().to_owned();
                    Some(
                        tokio::task::spawn_blocking(move || crate::crypto::hash_password(&secret))
                            .await??,
                    )
                }
            }
        }
    };
    Ok(App {
        client_id: ClientId::parse(&app.client_id).map_err(anyhow::Error::msg)?,
        pool: PoolSlug::parse(&app.pool).map_err(anyhow::Error::msg)?,
        name: app.name.clone(),
        logo,
        client_secret_hash,
        client_secret_fingerprint: fingerprint,
        redirect_uris: app.redirect_uris.clone(),
        post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
        allowed_origins: app.allowed_origins.clone(),
        miniprogram: AppId::parse(&app.miniprogram).map_err(anyhow::Error::msg)?,
        qr_ttl_secs: app.qr_ttl_secs as i64,
        require_binding: app.require_binding,
        signup: app.signup,
        match_number: app.match_number.unwrap_or(true),
        phone: app.phone,
        device_grant: app.device_grant,
        managed_by,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}
