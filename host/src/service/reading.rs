//! What the service reads for its callers: reports (at once, or once a
//! workflow ends), event logs, lists, usage, metrics, and the state file's
//! check.

use std::sync::Arc;

use super::metrics::Gauges;
use super::{
    ErrorKind, ListFilter, Scope, Service, ServiceError, Tenant, WATCH_POLL, heard_end, not_found,
};
use crate::executor::RunIdentity;
use crate::records::{Event, Usage, WorkflowReport, WorkflowRow, WorkflowStatus};
use crate::store::CheckReport;

impl Service {
    /// The report of workflow `id` of `tenant`.
    pub fn report(&self, tenant: &Tenant, id: &str) -> Result<WorkflowReport, ServiceError> {
        Ok(self.host.report(&RunIdentity::new(&tenant.name, id))?)
    }

    /// The report of workflow `id` of `tenant` once it no longer runs, or
    /// as it is when `wait` has passed.
    pub async fn report_when_done(
        &self,
        tenant: &Tenant,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<WorkflowReport, ServiceError> {
        let identity = RunIdentity::new(&tenant.name, id);
        let deadline = tokio::time::Instant::now() + wait;
        // Listening before looking: an end between the two is not missed.
        let ended = self.ended.subscribe();
        self.report_by(&identity, deadline, ended).await
    }

    /// The report of workflow `identity` once it no longer runs, or as it
    /// is at `deadline`, hearing of this process's runs' ends on `ended`.
    pub(super) async fn report_by(
        &self,
        identity: &RunIdentity,
        deadline: tokio::time::Instant,
        mut ended: tokio::sync::broadcast::Receiver<RunIdentity>,
    ) -> Result<WorkflowReport, ServiceError> {
        loop {
            let row = self.host.workflow(identity)?;
            if row.status != WorkflowStatus::Running || tokio::time::Instant::now() >= deadline {
                break;
            }
            // This process's runs say when they end; a run of another
            // process on the same database is looked at again now and then.
            let poll = deadline.min(tokio::time::Instant::now() + WATCH_POLL);
            if heard_end(&mut ended, identity, poll).await {
                break;
            }
        }
        Ok(self.host.report(identity)?)
    }

    /// Workflow `id` of `tenant`: its row and its events from `first` on.
    pub fn events_from(
        &self,
        tenant: &Tenant,
        id: &str,
        first: u64,
    ) -> Result<(WorkflowRow, Vec<Event>), ServiceError> {
        Ok(self
            .host
            .events_from(&RunIdentity::new(&tenant.name, id), first)?)
    }

    /// The workflows of `tenant` (or of every tenant), optionally of one
    /// status, oldest first: those after the one `after` names (its id;
    /// `TENANT/ID` across tenants), at most `limit`.
    pub fn list(
        &self,
        tenant: Option<&Tenant>,
        filter: &ListFilter,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<WorkflowRow>, ServiceError> {
        let mut rows = self
            .host
            .list(tenant.map(|tenant| tenant.name.as_str()), filter.status)?;
        if let Some(needle) = filter.search.as_deref().filter(|needle| !needle.is_empty()) {
            let mut kept = Vec::new();
            for row in rows {
                if row.id.contains(needle) || self.runs_task(&row, needle)? {
                    kept.push(row);
                }
            }
            rows = kept;
        }
        let cursor = |row: &WorkflowRow| match tenant {
            Some(_) => row.id.clone(),
            None => format!("{}/{}", row.tenant, row.id),
        };
        let start = match after {
            Some(after) => {
                let at = rows.iter().position(|row| cursor(row) == after);
                at.ok_or_else(|| not_found(after))? + 1
            }
            None => 0,
        };
        let end = limit.map_or(rows.len(), |limit| rows.len().min(start + limit));
        Ok(rows.get(start..end).map(<[_]>::to_vec).unwrap_or_default())
    }

    /// Whether a step of `row`'s workflow runs a task whose name holds
    /// `needle`. Reads the workflow's steps.
    fn runs_task(&self, row: &WorkflowRow, needle: &str) -> Result<bool, ServiceError> {
        let report = self.host.report(&RunIdentity::of(row))?;
        Ok(report.steps.iter().any(|step| step.task.contains(needle)))
    }

    /// Whether the state file is whole (`wfhost check`): for the
    /// operator alone, since it reads every tenant's records. It reads the
    /// whole file, so it runs on a thread of its own.
    pub async fn check(self: &Arc<Self>, scope: &Scope) -> Result<CheckReport, ServiceError> {
        if !matches!(scope, Scope::All) {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                "only the operator's key may check the state file",
            ));
        }
        let service = Arc::clone(self);
        tokio::task::spawn_blocking(move || service.host.store().check())
            .await
            .map_err(|err| ServiceError::new(ErrorKind::Store, format!("the check ended: {err}")))?
            .map_err(ServiceError::from)
    }

    /// What each tenant's workflows have used, by tenant name.
    pub fn usage_of_all(&self) -> Result<Vec<Usage>, ServiceError> {
        Ok(self.host.usage(None)?)
    }

    /// What `tenant`'s workflows have used.
    pub fn usage(&self, tenant: &Tenant) -> Result<Usage, ServiceError> {
        let usage = self.host.usage(Some(&tenant.name))?.pop();
        Ok(usage.unwrap_or_else(|| Usage::none(&tenant.name)))
    }

    /// The metrics text of `scope`: a tenant's own series, or every
    /// tenant's for the operator naming none.
    pub fn metrics(&self, scope: &Scope) -> Result<String, ServiceError> {
        let only = scope.tenant().map(|tenant| tenant.name.as_str());
        let mut gauges = Gauges::default();
        for row in self.host.list(only, None)? {
            *gauges
                .workflows
                .entry((row.tenant.clone(), row.status.as_str()))
                .or_default() += 1;
        }
        gauges.waiting = self.fair_share.waiting().into_iter().collect();
        gauges.commits = self.host.store().commit_latency();
        Ok(self
            .metrics
            .render(&gauges, |tenant| only.is_none_or(|only| only == tenant)))
    }
}
