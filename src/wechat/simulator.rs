//! WeChat simulator (placeholder; implementation pending).

#[derive(Clone, Default)]
pub struct Simulator;

impl Simulator {
    pub fn new() -> Self {
        Simulator
    }
    pub fn register_app(&self, _appid: &str, _secret: &str) {}
    pub fn login_code(&self, _appid: &str, _openid: &str, _unionid: Option<&str>) -> String {
        String::new()
    }
    pub fn session_key(&self, _appid: &str, _openid: &str) -> Option<String> {
        None
    }
    pub fn phone_code(&self, _appid: &str, _openid: &str, _phone: &str, _cc: &str) -> String {
        String::new()
    }
    pub fn encrypt_for(&self, _appid: &str, _openid: &str, _data: &serde_json::Value) -> Option<(String, String)> {
        None
    }
    pub fn token_calls(&self, _appid: &str) -> usize {
        0
    }
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
    }
}
