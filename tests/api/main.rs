//! Black-box tests: ScanGate on a real port, over real HTTP, against real SQLite, PostgreSQL
//! and Redis, with the WeChat simulator standing in for WeChat.

#![allow(clippy::unwrap_used)]

mod helpers;
mod js;
mod landing;
mod mmdb;

mod admin;
mod architecture;
mod backup;
mod bad_input;
mod cli;
mod compat;
mod config_check;
mod connections;
mod console;
mod console_ops;
mod deploy;
mod dev;
mod device;
mod diagnostics;
mod exhaustion;
mod images;
mod limits;
mod metrics;
mod miniprogram;
mod mp;
mod multi_instance;
mod oidc;
mod oidc_browser;
mod openapi;
mod ops;
mod outage;
mod postgres_tls;
mod python_rp;
mod qrcodes;
mod races;
mod same_device;
mod scale_out;
mod scanner;
mod secrets;
mod tokens;
