//! The load driver of the benchmarks (`bench/run.sh` runs it; see the README's "Benchmarks").
//!
//! - `sim`: the WeChat simulator the measured instances point at.
//! - `create`: creates one QR code and prints its `random` (for wrk's status-poll runs).
//! - `latency`: confirm → waiting browser over SSE, for `--n` logins.
//! - `waiters`: `--n` concurrent SSE waiters, and the server's resident memory with them.
//! - `startup`: start to first answer, and resident memory once idle.
//!
//! Figures are printed one per line as `name value unit` for the script to collect.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::{stream, StreamExt};
use reqwest::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Sim {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        appid: String,
        #[arg(long)]
        secret: String,
    },
    Create {
        #[arg(long)]
        url: String,
        #[arg(long)]
        app: String,
    },
    Latency {
        /// The instance the browser waits on.
        #[arg(long)]
        pc: String,
        /// The instance the Mini Program confirms through.
        #[arg(long)]
        mp: String,
        #[arg(long)]
        sim: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        appid: String,
        #[arg(long, default_value_t = 200)]
        n: usize,
        #[arg(long, default_value = "latency")]
        label: String,
    },
    Waiters {
        #[arg(long)]
        url: String,
        #[arg(long)]
        app: String,
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// The server process whose memory is read.
        #[arg(long)]
        pid: u32,
    },
    Startup {
        #[arg(long)]
        url: String,
        #[arg(long)]
        app: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The server command line.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match Cli::parse().command {
        Command::Sim {
            listen,
            appid,
            secret,
        } => {
            let sim = scangate::wechat::Simulator::new();
            sim.register_app(&appid, &secret);
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            axum::serve(listener, sim.router()).await?;
        }
        Command::Create { url, app } => {
            println!("{}", create(&Client::new(), &url, &app).await?);
        }
        Command::Latency {
            pc,
            mp,
            sim,
            app,
            appid,
            n,
            label,
        } => latency(&pc, &mp, &sim, &app, &appid, n, &label).await?,
        Command::Waiters { url, app, n, pid } => waiters(&url, &app, n, pid).await?,
        Command::Startup {
            url,
            app,
            runs,
            cmd,
        } => startup(&url, &app, runs, &cmd).await?,
    }
    Ok(())
}

async fn create(client: &Client, base: &str, app: &str) -> Result<String, Error> {
    let res: Value = client
        .post(format!("{base}/api/v1/qrcodes"))
        .json(&json!({ "app_id": app }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(res["random"].as_str().ok_or("no random")?.to_owned())
}

/// A browser following one code's events over a raw HTTP/1.1 connection.
struct Sse {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Sse {
    async fn open(base: &str, random: &str) -> Result<Sse, Error> {
        let host = base.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        let req = format!(
            "GET /api/v1/qrcodes/{random}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        Ok(Sse {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Reads until an event with `"status":"<status>"` arrives.
    async fn until(&mut self, status: &str) -> Result<(), Error> {
        let needle = format!("\"status\":\"{status}\"");
        let needle = needle.as_bytes();
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(at) = self.buf.windows(needle.len()).position(|w| w == needle) {
                self.buf.drain(..at + needle.len());
                return Ok(());
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(format!("stream closed before {status}").into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn mp_token(client: &Client, mp: &str, sim: &str, appid: &str) -> Result<String, Error> {
    let login: Value = client
        .post(format!("{sim}/_sim/login"))
        .json(&json!({ "appid": appid }))
        .send()
        .await?
        .json()
        .await?;
    let session: Value = client
        .post(format!("{mp}/api/mp/v1/session"))
        .json(&json!({ "appid": appid, "code": login["code"] }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(session["token"].as_str().ok_or("no token")?.to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn latency(
    pc: &str,
    mp: &str,
    sim: &str,
    app: &str,
    appid: &str,
    n: usize,
    label: &str,
) -> Result<(), Error> {
    let client = Client::new();
    let token = mp_token(&client, mp, sim, appid).await?;
    let warmup = 20;
    let mut to_browser = Vec::with_capacity(n);
    let mut confirm_call = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let random = create(&client, pc, app).await?;
        let mut sse = Sse::open(pc, &random).await?;
        sse.until("pending").await?;
        client
            .post(format!("{mp}/api/mp/v1/qrcodes/{random}/scan"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?;
        sse.until("scanned").await?;
        let confirm = client
            .post(format!("{mp}/api/mp/v1/qrcodes/{random}/confirm"))
            .bearer_auth(&token)
            .send();
        let start = Instant::now();
        let confirm = tokio::spawn(async move {
            let res = confirm.await.and_then(|r| r.error_for_status());
            (res.map(|_| ()), start.elapsed())
        });
        sse.until("confirmed").await?;
        let seen = start.elapsed();
        let (res, answered) = confirm.await?;
        res?;
        if i >= warmup {
            to_browser.push(seen.as_secs_f64() * 1e3);
            confirm_call.push(answered.as_secs_f64() * 1e3);
        }
    }
    to_browser.sort_by(f64::total_cmp);
    confirm_call.sort_by(f64::total_cmp);
    for (name, v) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        println!("{label}_{name} {:.2} ms", percentile(&to_browser, v));
    }
    println!(
        "{label}_confirm_call_p99 {:.2} ms",
        percentile(&confirm_call, 0.99)
    );
    Ok(())
}

fn rss_mb(pid: u32) -> Result<f64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .ok_or("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

async fn waiters(url: &str, app: &str, n: usize, pid: u32) -> Result<(), Error> {
    let client = Client::new();
    println!("waiters_rss_before {:.1} MB", rss_mb(pid)?);
    let randoms: Vec<String> = stream::iter(0..n)
        .map(|_| create(&client, url, app))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let opened: Vec<Sse> = stream::iter(randoms.iter())
        .map(|r| async move {
            let mut sse = Sse::open(url, r).await?;
            sse.until("pending").await?;
            Ok::<_, Error>(sse)
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    println!("waiters_open {} connections", opened.len());
    println!("waiters_rss {:.1} MB", rss_mb(pid)?);
    drop(opened);
    Ok(())
}

/// GET `path` over a fresh connection; the status code, or `None` while nothing listens.
async fn probe(host: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

async fn startup(url: &str, app: &str, runs: usize, cmd: &[String]) -> Result<(), Error> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let start = Instant::now();
        let mut child = tokio::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        loop {
            if probe(host, "/healthz").await == Some(200) {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err("no answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("startup_run{run} {ms:.1} ms");
        times.push(ms);
        if run + 1 == runs {
            // Idle memory: after a little real work, once the server has settled.
            let client = Client::new();
            let random = create(&client, url, app).await?;
            for _ in 0..100 {
                client
                    .get(format!("{url}/api/v1/qrcodes/{random}"))
                    .send()
                    .await?;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!("idle_rss {:.1} MB", rss_mb(child.id().ok_or("exited")?)?);
        }
        child.start_kill()?;
        child.wait().await?;
    }
    // The first run creates the database and generates the signing key.
    println!("startup_first {:.1} ms", times[0]);
    let mut warm = times[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    if !warm.is_empty() {
        println!("startup_warm_median {:.1} ms", warm[warm.len() / 2]);
    }
    Ok(())
}
