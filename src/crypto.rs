//! Small cryptographic helpers: random tokens, hashing, and encryption of secrets at rest.
//!
//! AppSecrets and private keys are sealed with AES-256-GCM under the configured `secret_key`;
//! a sealed value is `v1.` + base64url(nonce ‖ ciphertext ‖ tag), text so that it stores the
//! same way in SQLite and PostgreSQL.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// `n` random bytes, base64url without padding. The thread's CSPRNG (ChaCha, seeded and
/// periodically reseeded from the OS) saves a system call per token.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Lowercase hex SHA-256 of `data`: how bearer tokens, bind tokens and cookies are stored.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compares two strings without an early exit on the first difference.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Seals and opens secrets at rest. Cheap to clone: the keys are shared (every request's
/// state holds a few copies).
#[derive(Clone)]
pub struct SecretBox(std::sync::Arc<SecretKeys>);

struct SecretKeys {
    cipher: Aes256Gcm,
    /// Key of [`SecretBox::fingerprint`], derived from the same `secret_key`.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("secret_key must be 32 bytes in base64")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong secret_key or corrupted data)")]
    Open,
}

impl SecretBox {
    /// From the configured `secret_key`: 32 bytes in standard or URL-safe base64.
    pub fn from_base64(key: &str) -> Result<Self, SecretBoxError> {
        let key = key.trim();
        let bytes = STANDARD
            .decode(key)
            .or_else(|_| URL_SAFE_NO_PAD.decode(key.trim_end_matches('=')))
            .map_err(|_| SecretBoxError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretBoxError::BadKey)?;
        let mac_key = Sha256::new()
            .chain_update(b"scangate fingerprint key\0")
            .chain_update(key)
            .finalize()
            .into();
        Ok(Self(std::sync::Arc::new(SecretKeys {
            cipher: Aes256Gcm::new(&key.into()),
            mac_key,
        })))
    }

    /// A fresh random key in the configuration's format.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let ct = self
            .0
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1.{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretBoxError> {
        let body = sealed.strip_prefix("v1.").ok_or(SecretBoxError::Open)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretBoxError::Open)?;
        if bytes.len() < 12 + 16 {
            return Err(SecretBoxError::Open);
        }
        let (nonce, ct) = bytes.split_at(12);
        self.0
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SecretBoxError::Open)
    }

    /// A keyed fingerprint of `data` (hex HMAC-SHA256): equal inputs give equal fingerprints,
    /// and without `secret_key` it reveals nothing about `data`.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        use hmac::Mac as _;
        // HMAC takes a key of any length, so this cannot fail; if it did, a random value
        // matches nothing.
        let Ok(mut mac) = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.0.mac_key) else {
            return random_token(32);
        };
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn open_string(&self, sealed: &str) -> Result<String, SecretBoxError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| SecretBoxError::Open)
    }
}

/// Hashes a client secret with Argon2id (PHC string). CPU-heavy: call from `spawn_blocking`.
pub fn hash_password(secret: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

/// Checks a client secret against its PHC hash. CPU-heavy: call from `spawn_blocking`.
pub fn verify_password(secret: &str, phc: &str) -> bool {
    verify_password_in(secret, phc, &mut Vec::new())
}

/// The most Argon2 working memory a stored hash may ask for (64 MiB, in 1 KiB blocks); ours
/// use 19 MiB. A hash asking for more is refused rather than allowed to size an allocation.
const MAX_ARGON2_BLOCKS: usize = 64 * 1024;

/// [`verify_password`] in caller-owned working memory, grown to the hash's size and kept by
/// the caller: a verifier that reuses one buffer holds its memory flat however many secrets
/// it checks, where a fresh 19 MiB allocation per check leaves the allocator holding one per
/// thread that ever ran one.
pub fn verify_password_in(secret: &str, phc: &str, memory: &mut Vec<argon2::Block>) -> bool {
    use argon2::password_hash::PasswordHash;
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(hash.algorithm),
        argon2::Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = argon2::Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    use subtle::ConstantTimeEq;
    bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// The key that seals secrets: configured, or for the embedded default generated once and kept
/// beside the SQLite database.
pub fn secret_box(config: &crate::config::Config) -> anyhow::Result<SecretBox> {
    if let Some(key) = &config.secret_key {
        return Ok(SecretBox::from_base64(key.expose())?);
    }
    let dir = config
        .data_dir()
        .filter(|_| config.database_url.starts_with("sqlite"))
        .context(
            "configuration key `secret_key` is required unless the database is a SQLite file",
        )?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("secret.key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k,
        Err(_) => {
            let k = SecretBox::generate_key();
            write_private(&path, &k)?;
            tracing::warn!(path = %path.display(), "generated a new secret_key; back it up with the database");
            k
        }
    };
    Ok(SecretBox::from_base64(&key)?)
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_argon2_buffer_verifies_like_a_fresh_one() {
        let phc = hash_password("right secret").unwrap();
        let mut memory = Vec::new();
        assert!(verify_password_in("right secret", &phc, &mut memory));
        let size = memory.len();
        assert!(!verify_password_in("wrong secret", &phc, &mut memory));
        assert!(verify_password_in("right secret", &phc, &mut memory));
        assert_eq!(memory.len(), size, "the buffer is reused, not grown");
        assert!(verify_password("right secret", &phc));
        assert!(!verify_password("right secret", "not a phc string"));
    }

    #[test]
    fn fingerprints_are_stable_per_key_and_reveal_nothing_without_it() {
        let a = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let b = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        assert_eq!(a.fingerprint(b"s3cret"), a.fingerprint(b"s3cret"));
        assert_ne!(a.fingerprint(b"s3cret"), a.fingerprint(b"s3cret2"));
        assert_ne!(a.fingerprint(b"s3cret"), b.fingerprint(b"s3cret"));
        assert_ne!(a.fingerprint(b"s3cret"), sha256_hex(b"s3cret"));
        assert_eq!(a.fingerprint(b"").len(), 64);
    }

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let a = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let b = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let sealed = a.seal(b"app secret");
        assert!(!sealed.contains("app secret"));
        assert_eq!(a.open(&sealed).unwrap(), b"app secret");
        assert!(b.open(&sealed).is_err());
        assert!(a.open("v1.AAAA").is_err());
    }

    #[test]
    fn a_short_secret_key_is_rejected() {
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn random_tokens_are_url_safe_and_long_enough() {
        let t = random_token(16);
        assert_eq!(t.len(), 22);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(t, random_token(16));
    }

    #[test]
    fn password_hashes_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("other", &h));
    }
}
