//! Requests to cancel, from other processes: a process that cancels a
//! workflow another runs records the request in the store, and the runs of
//! this host look for requests while they run. The store is read at most
//! once per [`POLL`] for all of them, however many there are.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use crate::executor::RunIdentity;
use crate::lock::lock;
use crate::runtime::CancelToken;
use crate::store::Store;

/// How often the store is read for requests: a cancel from another process
/// takes effect within about this long.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// The requests last read, shared by this host's runs.
#[derive(Default)]
pub(crate) struct CancelRequests(std::sync::Mutex<Option<Snapshot>>);

/// The requests as the store had them at one time.
struct Snapshot {
    read_at: Instant,
    /// The workflows asked to be cancelled, by tenant and id.
    requested: HashSet<(String, String)>,
}

impl CancelRequests {
    /// Whether a request to cancel `identity` waits, as the store said at
    /// most [`POLL`] ago. A store that cannot be read says no, this time.
    pub(crate) fn requested(&self, store: &Store, identity: &RunIdentity) -> bool {
        let mut last = lock(&self.0);
        let stale = last
            .as_ref()
            .is_none_or(|snapshot| snapshot.read_at.elapsed() >= POLL);
        if stale {
            *last = store.cancel_requests().ok().map(|requested| Snapshot {
                read_at: Instant::now(),
                requested,
            });
        }
        last.as_ref().is_some_and(|snapshot| {
            snapshot
                .requested
                .contains(&(identity.tenant.clone(), identity.id.clone()))
        })
    }

    /// Cancels `identity`'s run through `token` once a request to cancel
    /// it is found; never returns, so that it ends with the run it is
    /// raced against.
    pub(crate) async fn answer(
        &self,
        store: &Store,
        identity: &RunIdentity,
        token: CancelToken,
    ) -> Infallible {
        while !self.requested(store, identity) {
            tokio::time::sleep(POLL).await;
        }
        tracing::info!(
            tenant = %identity.tenant.escape_debug(),
            id = %identity.id.escape_debug(),
            "cancel requested by another process"
        );
        token.cancel();
        std::future::pending().await
    }
}
