//! The operator commands (`app create`, `app list`, `admin create`, `migrate`, `keys rotate`,
//! `--help`), run as the real binary against the test's database, and what every command
//! prints: errors once and without colour, the variable behind a bad setting, start-up lines
//! that name pages which answer.

use std::process::{Output, Stdio};

use reqwest::StatusCode;
use scangate::crypto::verify_password;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::helpers::{TestApp, APPID, APPID_OTHER};

/// Runs `scangate ARGS` against `app`'s database, with `stdin` on standard input.
async fn run(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let secret = app.config.secret_key.as_ref().unwrap().expose().to_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("SCANGATE_SECRET_KEY", secret)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value printed after `label` (`client_secret: …`).
fn printed(out: &Output, label: &str) -> Option<String> {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_owned())
}

const CALLBACK: &str = "http://127.0.0.1:4000/callback";

async fn create_shop(app: &TestApp, extra: &[&str]) -> Output {
    create_shop_of(app, APPID, extra).await
}

async fn create_shop_of(app: &TestApp, miniprogram: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "app",
        "create",
        "--client-id",
        "shop",
        "--name",
        "Shop",
        "--miniprogram",
        miniprogram,
        "--redirect-uri",
        CALLBACK,
        "--allowed-origin",
        "http://127.0.0.1:4000",
    ];
    args.extend_from_slice(extra);
    run(app, &args, None).await
}

/// A token request that reaches client authentication; the refresh token itself is bogus.
async fn token_with(app: &TestApp, client_id: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oidc/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "bogus")])
        .send()
        .await
        .unwrap()
}

async fn oauth_error(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn a_created_app_works_and_its_secret_is_shown_once(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let out = create_shop(&app, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(printed(&out, "client_id:").as_deref(), Some("shop"));
    let secret = printed(&out, "client_secret:").expect("the secret is printed");
    assert!(secret.len() >= 40, "{secret}");
    assert!(stdout(&out).contains("cannot be shown again"));
    assert!(!stderr(&out).contains(&secret), "the secret is not logged");

    // Stored hashed with Argon2id; never in clear.
    let stored = scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .unwrap();
    let hash = stored.client_secret_hash.clone().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(&secret));
    assert!(verify_password(&secret, &hash));
    assert_eq!(stored.redirect_uris, vec![CALLBACK.to_owned()]);
    assert!(stored.require_binding);
    assert_eq!(stored.qr_ttl_secs, 120);

    // The running instance serves it at once: QR codes, and client authentication.
    let qr = app.create_qr_for(&app.client, "shop").await;
    assert!(qr["random"].is_string());
    let (status, error) = oauth_error(token_with(&app, "shop", &secret).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, error) = oauth_error(token_with(&app, "shop", "not-the-secret").await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );

    // A restart upserts the configured apps and leaves this one as it is.
    let restarted = scangate::app::App::build(app.config.clone()).await.unwrap();
    let after = scangate::store::apps::get(&restarted.state().db, "shop")
        .await
        .unwrap()
        .expect("still there after a restart");
    assert_eq!(after.client_secret_hash.as_deref(), Some(hash.as_str()));

    let list = run(&app, &["app", "list"], None).await;
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    for id in ["shop", "web", "open", "other"] {
        assert!(text.lines().any(|l| l.starts_with(id)), "{id} in {text}");
    }
    assert!(!text.contains(&secret) && !text.contains("$argon2"));
}

async fn a_public_app_has_no_secret(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let out = create_shop(&app, &["--public", "--no-binding", "--qr-ttl-secs", "300"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(printed(&out, "client_secret:"), None);
    let stored = scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.client_secret_hash.is_none());
    assert!(!stored.require_binding);
    assert_eq!(stored.qr_ttl_secs, 300);
    let qr = app.create_qr_for(&app.client, "shop").await;
    assert_eq!(qr["expires_in"], 300);
}

async fn an_existing_client_id_is_refused(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let before = scangate::store::apps::get(&app.state.db, "web")
        .await
        .unwrap()
        .unwrap();
    let out = run(
        &app,
        &[
            "app",
            "create",
            "--client-id",
            "web",
            "--name",
            "Imposter",
            "--miniprogram",
            APPID,
            "--redirect-uri",
            CALLBACK,
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("`web` already exists"), "{err}");
    assert_eq!(printed(&out, "client_secret:"), None);
    let after = scangate::store::apps::get(&app.state.db, "web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.name, before.name);
    assert_eq!(after.client_secret_hash, before.client_secret_hash);

    // The same holds for one created by the command itself.
    assert!(create_shop(&app, &[]).await.status.success());
    let again = create_shop(&app, &[]).await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("`shop` already exists"));
}

async fn bad_flags_are_named_and_nothing_is_stored(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let cases: [(&[&str], &str); 5] = [
        (
            &["--redirect-uri", "not a url"],
            "--redirect-uri `not a url`",
        ),
        (
            &["--allowed-origin", "ftp://x"],
            "--allowed-origin `ftp://x`",
        ),
        (&["--qr-ttl-secs", "5"], "--qr-ttl-secs"),
        (&["--logo", "/nonexistent/logo.png"], "--logo"),
        (
            &["--post-logout-redirect-uri", "javascript:alert(1)"],
            "--post-logout-redirect-uri",
        ),
    ];
    for (extra, flag) in cases {
        let out = create_shop(&app, extra).await;
        assert!(!out.status.success(), "{extra:?}");
        let err = stderr(&out);
        assert!(err.contains(flag), "{flag} in {err}");
    }
    for (args, flag) in [
        (["--client-id", "no spaces"], "--client-id"),
        (["--miniprogram", "wx-nope"], "--miniprogram"),
    ] {
        let mut all = vec!["app", "create", "--name", "X", "--redirect-uri", CALLBACK];
        if args[0] != "--client-id" {
            all.extend_from_slice(&["--client-id", "shop"]);
        }
        if args[0] != "--miniprogram" {
            all.extend_from_slice(&["--miniprogram", APPID]);
        }
        all.extend_from_slice(&args);
        let out = run(&app, &all, None).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains(flag), "{flag} in {}", stderr(&out));
    }
    // A Mini Program of another pool, and one nobody configured.
    let out = create_shop_of(&app, APPID_OTHER, &["--pool", "default"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pool"), "{}", stderr(&out));
    let out = create_shop_of(&app, "wx00000000000000ff", &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wx00000000000000ff"),
        "{}",
        stderr(&out)
    );
    assert!(scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .is_none());
}

async fn admins_are_created_once_with_a_strong_password(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let password = "correct horse battery staple";
    let out = run(
        &app,
        &[
            "admin",
            "create",
            "--username",
            "ops.admin",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(password));
    let admin = scangate::store::admins::get(&app.state.db, "ops.admin")
        .await
        .unwrap()
        .expect("the admin is stored");
    assert!(admin.password_hash.starts_with("$argon2id$"));
    assert!(verify_password(password, &admin.password_hash));
    assert!(!verify_password(
        "correct horse battery stapl",
        &admin.password_hash
    ));

    // Taken username: refused, the stored hash unchanged.
    let out = run(
        &app,
        &[
            "admin",
            "create",
            "--username",
            "ops.admin",
            "--password-stdin",
        ],
        Some("another long password\n"),
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let same = scangate::store::admins::get(&app.state.db, "ops.admin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.password_hash, admin.password_hash);

    // Too short a password, a bad username: refused, nothing stored.
    let out = run(
        &app,
        &[
            "admin",
            "create",
            "--username",
            "shorty",
            "--password-stdin",
        ],
        Some("elevenchars\n"),
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("at least 12"), "{}", stderr(&out));
    let out = run(&app, &["admin", "create", "--username", "Bad Name"], None).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--username"), "{}", stderr(&out));
    for name in ["shorty", "Bad Name"] {
        assert!(scangate::store::admins::get(&app.state.db, name)
            .await
            .unwrap()
            .is_none());
    }

    // A generated password: printed once, and it is the stored one.
    let out = run(&app, &["admin", "create", "--username", "second"], None).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = printed(&out, "password:").expect("a generated password is printed");
    assert!(generated.len() >= 20);
    assert!(stdout(&out).contains("cannot be shown again"));
    let second = scangate::store::admins::get(&app.state.db, "second")
        .await
        .unwrap()
        .unwrap();
    assert!(verify_password(&generated, &second.password_hash));
    assert_eq!(second.role, "owner", "an owner of every pool by default");
    assert_eq!(second.pool, None);

    // A role and a pool scope.
    let out = run(
        &app,
        &[
            "admin",
            "create",
            "--username",
            "watcher",
            "--role",
            "viewer",
            "--pool",
            "other",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let watcher = scangate::store::admins::get(&app.state.db, "watcher")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (watcher.role.as_str(), watcher.pool.as_deref()),
        ("viewer", Some("other"))
    );
    for bad in [["--role", "boss"], ["--pool", "nope"]] {
        let out = run(
            &app,
            &["admin", "create", "--username", "third", bad[0], bad[1]],
            None,
        )
        .await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains(bad[0]), "{}", stderr(&out));
    }
    assert!(scangate::store::admins::get(&app.state.db, "third")
        .await
        .unwrap()
        .is_none());
}

crate::both_backends!(
    a_created_app_works_and_its_secret_is_shown_once,
    a_public_app_has_no_secret,
    an_existing_client_id_is_refused,
    bad_flags_are_named_and_nothing_is_stored,
    admins_are_created_once_with_a_strong_password,
    migrate_says_how_many_migrations_it_applied,
    keys_rotate_says_when_the_new_key_takes_effect,
    an_api_key_is_printed_once_and_opens_the_management_api,
    a_logo_file_given_to_app_create_is_shown,
);

#[tokio::test]
async fn every_command_has_help() {
    let commands: [&[&str]; 9] = [
        &[],
        &["dev"],
        &["serve"],
        &["migrate"],
        &["keys", "rotate"],
        &["app", "create"],
        &["app", "list"],
        &["admin", "create"],
        &["admin"],
    ];
    for command in commands {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(command)
            .arg("--help")
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{command:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: scangate"), "{command:?}: {text}");
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["app", "create", "--help"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--client-id",
        "--name",
        "--miniprogram",
        "--redirect-uri",
        "--allowed-origin",
        "--post-logout-redirect-uri",
        "--pool",
        "--public",
        "--qr-ttl-secs",
        "--no-binding",
        "--logo",
        "--config",
    ] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
}

/// Runs `scangate ARGS` with `env`, nothing on standard input.
async fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failing_command_prints_its_error_once_and_without_colour() {
    // Refused before any database is reached: the error is all there is to print.
    let out = run_env(&["admin", "create", "--username", "Bad Name"], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.matches("--username must be").count(), 1, "{err}");
    assert!(err.starts_with("scangate: --username"), "{err}");
    assert!(!err.contains('\x1b'), "no colour codes on a pipe: {err:?}");
    assert!(!err.contains("ERROR"), "not a log line as well: {err}");
}

#[tokio::test]
async fn a_bad_environment_variable_is_named() {
    for (var, value) in [
        ("SCANGATE_LISTEN", "not-an-address"),
        ("SCANGATE_WECHAT__TIMEOUT_MS", "5"),
        ("SCANGATE_PUBLIC_URL", "ftp://example.com"),
    ] {
        let out = run_env(&["migrate"], &[(var, value)]).await;
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("environment variable {var}")),
            "{err}"
        );
        assert!(!err.contains(".rs:"), "no source line: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn every_config_flag_says_what_it_is() {
    let commands: [&[&str]; 7] = [
        &["dev"],
        &["serve"],
        &["migrate"],
        &["keys", "rotate"],
        &["app", "create"],
        &["app", "list"],
        &["admin", "create"],
    ];
    for command in commands {
        let out = run_env(&[command, &["--help"]].concat(), &[]).await;
        let text = stdout(&out);
        let mut lines = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("--config"));
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{command:?}: no --config in {text}"));
        // Short help sits beside the flag; long help on the line below.
        let beside = line
            .trim_start()
            .trim_start_matches("--config <FILE>")
            .trim();
        let help = if beside.is_empty() {
            lines.next().unwrap_or_default().trim()
        } else {
            beside
        };
        assert!(help.contains("onfiguration file"), "{command:?}: {text}");
    }
}

/// A database nobody has migrated yet, of `backend`'s kind (SQLite in `dir`).
async fn empty_database(backend: crate::helpers::Backend, dir: &std::path::Path) -> String {
    match backend {
        crate::helpers::Backend::Embedded => format!("sqlite://{}/fresh.db", dir.display()),
        crate::helpers::Backend::Distributed => crate::helpers::fresh_postgres().await,
    }
}

async fn migrate_says_how_many_migrations_it_applied(backend: crate::helpers::Backend) {
    let dir = crate::helpers::tempdir::Dir::new();
    let db = empty_database(backend, &dir.0).await;
    let count = |dir: &str| {
        std::fs::read_dir(format!("{}/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
            })
            .count()
    };
    // PostgreSQL applies its own indexes besides the shared schema.
    let migrations = match backend {
        crate::helpers::Backend::Embedded => count("migrations"),
        crate::helpers::Backend::Distributed => count("migrations") + count("migrations/postgres"),
    };
    let env = [("DATABASE_URL", db.as_str())];
    let out = run_env(&["migrate"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("applied {migrations} migrations")
    );
    let again = run_env(&["migrate"], &env).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));
}

async fn keys_rotate_says_when_the_new_key_takes_effect(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let out = run(&app, &["keys", "rotate", "--alg", "ES256"], None).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let kid = scangate::store::keys::list(&app.state.db, "default")
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.active)
        .unwrap()
        .kid;
    assert!(
        text.contains(&format!("new ES256 signing key {kid} added")),
        "{text}"
    );
    assert!(text.contains("within 60 seconds"), "{text}");
    assert!(text.contains("stays in the JWKS for 70 minutes"), "{text}");

    let out = run(&app, &["keys", "rotate", "--pool", "nope"], None).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no user pool `nope`"), "{err}");
    assert!(err.contains("when the server first starts"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Starts `scangate MODE` on a free port against a new SQLite file; returns the child and its
/// "listening" log line (and, in dev mode, the banner after it).
async fn start(mode: &str, dir: &std::path::Path) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .arg(mode)
        .env("SCANGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SCANGATE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/{mode}.db", dir.display()),
        )
        .env(
            "SCANGATE_SECRET_KEY",
            scangate::crypto::SecretBox::generate_key(),
        )
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let wanted = if mode == "dev" {
        "Phone simulator"
    } else {
        "listening"
    };
    let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "scangate {mode} started:\n{seen}");
    (child, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_lines_name_pages_that_answer_in_plain_text() {
    let dir = crate::helpers::tempdir::Dir::new();
    for mode in ["serve", "dev"] {
        let (mut child, log) = start(mode, &dir.0).await;
        assert!(!log.contains('\x1b'), "no colour codes on a pipe: {log:?}");
        let urls: Vec<&str> = log
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter_map(|w| w.find("http://").map(|i| &w[i..]))
            .collect();
        let expected = if mode == "dev" { 4 } else { 2 };
        assert_eq!(urls.len(), expected, "{mode}: {log}");
        for url in urls {
            let res = reqwest::get(url).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{mode}: {url}");
        }
        child.kill().await.unwrap();
    }
}

async fn an_api_key_is_printed_once_and_opens_the_management_api(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let out = run(
        &app,
        &[
            "admin",
            "key",
            "create",
            "--name",
            "deploy-bot",
            "--role",
            "admin",
            "--pool",
            "other",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let key = printed(&out, "key:").expect("the key is printed");
    assert!(key.starts_with("sgk_"));
    let apps: Value = app
        .client
        .get(app.url("/api/admin/v1/apps"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["other"], "limited to its pool: {apps}");
    // Only its hash is stored.
    let stored = |value: String| {
        let db = app.state.db.pool.clone();
        async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM admin_api_keys WHERE key_hash = $1")
                .bind(value)
                .fetch_one(&db)
                .await
                .unwrap();
            sqlx::Row::try_get::<i64, _>(&row, "n").unwrap()
        }
    };
    assert_eq!(stored(key.clone()).await, 0);
    assert_eq!(
        stored(scangate::crypto::sha256_hex(key.as_bytes())).await,
        1
    );

    let bad = run(
        &app,
        &["admin", "key", "create", "--name", "x", "--role", "god"],
        None,
    )
    .await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--role must be viewer, admin or owner"));
    let unknown = run(
        &app,
        &["admin", "key", "create", "--name", "x", "--pool", "nope"],
        None,
    )
    .await;
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no pool `nope`"),
        "{}",
        stderr(&unknown)
    );
}

async fn a_logo_file_given_to_app_create_is_shown(backend: crate::helpers::Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = crate::helpers::tempdir::Dir::new();
    let file = dir.0.join("logo.png");
    let img = image::RgbImage::from_pixel(40, 40, image::Rgb([0, 120, 255]));
    img.save(&file).unwrap();
    let out = create_shop(&app, &["--logo", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = scangate::store::apps::get(&app.state.db, "shop")
        .await
        .unwrap()
        .unwrap();
    let path = stored.logo.unwrap();
    assert!(path.starts_with("/media/logos/"), "{path}");
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the logo is served");
    let url = format!(
        "{}?response_type=code&client_id=shop&redirect_uri={}&scope=openid&state=s",
        app.url("/oidc/auth"),
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>(),
    );
    let page = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&path),
        "the hosted page shows the logo, not a broken file path"
    );
}
