//! Mini Programs: list, register, rename, new AppSecret (write-only), check the credentials
//! with WeChat, delete. Those declared in the config file are shown read-only.

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
