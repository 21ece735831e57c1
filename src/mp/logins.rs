//! "This wasn't me": the person's recent logins, and reporting one, which ends at once what it
//! signed in — the browser session, the hosted login's grant (refresh and access tokens) and
//! the access tokens of the native exchange — and is audited.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::{requester_json, AppBrief, MpUser, RequesterView};
use crate::clock::rfc3339;
use crate::error::{AppError, AppResult};
use crate::extract::Path;
use crate::metrics::ScannerEvent;
use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::store::{self, audit};

/// How many logins the list shows.
const RECENT: i64 = 20;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(logins_get))
        .routes(routes!(report_post))
}

/// The caller's recent logins, newest first.
#[utoipa::path(get, path = "/api/mp/v1/me/logins", tag = "miniprogram", security(("mp_session" = [])),
    responses(
        (status = 200, description = "The logins, newest first.", body = Logins),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
    ))]
async fn logins_get(State(state): State<AppState>, who: MpUser) -> AppResult<Response> {
    let logins = store::logins::recent(&state.db, &who.user.id, RECENT).await?;
    let mut out = Vec::with_capacity(logins.len());
    for login in logins {
        let app = state
            .apps
            .get(&login.client_id)
            .await?
            .map(|a| (a.name.clone(), a.logo.clone()));
        let (name, logo) = app.unwrap_or_default();
        let (requester, _) = requester_json(
            &state,
            &login.requester_ip,
            &login.requester_user_agent,
            login.confirmed_at,
        );
        out.push(LoginView {
            id: login.id,
            app: AppBrief::new(&state, name, logo),
            requester,
            confirmed_at: rfc3339(login.confirmed_at),
            reported: login.reported_at.is_some(),
        });
    }
    Ok(axum::Json(Logins { logins: out }).into_response())
}

#[derive(Serialize, ToSchema)]
struct Logins {
    logins: Vec<LoginView>,
}

/// A login of the caller's: which app, from where, when, and whether they reported it.
#[derive(Serialize, ToSchema)]
struct LoginView {
    id: String,
    app: AppBrief,
    requester: RequesterView,
    confirmed_at: String,
    reported: bool,
}

/// The caller says a login of theirs was not them: what it signed in ends at once.
/// Idempotent; another user's login (or an unknown id) is `not_found`.
#[utoipa::path(post, path = "/api/mp/v1/logins/{id}/report", tag = "miniprogram", security(("mp_session" = [])),
    params(("id" = String, Path, description = "The login's id.")),
    responses(
        (status = 200, description = "The login, reported.", body = Object),
        (status = 401, description = "No or an expired session token.", body = crate::error::ErrorBody),
        (status = 404, description = "No such login of the caller's.", body = crate::error::ErrorBody),
    ))]
async fn report_post(
    State(state): State<AppState>,
    who: MpUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let not_found = || AppError::NotFound("no such login".into());
    if id.len() > 64 {
        return Err(not_found());
    }
    let login = store::logins::get(&state.db, &id)
        .await?
        .filter(|l| l.user_id == who.user.id)
        .ok_or_else(not_found)?;
    let now = state.clock.now();
    if store::logins::report(&state.db, &login, now).await? {
        state.metrics.scanner_event(ScannerEvent::LoginReported);
        audit::record(
            &state.db,
            audit::Event {
                pool: Some(&login.pool),
                actor: Some(&who.user.id),
                action: "login.reported",
                subject: Some(&login.client_id),
                ip: Some(&login.requester_ip),
                detail: Some(json!({
                    "login": login.id,
                    "random": login.random,
                    "requester_user_agent": login.requester_user_agent,
                    "grant_revoked": login.grant_id.is_some(),
                    "session_ended": login.session_hash.is_some(),
                })),
            },
            now,
        )
        .await?;
    }
    Ok(axum::Json(json!({ "reported": true })).into_response())
}
