//! A graceful stop: no new step starts, and the steps under way are waited
//! for (up to a grace period), so their outcomes are committed rather than
//! cut off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Shared by the runs of a host that may be stopped.
#[derive(Debug, Default)]
pub struct Drain {
    stopping: AtomicBool,
    in_progress: AtomicUsize,
    changed: Notify,
}

/// A step under way; it counts until dropped.
#[derive(Debug)]
pub(crate) struct Working(Arc<Drain>);

impl Drop for Working {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Drain {
    /// A host not stopping, with no step under way.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Counts a step as under way; once the host is stopping, never
    /// returns, so a step that has not started never does.
    pub(crate) async fn begin(self: &Arc<Self>) -> Working {
        // Counted before the check, so a stop either sees this step or
        // this step sees the stop.
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        let working = Working(Arc::clone(self));
        if self.stopping.load(Ordering::SeqCst) {
            drop(working);
            let never = std::future::pending::<std::convert::Infallible>().await;
            match never {}
        }
        working
    }

    /// Whether the host is stopping (starts no step).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Starts no step from now on; those under way go on.
    pub fn stop_starting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Stops new steps and waits up to `grace` for those under way.
    /// Returns how many were still under way when the grace ran out.
    pub async fn stop(&self, grace: Duration) -> usize {
        self.stop_starting();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let changed = self.changed.notified();
            let left = self.in_progress.load(Ordering::SeqCst);
            if left == 0 {
                return 0;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => return left,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_waits_for_steps_under_way_and_starts_none() {
        let drain = Drain::new();
        let working = drain.begin().await;
        let stopping = {
            let drain = Arc::clone(&drain);
            tokio::spawn(async move { drain.stop(Duration::from_secs(30)).await })
        };
        // Time enough for the stop to run and reach its wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!stopping.is_finished(), "the stop waits for the step");
        let late = tokio::time::timeout(Duration::from_millis(50), drain.begin()).await;
        assert!(late.is_err(), "no step starts once stopping");
        drop(working);
        assert_eq!(stopping.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_stop_gives_up_after_its_grace() {
        let drain = Drain::new();
        let _stuck = drain.begin().await;
        assert_eq!(drain.stop(Duration::from_millis(20)).await, 1);
    }
}
