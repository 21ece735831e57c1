//! The token endpoint under load: refresh-token grants in a closed loop, or (`--codes N`)
//! authorization-code redemptions with PKCE.
//!
//! Each connection first logs in once through the hosted login page (QR code scanned and
//! confirmed by a Mini Program session against the WeChat simulator) and exchanges the code for
//! a refresh token with `offline_access`. Then it posts `grant_type=refresh_token` over and over,
//! each answer (a signed ID token, a signed JWT access token and the rotated refresh token)
//! giving the next request its refresh token.
//!
//! With `--codes N`, N codes are minted first, each through a whole login as above (PKCE S256,
//! `openid profile`), `--connections` logins at a time; then `--connections` workers redeem
//! them (`grant_type=authorization_code` with the code verifier) until none is left, and the
//! rate and CPU time are those of the redemptions alone.
//!
//! Prints `LABEL rate req/s cpu µs/req`, the CPU time being the server process's (`--pid`)
//! user + system time over the measured seconds, from `/proc`.
//!
//! `bench-oidc-token --base URL --sim URL --appid APPID --client-id ID --redirect-uri URI --pid PID`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Parser;
use reqwest::{redirect, Client, StatusCode};
use serde_json::{json, Value};
use sha2::Digest as _;

/// The longest one step of a login may take before the run stops with an error.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
struct Cli {
    /// The ScanGate instance.
    #[arg(long)]
    base: String,
    /// The WeChat simulator it points at.
    #[arg(long)]
    sim: String,
    #[arg(long)]
    appid: String,
    /// A public client of the default pool.
    #[arg(long)]
    client_id: String,
    /// One of its redirect URIs.
    #[arg(long)]
    redirect_uri: String,
    /// The server process, for its CPU time.
    #[arg(long)]
    pid: u32,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    #[arg(long, default_value = "token")]
    label: String,
    /// Instead of logging in: POST here once per connection for a refresh token (the peer's
    /// seeding route), and use `--token-url` with `--client-secret`.
    #[arg(long)]
    seed_url: Option<String>,
    #[arg(long)]
    token_url: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    /// Authorization-code grants instead: this many codes minted beforehand, then redeemed.
    #[arg(long)]
    codes: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    if let Some(n) = cli.codes {
        return code_grants(&cli, n).await;
    }
    let mut refresh = Vec::with_capacity(cli.connections);
    for i in 0..cli.connections {
        refresh.push(match &cli.seed_url {
            Some(seed) => seeded(seed).await?,
            None => login(&cli, &format!("bench-user-{i}")).await?,
        });
    }
    let client = Client::builder()
        .pool_max_idle_per_host(cli.connections)
        .build()?;
    let url = cli
        .token_url
        .clone()
        .unwrap_or_else(|| format!("{}/oidc/token", cli.base));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for token in refresh {
        let (client, url) = (client.clone(), url.clone());
        let (client_id, secret) = (cli.client_id.clone(), cli.client_secret.clone());
        let (counting, stop, done) = (counting.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut token = token;
            while !stop.load(Ordering::Relaxed) {
                token = refresh_grant(&client, &url, &client_id, secret.as_deref(), &token).await?;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(cli.warmup)).await;
    let before = cpu_ticks(cli.pid)?;
    let start = Instant::now();
    counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(cli.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu_ticks(cli.pid)?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let n = done.load(Ordering::Relaxed) as f64;
    let tick = 100.0; // USER_HZ on Linux
    println!(
        "{:<22} {:>10.0} req/s {:>8.1} µs CPU/req",
        cli.label,
        n / elapsed,
        (after - before) as f64 / tick * 1e6 / n
    );
    Ok(())
}

async fn refresh_grant(
    client: &Client,
    url: &str,
    client_id: &str,
    client_secret: Option<&str>,
    token: &str,
) -> Result<String, Error> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", client_id),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let res = client.post(url).form(&form).send().await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if status != StatusCode::OK || body["id_token"].as_str().is_none() {
        return Err(format!("refresh grant: {status} {body}").into());
    }
    // A server that does not rotate answers without a new one: the old one stays valid.
    Ok(body["refresh_token"].as_str().unwrap_or(token).to_owned())
}

async fn seeded(url: &str) -> Result<String, Error> {
    let body: Value = Client::new()
        .post(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["refresh_token"]
        .as_str()
        .ok_or("no refresh_token from the seeding route")?
        .to_owned())
}

/// Mints `n` codes, then redeems them all at `--connections` at a time.
async fn code_grants(cli: &Cli, n: usize) -> Result<(), Error> {
    use futures::StreamExt as _;
    let minted: Vec<(String, String)> = futures::stream::iter(0..n)
        .map(|i| {
            login_code(
                cli,
                format!("bench-user-{}", i % cli.connections),
                "openid profile",
            )
        })
        .buffer_unordered(cli.connections)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let queue = Arc::new(std::sync::Mutex::new(minted));
    let client = Client::builder()
        .pool_max_idle_per_host(cli.connections)
        .build()?;
    let url = format!("{}/oidc/token", cli.base);
    let before = cpu_ticks(cli.pid)?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.connections {
        let (client, url, queue) = (client.clone(), url.clone(), queue.clone());
        let (client_id, redirect_uri) = (cli.client_id.clone(), cli.redirect_uri.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| "poisoned")?.pop();
                let Some((code, verifier)) = next else {
                    return Ok::<_, Error>(());
                };
                redeem(&client, &url, &client_id, &redirect_uri, &code, &verifier).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu_ticks(cli.pid)?;
    let tick = 100.0; // USER_HZ on Linux
    println!(
        "{:<22} {:>10.0} req/s {:>8.1} µs CPU/req",
        cli.label,
        n as f64 / elapsed,
        (after - before) as f64 / tick * 1e6 / n as f64
    );
    Ok(())
}

/// `grant_type=authorization_code` with the PKCE verifier; the answer as JSON.
async fn redeem(
    client: &Client,
    url: &str,
    client_id: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Result<Value, Error> {
    let res = client
        .post(url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ])
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if status != StatusCode::OK || body["id_token"].as_str().is_none() {
        return Err(format!("code grant: {status} {body}").into());
    }
    Ok(body)
}

/// One login through the hosted page; returns the refresh token of the new grant.
async fn login(cli: &Cli, openid: &str) -> Result<String, Error> {
    let (code, verifier) =
        login_code(cli, openid.to_owned(), "openid profile offline_access").await?;
    let tokens = redeem(
        &Client::new(),
        &format!("{}/oidc/token", cli.base),
        &cli.client_id,
        &cli.redirect_uri,
        &code,
        &verifier,
    )
    .await?;
    Ok(tokens["refresh_token"]
        .as_str()
        .ok_or("no refresh_token: is offline_access granted?")?
        .to_owned())
}

/// One login through the hosted page (QR code scanned and confirmed); returns the
/// authorization code and its PKCE verifier.
async fn login_code(cli: &Cli, openid: String, scope: &str) -> Result<(String, String), Error> {
    let openid = openid.as_str();
    // A step that hangs is an error, not a stalled run.
    let browser = Client::builder()
        .timeout(STEP_TIMEOUT)
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()?;
    let verifier = scangate::crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let auth = reqwest::Url::parse_with_params(
        &format!("{}/oidc/auth", cli.base),
        &[
            ("response_type", "code"),
            ("client_id", &cli.client_id),
            ("redirect_uri", &cli.redirect_uri),
            ("scope", scope),
            ("state", "st"),
            ("nonce", "n1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )?;
    let page = browser
        .get(auth)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let random = attr(&page, "data-random")?;
    let continue_url = format!("{}{}", cli.base, attr(&page, "data-continue-url")?);

    let http = Client::builder().timeout(STEP_TIMEOUT).build()?;
    let code: Value = http
        .post(format!("{}/_sim/login", cli.sim))
        .json(&json!({ "appid": cli.appid, "openid": openid }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let session: Value = http
        .post(format!("{}/api/mp/v1/session", cli.base))
        .json(&json!({ "appid": cli.appid, "code": code["code"] }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mp = session["token"].as_str().ok_or("no session token")?;
    http.post(format!("{}/api/mp/v1/qrcodes/{random}/scan", cli.base))
        .bearer_auth(mp)
        .send()
        .await?
        .error_for_status()?;
    // With the match step on, the phone must send the number the computer shows.
    let shown: Value = browser
        .get(format!("{}/api/v1/qrcodes/{random}", cli.base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    http.post(format!("{}/api/mp/v1/qrcodes/{random}/confirm", cli.base))
        .bearer_auth(mp)
        .json(&json!({ "match_number": shown["match_number"] }))
        .send()
        .await?
        .error_for_status()?;
    let back = browser.get(&continue_url).send().await?;
    let location = back
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("no redirect after the login: {}", back.status()))?;
    let code = reqwest::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code in the redirect")?;
    Ok((code, verifier))
}

/// An attribute's value in a page (the first occurrence), HTML-unescaped.
fn attr(html: &str, name: &str) -> Result<String, Error> {
    let key = format!("{name}=\"");
    let start = html
        .find(&key)
        .ok_or_else(|| format!("no {name} in the page"))?
        + key.len();
    let end = start + html[start..].find('"').ok_or("unterminated attribute")?;
    Ok(html[start..end]
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&"))
}

fn cpu_ticks(pid: u32) -> Result<u64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}
