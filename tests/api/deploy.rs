//! The files under `deploy/` checked without a daemon, each by an independent validator: the
//! compose file against the Compose Specification's JSON schema (vendored in
//! `tests/schemas/`), the Kubernetes manifests by `kubernetes-validate` (strict, the API
//! schemas of the Kubernetes release it names), the Dockerfile by `hadolint`, the systemd unit
//! by `systemd-analyze verify` (the nginx configuration is checked by `nginx -t` in the
//! scale-out test, which runs it), and the example configuration by `scangate config check`.
//! `.ci/run` installs every tool; with `CI` set a missing one fails its test instead of
//! skipping it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes release whose API the manifests are checked against.
const KUBERNETES_VERSION: &str = "1.30.0";

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The path of a program on `PATH`. Missing: a failure in CI, a skip (said so) elsewhere.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI (.ci/run installs it)"
        );
        eprintln!("skipped: {name} is not installed (.ci/run installs it)");
    }
    found
}

/// Runs a validator; its exit status and everything it printed.
fn run(tool: &Path, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("run validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn scratch() -> crate::helpers::tempdir::Dir {
    crate::helpers::tempdir::Dir::new()
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let Some(tool) = require_tool("check-jsonschema") else {
        return;
    };
    let schema = repo_path("tests/schemas/compose-spec.json");
    let compose = repo_path("deploy/compose.yaml");
    let (ok, text) = run(
        &tool,
        &["--schemafile".as_ref(), schema.as_ref(), compose.as_ref()],
    );
    assert!(ok, "deploy/compose.yaml: {text}");

    // The schema has teeth: a misspelt key is refused.
    let dir = scratch();
    let bad = dir.0.join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(&bad, text.replacen("env_file:", "envfile:", 1)).unwrap();
    let (ok, _) = run(
        &tool,
        &["--schemafile".as_ref(), schema.as_ref(), bad.as_ref()],
    );
    assert!(!ok, "a misspelt compose key is refused");
}

#[test]
fn the_compose_file_keeps_secrets_in_env_files() {
    let compose = std::fs::read_to_string(repo_path("deploy/compose.yaml")).unwrap();
    for secret in ["SECRET_KEY", "PASSWORD", "DATABASE_URL"] {
        assert!(
            !compose.contains(secret),
            "{secret} is not written in compose.yaml"
        );
    }
    for env in ["scangate.env", "postgres.env"] {
        assert!(compose.contains(env), "compose.yaml reads {env}");
        assert!(
            repo_path(&format!("deploy/{env}.example")).is_file(),
            "deploy/{env}.example documents {env}"
        );
    }
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_manifests_follow_the_kubernetes_api() {
    let Some(tool) = require_tool("kubernetes-validate") else {
        return;
    };
    let files = manifests();
    let kinds: Vec<String> = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("kind: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "Secret",
        "Job",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "a {kind} in deploy/k8s");
    }
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--strict".as_ref(),
        "-k".as_ref(),
        KUBERNETES_VERSION.as_ref(),
    ];
    args.extend(files.iter().map(|p| p.as_os_str()));
    let (ok, text) = run(&tool, &args);
    assert!(ok, "deploy/k8s: {text}");
    assert_eq!(
        text.matches("passed").count(),
        files.len(),
        "every manifest passed: {text}"
    );

    // Strict validation has teeth: an unknown field is refused.
    let dir = scratch();
    let bad = dir.0.join("deployment.yaml");
    let text = std::fs::read_to_string(repo_path("deploy/k8s/deployment.yaml")).unwrap();
    std::fs::write(&bad, text.replacen("readinessProbe:", "readynessProbe:", 1)).unwrap();
    let (ok, _) = run(
        &tool,
        &[
            "--strict".as_ref(),
            "-k".as_ref(),
            KUBERNETES_VERSION.as_ref(),
            bad.as_ref(),
        ],
    );
    assert!(!ok, "an unknown field is refused");
}

/// The number after `key: ` in a manifest.
fn number_after(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in the manifest"))
}

#[test]
fn a_pod_is_given_longer_than_the_drain_to_stop() {
    let text = std::fs::read_to_string(repo_path("deploy/k8s/deployment.yaml")).unwrap();
    let grace = number_after(&text, "terminationGracePeriodSeconds:");
    let pre_stop: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("command: [\"sleep\", \""))
        .and_then(|v| v.trim_end_matches("\"]").parse().ok())
        .expect("a preStop sleep");
    let drain = scangate::server::SHUTDOWN_GRACE.as_secs();
    assert!(
        grace > pre_stop + drain,
        "terminationGracePeriodSeconds {grace} > preStop {pre_stop} + drain {drain}"
    );
    assert!(
        number_after(&text, "replicas:") >= 2,
        "two replicas or more"
    );
    for needle in [
        "path: /readyz",
        "path: /healthz",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
    ] {
        assert!(text.contains(needle), "the Deployment sets {needle}");
    }
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(tool) = require_tool("hadolint") else {
        return;
    };
    let dockerfile = repo_path("deploy/Dockerfile");
    let (ok, text) = run(&tool, &[dockerfile.as_ref()]);
    assert!(ok && text.trim().is_empty(), "hadolint: {text}");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    for needle in [
        "--locked",
        "USER 10001",
        "HEALTHCHECK",
        "/healthz",
        "\"serve\"",
    ] {
        assert!(text.contains(needle), "the Dockerfile has {needle}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(tool) = require_tool("systemd-analyze") else {
        return;
    };
    let unit = std::fs::read_to_string(repo_path("deploy/systemd/scangate.service")).unwrap();
    for needle in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecStartPre=/usr/local/bin/scangate migrate",
    ] {
        assert!(unit.contains(needle), "the unit sets {needle}");
    }
    // The unit as installed, with the binary where this build put it.
    let dir = scratch();
    let path = dir.0.join("scangate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/scangate", env!("CARGO_BIN_EXE_scangate")),
    )
    .unwrap();
    let (ok, text) = run(&tool, &["verify".as_ref(), path.as_ref()]);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
}

#[test]
fn the_example_configuration_passes_config_check() {
    let env = std::fs::read_to_string(repo_path("deploy/scangate.env.example")).unwrap();
    let key = scangate::crypto::SecretBox::generate_key();
    let vars: Vec<(String, String)> = env
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            let v = if k == "SCANGATE_SECRET_KEY" {
                key.as_str()
            } else {
                v
            };
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["config", "check", "--config"])
        .arg(repo_path("deploy/scangate.toml.example"))
        .env_clear()
        .envs(vars)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "config check of the examples: {text}");
    assert!(
        text.contains("\"metrics_listen\": \"0.0.0.0:9090\""),
        "{text}"
    );
}
