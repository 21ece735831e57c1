//! Operational endpoints: liveness, readiness and Prometheus metrics; and the operator
//! commands `config check` (`config_check`) and `backup`.

pub mod backup;
pub mod config_check;
pub mod metrics;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use utoipa_axum::routes;

use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::store::Db;
use crate::tickets::TicketStore;

/// What readiness checks: the database and the ticket store.
#[derive(Clone)]
pub struct Dependencies {
    pub db: Db,
    pub tickets: Arc<dyn TicketStore>,
}

impl FromRef<AppState> for Dependencies {
    fn from_ref(state: &AppState) -> Self {
        Dependencies {
            db: state.db.clone(),
            tickets: Arc::clone(&state.tickets),
        }
    }
}

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(healthz_get))
        .routes(routes!(readyz_get))
        .merge(metrics::router())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = Object)))]
async fn healthz_get() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database and the ticket store both answer.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"checks\": {\"database\", \"ticket_store\"}}`.", body = Object),
        (status = 503, description = "A dependency is unavailable; `checks` says which.", body = Object),
    ))]
async fn readyz_get(State(state): State<Dependencies>) -> impl IntoResponse {
    let (db, tickets) = tokio::join!(state.db.ping(), state.tickets.ping());
    let db_ok = db.is_ok();
    let tickets_ok = tickets.is_ok();
    let status = if db_ok && tickets_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = json!({
        "status": word(db_ok && tickets_ok),
        "checks": { "database": word(db_ok), "ticket_store": word(tickets_ok) },
    });
    if status == StatusCode::OK {
        (status, Json(body)).into_response()
    } else {
        let mut body = body;
        body["error"] = json!("unavailable");
        body["message"] = json!("a dependency is unavailable");
        (status, Json(body)).into_response()
    }
}
