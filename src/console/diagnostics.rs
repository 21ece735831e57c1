//! WeChat diagnostics of a Mini Program, a page linked from the Mini Program's own: the last
//! errors by errcode with what each means and what to do, and the access-token cache.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{Chrome, Signed};
use crate::admin::miniprograms::Diagnostics;
use crate::extract::Path;
use crate::pages::page;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/admin/miniprograms/{appid}/diagnostics",
        get(diagnostics_get),
    )
}

#[derive(Template)]
#[template(path = "console/diagnostics.html")]
struct DiagnosticsPage {
    c: Chrome,
    d: Diagnostics,
    /// `zh-CN` or `en`, to pick the explanations.
    lang: &'static str,
}

/// `GET /admin/miniprograms/{appid}/diagnostics`
async fn diagnostics_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(appid): Path<String>,
) -> Response {
    match state
        .admin
        .miniprogram_diagnostics(signed.actor(), &appid)
        .await
    {
        Ok(d) => page(&DiagnosticsPage {
            c: signed.chrome("miniprograms"),
            d,
            lang: signed.lang.pick("zh-CN", "en"),
        }),
        Err(e) => signed.error(e),
    }
}
