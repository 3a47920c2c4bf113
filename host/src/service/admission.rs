//! Admission: each tenant's workflows in flight, within its cap, counted by
//! a guard that gives its place back when the workflow's task ends however
//! it ends, a panic included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::lock::lock;

/// Workflows in flight, by tenant.
#[derive(Default)]
pub(crate) struct Admission(Arc<Mutex<HashMap<String, usize>>>);

/// One workflow's place in flight; given back when dropped.
pub(crate) struct Admitted {
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    tenant: String,
}

impl Admission {
    /// A place in flight for one more of `tenant`'s workflows, unless it
    /// has `cap` already; then how many it has.
    pub(crate) fn admit(&self, tenant: &str, cap: usize) -> Result<Admitted, usize> {
        let mut in_flight = lock(&self.0);
        let count = in_flight.entry(tenant.to_string()).or_default();
        if *count >= cap {
            return Err(*count);
        }
        *count += 1;
        Ok(Admitted {
            in_flight: Arc::clone(&self.0),
            tenant: tenant.to_string(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(count) = lock(&self.in_flight).get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_has_at_most_its_cap_in_flight_until_one_ends() {
        let admission = Admission::default();
        let first = admission.admit("a", 2).unwrap();
        let _second = admission.admit("a", 2).unwrap();
        assert_eq!(admission.admit("a", 2).err(), Some(2));
        assert!(admission.admit("b", 2).is_ok(), "another tenant's cap");
        drop(first);
        assert!(admission.admit("a", 2).is_ok());
    }

    /// A workflow task that panics gives its place back as it unwinds.
    #[test]
    fn a_panicking_workflow_gives_its_place_back() {
        let admission = Admission::default();
        let admitted = admission.admit("a", 1).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = admitted;
            panic!("a workflow task that panics");
        }));
        assert!(panicked.is_err());
        assert!(admission.admit("a", 1).is_ok());
    }
}
