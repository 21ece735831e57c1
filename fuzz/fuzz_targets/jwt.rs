//! JWT parsing and verification as userinfo, introspection and logout's `id_token_hint` do it
//! (`tokens::Keys::verify`), on hostile input: whatever the header, `kid`, `alg`, payload or
//! signature, it must answer `Ok` or an error, never panic.
//!
//! The pool's keys are real: a SQLite database in a scratch folder gets its first key once,
//! and a token it signs is the frame that fuzzed bytes are spliced into (as the whole token, as
//! its payload and as its signature), so the fuzzer gets past the header checks at once.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use scangate::clock::Clock;
use scangate::crypto::SecretBox;
use scangate::published::Published;
use scangate::store::Db;
use scangate::tokens::Keys;

const ISSUER: &str = "http://127.0.0.1:8080/oidc";

struct World {
    runtime: tokio::runtime::Runtime,
    keys: Keys,
    /// A token the pool's active key signed: `header.payload.signature`.
    signed: [String; 3],
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("scangate-fuzz-jwt-{}", std::process::id()));
        let (keys, token) = runtime.block_on(async {
            let db = Db::connect(&format!("sqlite://{}/keys.db", dir.display()), 1)
                .await
                .expect("a scratch database");
            db.migrate().await.expect("migrations");
            let clock = Clock::manual();
            scangate::store::pools::ensure(&db, "default", "Default", clock.now())
                .await
                .expect("the default pool");
            let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("a key");
            let keys = Keys::new(db, secrets, clock.clone(), Arc::new(Published::new(clock)));
            let claims = serde_json::json!({ "iss": ISSUER, "sub": "user", "aud": "web" });
            let token = keys
                .sign("default", "JWT", &claims)
                .await
                .expect("a signed token");
            (keys, token)
        });
        let mut parts = token.split('.').map(str::to_owned);
        let signed = [(); 3].map(|_| parts.next().unwrap_or_default());
        World {
            runtime,
            keys,
            signed,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let text = String::from_utf8_lossy(data);
    let [header, payload, signature] = &w.signed;
    for token in [
        text.to_string(),
        format!("{header}.{text}.{signature}"),
        format!("{header}.{payload}.{text}"),
    ] {
        let verified = w.runtime.block_on(
            w.keys
                .verify::<serde_json::Value>("default", &token, ISSUER),
        );
        if let Ok((_, claims)) = verified {
            assert_eq!(claims["iss"], ISSUER, "only this issuer's tokens verify");
        }
    }
});
