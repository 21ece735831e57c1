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

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::config::{AppConfig, Config, MiniProgramConfig, Secret};
use crate::domain::Random;
use crate::pages::{page, ScanPage};
use crate::state::AppState;
use crate::wechat::Simulator;

/// The demo Mini Program's AppID (the one WeChat's reference test vectors use).
pub const DEMO_APPID: &str = "wx0123456789abcdef";
pub const DEMO_CLIENT_ID: &str = "demo";

/// Adds the demo Mini Program and app, points the WeChat client at the simulator, and returns
/// the simulator with every configured Mini Program registered.
pub fn prepare(config: &mut Config) -> Simulator {
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
    let simulator = Simulator::new();
    for mp in &config.miniprograms {
        simulator.register_app(&mp.appid, mp.secret.expose());
    }
    simulator
}

/// The `/_dev/` pages and the WeChat simulator behind `/_dev/wechat/`.
pub fn router(simulator: Simulator) -> Router<AppState> {
    pages::router()
        .route("/_dev/latest-code", get(latest::latest_code_get))
        .nest_service("/_dev/wechat", simulator.router())
}

/// `GET /q/{random}` in dev mode: the landing page, with a way to the phone simulator.
pub async fn scan_landing_get(Path(random): Path<String>) -> Response {
    let random = Random::parse(&random)
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default();
    page(&ScanPage {
        phone_url: Some(format!("/_dev/phone?random={random}")),
    })
}
