//! Reading the audit log: filtered, newest first, a page at a time.

use super::{Actor, Admin, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::store::audit::{self, Filter, Recorded};

/// Events per database read while exporting.
const EXPORT_BATCH: i64 = 500;

/// What an export needs to keep reading: its scope-checked filter, owned.
#[derive(Clone, Debug, Default)]
pub struct OwnedFilter {
    pub pool: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl OwnedFilter {
    fn borrow(&self) -> Filter<'_> {
        Filter {
            pool: self.pool.as_deref(),
            actor: self.actor.as_deref(),
            action: self.action.as_deref(),
            subject: self.subject.as_deref(),
            since: self.since,
            until: self.until,
        }
    }
}

impl Admin {
    /// Every event matching `filter` in the actor's scope, newest first, as a stream of
    /// batches read one at a time: the log is never held whole in memory. The export itself
    /// is audited.
    pub async fn export_audit(
        &self,
        actor: &Actor,
        mut filter: OwnedFilter,
    ) -> AppResult<impl futures::Stream<Item = Result<Vec<Recorded>, AppError>> + Send + 'static>
    {
        match (&actor.pool, &filter.pool) {
            (Some(scope), Some(asked)) if asked != scope.as_str() => {
                return Err(AppError::NotFound(format!("no pool `{asked}`")))
            }
            (Some(scope), _) => filter.pool = Some(scope.to_string()),
            (None, _) => {}
        }
        self.record(
            actor,
            filter.pool.as_deref(),
            "admin.audit.export",
            "audit",
            None,
        )
        .await?;
        let db = self.db.clone();
        let state = (db, filter, None::<String>, false);
        Ok(futures::stream::try_unfold(
            state,
            |(db, filter, before, done)| async move {
                if done {
                    return Ok(None);
                }
                let rows =
                    audit::page(&db, &filter.borrow(), before.as_deref(), EXPORT_BATCH).await?;
                let done = (rows.len() as i64) < EXPORT_BATCH;
                let before = rows.last().map(|e| e.id.clone());
                Ok(Some((rows, (db, filter, before, done))))
            },
        ))
    }

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
