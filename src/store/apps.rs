//! Apps: the sites (OIDC clients) that show QR codes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::Row as _;
use tokio::sync::watch;

use super::{from_json_list, to_json_list, Db, Row};
use crate::domain::{AppId, ClientId, PoolSlug};

/// Who owns an app's settings: the config file (read-only through the API, so a restart never
/// undoes an operator's change) or the management API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    Config,
    Api,
}

impl ManagedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ManagedBy::Config => "config",
            ManagedBy::Api => "api",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        if s == "config" {
            ManagedBy::Config
        } else {
            ManagedBy::Api
        }
    }
}

/// Whether a first scan by a stranger creates a user.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Signup {
    /// A stranger's first scan creates a user.
    #[default]
    Open,
    /// Only users an operator provisioned (and linked by unionid or phone) may sign in.
    ExistingOnly,
}

impl Signup {
    pub fn as_str(self) -> &'static str {
        match self {
            Signup::Open => "open",
            Signup::ExistingOnly => "existing_only",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "existing_only" {
            Signup::ExistingOnly
        } else {
            Signup::Open
        }
    }
}

/// Whether the Mini Program asks for the person's phone number on confirming.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PhoneAsk {
    /// The confirm screen asks and the person cannot go on without sharing it (unless WeChat's
    /// phone quota has run out: then the login goes on without it).
    Required,
    /// The confirm screen offers it; the person may skip.
    #[default]
    Optional,
    /// Never asked: each successful getPhoneNumber costs the Mini Program's owner money.
    Off,
}

impl PhoneAsk {
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneAsk::Required => "required",
            PhoneAsk::Optional => "optional",
            PhoneAsk::Off => "off",
        }
    }

    /// The setting named `s`; anything unknown is the default, `optional`.
    pub fn parse(s: &str) -> Self {
        match s {
            "required" => PhoneAsk::Required,
            "off" => PhoneAsk::Off,
            _ => PhoneAsk::Optional,
        }
    }
}

#[derive(Clone)]
pub struct App {
    pub client_id: ClientId,
    pub pool: PoolSlug,
    pub name: String,
    pub logo: Option<String>,
    /// Argon2id hash; `None` for a public client.
    pub client_secret_hash: Option<String>,
    /// Keyed fingerprint of the secret (see `SecretBox::fingerprint`), to recognise it unchanged.
    pub client_secret_fingerprint: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub miniprogram: AppId,
    pub qr_ttl_secs: i64,
    pub require_binding: bool,
    pub signup: Signup,
    /// Whether a scanned code shows a number on the PC that the person taps on the phone.
    pub match_number: bool,
    /// Whether the Mini Program asks for a phone number.
    pub phone: PhoneAsk,
    /// Whether the app may use the device authorization grant (RFC 8628).
    pub device_grant: bool,
    pub managed_by: ManagedBy,
    /// Moves with every change: the management API's ETag. Ignored on insert (a new app is 1).
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str =
    "client_id, pool, name, logo, client_secret_hash, redirect_uris, allowed_origins, \
                       miniprogram, qr_ttl_secs, require_binding, post_logout_redirect_uris, \
                       client_secret_fingerprint, managed_by, version, created_at, updated_at, signup, \
                       match_number, phone, device_grant";

/// Inserts or, for a known client id, replaces an app (the config bootstrap).
pub async fn upsert(db: &Db, app: &App, now: i64) -> Result<(), sqlx::Error> {
    insert(
        db,
        app,
        now,
        "ON CONFLICT (client_id) DO UPDATE SET pool = excluded.pool, name = excluded.name, logo = excluded.logo,
             client_secret_hash = excluded.client_secret_hash,
             client_secret_fingerprint = excluded.client_secret_fingerprint, redirect_uris = excluded.redirect_uris,
             allowed_origins = excluded.allowed_origins, miniprogram = excluded.miniprogram,
             qr_ttl_secs = excluded.qr_ttl_secs, require_binding = excluded.require_binding,
             post_logout_redirect_uris = excluded.post_logout_redirect_uris,
             managed_by = excluded.managed_by, signup = excluded.signup,
             match_number = excluded.match_number, phone = excluded.phone,
             device_grant = excluded.device_grant, version = apps.version + 1,
             updated_at = excluded.updated_at",
    )
    .await
}

/// Inserts a new app; `false` when its client id is taken (nothing is changed then).
pub async fn create(db: &Db, app: &App, now: i64) -> Result<bool, sqlx::Error> {
    match insert(db, app, now, "").await {
        Ok(()) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn insert(db: &Db, app: &App, now: i64, on_conflict: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO apps (client_id, pool, name, logo, client_secret_hash, redirect_uris, allowed_origins,
             miniprogram, qr_ttl_secs, require_binding, post_logout_redirect_uris, client_secret_fingerprint,
             managed_by, created_at, updated_at, signup, match_number, phone, device_grant)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $14, $11, $11, $15, $16, $17, $18)
         {on_conflict}"
    ))
    .bind(app.client_id.as_str())
    .bind(app.pool.as_str())
    .bind(&app.name)
    .bind(&app.logo)
    .bind(&app.client_secret_hash)
    .bind(to_json_list(&app.redirect_uris))
    .bind(to_json_list(&app.allowed_origins))
    .bind(app.miniprogram.as_str())
    .bind(app.qr_ttl_secs)
    .bind(i64::from(app.require_binding))
    .bind(now)
    .bind(to_json_list(&app.post_logout_redirect_uris))
    .bind(&app.client_secret_fingerprint)
    .bind(app.managed_by.as_str())
    .bind(app.signup.as_str())
    .bind(i64::from(app.match_number))
    .bind(app.phone.as_str())
    .bind(i64::from(app.device_grant))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Writes an app's settings (all but its id, pool and owner) if it is still at `version`;
/// `false` when another change came first (or the app is gone).
pub async fn update(db: &Db, app: &App, version: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE apps SET name = $3, logo = $4, client_secret_hash = $5, redirect_uris = $6,
             allowed_origins = $7, miniprogram = $8, qr_ttl_secs = $9, require_binding = $10,
             post_logout_redirect_uris = $11, client_secret_fingerprint = $12,
             signup = $14, match_number = $15, phone = $16, device_grant = $17, version = version + 1, updated_at = $13
         WHERE client_id = $1 AND version = $2",
    )
    .bind(app.client_id.as_str())
    .bind(version)
    .bind(&app.name)
    .bind(&app.logo)
    .bind(&app.client_secret_hash)
    .bind(to_json_list(&app.redirect_uris))
    .bind(to_json_list(&app.allowed_origins))
    .bind(app.miniprogram.as_str())
    .bind(app.qr_ttl_secs)
    .bind(i64::from(app.require_binding))
    .bind(to_json_list(&app.post_logout_redirect_uris))
    .bind(&app.client_secret_fingerprint)
    .bind(now)
    .bind(app.signup.as_str())
    .bind(i64::from(app.match_number))
    .bind(app.phone.as_str())
    .bind(i64::from(app.device_grant))
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an app and every grant, code and token issued to it, if it is still at `version`;
/// `false` when another change came first (or it is gone).
pub async fn delete(db: &Db, client_id: &str, version: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let grants = "SELECT id FROM oidc_grants WHERE client_id = $1";
    for table in ["oidc_codes", "oidc_refresh_tokens"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE grant_id IN ({grants})"))
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM oidc_grants WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM apps WHERE client_id = $1 AND version = $2")
        .bind(client_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn get(db: &Db, client_id: &str) -> Result<Option<App>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM apps WHERE client_id = $1"))
        .bind(client_id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<App>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM apps ORDER BY client_id"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// One page of apps in client id order: of `pool` (all pools when `None`), after the client
/// id `after`.
pub async fn page(
    db: &Db,
    pool: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<App>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM apps WHERE ($1 IS NULL OR pool = $1) AND ($2 IS NULL OR client_id > $2)
         ORDER BY client_id LIMIT $3"
    ))
    .bind(pool)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &Row) -> Result<App, sqlx::Error> {
    Ok(App {
        client_id: ClientId::stored(r.try_get("client_id")?)?,
        pool: PoolSlug::stored(r.try_get("pool")?)?,
        name: r.try_get("name")?,
        logo: r.try_get("logo")?,
        client_secret_hash: r.try_get("client_secret_hash")?,
        client_secret_fingerprint: r.try_get("client_secret_fingerprint")?,
        redirect_uris: from_json_list(&r.try_get::<String, _>("redirect_uris")?),
        post_logout_redirect_uris: from_json_list(
            &r.try_get::<String, _>("post_logout_redirect_uris")?,
        ),
        allowed_origins: from_json_list(&r.try_get::<String, _>("allowed_origins")?),
        miniprogram: AppId::stored(r.try_get("miniprogram")?)?,
        qr_ttl_secs: r.try_get("qr_ttl_secs")?,
        require_binding: r.try_get::<i64, _>("require_binding")? != 0,
        signup: Signup::parse(&r.try_get::<String, _>("signup")?),
        match_number: r.try_get::<i64, _>("match_number")? != 0,
        phone: PhoneAsk::parse(&r.try_get::<String, _>("phone")?),
        device_grant: r.try_get::<i64, _>("device_grant")? != 0,
        managed_by: ManagedBy::parse(&r.try_get::<String, _>("managed_by")?),
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Apps read through a short-lived copy in memory. Every request that names an app (a CORS
/// check, a QR code, a token request) would otherwise read it from the database, and apps change
/// rarely. A copy is dropped when configuration changes anywhere in the fleet (the ticket
/// store's announcement, see `TicketStore::announce_config_change`), so a removed callback URI
/// or a deleted app stops working on every instance at once; [`Cache::TTL`] bounds the age of
/// a copy if an announcement is missed (a process writing the database directly, or a lost
/// Redis connection). An app this process has not seen is always read afresh.
pub struct Cache {
    db: Db,
    /// Moves at every configuration change; a copy made under an older value is stale.
    changes: watch::Receiver<u64>,
    one: RwLock<HashMap<String, Copy<Arc<App>>>>,
    all: RwLock<Option<Copy<Arc<[App]>>>>,
}

/// What the cache holds, with when and under which configuration generation it was read.
struct Copy<T> {
    at: Instant,
    generation: u64,
    value: T,
}

impl<T: Clone> Copy<T> {
    fn fresh(&self, generation: u64) -> Option<T> {
        (self.generation == generation && self.at.elapsed() < Cache::TTL)
            .then(|| self.value.clone())
    }
}

impl Cache {
    pub const TTL: Duration = Duration::from_secs(10);

    pub fn new(db: Db, changes: watch::Receiver<u64>) -> Self {
        Self {
            db,
            changes,
            one: Default::default(),
            all: Default::default(),
        }
    }

    fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    pub async fn get(&self, client_id: &str) -> Result<Option<Arc<App>>, sqlx::Error> {
        let generation = self.generation();
        let fresh = self
            .one
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
            .and_then(|copy| copy.fresh(generation));
        if fresh.is_some() {
            return Ok(fresh);
        }
        let app = get(&self.db, client_id).await?.map(Arc::new);
        let mut one = self.one.write().unwrap_or_else(|p| p.into_inner());
        match &app {
            Some(app) => {
                one.insert(
                    client_id.to_owned(),
                    Copy {
                        at: Instant::now(),
                        generation,
                        value: app.clone(),
                    },
                );
            }
            None => {
                one.remove(client_id);
            }
        }
        Ok(app)
    }

    /// Every app, ordered by client id.
    pub async fn all(&self) -> Result<Arc<[App]>, sqlx::Error> {
        let generation = self.generation();
        if let Some(copy) = &*self.all.read().unwrap_or_else(|p| p.into_inner()) {
            if let Some(apps) = copy.fresh(generation) {
                return Ok(apps);
            }
        }
        let apps: Arc<[App]> = list(&self.db).await?.into();
        *self.all.write().unwrap_or_else(|p| p.into_inner()) = Some(Copy {
            at: Instant::now(),
            generation,
            value: apps.clone(),
        });
        Ok(apps)
    }
}
