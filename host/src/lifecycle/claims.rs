//! Which workflows this host is running now: one claim per workflow, held
//! from the decision to run it until its run ends, however it ends, with the
//! token that cancels it. A claim holds the workflow's lease in the store,
//! so that no other process runs it meanwhile either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::executor::RunIdentity;
use crate::lock::lock;
use crate::runtime::CancelToken;
use crate::store::{Lease, Store, StoreError};

type Running = HashMap<RunIdentity, CancelToken>;

/// The workflows running here, by identity.
#[derive(Default)]
pub(crate) struct Claims(Arc<Mutex<Running>>);

/// The claim on one workflow; dropping it (when the run ends, or the task
/// running it panics) lets the workflow be run again, here or elsewhere.
pub(crate) struct Claim {
    running: Arc<Mutex<Running>>,
    identity: RunIdentity,
    cancel: CancelToken,
    _lease: Lease,
}

impl Claims {
    /// Claims `identity`, unless this or another process runs it.
    pub(crate) fn claim(
        &self,
        store: &Store,
        identity: &RunIdentity,
    ) -> Result<Option<Claim>, StoreError> {
        let Some(lease) = store.lease(&identity.tenant, &identity.id)? else {
            return Ok(None);
        };
        let cancel = CancelToken::new();
        lock(&self.0).insert(identity.clone(), cancel.clone());
        Ok(Some(Claim {
            running: Arc::clone(&self.0),
            identity: identity.clone(),
            cancel,
            _lease: lease,
        }))
    }

    /// The token that cancels `identity`'s run, if it runs here.
    pub(crate) fn cancel_token(&self, identity: &RunIdentity) -> Option<CancelToken> {
        lock(&self.0).get(identity).cloned()
    }
}

impl Claim {
    /// The token that cancels the claimed run.
    pub(crate) fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_is_claimed_once_until_its_claim_is_dropped() {
        let store = Store::in_memory().unwrap();
        let claims = Claims::default();
        let identity = RunIdentity::new("t", "wf");
        let claim = claims.claim(&store, &identity).unwrap().expect("the first");
        assert!(claims.claim(&store, &identity).unwrap().is_none());
        assert!(store.is_running("t", "wf").unwrap());
        let other = RunIdentity::new("u", "wf");
        assert!(claims.claim(&store, &other).unwrap().is_some());
        claims.cancel_token(&identity).unwrap().cancel();
        assert!(claim.cancel_token().is_cancelled());
        drop(claim);
        assert!(claims.cancel_token(&identity).is_none());
        assert!(!store.is_running("t", "wf").unwrap());
        assert!(claims.claim(&store, &identity).unwrap().is_some());
    }

    /// A run that panics gives its claim back as it unwinds.
    #[test]
    fn a_panicking_run_gives_its_claim_back() {
        let store = Store::in_memory().unwrap();
        let claims = Claims::default();
        let identity = RunIdentity::new("t", "wf");
        let claim = claims.claim(&store, &identity).unwrap().unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = claim;
            panic!("a run that panics");
        }));
        assert!(panicked.is_err());
        assert!(claims.claim(&store, &identity).unwrap().is_some());
    }
}
