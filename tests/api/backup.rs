//! The backup paths the README documents, taken while ScanGate serves logins and restored into
//! a new database that a new instance then serves: `sqlite3 ".backup"` for the embedded
//! default, `pg_dump` and `psql` (Debian's client packages) for PostgreSQL. Every user whose
//! login completed before the backup began is there, and so are the signing keys.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use sqlx::Connection as _;

use crate::deploy::require_tool;
use crate::helpers::{postgres_url, tempdir, Backend, TestApp};
use scangate::crypto::random_token;

/// Logs `n` users in; their ids.
async fn logins(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = app.exchanged(&format!("o-{prefix}-{i}")).await;
        ids.push(body["user"]["id"].as_str().expect("user id").to_owned());
    }
    ids
}

/// Logs users in until told to stop, as the load a backup is taken under.
fn load(app: Arc<TestApp>) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut n = 0;
        while !flag.load(Ordering::Relaxed) {
            app.exchanged(&format!("o-load-{n}")).await;
            n += 1;
        }
        n
    });
    (stop, task)
}

/// The user ids a database holds.
async fn user_ids(url: &str) -> HashSet<String> {
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM users")
        .fetch_all(&pool)
        .await
        .expect("users");
    pool.close().await;
    rows.into_iter().map(|(id,)| id).collect()
}

/// A new instance on the restored database, with the same `secret_key`: it serves the same
/// keys, knows every user, and logs a new one in.
async fn restored_instance_serves(original: &TestApp, restored_url: String, before: &[String]) {
    let secret_key = original.config.secret_key.clone();
    let restored = TestApp::spawn_with(original_backend(original), move |c| {
        c.database_url = restored_url;
        c.secret_key = secret_key;
    })
    .await;
    let jwks: Value = restored.get_json("/oidc/jwks").await;
    assert_eq!(
        jwks,
        original.get_json("/oidc/jwks").await,
        "the restored database holds the signing keys"
    );
    let users = user_ids(&restored.config.database_url).await;
    for id in before {
        assert!(users.contains(id), "user {id} is in the restored database");
    }
    let after = restored.exchanged("o-after-restore").await;
    assert!(after["id_token"].is_string(), "a login after the restore");
}

fn original_backend(app: &TestApp) -> Backend {
    if app.config.database_url.starts_with("sqlite") {
        Backend::Embedded
    } else {
        Backend::Distributed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_taken_while_serving_restores_every_login() {
    let Some(sqlite3) = require_tool("sqlite3") else {
        return;
    };
    let app = Arc::new(TestApp::spawn(Backend::Embedded).await);
    let before = logins(&app, "sqlite", 10).await;
    let (stop, task) = load(Arc::clone(&app));
    let dir = tempdir::Dir::new();
    let backup = dir.0.join("backup.db");
    let source = app
        .config
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite file")
        .to_owned();
    let out = tokio::task::spawn_blocking({
        let (sqlite3, backup) = (sqlite3.clone(), backup.clone());
        move || {
            Command::new(sqlite3)
                .arg(&source)
                .arg(format!(".backup '{}'", backup.display()))
                .output()
                .expect("sqlite3")
        }
    })
    .await
    .expect("backup task");
    stop.store(true, Ordering::Relaxed);
    let during = task.await.expect("load");
    assert!(
        out.status.success(),
        "sqlite3 .backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = Command::new(&sqlite3)
        .arg(&backup)
        .arg("PRAGMA integrity_check")
        .output()
        .expect("integrity check");
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    eprintln!("sqlite backup taken during {during} logins");
    restored_instance_serves(&app, format!("sqlite://{}", backup.display()), &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_taken_while_serving_restores_every_login_with_psql() {
    let (Some(pg_dump), Some(psql)) = (require_tool("pg_dump"), require_tool("psql")) else {
        return;
    };
    let app = Arc::new(TestApp::spawn(Backend::Distributed).await);
    let before = logins(&app, "pg", 10).await;
    let schema = app
        .config
        .database_url
        .rsplit("search_path%3D")
        .next()
        .expect("the test's schema")
        .to_owned();
    let base = postgres_url();
    let (stop, task) = load(Arc::clone(&app));
    let dump = tokio::task::spawn_blocking({
        let (base, schema) = (base.clone(), schema.clone());
        move || {
            Command::new(pg_dump)
                .args(["--no-owner", "--schema", &schema])
                .arg(&base)
                .output()
                .expect("pg_dump")
        }
    })
    .await
    .expect("dump task");
    stop.store(true, Ordering::Relaxed);
    let during = task.await.expect("load");
    assert!(
        dump.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    eprintln!("pg_dump taken during {during} logins");

    // Restored with psql into a new, empty database.
    let database = format!(
        "restore_{}",
        random_token(8)
            .to_ascii_lowercase()
            .replace(['-', '_'], "x")
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("a database in the URL");
    let target = format!("{prefix}/{database}");
    let dir = tempdir::Dir::new();
    let file = dir.0.join("scangate.sql");
    std::fs::write(&file, &dump.stdout).expect("dump file");
    let restore = Command::new(psql)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &target, "-f"])
        .arg(&file)
        .output()
        .expect("psql");
    assert!(
        restore.status.success(),
        "psql restore: {}",
        String::from_utf8_lossy(&restore.stderr)
    );
    restored_instance_serves(
        &app,
        format!("{target}?options=-c%20search_path%3D{schema}"),
        &before,
    )
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

/// `scangate backup` with `DATABASE_URL` set; its exit status and output.
async fn scangate_backup(database_url: &str, to: &std::path::Path) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["backup", "--to"])
        .arg(to)
        .env("DATABASE_URL", database_url)
        .env_remove("REDIS_URL")
        .output()
        .await
        .expect("scangate backup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scangate_backup_taken_while_serving_restores_every_login() {
    let app = Arc::new(TestApp::spawn(Backend::Embedded).await);
    let before = logins(&app, "command", 10).await;
    let (stop, task) = load(Arc::clone(&app));
    let dir = tempdir::Dir::new();
    let file = dir.0.join("scangate-backup.db");
    let (ok, text) = scangate_backup(&app.config.database_url, &file).await;
    stop.store(true, Ordering::Relaxed);
    let during = task.await.expect("load");
    assert!(ok, "scangate backup: {text}");
    assert!(text.contains("backup written"), "{text}");
    eprintln!("scangate backup taken during {during} logins");
    let (ok, text) = scangate_backup(&app.config.database_url, &file).await;
    assert!(
        !ok && text.contains("exists already"),
        "no overwrite: {text}"
    );
    restored_instance_serves(&app, format!("sqlite://{}", file.display()), &before).await;
}

#[tokio::test]
async fn scangate_backup_sends_postgresql_to_pg_dump() {
    let dir = tempdir::Dir::new();
    let (ok, text) = scangate_backup(&postgres_url(), &dir.0.join("x.db")).await;
    assert!(!ok, "refused: {text}");
    assert!(text.contains("pg_dump"), "{text}");
    assert!(!dir.0.join("x.db").exists());
}
