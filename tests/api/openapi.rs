//! `GET /api/openapi.json` against the live router, in both directions: every path and method
//! the document names is routed (a `PROPFIND` of the path answers `405` with an `Allow` header
//! listing exactly the documented methods), and every route the source mounts with a plain
//! `.route("…")` is either in the document or a page for people (`/admin`, `/static`, `/q/`,
//! `/_dev`). Routes registered with `routes!` are in the document by construction. The
//! document is then checked by an independent validator, `openapi-spec-validator` from PyPI,
//! run in the virtual environment of `python_rp`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

/// Pages for people, left out of the document on purpose.
const PAGES: &[&str] = &["/admin", "/static/", "/q/", "/_dev"];
/// Methods an OpenAPI path item may hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

both_backends!(
    the_document_names_every_route_and_only_routes_that_exist,
    the_document_passes_an_independent_openapi_validator,
);

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET /api/openapi.json");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap_or(""),
        "application/json"
    );
    let doc: Value = res.json().await.expect("the document is JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "an OpenAPI 3.1 document: {}",
        doc["openapi"]
    );
    doc
}

/// The documented methods of each path, upper case.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a template: each `{param}` becomes a value that parses.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        out.push_str(match &rest[open + 1..close] {
            "slug" => "default",
            _ => "abcdefghijklmnopqrstuvwxyz012345",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

async fn the_document_names_every_route_and_only_routes_that_exist(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = document(&app).await;
    let documented = documented(&doc);
    assert!(documented.len() > 50, "{} paths", documented.len());
    let propfind = reqwest::Method::from_bytes(b"PROPFIND").expect("a method");
    let mut wrong = Vec::new();
    for (path, methods) in &documented {
        let res = app
            .client
            .request(propfind.clone(), app.url(&concrete(path)))
            .send()
            .await
            .expect("PROPFIND");
        let allow: BTreeSet<String> = res
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty() && m != "HEAD")
            .collect();
        if res.status() != 405 {
            wrong.push(format!("{path}: not routed ({})", res.status()));
        } else if &allow != methods {
            wrong.push(format!("{path}: routed {allow:?}, documented {methods:?}"));
        }
    }
    for (file, path) in plain_routes() {
        let page = PAGES.iter().any(|p| path.starts_with(p));
        if !page && !documented.contains_key(&path) {
            wrong.push(format!(
                "{file}: `.route(\"{path}\")` is not in the document"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "router and document differ:\n{}",
        wrong.join("\n")
    );
}

/// Every `.route("…")` path literal of `src/`, with its file, except the WeChat simulator's,
/// which is another server, and those of unit tests.
fn plain_routes() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = Vec::new();
    for file in files {
        if file.ends_with("wechat/simulator.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        // The literal may sit on the next line when the call is wrapped.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for piece in flat.split(".route(").skip(1) {
            let piece = piece.trim_start();
            if let Some(literal) = piece.strip_prefix('"') {
                let path = literal.split('"').next().unwrap_or("").to_owned();
                let name = file
                    .strip_prefix(&src)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                out.push((name, path));
            }
        }
    }
    assert!(
        !out.is_empty(),
        "the scan finds the console's routes at least"
    );
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

async fn the_document_passes_an_independent_openapi_validator(backend: Backend) {
    let Some(python) = crate::python_rp::venv_python().await else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let doc = document(&app).await;
    // Operation ids are unique, so that generated clients get one method per operation.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                let id = op["operationId"].as_str().unwrap_or("");
                assert!(!id.is_empty(), "{method} {path} has an operationId");
                assert!(ids.insert(id.to_owned()), "operationId {id} is unique");
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents its responses"
                );
            }
        }
    }
    let out = tokio::process::Command::new(python)
        .arg(crate::python_rp::python_dir().join("openapi_check.py"))
        .arg(app.url("/api/openapi.json"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the validator");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the validator refused the document:\n{said}"
    );
    assert!(said.contains("ok: openapi 3.1"), "{said}");
}
