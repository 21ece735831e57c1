//! `GET /metrics`: the Prometheus scrape endpoint. On the main listener it answers only a
//! scraper on this host that came directly (a loopback peer without `X-Forwarded-For`), so a
//! load balancer on the same host does not publish it; `metrics_listen` serves it to anyone
//! who can reach that address. Everyone else gets the ordinary 404.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::openapi::ApiRouter;
use crate::state::AppState;

/// The route on the main listener.
pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(metrics_get))
}

/// The whole router of the `metrics_listen` listener.
pub fn listener_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { scrape(&state.metrics) }),
        )
        .with_state(state)
}

/// The Prometheus text format; on this listener only to a direct scraper on this host.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses(
        (status = 200, description = "The metrics.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "Not from this host directly.", body = crate::error::ErrorBody),
    ))]
async fn metrics_get(State(state): State<AppState>, req: Request) -> Response {
    let direct_local = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback())
        && !req.headers().contains_key("x-forwarded-for")
        && !req.headers().contains_key(header::FORWARDED);
    if !direct_local {
        return AppError::NotFound("no such resource".into()).into_response();
    }
    scrape(&state.metrics)
}

fn scrape(metrics: &Metrics) -> Response {
    if !metrics.enabled() {
        return AppError::NotFound("metrics are turned off".into()).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        metrics.encode(),
    )
        .into_response()
}
