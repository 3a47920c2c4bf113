//! Parked workflows: those whose run reached a sleep or a wait and let go
//! of everything it held — its lease, its memory, its task — to be woken
//! by a waker (the scheduler loop of `serve`, `ui` or `wfhost scheduler`)
//! at their due instant, or when a signal comes.

use redb::ReadableTable;

use super::commit::{Rows, Write};
use super::tables::{PARKED, PARKED_BY_DUE, table_if_made};
use super::{Store, StoreError};

/// Parked workflows a waker takes at most in one look.
pub(crate) const MAX_WOKEN_AT_ONCE: usize = 10_000;

/// The parked workflows due by some time, and when the next one is due.
#[derive(Debug, Default)]
pub(crate) struct DueParked {
    /// The workflows due, by tenant and id, the earliest first.
    pub due: Vec<(String, String)>,
    /// When the first one not yet due is, if any is parked.
    pub next_ms: Option<u64>,
}

impl Store {
    /// Parks workflow `id` of `tenant` until `due_ms` (`u64::MAX`: until
    /// a signal), with an event `workflow_parked` saying so when `detail`
    /// is given.
    pub(crate) async fn park(
        &self,
        tenant: &str,
        id: &str,
        due_ms: u64,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let mut write = Write::new(tenant, id, Rows::Park { due: Some(due_ms) });
        if let Some(detail) = detail {
            write = write.with_event("workflow_parked", None, Some(detail));
        }
        self.committer.write(write).await
    }

    /// Takes workflow `id` of `tenant` off the parked ones.
    pub(crate) async fn unpark(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let write = Write::new(tenant, id, Rows::Park { due: None });
        self.committer.write(write).await
    }

    /// When parked workflow `id` of `tenant` is due, if it is parked.
    pub(crate) fn parked_until(&self, tenant: &str, id: &str) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            let Some(table) = table_if_made(txn, PARKED)? else {
                return Ok(None);
            };
            Ok(table.get((tenant, id))?.map(|due| due.value()))
        })
    }

    /// The parked workflows due by `now_ms` (at most
    /// [`MAX_WOKEN_AT_ONCE`]), and when the next is due.
    pub(crate) fn parked_due(&self, now_ms: u64) -> Result<DueParked, StoreError> {
        self.read(|txn| {
            let Some(table) = table_if_made(txn, PARKED_BY_DUE)? else {
                return Ok(DueParked::default());
            };
            let mut found = DueParked::default();
            for entry in table.iter()? {
                let (key, _) = entry?;
                let (due, tenant, id) = key.value();
                if due > now_ms || found.due.len() == MAX_WOKEN_AT_ONCE {
                    found.next_ms = Some(due);
                    break;
                }
                found.due.push((tenant.to_string(), id.to_string()));
            }
            Ok(found)
        })
    }
}
