//! ScanGate: a self-hostable identity provider whose front door is a WeChat Mini Program code.
//!
//! A PC page asks for a QR code (`pc`), a person scans it with the Mini Program, whose backend
//! API lives in `mp`; the confirmation moves the code through the state machine in `tickets`
//! and wakes the waiting page at once, on any instance. The page exchanges a one-time ticket
//! for an ID token signed with keys from `tokens` and published by `oidc`; the hosted login
//! page (`login`) does the same for OpenID Connect relying parties.
//!
//! Dependencies point one way: features → services → base. A feature never imports another
//! feature; a step two features need lives one floor down. Only `main.rs` and the tests import
//! `app`. `tests/api/architecture.rs` keeps it so.
//!
//! Assembly:
//! - `app`: builds and runs the application (`App::build`, `Runtime`).
//! - `bootstrap`: start-up: storage, the shared state, the configured apps written down.
//! - `router`: every feature's routes under the one middleware; published documents first.
//! - `openapi`: the OpenAPI document, collected from the handlers as the router is built.
//! - `state`: `AppState`, the services a handler may reach.
//! - `server`: the HTTP/1 connection loop and graceful shutdown.
//! - `cli`: the operator commands besides serving.
//!
//! Features (HTTP, each with its `router()`):
//! - `pc`: the PC side: the native QR API and the Authing-compatible API.
//! - `mp`: the Mini Program's backend API.
//! - `oidc`: discovery, JWKS, token, userinfo, revocation, introspection, logout.
//! - `login`: the hosted login page behind the authorization endpoint.
//! - `ops`: liveness, readiness, `/metrics`; the `config check` and `backup` commands.
//! - `api`: the management REST API (`/api/admin/v1`).
//! - `console`: the admin console (`/admin`): server-rendered pages over `admin`.
//! - `dev`: the `/_dev/` demo and simulators of `scangate dev`.
//!
//! Services:
//! - `tickets`: QR state machine; in-process and Redis backends behind one trait.
//! - `accounts`: who may sign in, and completing a login.
//! - `oauth`: the authorization server's engine: issuer, request, codes, browser session,
//!   device authorization requests.
//! - `tokens`: signing keys, ID and access token claims.
//! - `wechat`: WeChat API client, open-data decryption, Mini Program credentials, the "Open in
//!   WeChat" links of codes, simulator.
//! - `qr`: QR image rendering and branding.
//! - `store`: SQL per aggregate on SQLite or PostgreSQL.
//! - `cors`: cross-origin grants for the PC APIs and the relying parties' endpoints.
//! - `ratelimit`: per-address and per-user limits counted across instances.
//! - `requesters`: who is asking for a login: the browser in words, a coarse place.
//! - `published`: documents answered whole before routing.
//! - `metrics`: the Prometheus registry and what is recorded in it.
//! - `funnel`: the scan funnel per app and hour, counted in the ticket store.
//! - `admin`: the management service layer: operator changes, authorised and audited.
//!
//! Base:
//! - `config`: typed configuration (file + environment), validated at start.
//! - `error`: the one error type, rendered as JSON, an HTML page or a field list.
//! - `extract`: extractors, who is calling, browser binding.
//! - `pages`: rendering pages, language choice, message pages, redirects.
//! - `assets`: static files under `/static`.
//! - `clock`: the only reader of the wall clock.
//! - `proxies`: which peers may speak for the client (`trusted_proxies`).
//! - `domain`: values parsed once at the edge.
//! - `crypto`: random tokens, hashing, secrets at rest.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod app;
pub mod assets;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod cors;
pub mod crypto;
pub mod dev;
pub mod domain;
pub mod error;
pub mod extract;
pub mod funnel;
pub mod login;
pub mod metrics;
pub mod mp;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod pc;
pub mod proxies;
pub mod published;
pub mod qr;
pub mod ratelimit;
pub mod requesters;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod tickets;
pub mod tokens;
pub mod wechat;
