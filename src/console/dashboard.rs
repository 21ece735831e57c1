//! The dashboard: per app, the scan funnel of the last 24 hours (hourly) and 7 days (daily)
//! with the median time from scan to confirm, as SVG charts.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::charts::FunnelChart;
use super::{Chrome, Signed};
use crate::admin::PageRequest;
use crate::error::AppResult;
use crate::funnel::Bucket;
use crate::pages::page;
use crate::state::AppState;

/// Apps shown on the dashboard at most (the apps page lists them all).
const MAX_APPS: i64 = 20;

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    c: Chrome,
    apps: Vec<AppFunnel>,
    /// More apps exist than are shown.
    more: bool,
}

struct AppFunnel {
    client_id: String,
    name: String,
    pool: String,
    day: FunnelChart,
    week: FunnelChart,
}

/// `GET /admin`
pub async fn dashboard_get(State(state): State<AppState>, signed: Signed) -> Response {
    match dashboard(&state, &signed).await {
        Ok(view) => page(&view),
        Err(e) => signed.error(e),
    }
}

async fn dashboard(state: &AppState, signed: &Signed) -> AppResult<DashboardPage> {
    let actor = signed.actor();
    let listed = state
        .admin
        .list_apps(
            actor,
            &PageRequest {
                limit: Some(MAX_APPS),
                cursor: None,
            },
        )
        .await?;
    let mut apps = Vec::new();
    for app in &listed.items {
        let id = app.client_id.to_string();
        let hours = state
            .admin
            .funnel(actor, &id, Bucket::Hour, None, None)
            .await?;
        let days = state
            .admin
            .funnel(actor, &id, Bucket::Day, None, None)
            .await?;
        apps.push(AppFunnel {
            day: FunnelChart::new(&format!("{id}-24h"), &hours, signed.lang, true),
            week: FunnelChart::new(&format!("{id}-7d"), &days, signed.lang, false),
            client_id: id,
            name: app.name.clone(),
            pool: app.pool.to_string(),
        });
    }
    Ok(DashboardPage {
        c: signed.chrome("dashboard"),
        apps,
        more: listed.next_cursor.is_some(),
    })
}
