//! Signing keys and the JWTs ScanGate issues.
//!
//! Each pool has one active key (RS256, RSA-2048, generated on first start and stored sealed)
//! and a JWKS that publishes every key whose tokens may still be live. The JWKS is serialised
//! once when keys load, so serving it is a memory copy.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde_json::json;
use sha2::Digest;

use crate::clock::Clock;
use crate::crypto::SecretBox;
use crate::store::{self, Db};

/// Lifetime of ID and access tokens.
pub const TOKEN_TTL_SECS: i64 = 3600;

/// One pool's signing material.
pub struct PoolKeys {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// `{"keys":[…]}`, serialised once.
    pub jwks: Arc<[u8]>,
}

/// The keys of every pool, loaded on demand and cached.
pub struct Keys {
    db: Db,
    secrets: SecretBox,
    clock: Clock,
    pools: RwLock<HashMap<String, Arc<PoolKeys>>>,
    /// One generator at a time per process; across processes the database's unique index
    /// decides.
    generating: tokio::sync::Mutex<()>,
}

impl Keys {
    pub fn new(db: Db, secrets: SecretBox, clock: Clock) -> Self {
        Self {
            db,
            secrets,
            clock,
            pools: RwLock::default(),
            generating: tokio::sync::Mutex::new(()),
        }
    }

    /// The pool's keys, generating its first key if it has none.
    pub async fn for_pool(&self, pool: &str) -> anyhow::Result<Arc<PoolKeys>> {
        if let Some(k) = self
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(pool)
        {
            return Ok(Arc::clone(k));
        }
        let _guard = self.generating.lock().await;
        if let Some(k) = self
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(pool)
        {
            return Ok(Arc::clone(k));
        }
        let mut rows = store::keys::list(&self.db, pool).await?;
        if !rows.iter().any(|k| k.active) {
            let key = generate_rsa(pool, &self.secrets, self.clock.now()).await?;
            store::keys::insert_first_active(&self.db, &key).await?;
            rows = store::keys::list(&self.db, pool).await?;
        }
        let keys = Arc::new(self.build(&rows)?);
        self.pools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pool.to_owned(), Arc::clone(&keys));
        Ok(keys)
    }

    /// Forgets cached keys so the next use reloads them (after a rotation).
    pub fn invalidate(&self) {
        self.pools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn build(&self, rows: &[store::keys::SigningKey]) -> anyhow::Result<PoolKeys> {
        let active = rows
            .iter()
            .find(|k| k.active)
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let der = self.secrets.open(&active.private_key_enc)?;
        let private = rsa::RsaPrivateKey::from_pkcs8_der(&der)?;
        let pkcs1 = private.to_pkcs1_der()?;
        let encoding = EncodingKey::from_rsa_der(pkcs1.as_bytes());
        let published: Vec<serde_json::Value> = rows
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        let jwks = serde_json::to_vec(&json!({ "keys": published }))?;
        Ok(PoolKeys {
            kid: active.kid.clone(),
            alg: Algorithm::RS256,
            encoding,
            jwks: jwks.into(),
        })
    }

    /// Signs `claims` with the pool's active key.
    pub async fn sign<T: Serialize>(
        &self,
        pool: &str,
        typ: &str,
        claims: &T,
    ) -> anyhow::Result<String> {
        let keys = self.for_pool(pool).await?;
        let mut header = Header::new(keys.alg);
        header.kid = Some(keys.kid.clone());
        header.typ = Some(typ.to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &keys.encoding)?)
    }
}

/// Generates an RSA-2048 key off the async workers and seals it.
async fn generate_rsa(
    pool: &str,
    secrets: &SecretBox,
    now: i64,
) -> anyhow::Result<store::keys::SigningKey> {
    let private =
        tokio::task::spawn_blocking(|| rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048))
            .await??;
    let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
    // RFC 7638 thumbprint as the kid: stable, derived from the key itself.
    let thumbprint = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(thumbprint.as_bytes()));
    let jwk = json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e });
    let der = private.to_pkcs8_der()?;
    Ok(store::keys::SigningKey {
        kid,
        pool: pool.to_owned(),
        alg: "RS256".into(),
        private_key_enc: secrets.seal(der.as_bytes()),
        public_jwk: jwk.to_string(),
        active: true,
        created_at: now,
        retired_at: None,
    })
}

/// Claims of an ID token (OIDC Core §2) plus the profile and phone claims ScanGate fills.
#[derive(Debug, Serialize)]
pub struct IdClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    pub amr: [&'a str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
}

/// Claims of a JWT access token (RFC 9068).
#[derive(Debug, Serialize)]
pub struct AccessClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    pub jti: String,
}
