//! `scangate dev`: the demo app, the WeChat simulator and the phone simulator under `/_dev/`.
//! Nothing here is mounted in any other mode.
//!
//! - `/_dev/` is a fake "Demo shop" whose login page uses the native PC API exactly as a
//!   relying party would: create a code, follow it by Server-Sent Events (long-poll as the
//!   fallback), exchange the ticket.
//! - `/_dev/phone` plays the Mini Program in a browser: fake WeChat users, scan, confirm.
//! - `/_dev/callback` is the demo app's registered redirect URI; with "Try the hosted login"
//!   the demo page plays a relying party of the hosted login, and this page ends its round trip.
//! - `/_dev/latest-code` names the latest code the demo Mini Program can scan, for the phone
//!   simulator opened on its own.
//! - `/_dev/wechat/` is the WeChat API simulator the WeChat client is pointed at.

pub mod latest;
mod pages;

use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::config::{AppConfig, Config, MiniProgramConfig, Secret};

/// The demo Mini Program's AppID (the one WeChat's reference test vectors use).
pub const DEMO_APPID: &str = "wx0123456789abcdef";
pub const DEMO_CLIENT_ID: &str = "demo";

/// Adds the demo Mini Program and app, and points the WeChat client at the simulator.
pub fn prepare_config(config: &mut Config) {
    config.wechat.api_base = config
        .public_url
        .join("/_dev/wechat/")
        .unwrap_or_else(|_| config.public_url.clone());
    if !config.miniprograms.iter().any(|m| m.appid == DEMO_APPID) {
        config.miniprograms.push(MiniProgramConfig {
            appid: DEMO_APPID.into(),
            secret: Secret(crate::crypto::random_token(16)),
            pool: "default".into(),
            name: Some("ScanGate demo".into()),
        });
    }
    if !config.apps.iter().any(|a| a.client_id == DEMO_CLIENT_ID) {
        let origin = config.public_url.origin().ascii_serialization();
        config.apps.push(AppConfig {
            pool: "default".into(),
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: None,
            name: "Demo shop".into(),
            logo: None,
            redirect_uris: vec![config.url("/_dev/callback")],
            post_logout_redirect_uris: vec![config.url("/_dev/")],
            allowed_origins: vec![origin],
            miniprogram: DEMO_APPID.into(),
            qr_ttl_secs: 120,
            require_binding: true,
            ..AppConfig::default()
        });
    }
}

pub fn router(state: &AppState) -> Router<AppState> {
    let mut r = pages::router().route("/_dev/latest-code", get(latest::latest_code_get));
    if let Some(sim) = &state.simulator {
        r = r.nest_service("/_dev/wechat", sim.router());
    }
    r
}
