//! Users list and search with 1,000,000 users in the database: the management API's
//! `GET /api/admin/v1/pools/{slug}/users` and the console's users page.
//!
//! Starts ScanGate in-process on a fresh SQLite file (or `--database-url` PostgreSQL, which
//! must be empty), stores `--users` users of the default pool (each with a nickname, a phone
//! number and a Mini Program identity with an openid and a unionid) in batches, creates an
//! owner API key and a console owner, signs in over HTTP as a browser does, then requests each
//! list `--rounds` times one after another and prints `api|console LABEL p50 ms p99 ms`:
//! the first page of the list, a page deep in it (by cursor), and searches by id, nickname,
//! phone, openid and unionid prefix, and one that finds nobody.
//!
//! `cargo run --release --example bench-console-users -- [--users N] [--rounds N]`

use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::{redirect, Client, StatusCode};
use scangate::app::{App, Runtime};
use scangate::clock::Clock;
use scangate::config::{Config, MiniProgramConfig, Secret};
use scangate::crypto::SecretBox;

type Error = Box<dyn std::error::Error + Send + Sync>;

const APPID: &str = "wx0123456789abcdef";
const PASSWORD: &str = "bench console password";

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 1_000_000)]
    users: usize,
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// PostgreSQL instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

#[tokio::main]
#[allow(clippy::field_reassign_with_default)]
async fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let dir = std::env::temp_dir().join(format!(
        "scangate-bench-console-{}",
        scangate::crypto::random_token(6)
    ));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse()?;
    config.secret_key = Some(Secret(SecretBox::generate_key()));
    config.database_url = cli
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/scangate.db", dir.display()));
    config.miniprograms = vec![MiniProgramConfig {
        appid: APPID.into(),
        secret: Secret("bench-app-secret-0123456789abcd".into()),
        pool: "default".into(),
        name: None,
    }];
    let runtime = Runtime {
        clock: Clock::System,
        dev: false,
    };
    let app = App::build_with(config, runtime).await?;
    let state = app.state().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));

    let started = Instant::now();
    let ids = seed(&state.db, cli.users).await?;
    // Statistics, as a database that grew to this size has them: PostgreSQL's planner has
    // none for a table loaded a moment ago (autovacuum gathers them a little later), and
    // without them it reads the whole table to look up fifty users by id.
    if state.db.kind == scangate::store::DbKind::Postgres {
        sqlx::query("ANALYZE").execute(&state.db.pool).await?;
    }
    eprintln!("seeded {} users in {:?}", cli.users, started.elapsed());
    scangate::store::admins::create(
        &state.db,
        &scangate::store::admins::Admin {
            username: "bench".into(),
            password_hash: scangate::crypto::hash_password(PASSWORD)?,
            created_at: Clock::System.now(),
            role: "owner".into(),
            pool: None,
        },
    )
    .await?;
    let browser = signed_in(&base).await?;
    let key = format!("sgk_bench_{}", scangate::crypto::random_token(16));
    scangate::store::admin_keys::insert(
        &state.db,
        &scangate::store::admin_keys::ApiKey {
            id: scangate::store::new_id(),
            name: "bench".into(),
            role: "owner".into(),
            pool: None,
            created_at: Clock::System.now(),
            last_used_at: None,
            revoked_at: None,
        },
        &scangate::crypto::sha256_hex(key.as_bytes()),
    )
    .await?;
    let api = Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {key}").parse()?,
            )]
            .into_iter()
            .collect(),
        )
        .build()?;

    let middle = &ids[ids.len() / 2];
    let cursor = base64_url(middle);
    // What each list is asked, as the API's query (`limit` 50, the console's page size).
    let queries = [
        ("list-first-page", String::new()),
        ("list-deep-page", format!("cursor={cursor}")),
        ("search-id", format!("q={}", &middle[..18])),
        ("search-nickname", "q=user%2042".into()),
        ("search-phone", "q=1390004".into()),
        ("search-openid", "q=o-bench-77".into()),
        ("search-unionid", "q=u-bench-88".into()),
        ("search-nobody", "q=zzz-nobody".into()),
    ];
    for (surface, client, path) in [
        ("api", &api, "/api/admin/v1/pools/default/users?limit=50&"),
        ("console", &browser, "/admin/users?pool=default&"),
    ] {
        for (label, query) in &queries {
            let url = format!("{base}{path}{query}");
            // Warm-up.
            for _ in 0..5 {
                fetch(client, &url).await?;
            }
            let mut times = Vec::with_capacity(cli.rounds);
            for _ in 0..cli.rounds {
                let t = Instant::now();
                fetch(client, &url).await?;
                times.push(t.elapsed());
            }
            times.sort();
            let at =
                |q: f64| times[((times.len() as f64 * q).ceil() as usize).min(times.len()) - 1];
            println!(
                "{surface} {label} p50 {:.1} ms p99 {:.1} ms",
                ms(at(0.50)),
                ms(at(0.99))
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn fetch(client: &Client, url: &str) -> Result<(), Error> {
    let res = client.get(url).send().await?;
    if res.status() != StatusCode::OK {
        return Err(format!("{url}: {}", res.status()).into());
    }
    res.bytes().await?;
    Ok(())
}

/// Stores `n` users with an identity each, in batches; their ids in order.
async fn seed(db: &scangate::store::Db, n: usize) -> Result<Vec<String>, Error> {
    const BATCH: usize = 500;
    let now = Clock::System.now();
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let mut users = String::from(
            "INSERT INTO users (id, pool, nickname, phone, phone_country, login_count, created_at, updated_at) VALUES ",
        );
        let mut identities = String::from(
            "INSERT INTO identities (id, user_id, pool, appid, openid, unionid, created_at, updated_at) VALUES ",
        );
        for i in start..end {
            let id = scangate::store::new_id();
            let sep = if i == start { "" } else { "," };
            users.push_str(&format!(
                "{sep}('{id}', 'default', 'user {i}', '139{i:08}', '86', 1, {now}, {now})"
            ));
            identities.push_str(&format!(
                "{sep}('{}', '{id}', 'default', '{APPID}', 'o-bench-{i}', 'u-bench-{i}', {now}, {now})",
                scangate::store::new_id()
            ));
            ids.push(id);
        }
        sqlx::query(&users).execute(&db.pool).await?;
        sqlx::query(&identities).execute(&db.pool).await?;
    }
    Ok(ids)
}

/// A browser signed in to the console.
async fn signed_in(base: &str) -> Result<Client, Error> {
    let client = Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()?;
    let form = client
        .get(format!("{base}/admin/sign-in"))
        .send()
        .await?
        .text()
        .await?;
    let marker = "name=\"csrf\" value=\"";
    let at = form.find(marker).ok_or("no csrf field")? + marker.len();
    let csrf = &form[at..at + form[at..].find('"').ok_or("bad csrf field")?];
    let res = client
        .post(format!("{base}/admin/sign-in"))
        .form(&[
            ("csrf", csrf),
            ("next", "/admin"),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    if res.status() != StatusCode::SEE_OTHER {
        return Err(format!("sign-in: {}", res.status()).into());
    }
    Ok(client)
}
