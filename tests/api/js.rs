//! Running the Node programs under `tests/js/` (the real `authing-js-sdk`, and headless Chromium
//! driven by `playwright-core`) against a ScanGate spawned by the test.
//!
//! The npm packages are installed once per test run with `npm ci` from the committed lockfile.
//! Chromium is Debian's (`/usr/bin/chromium`, or `CHROMIUM`); no browser is ever downloaded.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// `tests/js/` of this checkout.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Where tests leave screenshots for people to look at (ignored by git).
pub fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&dir).expect("create tests/artifacts");
    dir
}

/// Debian's Chromium; the test fails with what to install when it is absent.
pub fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "browser tests need Debian's Chromium at {path} (apt-get install chromium fonts-noto-cjk, or set CHROMIUM)"
    );
    path
}

/// Installs `tests/js/node_modules` from the lockfile, once per test binary.
async fn npm_ci() {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let dir = js_dir();
        let stamp = dir.join("node_modules/.package-lock.json");
        let fresh = match (
            std::fs::metadata(&stamp).and_then(|m| m.modified()),
            std::fs::metadata(dir.join("package-lock.json")).and_then(|m| m.modified()),
        ) {
            (Ok(installed), Ok(lock)) => installed >= lock,
            _ => false,
        };
        if fresh {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .await
            .expect("tests/js needs Node.js and npm on PATH: apt-get install nodejs npm");
        assert!(
            out.status.success(),
            "npm ci in tests/js failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}

/// Runs `node tests/js/<script>` with `env`; panics with its output unless it exits 0.
/// Returns its standard output.
pub async fn run_node(script: &str, env: &[(&str, String)]) -> String {
    npm_ci().await;
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(js_dir())
        .env("ARTIFACTS_DIR", artifacts_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .expect("tests/js needs Node.js on PATH: apt-get install nodejs npm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "node {script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn node_imports_the_sdk_and_drives_chromium() {
    chromium();
    let out = run_node("smoke.mjs", &[]).await;
    assert_eq!(out.trim(), "ok");
}
