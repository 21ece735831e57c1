//! An independent relying party in the suite: `tests/python/authlib_rp.py`, on Python's
//! Authlib (another OpenID Connect library than the `openidconnect` crate of `oidc`), runs
//! the code flow with PKCE, refresh, userinfo and logout against a live
//! ScanGate, so that a deviation from the specs shows up here first.
//!
//! A second script, `tests/python/device_client.py`, is an independent device-flow client
//! (RFC 8628) on Authlib and `requests`, while the test plays the phone and the clock.
//!
//! The packages are installed from PyPI, pinned by `tests/python/requirements.txt`, into a
//! virtual environment under `tests/python/.venv` (ignored by git) once per change of that
//! file. Where Python or its `venv` module is missing the test says so and passes, except in
//! CI (`CI` set), where it fails: CI installs what it needs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID, CLIENT_SECRET};
use crate::oidc::CALLBACK;

pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The interpreter on PATH (or `PYTHON`) that makes the virtual environment.
fn system_python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

async fn run(cmd: &mut Command) -> Result<String, String> {
    match cmd.stdin(Stdio::null()).kill_on_drop(true).output().await {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The virtual environment's interpreter with the pinned packages, made once per test run;
/// `None` when Python cannot make one outside CI.
pub async fn venv_python() -> Option<PathBuf> {
    static VENV: OnceCell<Option<PathBuf>> = OnceCell::const_new();
    VENV.get_or_init(|| async {
        let venv = python_dir().join(".venv");
        let python = venv.join("bin/python");
        let requirements = python_dir().join("requirements.txt");
        let wanted = std::fs::read(&requirements).expect("tests/python/requirements.txt");
        let stamp = venv.join("requirements.installed");
        if python.exists() && std::fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
            return Some(python);
        }
        let made = run(Command::new(system_python()).args(["-m", "venv", "--clear"]).arg(&venv)).await;
        if let Err(why) = made {
            let need = "the Python relying party needs python3 with venv and pip (Debian: apt-get install python3-venv python3-pip)";
            assert!(std::env::var_os("CI").is_none(), "{need}: {why}");
            eprintln!("skipping the Python relying party: {need}: {why}");
            return None;
        }
        let installed = run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements))
        .await;
        if let Err(why) = installed {
            panic!("pip could not install tests/python/requirements.txt from PyPI: {why}");
        }
        std::fs::write(&stamp, &wanted).expect("write the venv's stamp");
        Some(python)
    })
    .await
    .clone()
}

both_backends!(
    authlib_runs_the_code_flow_refresh_userinfo_and_logout,
    an_authlib_device_client_completes_the_grant_approved_on_the_phone,
);

async fn authlib_runs_the_code_flow_refresh_userinfo_and_logout(backend: Backend) {
    let Some(python) = venv_python().await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let openid = "o-authlib";
    let phone_token = app.mp_login(APPID, openid).await;
    // A number outside mainland China, so the E.164 prefix is not taken for granted.
    let phone_code = app.sim.phone_code(APPID, openid, "2025550123", "1");
    let mut cmd = Command::new(python);
    cmd.arg(python_dir().join("authlib_rp.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SCANGATE_URL", &app.base)
        .env("CLIENT_ID", "web")
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", CALLBACK)
        .env("POST_LOGOUT_URI", "http://127.0.0.1:3000/")
        .env("PHONE_TOKEN", &phone_token)
        .env("PHONE_CODE", &phone_code)
        .env("EXPECTED_PHONE", "+12025550123");
    let out = tokio::time::timeout(Duration::from_secs(120), run(&mut cmd))
        .await
        .expect("the Python relying party finishes within two minutes")
        .unwrap_or_else(|why| panic!("the Python relying party failed:\n{why}"));
    for step in [
        "discovery",
        "hosted page",
        "code flow with PKCE",
        "userinfo",
        "refresh",
        "logout",
    ] {
        assert!(out.contains(&format!("ok: {step}\n")), "{step} in:\n{out}");
    }
}

/// `tests/python/device_client.py` runs the device flow as an independent client would; this
/// side plays the phone (scan and approve over the Mini Program API) and moves ScanGate's clock
/// whenever the client waits out its polling interval.
async fn an_authlib_device_client_completes_the_grant_approved_on_the_phone(backend: Backend) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    let Some(python) = venv_python().await else {
        return;
    };
    let app = TestApp::spawn_with(backend, crate::device::with_device_clients).await;
    let phone_token = app.mp_login(APPID, "o-authlib-device").await;
    let mut child = Command::new(python)
        .arg(python_dir().join("device_client.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SCANGATE_URL", &app.base)
        .env("CLIENT_ID", "web")
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut to_client = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let mut waited = 0;
    let talk = async {
        while let Some(line) = lines.next_line().await.expect("read the client") {
            seen.push_str(&line);
            seen.push('\n');
            let answer = if let Some(link) = line.strip_prefix("approve: ") {
                let random = link.rsplit('/').next().expect("a random");
                for action in ["scan", "approve"] {
                    let res = app
                        .mp_post(
                            &phone_token,
                            &format!("/api/mp/v1/devices/{random}/{action}"),
                            None,
                        )
                        .await;
                    assert!(
                        res.status().is_success(),
                        "phone {action}: {}",
                        res.status()
                    );
                }
                "approved\n"
            } else if let Some(secs) = line.strip_prefix("wait: ") {
                let secs: u64 = secs.parse().expect("seconds");
                waited += secs;
                app.clock.advance(Duration::from_secs(secs));
                "waited\n"
            } else {
                continue;
            };
            to_client
                .write_all(answer.as_bytes())
                .await
                .expect("answer the client");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), talk)
        .await
        .expect("the device client finishes within two minutes");
    let out = child.wait_with_output().await.expect("the client exits");
    assert!(
        out.status.success(),
        "the device client failed:\n{seen}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "discovery",
        "device authorization",
        "authorization pending",
        "slow down",
        "device flow",
        "id token verified",
        "userinfo and refresh",
        "single use",
    ] {
        assert!(
            seen.contains(&format!("ok: {step}\n")),
            "{step} in:\n{seen}"
        );
    }
    assert_eq!(waited, 10, "the client waited out the grown interval once");
}
