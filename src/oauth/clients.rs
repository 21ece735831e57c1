//! Client authentication's memory: secrets already verified against their Argon2 hash.

use crate::crypto::sha256_hex;

/// Client secrets already verified, so a client's every token request does not pay for
/// Argon2: the SHA-256 of the secret that matched, per client and stored hash. Only a secret
/// that verified against the current hash is remembered; changing the secret changes the
/// hash and forgets it.
#[derive(Default)]
pub struct VerifiedSecrets {
    known: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
}

impl VerifiedSecrets {
    const LIMIT: usize = 10_000;

    pub async fn verify(&self, client_id: &str, stored: &str, secret: &str) -> bool {
        let digest = sha256_hex(secret.as_bytes());
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((hash, seen)) = known.get(client_id) {
                if hash == stored && crate::crypto::constant_time_eq(seen, &digest) {
                    return true;
                }
            }
        }
        let (secret, phc) = (secret.to_owned(), stored.to_owned());
        let ok = tokio::task::spawn_blocking(move || crate::crypto::verify_password(&secret, &phc))
            .await
            .unwrap_or(false);
        if ok {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() >= Self::LIMIT {
                known.clear();
            }
            known.insert(client_id.to_owned(), (stored.to_owned(), digest));
        }
        ok
    }
}
