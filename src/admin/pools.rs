//! User pools: list, create, rename, delete (refused while the pool holds anything).

use serde_json::json;

use super::{expect_version, stale, Actor, Admin, Role};
use crate::domain::PoolSlug;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::store::{self, pools::Pool};

impl Admin {
    /// The pools in the actor's scope, by slug.
    pub async fn list_pools(&self, actor: &Actor) -> AppResult<Vec<Pool>> {
        let pools = store::pools::list(&self.db).await?;
        Ok(pools.into_iter().filter(|p| actor.sees(&p.slug)).collect())
    }

    /// A pool in the actor's scope, or `not_found`.
    pub async fn pool(&self, actor: &Actor, slug: &str) -> AppResult<Pool> {
        store::pools::get(&self.db, slug)
            .await?
            .filter(|p| actor.sees(&p.slug))
            .ok_or_else(|| AppError::NotFound(format!("no pool `{slug}`")))
    }

    /// Creates a pool (owners of every pool only: a pool-scoped key cannot widen itself).
    pub async fn create_pool(&self, actor: &Actor, slug: &str, name: &str) -> AppResult<Pool> {
        actor.require(Role::Owner)?;
        if actor.pool.is_some() {
            return Err(AppError::Forbidden(
                "a key limited to one pool cannot create pools".into(),
            ));
        }
        let mut fields = FieldErrors::new();
        let parsed = PoolSlug::parse(slug);
        if let Err(e) = &parsed {
            fields.add("slug", e.clone());
        }
        check_name(&mut fields, name);
        fields.into_result()?;
        let slug = parsed.map_err(AppError::invalid)?;
        if !store::pools::create(&self.db, &slug, name.trim(), self.clock.now()).await? {
            return Err(AppError::Conflict(format!(
                "a pool `{slug}` already exists"
            )));
        }
        self.record(
            actor,
            Some(&slug),
            "admin.pool.create",
            &slug,
            Some(json!({ "name": name.trim() })),
        )
        .await?;
        self.announce().await;
        self.pool(actor, &slug).await
    }

    /// Renames a pool if it is still at `if_match` (when given).
    pub async fn rename_pool(
        &self,
        actor: &Actor,
        slug: &str,
        name: &str,
        if_match: Option<i64>,
    ) -> AppResult<Pool> {
        actor.require(Role::Owner)?;
        let pool = self.pool(actor, slug).await?;
        let mut fields = FieldErrors::new();
        check_name(&mut fields, name);
        fields.into_result()?;
        let version = expect_version(if_match, pool.version)?;
        if !store::pools::rename(&self.db, slug, name.trim(), version).await? {
            return Err(stale());
        }
        self.record(
            actor,
            Some(slug),
            "admin.pool.update",
            slug,
            Some(json!({ "name": { "from": pool.name, "to": name.trim() } })),
        )
        .await?;
        self.announce().await;
        self.pool(actor, slug).await
    }

    /// Deletes an empty pool; one that holds apps, users or Mini Programs is a `conflict`.
    pub async fn delete_pool(
        &self,
        actor: &Actor,
        slug: &str,
        if_match: Option<i64>,
    ) -> AppResult<()> {
        actor.require(Role::Owner)?;
        let pool = self.pool(actor, slug).await?;
        if slug == "default" {
            return Err(AppError::Conflict(
                "the default pool cannot be deleted".into(),
            ));
        }
        if store::pools::dependents(&self.db, slug).await? > 0 {
            return Err(AppError::Conflict(format!(
                "pool `{slug}` still has apps, users or Mini Programs; delete them first"
            )));
        }
        let version = expect_version(if_match, pool.version)?;
        if !store::pools::delete(&self.db, slug, version).await? {
            return Err(stale());
        }
        self.record(actor, Some(slug), "admin.pool.delete", slug, None)
            .await?;
        self.announce().await;
        Ok(())
    }
}

fn check_name(fields: &mut FieldErrors, name: &str) {
    let n = name.trim().chars().count();
    if n == 0 || n > 100 {
        fields.add("name", "must be 1 to 100 characters");
    }
}
