//! Removing workflows: one on request (`wfhost rm`), many by age, status
//! and tenant (`wfhost purge`), and the ended ones past a retention, as
//! Celery's `result_expires` does. A workflow that runs is never removed:
//! each removal holds the workflow's claim.

use std::time::Duration;

use super::{Host, HostError};
use crate::executor::RunIdentity;
use crate::records::{WorkflowRow, WorkflowStatus, now_ms};

/// How often ended workflows are looked for past a retention, at most.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// Which workflows [`Host::purge`] removes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Purge {
    /// Only those whose last change is at least this old.
    pub older_than: Option<Duration>,
    /// Only those of this status; without one, those that ended
    /// (succeeded, failed or cancelled).
    pub status: Option<WorkflowStatus>,
    /// Only this tenant's.
    pub tenant: Option<String>,
}

impl Purge {
    /// Every workflow that ended.
    pub fn new() -> Self {
        Purge::default()
    }

    /// Only those whose last change is at least `age` old.
    pub fn older_than(mut self, age: Duration) -> Self {
        self.older_than = Some(age);
        self
    }

    /// Only those of `status`.
    pub fn status(mut self, status: WorkflowStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only `tenant`'s.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// Whether `row` is one to remove, now being `now_ms`.
    fn takes(&self, row: &WorkflowRow, now_ms: u64) -> bool {
        let status = match self.status {
            Some(status) => row.status == status,
            None => matches!(
                row.status,
                WorkflowStatus::Succeeded | WorkflowStatus::Failed | WorkflowStatus::Cancelled
            ),
        };
        let old_enough = self.older_than.is_none_or(|age| {
            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            row.updated_at_ms <= now_ms.saturating_sub(age)
        });
        status && old_enough && row.status != WorkflowStatus::Running
    }
}

impl Host {
    /// Removes workflow `identity` and every record of it; one that runs
    /// is refused. Returns the row it had.
    pub async fn remove(&self, identity: &RunIdentity) -> Result<WorkflowRow, HostError> {
        let Some(_claim) = self.claims.claim(&self.store, identity)? else {
            self.workflow(identity)?;
            return Err(HostError::StillRunning {
                id: identity.id.clone(),
            });
        };
        let row = self.workflow(identity)?;
        self.store
            .remove_workflow(&identity.tenant, &identity.id)
            .await?;
        Ok(row)
    }

    /// Removes the workflows `purge` names, skipping any that runs.
    /// Returns the rows they had.
    pub async fn purge(&self, purge: &Purge) -> Result<Vec<WorkflowRow>, HostError> {
        let now = now_ms();
        let mut removed = Vec::new();
        for row in self
            .store
            .workflows(purge.tenant.as_deref(), purge.status)?
        {
            if !purge.takes(&row, now) {
                continue;
            }
            let identity = RunIdentity::of(&row);
            let Some(_claim) = self.claims.claim(&self.store, &identity)? else {
                continue;
            };
            // Read again under the claim: it may have moved on meanwhile.
            // Under this claim, one on record as running runs nowhere else:
            // it is cut off.
            let now_row = self
                .store
                .workflow(&identity.tenant, &identity.id)?
                .map(|mut row| {
                    if row.status == WorkflowStatus::Running {
                        row.status = WorkflowStatus::CutOff;
                    }
                    row
                });
            match now_row {
                Some(now_row) if purge.takes(&now_row, now) => {
                    self.store
                        .remove_workflow(&identity.tenant, &identity.id)
                        .await?;
                    removed.push(now_row);
                }
                _ => {}
            }
        }
        Ok(removed)
    }

    /// Removes the workflows that ended at least `retention` ago, unless
    /// that was done (by any process) within the last hour, or within
    /// `retention` if shorter. Returns how many were removed.
    pub async fn expire(&self, retention: Duration) -> Result<usize, HostError> {
        let now = now_ms();
        let every = u64::try_from(retention.min(EXPIRY_INTERVAL).as_millis()).unwrap_or(u64::MAX);
        if let Some(at) = self.store.expired_at()?
            && now.saturating_sub(at) < every
        {
            return Ok(0);
        }
        self.store.set_expired_at(now).await?;
        let removed = self.purge(&Purge::new().older_than(retention)).await?.len();
        tracing::info!(removed, ?retention, "removed workflows past the retention");
        Ok(removed)
    }
}
