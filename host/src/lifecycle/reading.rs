//! What the host reads for its callers: a workflow's row, report and
//! events, lists and usage, each refused alike for an id its tenant does
//! not have.

use super::{Host, HostError};
use crate::executor::RunIdentity;
use crate::records::{Event, Usage, WorkflowReport, WorkflowRow, WorkflowStatus};

impl Host {
    /// Workflow `identity`'s row.
    pub fn workflow(&self, identity: &RunIdentity) -> Result<WorkflowRow, HostError> {
        self.store
            .workflow(&identity.tenant, &identity.id)?
            .ok_or_else(|| self.not_found(identity))
    }

    /// Workflow `identity`'s report: its row and every step.
    pub fn report(&self, identity: &RunIdentity) -> Result<WorkflowReport, HostError> {
        self.store
            .report(&identity.tenant, &identity.id)?
            .ok_or_else(|| self.not_found(identity))
    }

    /// Workflow `identity`'s event log.
    pub fn events(&self, identity: &RunIdentity) -> Result<Vec<Event>, HostError> {
        Ok(self.events_from(identity, 0)?.1)
    }

    /// Workflow `identity`'s row, then its events from position `first`
    /// on (read in that order: once the row says it no longer runs, these
    /// are all the events there will be).
    pub fn events_from(
        &self,
        identity: &RunIdentity,
        first: u64,
    ) -> Result<(WorkflowRow, Vec<Event>), HostError> {
        let row = self.workflow(identity)?;
        let events = self
            .store
            .events_from(&identity.tenant, &identity.id, first)?;
        Ok((row, events))
    }

    /// Workflows, of one tenant or all, of one status or all, oldest first.
    pub fn list(
        &self,
        tenant: Option<&str>,
        status: Option<WorkflowStatus>,
    ) -> Result<Vec<WorkflowRow>, HostError> {
        Ok(self.store.workflows(tenant, status)?)
    }

    /// What each tenant (or only `tenant`) has used, by tenant name.
    pub fn usage(&self, tenant: Option<&str>) -> Result<Vec<Usage>, HostError> {
        Ok(self.store.usage(tenant)?)
    }

    pub(super) fn not_found(&self, identity: &RunIdentity) -> HostError {
        HostError::not_found(&self.store, identity)
    }
}
