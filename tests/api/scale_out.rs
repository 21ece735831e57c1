//! The deployment proven end to end: Debian's nginx running `deploy/nginx/scangate.conf` as
//! shipped (only the upstream addresses and the listen address are this test's own) in front
//! of three `scangate serve` processes on PostgreSQL + Redis. Concurrent logins through the
//! load balancer, one instance stopped while 200 browsers wait on Server-Sent Events, and a
//! rolling restart of every instance under load. Every wait is bounded; loopback only.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::deploy::{repo_path, require_tool};
use crate::helpers::{fresh_postgres, require_redis, serve, tempdir, APPID, MP_SECRET};
use scangate::crypto::{random_token, SecretBox};
use scangate::wechat::Simulator;

/// The longest one request may take before a login counts as failed.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// The longest a browser waits for its login, reconnections included.
const LOGIN_LIMIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Prints past the test harness's capture: the figures belong in every run's output.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "scale-out: {line}");
}

/// What every instance shares: the configuration file, PostgreSQL, Redis and the key.
struct Cluster {
    config: std::path::PathBuf,
    public_url: String,
    db: String,
    redis: String,
    prefix: String,
    secret: String,
}

/// One `scangate serve` process on a fixed port, restarted on the same port.
struct Instance {
    port: u16,
    child: Option<Child>,
    /// Responses this instance has logged, over all its runs: which instances nginx used.
    served: Arc<AtomicUsize>,
}

impl Cluster {
    async fn start(&self, instance: &mut Instance) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("SCANGATE_LISTEN", format!("127.0.0.1:{}", instance.port))
            .env("SCANGATE_PUBLIC_URL", &self.public_url)
            .env("SCANGATE_LOG_FORMAT", "json")
            .env("DATABASE_URL", &self.db)
            .env("REDIS_URL", &self.redis)
            .env("SCANGATE_REDIS_PREFIX", &self.prefix)
            .env("SCANGATE_SECRET_KEY", &self.secret)
            .env("RUST_LOG", "warn,scangate=info,scangate::router=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn scangate");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("listening") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            ready,
            Ok(true),
            "scangate serve on port {} started",
            instance.port
        );
        let served = Arc::clone(&instance.served);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(r#""message":"response""#) {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        instance.child = Some(child);
    }
}

impl Instance {
    fn new() -> Self {
        Instance {
            port: free_port(),
            child: None,
            served: Arc::default(),
        }
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("instance running")
    }

    /// SIGTERM, as an orchestrator stops a process; returns once it has exited (bounded by the
    /// 20 s drain and a margin).
    async fn stop(&mut self) -> Duration {
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "SIGTERM sent");
        let mut child = self.child.take().expect("instance running");
        let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the instance exits within its drain")
            .expect("wait");
        assert!(exit.success(), "a drained instance exits cleanly: {exit}");
        started.elapsed()
    }

    /// Resident memory in MiB, from /proc.
    fn rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kib / 1024.0
    }

    /// User + system CPU time so far, in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("proc stat");
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        ticks / 100.0
    }
}

/// nginx with the shipped configuration; the upstream lines are the shipped ones with this
/// test's addresses in place of the compose service names.
async fn start_nginx(dir: &Path, port: u16, upstreams: &[u16]) -> Child {
    let nginx = require_tool("nginx").expect("nginx");
    let conf = dir.join("nginx");
    std::fs::create_dir_all(conf.join("scangate")).expect("nginx dir");
    std::fs::copy(
        repo_path("deploy/nginx/scangate.conf"),
        conf.join("scangate.conf"),
    )
    .expect("copy scangate.conf");
    let shipped = std::fs::read_to_string(repo_path("deploy/nginx/scangate/upstreams.conf"))
        .expect("upstreams.conf");
    let template = shipped
        .lines()
        .find(|l| l.trim_start().starts_with("server "))
        .expect("a server line");
    let address = template
        .split_whitespace()
        .nth(1)
        .expect("an address")
        .trim_end_matches(';');
    let servers: String = upstreams
        .iter()
        .map(|p| template.replacen(address, &format!("127.0.0.1:{p}"), 1) + "\n")
        .collect();
    std::fs::write(conf.join("scangate/upstreams.conf"), servers).expect("upstreams");
    std::fs::write(
        conf.join("scangate/listen.conf"),
        format!("listen 127.0.0.1:{port};\n"),
    )
    .expect("listen.conf");
    let d = conf.display();
    std::fs::write(
        conf.join("nginx.conf"),
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nworker_processes 1;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  include scangate.conf;\n}}\n"
        ),
    )
    .expect("nginx.conf");
    let test = std::process::Command::new(&nginx)
        .arg("-t")
        .arg("-p")
        .arg(&conf)
        .arg("-c")
        .arg(conf.join("nginx.conf"))
        .output()
        .expect("nginx -t");
    assert!(
        test.status.success(),
        "nginx accepts deploy/nginx/scangate.conf: {}",
        String::from_utf8_lossy(&test.stderr)
    );
    let child = Command::new(&nginx)
        .arg("-p")
        .arg(&conf)
        .arg("-c")
        .arg(conf.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nginx");
    let up = crate::helpers::eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "nginx listens on {port}");
    child
}

/// The load balancer's address and the phone's side of a login.
#[derive(Clone)]
struct Site {
    lb: String,
    sim: Simulator,
    phone: Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Events,
    LongPoll,
}

/// How a browser's wait went.
struct Waited {
    ticket: String,
    reconnects: usize,
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = reqwest::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_LIMIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {REQUEST_LIMIT:?}")),
    }
}

/// A JSON answer of the expected status, or why not.
async fn expect_json(
    what: &str,
    res: reqwest::Response,
    want: StatusCode,
) -> Result<Value, String> {
    let status = res.status();
    let body = bounded(what, res.text()).await?;
    if status != want {
        return Err(format!("{what}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{what}: {e} in {body}"))
}

impl Site {
    async fn create(&self, browser: &Client) -> Result<String, String> {
        let res = bounded(
            "create",
            browser
                .post(format!("{}/api/v1/qrcodes", self.lb))
                .json(&json!({ "app_id": "web" }))
                .send(),
        )
        .await?;
        let qr = expect_json("create", res, StatusCode::CREATED).await?;
        Ok(qr["random"].as_str().ok_or("create: no random")?.to_owned())
    }

    /// The phone logs in, scans and confirms.
    async fn confirm(&self, openid: &str, random: &str) -> Result<(), String> {
        let code = self.sim.login_code(APPID, openid, None);
        let res = bounded(
            "session",
            self.phone
                .post(format!("{}/api/mp/v1/session", self.lb))
                .json(&json!({ "appid": APPID, "code": code }))
                .send(),
        )
        .await?;
        let session = expect_json("session", res, StatusCode::OK).await?;
        let token = session["token"].as_str().ok_or("session: no token")?;
        for step in ["scan", "confirm"] {
            let res = bounded(
                step,
                self.phone
                    .post(format!("{}/api/mp/v1/qrcodes/{random}/{step}", self.lb))
                    .bearer_auth(token)
                    .send(),
            )
            .await?;
            expect_json(step, res, StatusCode::OK).await?;
        }
        Ok(())
    }

    /// Waits for the confirmation as a browser does, reconnecting whenever the connection ends
    /// before a final state. `opened` counts browsers that have seen their first status.
    async fn wait(
        &self,
        browser: &Client,
        random: &str,
        how: Wait,
        opened: &AtomicUsize,
    ) -> Result<Waited, String> {
        let deadline = Instant::now() + LOGIN_LIMIT;
        let mut reconnects = 0;
        let mut first = true;
        let mut known = "pending".to_owned();
        loop {
            if Instant::now() > deadline {
                return Err(format!("no confirmation within {LOGIN_LIMIT:?}"));
            }
            let mut seen_one = || {
                if std::mem::take(&mut first) {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
            };
            let seen = match how {
                Wait::Events => {
                    self.follow_events(browser, random, &mut known, &mut seen_one)
                        .await
                }
                Wait::LongPoll => {
                    let seen = self.long_poll(browser, random, &mut known).await;
                    seen_one();
                    seen
                }
            };
            match seen {
                Ok(Some(ticket)) => return Ok(Waited { ticket, reconnects }),
                // The stream ended (an instance drained) or the poll answered: go on.
                Ok(None) => {}
                Err(e) if e.starts_with("final") => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            if how == Wait::Events {
                reconnects += 1;
            }
        }
    }

    /// One event-stream connection: the ticket if it confirmed, `None` if the stream ended
    /// first.
    async fn follow_events(
        &self,
        browser: &Client,
        random: &str,
        known: &mut String,
        seen_one: &mut (dyn FnMut() + Send),
    ) -> Result<Option<String>, String> {
        let res = bounded(
            "events",
            browser
                .get(format!("{}/api/v1/qrcodes/{random}/events", self.lb))
                .send(),
        )
        .await?;
        if res.status() != StatusCode::OK {
            return Err(format!("events: {}", res.status()));
        }
        let mut stream = res.bytes_stream();
        let mut buf = String::new();
        let deadline = tokio::time::Instant::now() + LOGIN_LIMIT;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => return Err("events: stream idle too long".into()),
                Ok(None) => return Ok(None),
                Ok(Some(Err(_))) => return Ok(None),
                Ok(Some(Ok(chunk))) => chunk,
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if !block.lines().any(|l| l == "event: status") {
                    continue;
                }
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                let view: Value =
                    serde_json::from_str(&data).map_err(|e| format!("event: {e} in {data}"))?;
                seen_one();
                if let Some(found) = outcome(&view, known)? {
                    return Ok(Some(found));
                }
            }
        }
    }

    /// One long poll.
    async fn long_poll(
        &self,
        browser: &Client,
        random: &str,
        known: &mut String,
    ) -> Result<Option<String>, String> {
        let res = bounded(
            "long poll",
            browser
                .get(format!(
                    "{}/api/v1/qrcodes/{random}?wait=25&status={known}",
                    self.lb
                ))
                .send(),
        )
        .await?;
        let view = expect_json("long poll", res, StatusCode::OK).await?;
        outcome(&view, known)
    }

    async fn exchange(&self, browser: &Client, ticket: &str) -> Result<reqwest::Response, String> {
        bounded(
            "exchange",
            browser
                .post(format!("{}/api/v1/qrcodes/exchange", self.lb))
                .json(&json!({ "ticket": ticket }))
                .send(),
        )
        .await
    }

    /// One whole login: create, wait (while the phone scans and confirms), exchange.
    async fn login(&self, openid: String, how: Wait) -> Result<Value, String> {
        let browser = browser();
        let random = self.create(&browser).await?;
        let opened = AtomicUsize::new(0);
        let (waited, confirmed) = tokio::join!(
            self.wait(&browser, &random, how, &opened),
            self.confirm(&openid, &random)
        );
        confirmed?;
        let waited = waited?;
        let res = self.exchange(&browser, &waited.ticket).await?;
        expect_json("exchange", res, StatusCode::OK).await
    }
}

/// The ticket of a confirmed view; `None` while it is not final; an error for another final
/// state. Remembers the status for the next long poll.
fn outcome(view: &Value, known: &mut String) -> Result<Option<String>, String> {
    let status = view["status"].as_str().unwrap_or_default();
    *known = status.to_owned();
    match status {
        "confirmed" => Ok(Some(
            view["ticket"]
                .as_str()
                .ok_or("confirmed without a ticket for its browser")?
                .to_owned(),
        )),
        "pending" | "scanned" => Ok(None),
        other => Err(format!("final state {other}")),
    }
}

fn config_file(dir: &Path, sim_base: &str) -> std::path::PathBuf {
    let path = dir.join("scangate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[wechat]
api_base = "{sim_base}"
timeout_ms = 5000

# Every browser of this test comes from one address.
[rate_limits]
qrcodes_per_minute = 0
sessions_per_minute = 0
exchanges_per_minute = 0

[[miniprograms]]
appid = "{APPID}"
secret = "{MP_SECRET}"

[[apps]]
client_id = "web"
name = "Web"
miniprogram = "{APPID}"
redirect_uris = ["http://127.0.0.1:3000/callback"]
qr_ttl_secs = 600
match_number = false
"#
        ),
    )
    .expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_of_three_instances_loses_no_login_when_instances_stop() {
    if require_tool("nginx").is_none() {
        return;
    }
    let sim = Simulator::new();
    sim.register_app(APPID, MP_SECRET);
    let sim_base = serve(sim.router()).await;
    let dir = tempdir::Dir::new();
    let lb_port = free_port();
    let lb = format!("http://127.0.0.1:{lb_port}");
    let cluster = Cluster {
        config: config_file(&dir.0, &sim_base),
        public_url: lb.clone(),
        db: fresh_postgres().await,
        redis: require_redis().await,
        prefix: format!("test-{}", random_token(8)),
        secret: SecretBox::generate_key(),
    };
    let mut instances: Vec<Instance> = (0..3).map(|_| Instance::new()).collect();
    for instance in instances.iter_mut() {
        cluster.start(instance).await;
    }
    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    let _nginx = start_nginx(&dir.0, lb_port, &ports).await;
    let site = Site {
        lb: lb.clone(),
        sim: sim.clone(),
        phone: Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
    };

    // 1. Concurrent logins, half waiting on events and half long-polling.
    let cpu_before: f64 = instances.iter().map(Instance::cpu_secs).sum();
    let started = Instant::now();
    let logins = 60;
    let results = futures::future::join_all((0..logins).map(|i| {
        let how = if i % 2 == 0 {
            Wait::Events
        } else {
            Wait::LongPoll
        };
        site.login(format!("o-concurrent-{i}"), how)
    }))
    .await;
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "concurrent logins failed: {failures:?}"
    );
    let users: std::collections::HashSet<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|v| v["user"]["id"].as_str())
        .collect();
    assert_eq!(users.len(), logins, "one user per login");
    let served: Vec<usize> = instances
        .iter()
        .map(|i| i.served.load(Ordering::Relaxed))
        .collect();
    assert!(
        served.iter().all(|&n| n > 0),
        "nginx spread the logins over every instance: {served:?}"
    );
    let cpu: f64 = instances.iter().map(Instance::cpu_secs).sum::<f64>() - cpu_before;
    report(&format!(
        "{logins} concurrent logins through nginx on 3 instances in {:.2} s, failures 0, \
         responses per instance {served:?}, ScanGate CPU {:.1} ms per login",
        started.elapsed().as_secs_f64(),
        cpu * 1000.0 / logins as f64
    ));

    // One hop believed: a browser's own X-Forwarded-For is replaced by the address nginx saw,
    // and the metrics stay inside.
    let spoofing = browser();
    let res = spoofing
        .post(format!("{lb}/api/v1/qrcodes"))
        .header("x-forwarded-for", "203.0.113.66")
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .expect("create");
    let random = expect_json("create", res, StatusCode::CREATED)
        .await
        .expect("create")["random"]
        .as_str()
        .expect("random")
        .to_owned();
    let code = sim.login_code(APPID, "o-spoofing", None);
    let res = site
        .phone
        .post(format!("{lb}/api/mp/v1/session"))
        .json(&json!({ "appid": APPID, "code": code }))
        .send()
        .await
        .expect("session");
    let session = expect_json("session", res, StatusCode::OK)
        .await
        .expect("session");
    let res = site
        .phone
        .post(format!("{lb}/api/mp/v1/qrcodes/{random}/scan"))
        .bearer_auth(session["token"].as_str().expect("token"))
        .send()
        .await
        .expect("scan");
    let scan = expect_json("scan", res, StatusCode::OK)
        .await
        .expect("scan");
    assert_eq!(
        scan["requester"]["ip"], "127.0.0.1",
        "the requester is the address nginx saw, not the one the browser claimed"
    );
    let metrics = site
        .phone
        .get(format!("{lb}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        metrics.status(),
        StatusCode::NOT_FOUND,
        "no metrics through nginx"
    );

    // 2. 200 browsers wait on events; one instance stops; every browser gets its login.
    let waiters = 200;
    let browsers: Vec<Client> = (0..waiters).map(|_| browser()).collect();
    let mut randoms = Vec::new();
    for b in &browsers {
        randoms.push(site.create(b).await.expect("create"));
    }
    let opened = Arc::new(AtomicUsize::new(0));
    let waiting: Vec<_> = browsers
        .iter()
        .zip(&randoms)
        .map(|(b, random)| {
            let (site, b, random, opened) =
                (site.clone(), b.clone(), random.clone(), Arc::clone(&opened));
            tokio::spawn(async move { site.wait(&b, &random, Wait::Events, &opened).await })
        })
        .collect();
    let all_open = crate::helpers::eventually(Duration::from_secs(30), || {
        let opened = Arc::clone(&opened);
        async move { opened.load(Ordering::Relaxed) == waiters }
    })
    .await;
    assert!(all_open, "{waiters} event streams open through nginx");
    let rss: Vec<String> = instances
        .iter()
        .map(|i| format!("{:.1}", i.rss_mib()))
        .collect();
    report(&format!(
        "{waiters} browsers on event streams; instance RSS {rss:?} MiB"
    ));
    let stopping = instances.remove(0);
    let stopped = tokio::spawn(async move {
        let mut stopping = stopping;
        let took = stopping.stop().await;
        (stopping, took)
    });
    // Phones confirm while the instance drains and its browsers reconnect.
    let confirms = futures::future::join_all(
        randoms
            .iter()
            .enumerate()
            .map(|(i, random)| site.confirm_owned(format!("o-waiter-{i}"), random.clone())),
    )
    .await;
    let failed: Vec<&String> = confirms.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "confirmations failed: {failed:?}");
    let (stopped, drain) = stopped.await.expect("stop task");
    instances.insert(0, stopped);
    let mut tickets = Vec::new();
    let mut reconnects = 0;
    let mut reconnected = 0;
    for w in waiting {
        let waited = tokio::time::timeout(LOGIN_LIMIT, w)
            .await
            .expect("browser done")
            .expect("browser task")
            .expect("every browser gets its login");
        reconnects += waited.reconnects;
        reconnected += usize::from(waited.reconnects > 0);
        tickets.push(waited.ticket);
    }
    assert!(
        reconnected > 0,
        "some browsers were on the stopped instance"
    );
    let mut exchanged = std::collections::HashSet::new();
    for (b, ticket) in browsers.iter().zip(&tickets) {
        let res = site.exchange(b, ticket).await.expect("exchange");
        let body = expect_json("exchange", res, StatusCode::OK)
            .await
            .expect("exchange");
        exchanged.insert(body["user"]["id"].as_str().expect("user").to_owned());
        let again = site.exchange(b, ticket).await.expect("second exchange");
        assert_eq!(
            again.status(),
            StatusCode::BAD_REQUEST,
            "a ticket is used once, whichever instance sees it"
        );
    }
    assert_eq!(exchanged.len(), waiters, "every login once, none doubled");
    report(&format!(
        "SIGTERM of one instance under {waiters} SSE waiters: drained in {:.2} s, \
         {reconnected} browsers reconnected ({reconnects} reconnections), {waiters} logins, \
         lost 0, doubled 0",
        drain.as_secs_f64()
    ));
    cluster.start(&mut instances[0]).await;
    let served_before = instances[0].served.load(Ordering::Relaxed);
    let back = crate::helpers::eventually(Duration::from_secs(30), || {
        let served = Arc::clone(&instances[0].served);
        let site = site.clone();
        async move {
            // Traffic through nginx until the restarted instance has answered some of it.
            let _ = site.create(&browser()).await;
            served.load(Ordering::Relaxed) > served_before
        }
    })
    .await;
    assert!(back, "the stopped instance serves again after its restart");

    // 3. A rolling restart of every instance under load: no login fails.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|worker| {
            let (site, stop, done) = (site.clone(), Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let how = if n % 2 == 0 {
                        Wait::Events
                    } else {
                        Wait::LongPoll
                    };
                    match site.login(format!("o-rolling-{worker}-{n}"), how).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push(e),
                    }
                    n += 1;
                }
                errors
            })
        })
        .collect();
    let rolling = Instant::now();
    for (i, instance) in instances.iter_mut().enumerate() {
        let before = done.load(Ordering::Relaxed);
        instance.stop().await;
        cluster.start(instance).await;
        // The next instance stops only once this one serves again through nginx and the load
        // has moved on.
        let served_before = instance.served.load(Ordering::Relaxed);
        let served = Arc::clone(&instance.served);
        let back = crate::helpers::eventually(Duration::from_secs(30), || {
            let served = Arc::clone(&served);
            let done = Arc::clone(&done);
            async move {
                served.load(Ordering::Relaxed) > served_before
                    && done.load(Ordering::Relaxed) > before
            }
        })
        .await;
        assert!(back, "instance {i} serves again after its restart");
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for worker in load {
        errors.extend(
            tokio::time::timeout(LOGIN_LIMIT * 2, worker)
                .await
                .expect("load worker ends")
                .expect("load task"),
        );
    }
    let completed = done.load(Ordering::Relaxed);
    assert!(
        errors.is_empty(),
        "logins failed during the rolling restart: {errors:?}"
    );
    assert!(completed > 0, "logins completed during the rolling restart");
    report(&format!(
        "rolling restart of 3 instances under 8 concurrent login loops in {:.2} s: \
         {completed} logins, failures 0",
        rolling.elapsed().as_secs_f64()
    ));
}

impl Site {
    async fn confirm_owned(&self, openid: String, random: String) -> Result<(), String> {
        self.confirm(&openid, &random).await
    }
}
