//! API keys of the management API: created (shown once), authenticated, listed, revoked.
//! A key is 32 random bytes, so its SHA-256 is all that needs storing.

use super::{Actor, Admin, Role};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult};
use crate::store::{self, admin_keys::ApiKey};

/// Every key starts so, to be recognised in a leaked file or a secret scanner.
const PREFIX: &str = "sgk_";

/// A new key and, once, its secret.
pub struct Created {
    pub key: ApiKey,
    pub secret: String,
}

impl Admin {
    /// Creates a key. Only an owner may, and never one wider than itself.
    pub async fn create_key(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        pool: Option<PoolSlug>,
    ) -> AppResult<Created> {
        actor.require(Role::Owner)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(AppError::invalid("name must be 1 to 64 characters"));
        }
        if let Some(scope) = &actor.pool {
            if pool.as_ref() != Some(scope) {
                return Err(AppError::Forbidden(format!(
                    "this key is limited to pool `{scope}` and may only create keys for it"
                )));
            }
        }
        if let Some(pool) = &pool {
            if store::pools::get(&self.db, pool).await?.is_none() {
                return Err(AppError::NotFound(format!("no pool `{pool}`")));
            }
        }
        let secret = format!("{PREFIX}{}", random_token(32));
        let key = ApiKey {
            id: store::new_id(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            pool: pool.map(String::from),
            created_at: self.clock.now(),
            last_used_at: None,
            revoked_at: None,
        };
        store::admin_keys::insert(&self.db, &key, &sha256_hex(secret.as_bytes())).await?;
        self.record(
            actor,
            key.pool.as_deref(),
            "admin.key.create",
            &key.id,
            Some(serde_json::json!({ "name": key.name, "role": key.role })),
        )
        .await?;
        Ok(Created { key, secret })
    }

    /// The actor a bearer key stands for, or `unauthorized`.
    pub async fn authenticate(&self, secret: &str, ip: &str) -> AppResult<Actor> {
        let refused = || AppError::Unauthorized("the API key is unknown or revoked".into());
        if !secret.starts_with(PREFIX) || secret.len() > 128 {
            return Err(refused());
        }
        let hash = sha256_hex(secret.as_bytes());
        let key = store::admin_keys::use_key(&self.db, &hash, self.clock.now())
            .await?
            .ok_or_else(refused)?;
        let role = Role::parse(&key.role).ok_or_else(refused)?;
        let pool = match key.pool {
            Some(p) => Some(PoolSlug::parse(&p).map_err(|_| refused())?),
            None => None,
        };
        Ok(Actor {
            name: format!("key:{}", key.name),
            role,
            pool,
            ip: ip.to_owned(),
        })
    }

    /// The keys in the actor's scope (owners only).
    pub async fn list_keys(&self, actor: &Actor) -> AppResult<Vec<ApiKey>> {
        actor.require(Role::Owner)?;
        let keys = store::admin_keys::list(&self.db).await?;
        Ok(keys
            .into_iter()
            .filter(|k| match (&actor.pool, &k.pool) {
                (None, _) => true,
                (Some(scope), Some(pool)) => scope == pool,
                (Some(_), None) => false,
            })
            .collect())
    }

    /// Revokes a key in the actor's scope; it stops working at once.
    pub async fn revoke_key(&self, actor: &Actor, id: &str) -> AppResult<ApiKey> {
        actor.require(Role::Owner)?;
        let not_found = || AppError::NotFound("no such API key".into());
        let key = store::admin_keys::get(&self.db, id)
            .await?
            .filter(|k| actor.pool.is_none() || k.pool.as_deref() == actor.pool.as_deref())
            .ok_or_else(not_found)?;
        if !store::admin_keys::revoke(&self.db, id, self.clock.now()).await? {
            return Err(AppError::Conflict("the API key is already revoked".into()));
        }
        self.record(
            actor,
            key.pool.as_deref(),
            "admin.key.revoke",
            &key.id,
            Some(serde_json::json!({ "name": key.name })),
        )
        .await?;
        store::admin_keys::get(&self.db, id)
            .await?
            .ok_or_else(not_found)
    }
}
