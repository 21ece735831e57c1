//! The Mini Programs ScanGate serves, with their AppSecrets unsealed only when a WeChat call
//! needs them.

use crate::crypto::SecretBox;
use crate::error::{AppError, AppResult};
use crate::store::{self, miniprograms::MiniProgram, Db};

use super::Credentials;

/// Finds a Mini Program and its credentials.
#[derive(Clone)]
pub struct MiniPrograms {
    db: Db,
    secrets: SecretBox,
}

impl MiniPrograms {
    pub fn new(db: Db, secrets: SecretBox) -> Self {
        Self { db, secrets }
    }

    /// The Mini Program `appid` and its credentials, or `not_found`.
    pub async fn credentials(&self, appid: &str) -> AppResult<(MiniProgram, Credentials)> {
        let mp = store::miniprograms::get(&self.db, appid)
            .await?
            .ok_or_else(|| AppError::NotFound("unknown Mini Program appid".into()))?;
        let secret = self
            .secrets
            .open_string(&mp.secret_enc)
            .map_err(|e| AppError::Internal(e.into()))?;
        let creds = Credentials {
            appid: mp.appid.clone(),
            secret,
        };
        Ok((mp, creds))
    }
}
