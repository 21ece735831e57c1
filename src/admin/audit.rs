//! Reading the audit log: filtered, newest first, a page at a time.

use super::{Actor, Admin, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::store::audit::{self, Filter, Recorded};

impl Admin {
    /// One page of events in the actor's scope. A pool-scoped actor sees only its pool's
    /// events, whatever pool the filter names.
    pub async fn audit_events(
        &self,
        actor: &Actor,
        filter: Filter<'_>,
        page: &PageRequest,
    ) -> AppResult<Page<Recorded>> {
        let filter = match (&actor.pool, filter.pool) {
            (Some(scope), Some(asked)) if asked != scope.as_str() => {
                return Err(AppError::NotFound(format!("no pool `{asked}`")))
            }
            (Some(scope), _) => Filter {
                pool: Some(scope.as_str()),
                ..filter
            },
            (None, _) => filter,
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until) {
            if since >= until {
                return Err(AppError::invalid("since must be before until"));
            }
        }
        let before = page.after()?;
        let rows = audit::page(&self.db, &filter, before.as_deref(), page.limit()? + 1).await?;
        page.finish(rows, |e| e.id.clone())
    }
}
