//! `scangate config check`: the configuration an instance would start with, checked without
//! starting it, for an operator about to deploy or a CI step before a rollout.
//!
//! It prints the effective configuration (defaults < file < environment) with every secret
//! masked — AppSecrets, client secrets, `secret_key` and passwords inside database and Redis
//! URLs — and then every problem found: the one that stops loading (an unknown key, a bad
//! value), or else each rule that start-up would trip over later and the mistakes it would pass
//! silently (an app configured twice: the last one wins). Nothing is connected to.

use std::path::Path;

use serde_json::Value;

use crate::config::Config;

const MASK: &str = "<redacted>";

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: [&str; 3] = ["secret", "secret_key", "client_secret"];

/// Keys whose values are URLs that may carry a password.
const URL_KEYS: [&str; 2] = ["database_url", "redis_url"];

/// What the check found: the masked configuration (when it loaded) and the problems.
pub struct Report {
    pub effective: Option<Value>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The text printed by `scangate config check`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(effective) = &self.effective {
            out.push_str("# effective configuration (secrets masked)\n");
            out.push_str(&serde_json::to_string_pretty(effective).unwrap_or_default());
            out.push('\n');
        }
        if self.problems.is_empty() {
            out.push_str("no problems found\n");
        } else {
            out.push_str(&format!("{} problem(s):\n", self.problems.len()));
            for p in &self.problems {
                out.push_str(&format!("  - {p}\n"));
            }
        }
        out
    }
}

/// Loads the configuration as `serve` would, from `file` and the process environment.
pub fn check(file: Option<&Path>) -> Report {
    check_config(Config::load(file))
}

pub fn check_config(loaded: Result<Config, crate::config::ConfigError>) -> Report {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            return Report {
                effective: None,
                problems: vec![e.to_string()],
            }
        }
    };
    let mut effective = serde_json::to_value(&config).unwrap_or(Value::Null);
    mask(&mut effective);
    Report {
        effective: Some(effective),
        problems: start_up_problems(&config),
    }
}

/// The rules start-up enforces after loading, and silent mistakes, each named by its key.
fn start_up_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let sqlite_file = config.database_url.starts_with("sqlite") && config.data_dir().is_some();
    if config.secret_key.is_none() && !sqlite_file {
        problems.push(
            "configuration key `secret_key`: required unless the database is a SQLite file"
                .to_owned(),
        );
    }
    for (i, app) in config.apps.iter().enumerate() {
        if let Some(mp) = config
            .miniprograms
            .iter()
            .find(|mp| mp.appid == app.miniprogram)
        {
            if mp.pool != app.pool {
                problems.push(format!(
                    "configuration key `apps[{i}].pool`: app `{}` is in pool `{}` but its Mini \
                     Program serves pool `{}`",
                    app.client_id, app.pool, mp.pool
                ));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, app) in config.apps.iter().enumerate() {
        if !seen.insert(app.client_id.as_str()) {
            problems.push(format!(
                "configuration key `apps[{i}].client_id`: `{}` is configured twice",
                app.client_id
            ));
        }
    }
    problems
}

/// Replaces secrets in place, at any depth.
fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) && !v.is_null() {
                    *v = Value::from(MASK);
                } else if URL_KEYS.contains(&key.as_str()) {
                    if let Some(text) = v.as_str() {
                        *v = Value::from(mask_url_password(text));
                    }
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

fn mask_url_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(MASK));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_password_in_a_url_is_masked_and_the_rest_kept() {
        let masked = mask_url_password("postgres://scangate:hunter2@db:5432/scangate");
        assert!(!masked.contains("hunter2"));
        assert!(masked.contains("scangate:"), "{masked}");
        assert!(masked.ends_with("@db:5432/scangate"), "{masked}");
        assert_eq!(
            mask_url_password("redis://cache:6379"),
            "redis://cache:6379"
        );
    }

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let mut v = serde_json::json!({
            "secret_key": "k",
            "miniprograms": [{ "appid": "wx1", "secret": "s" }],
            "apps": [{ "client_id": "a", "client_secret": null }],
        });
        mask(&mut v);
        assert_eq!(v["secret_key"], MASK);
        assert_eq!(v["miniprograms"][0]["secret"], MASK);
        assert_eq!(v["miniprograms"][0]["appid"], "wx1");
        assert!(v["apps"][0]["client_secret"].is_null());
    }
}
