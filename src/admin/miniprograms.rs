//! Mini Programs: list, get, create, update, delete, and a live check of the credentials
//! against WeChat. The AppSecret is write-only: sealed at rest, never returned or audited.

use serde_json::json;

use super::{expect_version, stale, Actor, Admin, Role};
use crate::domain::{AppId, PoolSlug};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::store::wechat_diagnostics::ErrorCount;
use crate::store::{self, apps::ManagedBy, miniprograms::MiniProgram};
use crate::wechat::diagnostics::{self, Explanation};
use crate::wechat::{Credentials, TokenState, WechatError};

/// A Mini Program as an operator registers it.
#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMiniProgram {
    pub appid: String,
    pub secret: String,
    #[serde(default = "default_pool")]
    pub pool: String,
    #[serde(default)]
    pub name: Option<String>,
}

fn default_pool() -> String {
    "default".into()
}

/// A change: a new name (`null` removes it) and/or a new AppSecret.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MiniProgramChange {
    #[serde(default, deserialize_with = "some")]
    pub name: Option<Option<String>>,
    pub secret: Option<String>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// What WeChat said of a Mini Program's credentials.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Check {
    pub ok: bool,
    /// WeChat's errcode when it refused.
    pub errcode: Option<i64>,
    /// What the errcode means and what to do about it.
    pub message: String,
}

/// What WeChat last said to a Mini Program: its errors by errcode, each explained, and the
/// state of its access-token cache.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Diagnostics {
    pub appid: String,
    pub errors: Vec<ExplainedError>,
    pub access_token: TokenState,
}

/// One errcode's count, with what it means and what to do.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExplainedError {
    #[serde(flatten)]
    pub count: ErrorCount,
    /// Whether ScanGate knows this errcode (else `help` is a generic note).
    pub known: bool,
    #[schema(value_type = crate::wechat::diagnostics::Explanation)]
    pub help: &'static Explanation,
}

impl Admin {
    /// What WeChat last answered a Mini Program in the actor's scope, every instance's
    /// calls together. Reading it is not audited: it changes nothing and holds no secret.
    pub async fn miniprogram_diagnostics(
        &self,
        actor: &Actor,
        appid: &str,
    ) -> AppResult<Diagnostics> {
        let mp = self.miniprogram(actor, appid).await?;
        let errors = store::wechat_diagnostics::errors(&self.db, &mp.appid)
            .await?
            .into_iter()
            .map(|count| {
                let known = diagnostics::explain(count.errcode);
                ExplainedError {
                    known: known.is_some(),
                    help: known.unwrap_or(&diagnostics::UNKNOWN),
                    count,
                }
            })
            .collect();
        let access_token = self.wechat.token_state(&mp.appid).await?;
        Ok(Diagnostics {
            appid: mp.appid,
            errors,
            access_token,
        })
    }

    /// The Mini Programs in the actor's scope, by AppID.
    pub async fn list_miniprograms(&self, actor: &Actor) -> AppResult<Vec<MiniProgram>> {
        Ok(store::miniprograms::list(&self.db, actor.pool.as_deref()).await?)
    }

    /// A Mini Program in the actor's scope, or `not_found`.
    pub async fn miniprogram(&self, actor: &Actor, appid: &str) -> AppResult<MiniProgram> {
        store::miniprograms::get(&self.db, appid)
            .await?
            .filter(|m| actor.sees(&m.pool))
            .ok_or_else(|| AppError::NotFound(format!("no Mini Program {appid}")))
    }

    pub async fn create_miniprogram(
        &self,
        actor: &Actor,
        new: NewMiniProgram,
    ) -> AppResult<MiniProgram> {
        actor.require(Role::Admin)?;
        if !actor.sees(&new.pool) {
            return Err(AppError::NotFound(format!("no pool `{}`", new.pool)));
        }
        let mut fields = FieldErrors::new();
        if let Err(e) = AppId::parse(&new.appid) {
            fields.add("appid", e);
        }
        check_secret(&mut fields, &new.secret);
        check_name(&mut fields, new.name.as_deref());
        if PoolSlug::parse(&new.pool).is_err()
            || store::pools::get(&self.db, &new.pool).await?.is_none()
        {
            fields.add("pool", format!("no pool `{}`", new.pool));
        }
        fields.into_result()?;
        let now = self.clock.now();
        let record = MiniProgram {
            appid: new.appid.clone(),
            pool: new.pool.clone(),
            name: new.name.clone(),
            secret_enc: self.secrets.seal(new.secret.as_bytes()),
            managed_by: ManagedBy::Api,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        if !store::miniprograms::create(&self.db, &record, now).await? {
            return Err(AppError::Conflict(format!(
                "Mini Program {} is already registered",
                new.appid
            )));
        }
        self.record(
            actor,
            Some(&new.pool),
            "admin.miniprogram.create",
            &new.appid,
            Some(json!({ "name": new.name })),
        )
        .await?;
        self.announce().await;
        self.miniprogram(actor, &new.appid).await
    }

    pub async fn update_miniprogram(
        &self,
        actor: &Actor,
        appid: &str,
        change: MiniProgramChange,
        if_match: Option<i64>,
    ) -> AppResult<MiniProgram> {
        actor.require(Role::Admin)?;
        let old = self.writable_miniprogram(actor, appid).await?;
        let version = expect_version(if_match, old.version)?;
        let mut fields = FieldErrors::new();
        if let Some(secret) = &change.secret {
            check_secret(&mut fields, secret);
        }
        if let Some(name) = &change.name {
            check_name(&mut fields, name.as_deref());
        }
        fields.into_result()?;
        let new = MiniProgram {
            name: change.name.clone().unwrap_or_else(|| old.name.clone()),
            secret_enc: match &change.secret {
                Some(s) => self.secrets.seal(s.as_bytes()),
                None => old.secret_enc.clone(),
            },
            ..old.clone()
        };
        if !store::miniprograms::update(&self.db, &new, version, self.clock.now()).await? {
            return Err(stale());
        }
        let mut changed = serde_json::Map::new();
        if new.name != old.name {
            changed.insert("name".into(), json!({ "from": old.name, "to": new.name }));
        }
        if change.secret.is_some() {
            // That it changed, never what it is.
            changed.insert("secret".into(), json!("changed"));
        }
        self.record(
            actor,
            Some(&old.pool),
            "admin.miniprogram.update",
            appid,
            Some(json!({ "changed": changed })),
        )
        .await?;
        self.announce().await;
        self.miniprogram(actor, appid).await
    }

    /// Deletes a Mini Program no app uses and no user has signed in with.
    pub async fn delete_miniprogram(
        &self,
        actor: &Actor,
        appid: &str,
        if_match: Option<i64>,
    ) -> AppResult<()> {
        actor.require(Role::Admin)?;
        let mp = self.writable_miniprogram(actor, appid).await?;
        if store::miniprograms::dependents(&self.db, appid).await? > 0 {
            return Err(AppError::Conflict(format!(
                "Mini Program {appid} is used by apps or has users; delete its apps first"
            )));
        }
        let version = expect_version(if_match, mp.version)?;
        if !store::miniprograms::delete(&self.db, appid, version).await? {
            return Err(stale());
        }
        store::wechat_diagnostics::forget(&self.db, appid).await?;
        self.record(
            actor,
            Some(&mp.pool),
            "admin.miniprogram.delete",
            appid,
            None,
        )
        .await?;
        self.announce().await;
        Ok(())
    }

    /// Asks WeChat whether the stored credentials work now, and explains its answer.
    pub async fn check_miniprogram(&self, actor: &Actor, appid: &str) -> AppResult<Check> {
        let mp = self.miniprogram(actor, appid).await?;
        let secret = self
            .secrets
            .open_string(&mp.secret_enc)
            .map_err(|e| AppError::Internal(e.into()))?;
        let creds = Credentials {
            appid: mp.appid.clone(),
            secret,
        };
        let check = match self.wechat.check_credentials(&creds).await {
            Ok(()) => Check {
                ok: true,
                errcode: None,
                message: "WeChat accepts these credentials".into(),
            },
            Err(WechatError::Api { errcode, .. }) | Err(WechatError::Misconfigured(errcode)) => {
                Check {
                    ok: false,
                    errcode: Some(errcode),
                    message: explain(errcode).into(),
                }
            }
            Err(WechatError::Busy) => Check {
                ok: false,
                errcode: Some(-1),
                message: explain(-1).into(),
            },
            Err(WechatError::Store(e)) => return Err(AppError::Unavailable(e.0)),
            Err(other) => Check {
                ok: false,
                errcode: None,
                message: format!("WeChat could not be asked: {other}"),
            },
        };
        self.record(
            actor,
            Some(&mp.pool),
            "admin.miniprogram.check",
            appid,
            Some(json!({ "ok": check.ok, "errcode": check.errcode })),
        )
        .await?;
        Ok(check)
    }

    async fn writable_miniprogram(&self, actor: &Actor, appid: &str) -> AppResult<MiniProgram> {
        let mp = self.miniprogram(actor, appid).await?;
        if mp.managed_by == ManagedBy::Config {
            return Err(AppError::Conflict(format!(
                "Mini Program {appid} is declared in the config file ([[miniprograms]]); change it there and restart"
            )));
        }
        Ok(mp)
    }
}

/// WeChat's token errcodes, in words an operator can act on.
fn explain(errcode: i64) -> &'static str {
    match errcode {
        -1 => "WeChat is busy; try again in a moment",
        40001 | 40125 => "the AppSecret is wrong: copy it again from the Mini Program's admin console (开发管理 → 开发设置)",
        40013 => "the AppID is not a valid Mini Program AppID",
        40164 => "this server's IP address is not on the Mini Program's API IP whitelist",
        40243 => "the AppSecret has been frozen by the Mini Program's administrator",
        41002 | 41004 => "WeChat did not receive the AppID or the AppSecret",
        45009 => "the daily quota of access tokens is used up",
        _ => "WeChat refused these credentials",
    }
}

fn check_secret(fields: &mut FieldErrors, secret: &str) {
    if secret.len() != 32 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        fields.add(
            "secret",
            "must be the Mini Program's 32-character AppSecret",
        );
    }
}

fn check_name(fields: &mut FieldErrors, name: Option<&str>) {
    if name.is_some_and(|n| n.trim().is_empty() || n.chars().count() > 100) {
        fields.add("name", "must be 1 to 100 characters");
    }
}
