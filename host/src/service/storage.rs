//! Each tenant's room in the state file: its records' bytes, counted at
//! most once a [`RECOUNT`] per tenant (a count reads all of them), against
//! its `max_stored_bytes`, when it submits a workflow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::tenants::Tenant;
use super::{ErrorKind, ServiceError};
use crate::lock::lock;
use crate::store::Store;

/// How long a tenant's count stands before it is made again.
pub(crate) const RECOUNT: Duration = Duration::from_secs(1);

/// The last count of each tenant's stored bytes, and when it was made.
#[derive(Default)]
pub(crate) struct StorageQuota(Mutex<HashMap<String, (Instant, u64)>>);

impl StorageQuota {
    /// Refuses a submission of `tenant` once its records take its
    /// `max_stored_bytes` or more.
    pub(crate) fn check(&self, store: &Store, tenant: &Tenant) -> Result<(), ServiceError> {
        let Some(most) = tenant.max_stored_bytes else {
            return Ok(());
        };
        let counted = lock(&self.0)
            .get(&tenant.name)
            .filter(|(at, _)| at.elapsed() < RECOUNT)
            .map(|(_, bytes)| *bytes);
        let stored = match counted {
            Some(bytes) => bytes,
            None => {
                let bytes = store.stored_bytes(&tenant.name)?;
                lock(&self.0).insert(tenant.name.clone(), (Instant::now(), bytes));
                bytes
            }
        };
        if stored < most {
            return Ok(());
        }
        Err(ServiceError::new(
            ErrorKind::StorageFull,
            format!(
                "tenant {}'s records take {stored} bytes, its most (max_stored_bytes {most}): \
                 purge workflows it no longer needs, or wait for the retention to",
                tenant.name
            ),
        ))
    }
}
