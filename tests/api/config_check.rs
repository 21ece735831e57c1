//! `scangate config check`: the effective configuration with secrets masked, every problem
//! found, and exit 1 on any.

use std::process::Command;

use crate::helpers::tempdir;

/// Runs `scangate config check --config FILE` with only `env` set; its exit code and output.
fn config_check(toml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempdir::Dir::new();
    let file = dir.0.join("scangate.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const GOOD: &str = r#"
[[miniprograms]]
appid = "wx0123456789abcdef"
secret = "appsecret-do-not-print"

[[apps]]
client_id = "shop"
client_secret = "client-secret-do-not-print"
name = "Shop"
miniprogram = "wx0123456789abcdef"
redirect_uris = ["https://shop.example.com/callback"]
"#;

#[test]
fn a_good_configuration_prints_with_secrets_masked_and_exits_0() {
    let key = scangate::crypto::SecretBox::generate_key();
    let (code, text) = config_check(
        GOOD,
        &[
            (
                "DATABASE_URL",
                "postgres://scangate:pg-password-do-not-print@db/scangate",
            ),
            ("SCANGATE_SECRET_KEY", &key),
            ("SCANGATE_TRUSTED_PROXIES", "172.16.0.0/12"),
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no problems found"), "{text}");
    assert!(text.contains("\"client_id\": \"shop\""), "{text}");
    assert!(text.contains("172.16.0.0/12"), "{text}");
    assert!(text.contains("postgres://scangate:"), "{text}");
    for secret in [
        "appsecret-do-not-print",
        "client-secret-do-not-print",
        "pg-password-do-not-print",
        key.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} is masked: {text}");
    }
}

#[test]
fn a_key_start_up_would_refuse_is_named_and_exits_1() {
    let (code, text) = config_check("lisen = \"0.0.0.0:8080\"\n", &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("lisen"), "{text}");

    let (code, text) = config_check(GOOD, &[("SCANGATE_TRUSTED_PROXIES", "10.0.0.0/99")]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("10.0.0.0/99"), "{text}");
}

#[test]
fn every_start_up_problem_is_listed() {
    let twice = format!("{GOOD}{}", &GOOD[GOOD.find("[[apps]]").unwrap()..]);
    let (code, text) = config_check(
        &twice,
        &[("DATABASE_URL", "postgres://scangate@db/scangate")],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("2 problem(s)"), "{text}");
    assert!(text.contains("`secret_key`"), "{text}");
    assert!(text.contains("`apps[1].client_id`"), "{text}");
}
