//! Client authentication's memory and its cost bound: secrets already verified against their
//! Argon2 hash, and the few slots in which a new or wrong secret may be checked at all.
//!
//! An Argon2id check costs 19 MiB and tens of milliseconds of CPU, and anyone may ask for one
//! by sending a wrong secret. So at most [`VerifiedSecrets::SLOTS`] run at once, each in a
//! working buffer that is allocated once and reused: memory stays flat under any flood. A
//! caller that finds every slot taken waits a moment, then is told to retry; a secret already
//! verified never waits for a slot.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::crypto::sha256_hex;

/// How a secret compared with the stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    /// Every verification slot stayed taken for the whole wait: retry in a moment.
    Busy,
}

/// Client secrets already verified, so a client's every token request does not pay for
/// Argon2: the SHA-256 of the secret that matched, per client and stored hash. Only a secret
/// that verified against the current hash is remembered; changing the secret changes the
/// hash and forgets it.
pub struct VerifiedSecrets {
    known: std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
    /// One permit per Argon2 check that may run now.
    slots: Arc<Semaphore>,
    /// The slots' working memory, one buffer per permit, handed out and put back.
    buffers: Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
    /// How long a caller waits for a slot before it is told to retry.
    wait: Duration,
}

impl Default for VerifiedSecrets {
    fn default() -> Self {
        Self {
            known: Default::default(),
            slots: Arc::new(Semaphore::new(Self::SLOTS)),
            buffers: Arc::new(std::sync::Mutex::new(Vec::with_capacity(Self::SLOTS))),
            wait: Duration::from_secs(2),
        }
    }
}

impl VerifiedSecrets {
    const LIMIT: usize = 10_000;
    /// Argon2 checks at once: enough to keep two cores busy, at 19 MiB each.
    pub const SLOTS: usize = 2;

    /// Whether `secret` is the one already verified for this client and hash: no Argon2.
    pub fn is_known(&self, client_id: &str, stored: &str, secret: &str) -> bool {
        let digest = sha256_hex(secret.as_bytes());
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(client_id).is_some_and(|(hash, seen)| {
            hash == stored && crate::crypto::constant_time_eq(seen, &digest)
        })
    }

    /// Checks `secret` against the stored hash: at once if already verified, else in one of
    /// the Argon2 slots, or `Busy` if none frees up in time.
    pub async fn verify(&self, client_id: &str, stored: &str, secret: &str) -> Verdict {
        if self.is_known(client_id, stored, secret) {
            return Verdict::Valid;
        }
        let slot = Arc::clone(&self.slots).acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(self.wait, slot).await else {
            return Verdict::Busy;
        };
        let buffers = Arc::clone(&self.buffers);
        let (secret_owned, phc) = (secret.to_owned(), stored.to_owned());
        // The permit and the buffer travel with the check, so a caller that goes away
        // mid-check frees its slot only once the check has ended and its buffer is back.
        let ok = tokio::task::spawn_blocking(move || {
            let mut memory = buffers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_default();
            let ok = crate::crypto::verify_password_in(&secret_owned, &phc, &mut memory);
            buffers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(memory);
            drop(permit);
            ok
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Verdict::Invalid;
        }
        let digest = sha256_hex(secret.as_bytes());
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= Self::LIMIT {
            known.clear();
        }
        known.insert(client_id.to_owned(), (stored.to_owned(), digest));
        Verdict::Valid
    }
}
