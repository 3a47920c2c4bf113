//! The worker's slots: how many tasks run at once (`--concurrency`), and
//! how many messages it holds claimed ahead of a free slot (Celery's
//! prefetch: `--prefetch-multiplier` times the slots), both grown and
//! shrunk by Celery's `pool_grow` and `pool_shrink` while the worker runs.
//!
//! A message claimed ahead waits for a slot in the worker (`inspect
//! reserved` lists it, its lease renewed), so that one task's claim and
//! commit, which are round trips to Redis, overlap another's run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// The most slots a worker may have.
pub const MAX_SLOTS: usize = 1024;

/// The largest prefetch multiplier.
pub const MAX_PREFETCH_MULTIPLIER: usize = 64;

/// Slots for the tasks of one worker.
pub(super) struct Pool {
    /// Messages held, claimed and not yet committed.
    held: Arc<Semaphore>,
    /// Tasks running.
    running: Arc<Semaphore>,
    size: AtomicUsize,
    multiplier: usize,
}

impl Pool {
    pub(super) fn new(size: usize, multiplier: usize) -> Pool {
        let multiplier = multiplier.clamp(1, MAX_PREFETCH_MULTIPLIER);
        Pool {
            held: Arc::new(Semaphore::new(size * multiplier)),
            running: Arc::new(Semaphore::new(size)),
            size: AtomicUsize::new(size),
            multiplier,
        }
    }

    /// One permit a message held: the claim loop takes one per claim.
    pub(super) fn held(&self) -> Arc<Semaphore> {
        self.held.clone()
    }

    /// A place in the line for a slot to run in, taken as a message is
    /// claimed: messages claimed ahead run in the order they were claimed
    /// (Celery's worker runs its reserved messages in the order received).
    pub(super) fn line_up(&self) -> Turn {
        let mut waiting: Waiting = Box::pin(self.running.clone().acquire_owned());
        // The semaphore lines its waiters up in the order they first ask;
        // asking here, not when the task that runs the message first runs,
        // keeps that order the claims'.
        match waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(permit)) => Turn::Now(permit),
            // A future that finished must not be polled again.
            Poll::Ready(Err(_)) => Turn::Closed,
            Poll::Pending => Turn::Waiting(waiting),
        }
    }

    /// How many slots there are now.
    pub(super) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// How many messages may be held now (Celery's `prefetch_count`).
    pub(super) fn prefetch(&self) -> usize {
        self.size() * self.multiplier
    }

    /// Adds `n` slots (up to [`MAX_SLOTS`] in all); how many were added.
    pub(super) fn grow(&self, n: usize) -> usize {
        let added = n.min(MAX_SLOTS.saturating_sub(self.size()));
        self.size.fetch_add(added, Ordering::Relaxed);
        self.running.add_permits(added);
        self.held.add_permits(added * self.multiplier);
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
        for (semaphore, count) in [
            (self.running.clone(), removed),
            (self.held.clone(), removed * self.multiplier),
        ] {
            tokio::spawn(async move {
                if let Ok(taken) = semaphore.acquire_many(count as u32).await {
                    taken.forget();
                }
            });
        }
        removed
    }
}

type Waiting = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A message's place in the line for a slot to run in ([`Pool::line_up`]).
pub(super) enum Turn {
    /// A slot is free.
    Now(OwnedSemaphorePermit),
    /// Waiting in line.
    Waiting(Waiting),
    /// The slots are gone (never while the worker runs).
    Closed,
}

impl Turn {
    /// Waits for the turn; none if the pool is gone.
    pub(super) async fn taken(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Turn::Now(permit) => Some(permit),
            Turn::Waiting(waiting) => waiting.await.ok(),
            Turn::Closed => None,
        }
    }
}
