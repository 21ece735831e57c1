//! A pool's signing keys: listed, rotated (with the algorithm chosen), and a retired key
//! withdrawn from the JWKS before its grace period ends. The same rotation as
//! `scangate keys rotate`.

use super::{Actor, Admin, Role};
use crate::error::{AppError, AppResult};
use crate::store::{self, keys::SigningKey};
use crate::tokens::{KeyAlg, RETIRED_KEY_GRACE_SECS};

/// A signing key as the API shows it: no private part.
#[derive(Debug, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// `active` (signs) or `retired` (still published, so tokens it signed verify).
    pub state: &'static str,
    pub created_at: i64,
    /// When a retired key leaves the JWKS.
    pub retires_at: Option<i64>,
}

fn info(k: &SigningKey) -> KeyInfo {
    KeyInfo {
        kid: k.kid.clone(),
        alg: k.alg.clone(),
        state: if k.active { "active" } else { "retired" },
        created_at: k.created_at,
        retires_at: k.retired_at.map(|r| r + RETIRED_KEY_GRACE_SECS * 1000),
    }
}

impl Admin {
    /// The pool's published keys, newest first.
    pub async fn signing_keys(&self, actor: &Actor, pool: &str) -> AppResult<Vec<KeyInfo>> {
        self.pool(actor, pool).await?;
        let now = self.clock.now();
        let keys = store::keys::list(&self.db, pool).await?;
        Ok(keys
            .iter()
            .map(info)
            .filter(|k| k.retires_at.is_none_or(|r| r > now))
            .collect())
    }

    /// A new active key of `alg`; the previous one is retired and stays published for the
    /// grace period. This instance signs with it at once, others within a minute.
    pub async fn rotate_signing_key(
        &self,
        actor: &Actor,
        pool: &str,
        alg: KeyAlg,
    ) -> AppResult<KeyInfo> {
        actor.require(Role::Owner)?;
        self.pool(actor, pool).await?;
        let kid = self
            .keys
            .rotate(pool, alg)
            .await
            .map_err(AppError::Internal)?;
        self.record(
            actor,
            Some(pool),
            "admin.signing_key.rotate",
            &kid,
            Some(serde_json::json!({ "alg": alg.as_str() })),
        )
        .await?;
        self.announce().await;
        self.signing_keys(actor, pool)
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the rotated key is not listed")))
    }

    /// Withdraws a retired key from the JWKS now: tokens it signed stop verifying.
    pub async fn retire_signing_key(&self, actor: &Actor, pool: &str, kid: &str) -> AppResult<()> {
        actor.require(Role::Owner)?;
        self.pool(actor, pool).await?;
        let key = store::keys::list(&self.db, pool)
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| {
                AppError::NotFound(format!("no signing key `{kid}` in pool `{pool}`"))
            })?;
        if key.active {
            return Err(AppError::Conflict(
                "the active key cannot be withdrawn; rotate first".into(),
            ));
        }
        let withdrawn_at = self.clock.now() - RETIRED_KEY_GRACE_SECS * 1000;
        store::keys::withdraw(&self.db, pool, kid, withdrawn_at).await?;
        self.keys.invalidate();
        self.record(actor, Some(pool), "admin.signing_key.withdraw", kid, None)
            .await?;
        self.announce().await;
        Ok(())
    }
}
