//! Signing cost per algorithm: how many ID-token-sized JWTs one core signs per second with a
//! pool key of each kind, through the same code the token endpoint uses.
//!
//! `cargo run --release --example bench-oidc-sign -- [SECONDS]`

use std::time::{Duration, Instant};

use scangate::clock::Clock;
use scangate::crypto::SecretBox;
use scangate::store::Db;
use scangate::tokens::{IdClaims, KeyAlg, Keys};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = std::env::temp_dir().join(format!("scangate-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = Db::connect(&format!("sqlite://{}/bench.db", dir.display()), 2).await?;
    db.migrate().await?;
    let clock = Clock::System;
    scangate::store::pools::ensure(&db, "default", "Default", clock.now()).await?;
    let keys = Keys::new(
        db,
        SecretBox::from_base64(&SecretBox::generate_key())?,
        clock.clone(),
        std::sync::Arc::new(scangate::published::Published::new(clock.clone())),
    );
    for alg in KeyAlg::ALL {
        keys.rotate("default", alg).await?;
        let now = clock.now_secs();
        let claims = IdClaims {
            iss: "http://127.0.0.1:8080/oidc",
            sub: "01936f6e-8a3b-7c2d-9e4f-0a1b2c3d4e5f",
            aud: "demo",
            exp: now + 3600,
            iat: now,
            auth_time: now,
            nonce: Some("n-0S6_WzA2Mj"),
            amr: ["qr"],
            nickname: Some("Alice"),
            name: Some("Alice"),
            picture: None,
            preferred_username: None,
            phone_number: None,
            phone_number_verified: None,
        };
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(seconds) {
            keys.sign("default", "JWT", &claims).await?;
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("sign_{} {rate:.0} per_s", alg.as_str());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
