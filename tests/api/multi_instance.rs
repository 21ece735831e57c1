//! Two `scangate serve` processes sharing PostgreSQL and Redis behave as one service.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{
    cookie_client, fresh_postgres, require_redis, serve, tempdir, APPID, MP_SECRET,
};
use crate::qrcodes::follow_events;
use scangate::crypto::{random_token, SecretBox};
use scangate::wechat::Simulator;

struct Instance {
    base: String,
    _child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `scangate serve` and waits for its "listening" log line.
async fn start(
    config: &std::path::Path,
    db: &str,
    redis_url: &str,
    prefix: &str,
    secret: &str,
) -> Instance {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("SCANGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SCANGATE_PUBLIC_URL", &base)
        .env("DATABASE_URL", db)
        .env("REDIS_URL", redis_url)
        .env("SCANGATE_REDIS_PREFIX", prefix)
        .env("SCANGATE_SECRET_KEY", secret)
        .env("RUST_LOG", "info")
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
    assert_eq!(ready, Ok(true), "scangate serve on port {port} started");
    // Keep draining its log so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Instance {
        base,
        _child: child,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_created_on_one_instance_is_confirmed_through_another() {
    let sim = Simulator::new();
    sim.register_app(APPID, MP_SECRET);
    let sim_base = serve(sim.router()).await;
    let dir = tempdir::Dir::new();
    let config = dir.0.join("scangate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[wechat]
api_base = "{sim_base}"
timeout_ms = 2000

[[miniprograms]]
appid = "{APPID}"
secret = "{MP_SECRET}"

[[apps]]
client_id = "web"
name = "Web"
miniprogram = "{APPID}"
redirect_uris = ["http://127.0.0.1:3000/callback"]
match_number = false
"#
        ),
    )
    .unwrap();
    let db = fresh_postgres().await;
    let redis_url = require_redis().await;
    let prefix = format!("test-{}", random_token(8));
    let secret = SecretBox::generate_key();
    let (a, b) = tokio::join!(
        start(&config, &db, &redis_url, &prefix, &secret),
        start(&config, &db, &redis_url, &prefix, &secret)
    );

    // The browser talks to A only.
    let browser = cookie_client();
    let qr: Value = browser
        .post(format!("{}/api/v1/qrcodes", a.base))
        .json(&json!({ "app_id": "web" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let random = qr["random"].as_str().unwrap().to_owned();
    let bind = qr["bind_token"].as_str().unwrap().to_owned();
    let events = browser
        .get(format!("{}/api/v1/qrcodes/{random}/events", a.base))
        .send()
        .await
        .unwrap();
    let (reader, mut rx) = follow_events(events);
    assert_eq!(rx.recv().await, Some(1));

    // The phone talks to B only.
    let phone = reqwest::Client::new();
    let code = sim.login_code(APPID, "o-multi", None);
    let session: Value = phone
        .post(format!("{}/api/mp/v1/session", b.base))
        .json(&json!({ "appid": APPID, "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap();
    let scan = phone
        .post(format!("{}/api/mp/v1/qrcodes/{random}/scan", b.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(scan.status(), StatusCode::OK);
    let phone_code = sim.phone_code(APPID, "o-multi", "13800000000", "86");
    let confirm = phone
        .post(format!("{}/api/mp/v1/qrcodes/{random}/confirm", b.base))
        .bearer_auth(token)
        .json(&json!({ "phone": { "code": phone_code } }))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);

    // A's waiter hears it.
    let events = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("A's stream closed")
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["status"], "confirmed");
    let ticket = last["ticket"].as_str().unwrap();

    // The exchange works on B for the creator, and the token verifies with A's JWKS.
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/qrcodes/exchange", b.base))
        .header("X-ScanGate-Bind", &bind)
        .json(&json!({ "ticket": ticket }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["phone"], "13800000000");
    let jwks_a: Value = reqwest::get(format!("{}/oidc/jwks", a.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: Value = reqwest::get(format!("{}/oidc/jwks", b.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b, "both instances publish the same keys");
    assert_eq!(
        jwks_a["keys"].as_array().unwrap().len(),
        1,
        "one key despite a simultaneous first start"
    );

    // A second phone number through A uses the access token B fetched.
    let token_a = {
        let code = sim.login_code(APPID, "o-multi", None);
        let s: Value = phone
            .post(format!("{}/api/mp/v1/session", a.base))
            .json(&json!({ "appid": APPID, "code": code }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["token"].as_str().unwrap().to_owned()
    };
    let phone_code = sim.phone_code(APPID, "o-multi", "13900000000", "86");
    let res = phone
        .post(format!("{}/api/mp/v1/me/phone", a.base))
        .bearer_auth(&token_a)
        .json(&json!({ "code": phone_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        sim.token_calls(APPID),
        1,
        "one access token for all instances"
    );
}
