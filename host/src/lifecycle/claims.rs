//! Which workflows this host is running now: one claim per workflow, held
//! from the decision to run it until its run ends, however it ends, with the
//! token that cancels it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::executor::RunIdentity;
use crate::lock::lock;
use crate::runtime::CancelToken;

type Running = HashMap<RunIdentity, CancelToken>;

/// The workflows running here, by identity.
#[derive(Default)]
pub(crate) struct Claims(Arc<Mutex<Running>>);

/// The claim on one workflow; dropping it (when the run ends, or the task
/// running it panics) lets the workflow be run again.
pub(crate) struct Claim {
    running: Arc<Mutex<Running>>,
    identity: RunIdentity,
    cancel: CancelToken,
}

impl Claims {
    /// Claims `identity`, unless it is claimed already.
    pub(crate) fn claim(&self, identity: &RunIdentity) -> Option<Claim> {
        let mut running = lock(&self.0);
        if running.contains_key(identity) {
            return None;
        }
        let cancel = CancelToken::new();
        running.insert(identity.clone(), cancel.clone());
        Some(Claim {
            running: Arc::clone(&self.0),
            identity: identity.clone(),
            cancel,
        })
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
        let claims = Claims::default();
        let identity = RunIdentity::new("t", "wf");
        let claim = claims.claim(&identity).expect("the first claim");
        assert!(claims.claim(&identity).is_none());
        assert!(claims.claim(&RunIdentity::new("u", "wf")).is_some());
        claims.cancel_token(&identity).unwrap().cancel();
        assert!(claim.cancel_token().is_cancelled());
        drop(claim);
        assert!(claims.cancel_token(&identity).is_none());
        assert!(claims.claim(&identity).is_some());
    }

    /// A run that panics gives its claim back as it unwinds.
    #[test]
    fn a_panicking_run_gives_its_claim_back() {
        let claims = Claims::default();
        let identity = RunIdentity::new("t", "wf");
        let claim = claims.claim(&identity).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = claim;
            panic!("a run that panics");
        }));
        assert!(panicked.is_err());
        assert!(claims.claim(&identity).is_some());
    }
}
