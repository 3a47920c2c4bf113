//! The worker's slots: how many tasks run at once (`--concurrency`),
//! grown and shrunk by Celery's `pool_grow` and `pool_shrink` while the
//! worker runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// The most slots a worker may have.
pub const MAX_SLOTS: usize = 1024;

/// Slots for the tasks of one worker.
pub(super) struct Pool {
    slots: Arc<Semaphore>,
    size: AtomicUsize,
}

impl Pool {
    pub(super) fn new(size: usize) -> Pool {
        Pool {
            slots: Arc::new(Semaphore::new(size)),
            size: AtomicUsize::new(size),
        }
    }

    /// The slots, to take one for each task.
    pub(super) fn slots(&self) -> Arc<Semaphore> {
        self.slots.clone()
    }

    /// How many slots there are now.
    pub(super) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Adds `n` slots (up to [`MAX_SLOTS`] in all); how many were added.
    pub(super) fn grow(&self, n: usize) -> usize {
        let added = n.min(MAX_SLOTS.saturating_sub(self.size()));
        self.size.fetch_add(added, Ordering::Relaxed);
        self.slots.add_permits(added);
        added
    }

    /// Removes `n` slots (leaving at least one), each as soon as the task
    /// holding it ends; how many will go.
    pub(super) fn shrink(&self, n: usize) -> usize {
        let removed = n.min(self.size().saturating_sub(1));
        if removed == 0 {
            return 0;
        }
        self.size.fetch_sub(removed, Ordering::Relaxed);
        let slots = self.slots.clone();
        tokio::spawn(async move {
            if let Ok(taken) = slots.acquire_many(removed as u32).await {
                taken.forget();
            }
        });
        removed
    }
}
