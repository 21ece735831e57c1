//! ScanGate: a self-hostable identity provider whose front door is a WeChat Mini Program code.
//!
//! A PC page asks for a QR code (`pc`), a person scans it with the Mini Program, whose backend
//! API lives in `mp`; the confirmation moves the code through the state machine in `tickets`
//! and wakes the waiting page at once, on any instance. The page exchanges a one-time ticket
//! for an ID token signed with keys from `tokens` and published by `oidc`.
//!
//! - `config`: typed configuration (file + environment), validated at start.
//! - `app`: state, bootstrap, router and middleware.
//! - `store`: SQL per aggregate on SQLite or PostgreSQL.
//! - `tickets`: QR state machine; in-process and Redis backends behind one trait.
//! - `wechat`: WeChat API client, open-data decryption, simulator.
//! - `qr`: QR image rendering.
//! - `compat`: the Authing-compatible PC API; `cors`: cross-origin grants for both PC APIs.
//! - `dev`: the `/_dev/` demo and simulators of `scangate dev`.

pub mod app;
pub mod assets;
pub mod cli;
pub mod clock;
pub mod compat;
pub mod config;
pub mod cors;
pub mod crypto;
pub mod dev;
pub mod domain;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod mp;
pub mod oidc;
pub mod ops;
pub mod pc;
pub mod proxies;
pub mod published;
pub mod qr;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod tickets;
pub mod tokens;
pub mod wechat;
