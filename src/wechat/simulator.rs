//! WeChat simulator (placeholder; implementation pending).

#[derive(Clone, Default)]
pub struct Simulator;

impl Simulator {
    pub fn new() -> Self {
        Simulator
    }

    pub fn register_app(&self, _appid: &str, _secret: &str) {}

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
    }
}
