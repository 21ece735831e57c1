//! The audit log: filtered by pool, actor, action, subject and dates, newest first, a page
//! at a time, with a link exporting the same selection whole as JSON lines.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{Chrome, FormView, Signed};
use crate::admin::audit::OwnedFilter;
use crate::admin::PageRequest;
use crate::error::{AppError, FieldErrors};
use crate::extract::Query;
use crate::pages::page;
use crate::state::AppState;
use crate::store::audit::{Filter, Recorded};

/// Events per page.
const PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(audit_get))
        .route("/admin/audit/export", get(export_get))
}

#[derive(serde::Deserialize, Default, Clone)]
struct AuditQuery {
    pool: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    /// `YYYY-MM-DD`, UTC, inclusive.
    since: Option<String>,
    /// `YYYY-MM-DD`, UTC, inclusive.
    until: Option<String>,
    cursor: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

/// Midnight UTC of a `YYYY-MM-DD` date, plus `days`.
fn day(value: &str, days: i64) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(value, &format).ok()?;
    let start = date.midnight().assume_utc().unix_timestamp() * 1000;
    Some(start + days * 86_400_000)
}

impl AuditQuery {
    /// The filter it names, or what is wrong with each field.
    fn filter(&self) -> Result<OwnedFilter, FieldErrors> {
        let mut fields = FieldErrors::new();
        let mut date = |name: &str, value: &Option<String>, days| {
            let value = nonempty(value)?;
            let parsed = day(&value, days);
            if parsed.is_none() {
                fields.add(name, "YYYY-MM-DD");
            }
            parsed
        };
        let since = date("since", &self.since, 0);
        let until = date("until", &self.until, 1);
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                fields.add("until", "must not be before the first day");
            }
        }
        if !fields.is_empty() {
            return Err(fields);
        }
        Ok(OwnedFilter {
            pool: nonempty(&self.pool),
            actor: nonempty(&self.actor),
            action: nonempty(&self.action),
            subject: nonempty(&self.subject),
            since,
            until,
        })
    }

    /// The query string of these filters (without the cursor).
    fn query_string(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("pool", &self.pool),
            ("actor", &self.actor),
            ("action", &self.action),
            ("subject", &self.subject),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = nonempty(v) {
                out.append_pair(k, &v);
            }
        }
        out.finish()
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    c: Chrome,
    form: FormView,
    events: Vec<Recorded>,
    next: Option<String>,
    later: bool,
    /// The first page of the same selection.
    first: String,
    export: String,
}

/// `GET /admin/audit?pool=&actor=&action=&subject=&since=&until=&cursor=`
async fn audit_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> Response {
    let mut form = FormView::with(&[
        ("pool", q.pool.clone().unwrap_or_default()),
        ("actor", q.actor.clone().unwrap_or_default()),
        ("action", q.action.clone().unwrap_or_default()),
        ("subject", q.subject.clone().unwrap_or_default()),
        ("since", q.since.clone().unwrap_or_default()),
        ("until", q.until.clone().unwrap_or_default()),
    ]);
    let qs = q.query_string();
    let mut view = AuditPage {
        c: signed.chrome("audit"),
        form: FormView::default(),
        events: Vec::new(),
        next: None,
        later: false,
        first: format!("/admin/audit?{qs}"),
        export: format!("/admin/audit/export?{qs}"),
    };
    let filter = match q.filter() {
        Ok(f) => f,
        Err(fields) => {
            form.add_fields(&fields);
            view.form = form;
            return super::with_status(axum::http::StatusCode::BAD_REQUEST, page(&view));
        }
    };
    let request = PageRequest {
        limit: Some(PAGE),
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    };
    let borrowed = Filter {
        pool: filter.pool.as_deref(),
        actor: filter.actor.as_deref(),
        action: filter.action.as_deref(),
        subject: filter.subject.as_deref(),
        since: filter.since,
        until: filter.until,
    };
    match state
        .admin
        .audit_events(signed.actor(), borrowed, &request)
        .await
    {
        Ok(found) => {
            view.events = found.items;
            view.next = found.next_cursor.map(|c| {
                format!(
                    "/admin/audit?{qs}&cursor={}",
                    url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
                )
            });
            view.later = request.cursor.is_some();
        }
        Err(AppError::NotFound(m)) => form.add("pool", m),
        Err(e @ AppError::InvalidRequest(_)) => form.general = Some(e.message()),
        Err(e) => return signed.error(e),
    }
    view.form = form;
    page(&view)
}

/// `GET /admin/audit/export?…`: the same selection, whole, as JSON lines (audited).
async fn export_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> Response {
    let Ok(filter) = q.filter() else {
        return signed.error(AppError::invalid("since and until must be YYYY-MM-DD"));
    };
    let batches = match state.admin.export_audit(signed.actor(), filter).await {
        Ok(b) => b,
        Err(e) => return signed.error(e),
    };
    let lines = futures::StreamExt::map(batches, |batch| {
        batch.map(|events| {
            events.iter().fold(String::new(), |mut out, e| {
                out.push_str(&serde_json::to_string(e).unwrap_or_default());
                out.push('\n');
                out
            })
        })
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"scangate-audit.jsonl\""),
            ),
        ],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

/// The detail of an event, as one line of JSON.
pub fn detail(event: &Recorded) -> String {
    event
        .detail
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_default()
}
