//! The load driver of the benchmarks (`bench/run.sh` runs it; see the README's "Benchmarks").
//!
//! - `sim`: the WeChat simulator the measured instances point at.
//! - `create`: creates one QR code and prints its `random` (for wrk's status-poll runs).
//! - `latency`: confirm → waiting browser over SSE, for `--n` logins.
//! - `waiters`: `--n` concurrent SSE waiters, and the server's resident memory with them.
//! - `startup`: start to first answer, and resident memory once idle.
//! - `soak`: logins at half the measured capacity for a long while, a report each minute.
//!
//! Figures are printed one per line as `name value unit` for the script to collect.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
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
    Soak {
        #[arg(long)]
        url: String,
        #[arg(long)]
        sim: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        appid: String,
        /// The server process whose memory and descriptors are read.
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Seconds of the closed-loop run that measures the capacity.
        #[arg(long, default_value_t = 20)]
        capacity_secs: u64,
        /// The share of the capacity held.
        #[arg(long, default_value_t = 0.5)]
        share: f64,
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
        Command::Soak {
            url,
            sim,
            app,
            appid,
            pid,
            minutes,
            capacity_secs,
            share,
        } => {
            let soak = Soak::new(url, sim, app, appid).await?;
            soak.run(pid, minutes, capacity_secs, share).await?;
        }
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

/// Each endpoint's latencies and failures over the current minute.
#[derive(Default)]
struct Tally {
    ms: Vec<f64>,
    errors: u64,
}

/// The soak: logins as sites make them, half through the native widget (an event stream
/// waits for the result) and half through `authing-js-sdk` (a `check` every 800 ms), the person
/// scanning 1.5 s after the code shows and confirming 1.5 s later; every request timed.
struct Soak {
    url: String,
    app: String,
    /// Phone sessions, used in turn.
    phones: Vec<String>,
    tallies: Mutex<BTreeMap<&'static str, Tally>>,
    /// Logins begun and finished, this minute.
    begun: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

/// How long a person takes to scan a code shown, and to confirm once scanned; `None` for the
/// closed loop that measures the capacity.
type Pause = Option<Duration>;

impl Soak {
    async fn new(url: String, sim: String, app: String, appid: String) -> Result<Arc<Self>, Error> {
        let client = Client::new();
        let mut phones = Vec::new();
        for _ in 0..200 {
            phones.push(mp_token(&client, &url, &sim, &appid).await?);
        }
        Ok(Arc::new(Soak {
            url,
            app,
            phones,
            tallies: Mutex::new(BTreeMap::new()),
            begun: Default::default(),
            done: Default::default(),
        }))
    }

    /// Times one request; an error or a status other than `ok` counts as a failure.
    async fn timed(
        &self,
        name: &'static str,
        req: reqwest::RequestBuilder,
        ok: u16,
    ) -> Result<Value, Error> {
        let start = Instant::now();
        let res = async {
            let res = req.timeout(Duration::from_secs(30)).send().await?;
            let status = res.status().as_u16();
            let body: Value = res.json().await?;
            if status != ok {
                return Err(format!("{name}: {status} {body}").into());
            }
            Ok::<_, Error>(body)
        }
        .await;
        self.record(name, start.elapsed(), res.is_ok());
        res
    }

    fn record(&self, name: &'static str, took: Duration, ok: bool) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let tally = tallies.entry(name).or_default();
        tally.ms.push(took.as_secs_f64() * 1e3);
        if !ok {
            tally.errors += 1;
        }
    }

    fn phone(&self, n: u64) -> &str {
        &self.phones[n as usize % self.phones.len()]
    }

    /// One login through the native widget: create, wait over SSE, exchange.
    async fn native(&self, n: u64, pause: Pause) -> Result<(), Error> {
        let client = Client::new();
        let created = self
            .timed(
                "create",
                client
                    .post(format!("{}/api/v1/qrcodes", self.url))
                    .json(&json!({ "app_id": self.app })),
                201,
            )
            .await?;
        let random = created["random"].as_str().ok_or("no random")?.to_owned();
        let start = Instant::now();
        let mut sse = Sse::open(&self.url, &random).await?;
        sse.until("pending").await?;
        self.record("events_open", start.elapsed(), true);
        self.phone_side(&client, n, &random, pause).await?;
        sse.until("confirmed").await?;
        let ticket = sse.ticket().await?;
        self.timed(
            "exchange",
            client
                .post(format!("{}/api/v1/qrcodes/exchange", self.url))
                .json(&json!({ "ticket": ticket })),
            200,
        )
        .await?;
        Ok(())
    }

    /// One login through `authing-js-sdk`: `gene`, `check` every 800 ms, `userinfo`.
    async fn authing(&self, n: u64, pause: Pause) -> Result<(), Error> {
        let client = Client::builder().cookie_store(true).build()?;
        let app = self.app.as_str();
        let gene = self
            .timed(
                "authing_gene",
                client
                    .post(format!("{}/api/v2/qrcode/gene", self.url))
                    .header("x-authing-app-id", app)
                    .json(&json!({ "scene": "WXAPP_AUTH" })),
                200,
            )
            .await?;
        let random = gene["data"]["random"]
            .as_str()
            .ok_or("no random from gene")?
            .to_owned();
        let check = || {
            self.timed(
                "authing_check",
                client
                    .get(format!("{}/api/v2/qrcode/check", self.url))
                    .query(&[("random", random.as_str())])
                    .header("x-authing-app-id", app),
                200,
            )
        };
        // The page polls from the start; the phone acts meanwhile.
        let phone = self.phone_side(&client, n, &random, pause);
        let polls = async {
            loop {
                let answer = check().await?;
                match answer["data"]["status"].as_i64() {
                    Some(2) => {
                        return answer["data"]["ticket"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| Error::from("no ticket"))
                    }
                    Some(0 | 1) => {}
                    _ => return Err(format!("check: {answer}").into()),
                }
                tokio::time::sleep(match pause {
                    Some(_) => Duration::from_millis(800),
                    None => Duration::from_millis(5),
                })
                .await;
            }
        };
        let ((), ticket) = tokio::try_join!(phone, polls)?;
        self.timed(
            "authing_userinfo",
            client
                .post(format!("{}/api/v2/qrcode/userinfo", self.url))
                .header("x-authing-app-id", app)
                .json(&json!({ "ticket": ticket })),
            200,
        )
        .await?;
        Ok(())
    }

    /// The person: scan after a moment, confirm after another.
    async fn phone_side(
        &self,
        client: &Client,
        n: u64,
        random: &str,
        pause: Pause,
    ) -> Result<(), Error> {
        let token = self.phone(n);
        for (step, name) in [("scan", "mp_scan"), ("confirm", "mp_confirm")] {
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
            self.timed(
                name,
                client
                    .post(format!("{}/api/mp/v1/qrcodes/{random}/{step}", self.url))
                    .bearer_auth(token),
                200,
            )
            .await?;
        }
        Ok(())
    }

    async fn login(&self, n: u64, pause: Pause) {
        self.begun
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = Instant::now();
        let res = if n % 2 == 0 {
            self.native(n, pause).await
        } else {
            self.authing(n, pause).await
        };
        if let Err(e) = &res {
            eprintln!("login {n}: {e}");
        }
        self.record("login", start.elapsed(), res.is_ok());
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The tallies so far, emptied.
    fn take(&self) -> BTreeMap<&'static str, Tally> {
        std::mem::take(&mut *self.tallies.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn run(
        self: Arc<Self>,
        pid: u32,
        minutes: u64,
        capacity_secs: u64,
        share: f64,
    ) -> Result<(), Error> {
        // Capacity: 32 logins at a time, no one pausing, for `capacity_secs`.
        let until = Instant::now() + Duration::from_secs(capacity_secs);
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let workers: Vec<_> = (0..32)
            .map(|_| {
                let (soak, counter) = (Arc::clone(&self), Arc::clone(&counter));
                tokio::spawn(async move {
                    while Instant::now() < until {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        soak.login(n, None).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await?;
        }
        let warm = self.take();
        let logins = warm.get("login").map_or(0, |t| t.ms.len() as u64);
        let failed = warm.get("login").map_or(0, |t| t.errors);
        let capacity = logins as f64 / capacity_secs as f64;
        let rate = capacity * share;
        println!(
            "soak_capacity {capacity:.1} logins/s ({failed} failed); holding {rate:.1} logins/s for {minutes} min"
        );
        println!("minute  logins  errors  rss_mb  fds  p99_ms by endpoint");
        // Open loop: a login begins every 1/rate s whatever the others do.
        let soak = Arc::clone(&self);
        let start = tokio::time::Instant::now();
        let pacer = tokio::spawn(async move {
            let mut n = 0u64;
            let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
            let mut tick = tokio::time::interval_at(start, gap);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tick.tick().await;
                n += 1;
                let soak = Arc::clone(&soak);
                tokio::spawn(async move { soak.login(n, Some(Duration::from_millis(1500))).await });
            }
        });
        let mut total_errors = 0;
        let mut rss = Vec::new();
        let mut fds = Vec::new();
        for minute in 1..=minutes {
            tokio::time::sleep_until(start + Duration::from_secs(60 * minute)).await;
            let tallies = self.take();
            let errors: u64 = tallies.values().map(|t| t.errors).sum();
            total_errors += errors;
            let logins = tallies.get("login").map_or(0, |t| t.ms.len());
            let (mb, open) = (rss_mb(pid)?, open_fds(pid)?);
            rss.push(mb);
            fds.push(open);
            let p99s: Vec<String> = tallies
                .into_iter()
                .map(|(name, mut t)| {
                    t.ms.sort_by(f64::total_cmp);
                    format!("{name} {:.1}", percentile(&t.ms, 0.99))
                })
                .collect();
            println!(
                "{minute:>6}  {logins:>6}  {errors:>6}  {mb:>6.1}  {open:>3}  {}",
                p99s.join(", ")
            );
        }
        pacer.abort();
        let at = |v: &[f64], minute: usize| v[(minute.min(v.len())).max(1) - 1];
        if rss.len() >= 5 {
            println!(
                "soak_rss_growth {:.1} % (minute 5 to {minutes}: {:.1} -> {:.1} MB)",
                100.0 * (at(&rss, rss.len()) / at(&rss, 5) - 1.0),
                at(&rss, 5),
                at(&rss, rss.len())
            );
            println!("soak_fds minute 5 {}, last {}", fds[4], fds[fds.len() - 1]);
        }
        println!("soak_errors {total_errors}");
        Ok(())
    }
}

impl Sse {
    /// The `ticket` of the event just read (after [`Sse::until`] found `confirmed`).
    async fn ticket(&mut self) -> Result<String, Error> {
        let needle = b"\"ticket\":\"";
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(at) = self.buf.windows(needle.len()).position(|w| w == needle) {
                let rest = &self.buf[at + needle.len()..];
                if let Some(end) = rest.iter().position(|&b| b == b'"') {
                    return Ok(String::from_utf8_lossy(&rest[..end]).into_owned());
                }
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err("stream closed before the ticket".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn open_fds(pid: u32) -> Result<usize, Error> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}
