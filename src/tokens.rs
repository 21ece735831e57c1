//! Signing keys and the JWTs ScanGate issues.
//!
//! Each pool has one active key (RS256 with RSA-2048 by default; ES256 or EdDSA on request),
//! generated on first start or by `scangate keys rotate`, and stored sealed. The JWKS publishes
//! the active key and every retired key whose tokens may still be live; it is serialised once
//! when keys load, so serving it is a memory copy. Signing uses a key pair parsed once, so a
//! signature costs the signature and nothing else.
//!
//! Keys are cached per process and re-read after [`RELOAD_AFTER`], so a rotation made by
//! another process (the CLI, another instance) reaches every instance within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use sha2::Digest;

use crate::clock::{Clock, Millis};
use crate::crypto::SecretBox;
use crate::store::{self, Db};

/// Lifetime of ID and access tokens.
pub const TOKEN_TTL_SECS: i64 = 3600;
/// How long a retired key stays published: past the lifetime of every token it signed, with a
/// margin for clock skew and cached JWKS copies.
pub const RETIRED_KEY_GRACE_SECS: i64 = TOKEN_TTL_SECS + 600;
/// How long a process trusts its cached keys before reading them again.
pub const RELOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The signature algorithms a pool's key may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA-2048: what every client supports.
    Rs256,
    /// ECDSA on P-256 with SHA-256: far cheaper to sign.
    Es256,
    /// Ed25519: the cheapest to sign.
    EdDsa,
}

impl KeyAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
            KeyAlg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RS256" => KeyAlg::Rs256,
            "ES256" => KeyAlg::Es256,
            "EdDSA" => KeyAlg::EdDsa,
            _ => return None,
        })
    }

    fn jwt(self) -> Algorithm {
        match self {
            KeyAlg::Rs256 => Algorithm::RS256,
            KeyAlg::Es256 => Algorithm::ES256,
            KeyAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    /// Every algorithm a ScanGate key can use, for discovery.
    pub const ALL: [KeyAlg; 3] = [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa];
}

/// A private key ready to sign.
enum Signer {
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

/// One pool's signing material.
pub struct PoolKeys {
    pub kid: String,
    pub alg: KeyAlg,
    signer: Signer,
    /// Public keys of every published key, by kid, for verifying our own tokens.
    verifiers: HashMap<String, (DecodingKey, Algorithm)>,
    /// `{"keys":[…]}`, serialised once.
    pub jwks: axum::body::Bytes,
    /// When these keys were read (clock millis).
    loaded_at: Millis,
}

impl PoolKeys {
    /// Until when these keys are used as they are (clock millis); they are read again after.
    pub fn fresh_until(&self) -> Millis {
        self.loaded_at + RELOAD_AFTER.as_millis() as Millis
    }
}

/// The keys of every pool, loaded on demand and cached.
pub struct Keys {
    db: Db,
    secrets: SecretBox,
    clock: Clock,
    pools: RwLock<HashMap<String, Arc<PoolKeys>>>,
    /// One loader at a time per process; across processes the database's unique index
    /// decides.
    generating: tokio::sync::Mutex<()>,
    rng: SystemRandom,
    /// Where JWKS responses are kept; forgotten when the keys change here.
    published: Arc<crate::published::Published>,
}

impl Keys {
    pub fn new(
        db: Db,
        secrets: SecretBox,
        clock: Clock,
        published: Arc<crate::published::Published>,
    ) -> Self {
        Self {
            db,
            secrets,
            clock,
            published,
            pools: RwLock::default(),
            generating: tokio::sync::Mutex::new(()),
            rng: SystemRandom::new(),
        }
    }

    fn cached(&self, pool: &str) -> Option<Arc<PoolKeys>> {
        let now = self.clock.now();
        self.pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(pool)
            .filter(|k| now - k.loaded_at < RELOAD_AFTER.as_millis() as i64)
            .map(Arc::clone)
    }

    /// The pool's keys, generating its first key if it has none.
    pub async fn for_pool(&self, pool: &str) -> anyhow::Result<Arc<PoolKeys>> {
        if let Some(k) = self.cached(pool) {
            return Ok(k);
        }
        let _guard = self.generating.lock().await;
        if let Some(k) = self.cached(pool) {
            return Ok(k);
        }
        let mut rows = store::keys::list(&self.db, pool).await?;
        if !rows.iter().any(|k| k.active) {
            let key = generate(KeyAlg::Rs256, pool, &self.secrets, self.clock.now()).await?;
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
        self.published.forget_all();
    }

    /// Adds a new key for `pool` and makes it the one that signs; the previous key stays
    /// published for [`RETIRED_KEY_GRACE_SECS`]. Returns the new kid.
    pub async fn rotate(&self, pool: &str, alg: KeyAlg) -> anyhow::Result<String> {
        let key = generate(alg, pool, &self.secrets, self.clock.now()).await?;
        store::keys::rotate(&self.db, &key, self.clock.now()).await?;
        self.invalidate();
        Ok(key.kid)
    }

    fn build(&self, rows: &[store::keys::SigningKey]) -> anyhow::Result<PoolKeys> {
        let now = self.clock.now();
        let active = rows
            .iter()
            .find(|k| k.active)
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let alg = KeyAlg::parse(&active.alg)
            .with_context(|| format!("unknown key algorithm {}", active.alg))?;
        let der = self.secrets.open(&active.private_key_enc)?;
        let signer = match alg {
            KeyAlg::Rs256 => Signer::Rsa(
                sig::RsaKeyPair::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("RSA key: {e}"))?,
            ),
            KeyAlg::Es256 => Signer::Ec(
                sig::EcdsaKeyPair::from_pkcs8(
                    &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &self.rng,
                )
                .map_err(|e| anyhow::anyhow!("EC key: {e}"))?,
            ),
            KeyAlg::EdDsa => Signer::Ed(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map_err(|e| anyhow::anyhow!("Ed25519 key: {e}"))?,
            ),
        };
        let grace = RETIRED_KEY_GRACE_SECS * 1000;
        let mut published = Vec::new();
        let mut verifiers = HashMap::new();
        for row in rows {
            if row.retired_at.is_some_and(|at| at + grace <= now) {
                continue;
            }
            let (Ok(jwk), Some(alg)) = (
                serde_json::from_str::<serde_json::Value>(&row.public_jwk),
                KeyAlg::parse(&row.alg),
            ) else {
                continue;
            };
            if let Ok(parsed) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone()) {
                if let Ok(key) = DecodingKey::from_jwk(&parsed) {
                    verifiers.insert(row.kid.clone(), (key, alg.jwt()));
                }
            }
            published.push(jwk);
        }
        let jwks = serde_json::to_vec(&json!({ "keys": published }))?;
        Ok(PoolKeys {
            kid: active.kid.clone(),
            alg,
            signer,
            verifiers,
            jwks: jwks.into(),
            loaded_at: now,
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
        keys.sign(typ, claims, &self.rng)
    }

    /// Verifies a JWT signed by one of the pool's published keys and returns its claims.
    /// Expiry is left to the caller, who reads time from the injected clock.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        pool: &str,
        token: &str,
        issuer: &str,
    ) -> anyhow::Result<(String, T)> {
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header.kid.context("the token has no kid")?;
        let keys = self.for_pool(pool).await?;
        let (key, alg) = keys.verifiers.get(&kid).context("unknown kid")?;
        let mut validation = Validation::new(*alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        let data = jsonwebtoken::decode::<T>(token, key, &validation)?;
        Ok((header.typ.unwrap_or_default(), data.claims))
    }
}

impl PoolKeys {
    /// A compact JWS of `claims`: header with `alg`, `kid` and `typ`.
    fn sign<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
        rng: &SystemRandom,
    ) -> anyhow::Result<String> {
        let header = json!({ "alg": self.alg.as_str(), "typ": typ, "kid": self.kid });
        let mut jwt = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let signature = match &self.signer {
            Signer::Rsa(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&sig::RSA_PKCS1_SHA256, rng, jwt.as_bytes(), &mut out)
                    .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                out
            }
            Signer::Ec(key) => key
                .sign(rng, jwt.as_bytes())
                .map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
            Signer::Ed(key) => key.sign(jwt.as_bytes()).as_ref().to_vec(),
        };
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// Generates a key off the async workers and seals it. The kid is the key's RFC 7638
/// thumbprint: stable, and derived from the key itself.
pub async fn generate(
    alg: KeyAlg,
    pool: &str,
    secrets: &SecretBox,
    now: i64,
) -> anyhow::Result<store::keys::SigningKey> {
    let (der, jwk_members, thumbprint) =
        tokio::task::spawn_blocking(move || generate_blocking(alg)).await??;
    let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(thumbprint.as_bytes()));
    let mut jwk = jwk_members;
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(alg.as_str());
    jwk["kid"] = json!(kid);
    Ok(store::keys::SigningKey {
        kid,
        pool: pool.to_owned(),
        alg: alg.as_str().into(),
        private_key_enc: secrets.seal(&der),
        public_jwk: jwk.to_string(),
        active: true,
        created_at: now,
        retired_at: None,
    })
}

/// PKCS#8 DER of a new private key, its public JWK members, and the thumbprint input
/// (required members in lexicographic order, RFC 7638 §3.2).
fn generate_blocking(alg: KeyAlg) -> anyhow::Result<(Vec<u8>, serde_json::Value, String)> {
    let rng = SystemRandom::new();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Ok(match alg {
        KeyAlg::Rs256 => {
            let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
            let n = b64(&private.n().to_bytes_be());
            let e = b64(&private.e().to_bytes_be());
            let der = private.to_pkcs8_der()?.as_bytes().to_vec();
            let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (der, json!({ "kty": "RSA", "n": n, "e": e }), thumb)
        }
        KeyAlg::Es256 => {
            let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
            let doc = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng)
                .map_err(|_| anyhow::anyhow!("EC key generation failed"))?;
            let pair = sig::EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng)
                .map_err(|_| anyhow::anyhow!("EC key generation failed"))?;
            // Uncompressed point: 0x04 ‖ X ‖ Y.
            let point = pair.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (
                doc.as_ref().to_vec(),
                json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }),
                thumb,
            )
        }
        KeyAlg::EdDsa => {
            let doc = sig::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
            let pair = sig::Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
            let x = b64(pair.public_key().as_ref());
            let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (
                doc.as_ref().to_vec(),
                json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
                thumb,
            )
        }
    })
}

/// The `phone_number` claim of `user` and its `phone_number_verified` (OIDC Core §5.1).
///
/// WeChat vouches for the number, but the claim may say so only in E.164 (`+8613712340010`):
/// the stored number carries no prefix (Authing's shape, kept for the compatible API), so the
/// country code WeChat sent goes in front. A number stored without a usable country code is
/// given as stored and not marked verified, since its E.164 form is unknown.
pub fn phone_claims(user: &crate::store::users::User) -> Option<(String, bool)> {
    let number = user.phone.as_deref()?;
    match e164(number, user.phone_country.as_deref()) {
        Some(e164) => Some((e164, true)),
        None => Some((number.to_owned(), false)),
    }
}

/// `+{country}{national}` when both are digits and fit E.164 (ITU-T E.164 §6: a country code
/// of 1–3 digits that does not start with 0, at most 15 digits in all).
pub fn e164(national: &str, country: Option<&str>) -> Option<String> {
    let country = country?.trim().trim_start_matches('+');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fits = digits(country)
        && country.len() <= 3
        && !country.starts_with('0')
        && digits(national)
        && country.len() + national.len() <= 15;
    fits.then(|| format!("+{country}{national}"))
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
    /// The id the site knows this person by, when an operator provisioned them
    /// (`profile` scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
}

impl<'a> IdClaims<'a> {
    /// The ID token of `user` for client `aud`, issued at `iat` (seconds) for
    /// [`TOKEN_TTL_SECS`]; profile and phone claims only when `scope` grants them.
    pub fn for_user(
        iss: &'a str,
        user: &'a crate::store::users::User,
        aud: &'a str,
        scope: &str,
        iat: i64,
        auth_time: i64,
        nonce: Option<&'a str>,
    ) -> Self {
        let granted = |wanted: &str| scope.split(' ').any(|s| s == wanted);
        let profile = granted("profile");
        let phone = granted("phone").then(|| phone_claims(user)).flatten();
        IdClaims {
            iss,
            sub: &user.id,
            aud,
            exp: iat + TOKEN_TTL_SECS,
            iat,
            auth_time,
            nonce,
            amr: ["qr"],
            nickname: user.nickname.as_deref().filter(|_| profile),
            name: user.nickname.as_deref().filter(|_| profile),
            picture: user.avatar_url.as_deref().filter(|_| profile),
            preferred_username: user.external_id.as_deref().filter(|_| profile),
            phone_number_verified: phone.as_ref().map(|(_, verified)| *verified),
            phone_number: phone.map(|(number, _)| number),
        }
    }

    /// The access token that goes with this ID token, for `scope`; `grant_id` names the OAuth
    /// grant it was issued under, whose revocation ends it.
    pub fn access(
        &self,
        scope: &'a str,
        jti: String,
        grant_id: Option<&'a str>,
    ) -> AccessClaims<'a> {
        AccessClaims {
            iss: self.iss,
            sub: self.sub,
            aud: self.aud,
            client_id: self.aud,
            scope,
            exp: self.exp,
            iat: self.iat,
            auth_time: self.auth_time,
            jti,
            grant_id,
        }
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_written_in_e164() {
        assert_eq!(
            e164("13712340010", Some("86")).as_deref(),
            Some("+8613712340010")
        );
        assert_eq!(
            e164("91234567", Some("852")).as_deref(),
            Some("+85291234567")
        );
        assert_eq!(
            e164("2025550123", Some("+1")).as_deref(),
            Some("+12025550123")
        );
        for (national, country) in [
            ("13712340010", None),
            ("13712340010", Some("")),
            ("13712340010", Some("086")),
            ("13712340010", Some("8612")),
            ("137-1234", Some("86")),
            ("1234567890123456", Some("1")),
        ] {
            assert_eq!(e164(national, country), None, "{national} {country:?}");
        }
    }
}
