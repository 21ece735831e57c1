//! Apps: list, create, edit, delete, rotate the client secret (shown once), the live QR
//! preview, the callback checker and "Try it". Apps declared in the config file are shown
//! read-only.

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
