//! Apps: the sites (OIDC clients) that show QR codes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::Row as _;

use super::{from_json_list, to_json_list, Db, Row};
use crate::domain::{AppId, ClientId, PoolSlug};

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
                       client_secret_fingerprint";

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
        "INSERT INTO apps ({COLUMNS}, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $11, $11)
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
    .execute(&db.pool)
    .await?;
    Ok(())
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
    })
}

/// Apps read through a short-lived copy in memory. Every request that names an app (a CORS
/// check, a QR code, a token request) would otherwise read it from the database, and apps change
/// rarely: at start-up and by `scangate app create`. A change made by another process shows
/// here within [`Cache::TTL`]; an app this process has not seen is always read afresh.
pub struct Cache {
    db: Db,
    one: RwLock<HashMap<String, (Instant, Arc<App>)>>,
    all: RwLock<Option<(Instant, Arc<[App]>)>>,
}

impl Cache {
    pub const TTL: Duration = Duration::from_secs(10);

    pub fn new(db: Db) -> Self {
        Self {
            db,
            one: Default::default(),
            all: Default::default(),
        }
    }

    pub async fn get(&self, client_id: &str) -> Result<Option<Arc<App>>, sqlx::Error> {
        let fresh = self
            .one
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
            .filter(|(at, _)| at.elapsed() < Self::TTL)
            .map(|(_, app)| app.clone());
        if fresh.is_some() {
            return Ok(fresh);
        }
        let app = get(&self.db, client_id).await?.map(Arc::new);
        if let Some(app) = &app {
            self.one
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(client_id.to_owned(), (Instant::now(), app.clone()));
        }
        Ok(app)
    }

    /// Every app, ordered by client id.
    pub async fn all(&self) -> Result<Arc<[App]>, sqlx::Error> {
        if let Some((at, apps)) = &*self.all.read().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < Self::TTL {
                return Ok(apps.clone());
            }
        }
        let apps: Arc<[App]> = list(&self.db).await?.into();
        *self.all.write().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), apps.clone()));
        Ok(apps)
    }
}
