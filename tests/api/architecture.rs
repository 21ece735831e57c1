//! The layers stay one-way: features → services → base (see `src/lib.rs`). This reads
//! `src/` as text and fails on a feature importing another feature, anything below the
//! features importing one or naming `AppState`, and any module but `main.rs` and the tests
//! importing `app`. A new module must be given a layer here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// HTTP features: each owns its routes and may use everything below it.
const FEATURES: &[&str] = &["pc", "mp", "oidc", "login", "ops", "dev", "api", "console"];
/// Services and base: no routes, no `AppState`, no feature.
const BELOW: &[&str] = &[
    "admin",
    "tickets",
    "accounts",
    "oauth",
    "tokens",
    "wechat",
    "qr",
    "store",
    "cors",
    "ratelimit",
    "requesters",
    "published",
    "metrics",
    "funnel",
    "proxies",
    "config",
    "error",
    "extract",
    "pages",
    "assets",
    "clock",
    "domain",
    "crypto",
];
/// What puts the layers together.
const ASSEMBLY: &[&str] = &[
    "app",
    "bootstrap",
    "router",
    "openapi",
    "state",
    "server",
    "cli",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/pc/status.rs` → `pc`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its comment lines.
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable source")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file names through `crate::…`, including `use crate::{a, b::c}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        refs.insert(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            refs.insert(ident(&item));
        } else {
            refs.insert(ident(rest));
        }
    }
    refs.remove("");
    refs
}

/// Every way the layers are broken, one line each.
fn violations() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in &files {
        let module = module_of(file);
        let shown = file
            .strip_prefix(src().parent().expect("root"))
            .unwrap_or(file);
        let shown = shown.display();
        if module == "main" || module == "lib" {
            continue;
        }
        let known = FEATURES.contains(&module.as_str())
            || BELOW.contains(&module.as_str())
            || ASSEMBLY.contains(&module.as_str());
        if !known {
            found.push(format!(
                "{shown}: the module `{module}` has no layer; add it to tests/api/architecture.rs"
            ));
            continue;
        }
        let code = code(file);
        for target in crate_refs(&code) {
            if target == "app" && module != "app" {
                found.push(format!(
                    "{shown}: imports `crate::app`, which only main.rs and the tests may import"
                ));
            }
            if target != module && FEATURES.contains(&target.as_str()) {
                if FEATURES.contains(&module.as_str()) {
                    found.push(format!(
                        "{shown}: the feature `{module}` imports the feature `{target}`; move the shared step one floor down"
                    ));
                } else if BELOW.contains(&module.as_str()) {
                    found.push(format!(
                        "{shown}: `{module}` is below the features but imports the feature `{target}`"
                    ));
                }
            }
        }
        if BELOW.contains(&module.as_str()) && code.contains("AppState") {
            found.push(format!(
                "{shown}: `{module}` is below the features but names `AppState`; take the one thing it needs instead"
            ));
        }
    }
    found
}

#[test]
fn the_layers_are_one_way() {
    let found = violations();
    assert!(
        found.is_empty(),
        "the layers are not one-way:\n{}",
        found.join("\n")
    );
}

#[test]
fn grouped_imports_are_read_whole() {
    let refs = crate_refs(
        "use crate::{pc::{self, x}, oidc, store::users::User};\nlet _ = crate::mp::f();",
    );
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    assert_eq!(refs, ["mp", "oidc", "pc", "store"]);
}
