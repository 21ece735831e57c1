//! The OpenAPI 3.1 document of the public APIs, served at `GET /api/openapi.json`.
//!
//! Features build their routes on [`ApiRouter`] and register each API handler with
//! `utoipa_axum::routes!`, so a route's path and method come from the handler's own
//! `#[utoipa::path]` and its schemas from the request and response types: the router and the
//! document cannot disagree. A plain `.route` is for pages made for people only (the console
//! under `/admin`, `/static`, the QR landing pages under `/q`, the `/_dev` demo), which the
//! document leaves out; `tests/api/openapi.rs` checks both directions on a live server.
//!
//! The issuer's routes are mounted twice, at `/oidc` and at `/pools/{slug}/oidc`: [`finish`]
//! gives the second copy its `slug` parameter and operation ids of its own.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use utoipa::openapi::path::{HttpMethod, Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{Content, InfoBuilder, OpenApi, Required, ResponseBuilder, Tag};

use crate::state::AppState;

/// The router every documented feature builds on.
pub type ApiRouter = utoipa_axum::router::OpenApiRouter<AppState>;

/// Where the document is served.
pub const PATH: &str = "/api/openapi.json";

/// The security schemes operations name in their `security(...)`.
pub const ADMIN_KEY: &str = "admin_api_key";
pub const MP_SESSION: &str = "mp_session";
pub const CLIENT_BASIC: &str = "client_basic";
pub const ACCESS_TOKEN: &str = "access_token";

/// Tags, one per API.
pub const PC: &str = "pc";
pub const COMPAT: &str = "authing";
pub const MP: &str = "miniprogram";
pub const OIDC: &str = "oidc";
pub const ADMIN: &str = "admin";
pub const OPS: &str = "ops";

const POOL_ISSUER: &str = "/pools/{slug}/oidc";

/// The collected document made whole: title and version, the server, the security schemes and
/// tags, the pool issuer's parameter, and the document's own path.
pub fn finish(mut doc: OpenApi, public_url: &str) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("ScanGate")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Sign in by scanning a WeChat Mini Program code: the PC API, the \
             Authing-compatible API, the Mini Program's API, the OpenID Connect provider and \
             the management API. Errors share one envelope, `{\"error\", \"message\"}` \
             (a form's errors add `fields`), except the Authing-compatible API (HTTP 200 with \
             `{\"code\", \"message\", \"data\"}`) and the OAuth endpoints (RFC 6749 §5.2).",
        ))
        .build();
    doc.servers = Some(vec![Server::new(public_url.trim_end_matches('/'))]);
    doc.tags = Some(
        [
            (PC, "The PC page's QR codes: create, follow, exchange."),
            (
                COMPAT,
                "`authing-js-sdk`'s `wxqrcode` calls, answered in Authing's shape.",
            ),
            (
                MP,
                "The Mini Program's backend: session, scan, confirm, profile.",
            ),
            (
                OIDC,
                "The OpenID Connect provider, at `/oidc` and at each pool's issuer.",
            ),
            (
                ADMIN,
                "Management: pools, apps, Mini Programs, users, audit, keys.",
            ),
            (OPS, "Liveness, readiness, metrics and this document."),
        ]
        .into_iter()
        .map(|(name, about)| {
            let mut tag = Tag::new(name);
            tag.description = Some(about.into());
            tag
        })
        .collect(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |format: &str, about: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some(format.into());
        http.description = Some(about.into());
        SecurityScheme::Http(http)
    };
    components.add_security_scheme(
        ADMIN_KEY,
        bearer(
            "sgk_…",
            "A management API key (`scangate admin key create`).",
        ),
    );
    components.add_security_scheme(
        MP_SESSION,
        bearer(
            "opaque",
            "The Mini Program session token of `POST /api/mp/v1/session`.",
        ),
    );
    components.add_security_scheme(
        ACCESS_TOKEN,
        bearer("JWT", "An access token issued by the token endpoint."),
    );
    let mut basic = Http::new(HttpAuthScheme::Basic);
    basic.description =
        Some("The app's client id and secret (`client_secret_basic`, RFC 6749 §2.3.1).".into());
    components.add_security_scheme(CLIENT_BASIC, SecurityScheme::Http(basic));
    pool_issuer(&mut doc);
    doc.paths
        .add_path_operation(PATH, vec![HttpMethod::Get], document_operation());
    doc
}

/// The routes under a pool's issuer: each operation takes `slug` and gets an id of its own.
fn pool_issuer(doc: &mut OpenApi) {
    let slug = Parameter::builder()
        .name("slug")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The pool whose issuer this is."))
        .schema(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        ))
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with(POOL_ISSUER) {
            continue;
        }
        for operation in operations(item) {
            operation.operation_id = operation
                .operation_id
                .as_ref()
                .map(|id| format!("pool_{id}"));
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .insert(0, slug.clone());
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn document_operation() -> Operation {
    let mut operation = Operation::new();
    operation.operation_id = Some("openapi_get".into());
    operation.tags = Some(vec![OPS.into()]);
    operation.summary = Some("This document.".into());
    operation.responses.responses.insert(
        "200".into(),
        ResponseBuilder::new()
            .description("The OpenAPI 3.1 document.")
            .content(
                "application/json",
                Content::new(None::<utoipa::openapi::Schema>),
            )
            .build()
            .into(),
    );
    operation
}

/// `GET /api/openapi.json`: the document, serialised once.
pub fn route(doc: &OpenApi) -> MethodRouter<AppState> {
    let body = axum::body::Bytes::from(doc.to_json().unwrap_or_else(|_| "{}".into()));
    get(move || {
        let body = body.clone();
        async move {
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=300"),
                    ),
                ],
                body,
            )
                .into_response()
        }
    })
}
