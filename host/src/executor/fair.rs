//! Fair shares of the machine across tenants: a fixed number of attempt
//! slots (one per core, say), handed out round-robin among the tenants that
//! are waiting, so a tenant with a thousand queued attempts gets one slot
//! in turn like a tenant with one.
//!
//! Without it every attempt of every workflow would be a task of its own in
//! tokio's queue, and a tenant's one short step would wait behind all of
//! another tenant's flood.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::lock::lock;

/// Slots for attempts, shared by every workflow that runs with it.
#[derive(Debug)]
pub struct FairScheduler {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// The waiters of each tenant, first come first served within it.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Tenants with waiters, in the order their turn comes.
    turns: VecDeque<String>,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    scheduler: Arc<FairScheduler>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.scheduler.release();
    }
}

/// A wait for a slot that, if abandoned after the slot was handed over,
/// gives it back.
struct Wait<'a> {
    scheduler: &'a FairScheduler,
    granted: Option<oneshot::Receiver<()>>,
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(mut granted) = self.granted.take()
            && granted.try_recv().is_ok()
        {
            self.scheduler.release();
        }
    }
}

impl FairScheduler {
    /// A scheduler with `slots` attempts at once (at least one).
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(FairScheduler {
            state: Mutex::new(State {
                free: slots.max(1),
                waiting: HashMap::new(),
                turns: VecDeque::new(),
            }),
        })
    }

    /// How many attempts of each tenant wait for a slot now.
    pub fn waiting(&self) -> Vec<(String, usize)> {
        let state = lock(&self.state);
        state
            .waiting
            .iter()
            .map(|(tenant, waiters)| (tenant.clone(), waiters.len()))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Waits for `tenant`'s turn at a slot.
    pub(crate) async fn acquire(self: &Arc<Self>, tenant: &str) -> Slot {
        let granted = {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            if state.free > 0 && state.turns.is_empty() {
                state.free -= 1;
                return Slot {
                    scheduler: Arc::clone(self),
                };
            }
            let (grant, granted) = oneshot::channel();
            let queue = state.waiting.entry(tenant.to_string()).or_default();
            if queue.is_empty() {
                state.turns.push_back(tenant.to_string());
            }
            queue.push_back(grant);
            granted
        };
        let mut wait = Wait {
            scheduler: self,
            granted: Some(granted),
        };
        if let Some(granted) = wait.granted.as_mut() {
            // The sender stays in the state until it grants, and the state
            // lives as long as `self`: the wait ends with a slot.
            let _ = granted.await;
        }
        // The slot is ours: the wait must not give it back.
        wait.granted = None;
        Slot {
            scheduler: Arc::clone(self),
        }
    }

    /// Gives a slot to the next tenant in turn, or back to the pool.
    fn release(&self) {
        let mut state = lock(&self.state);
        while let Some(tenant) = state.turns.pop_front() {
            let Some(queue) = state.waiting.get_mut(&tenant) else {
                continue;
            };
            let grant = queue.pop_front();
            if queue.is_empty() {
                state.waiting.remove(&tenant);
            } else {
                state.turns.push_back(tenant);
            }
            if let Some(grant) = grant
                && grant.send(()).is_ok()
            {
                return;
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one slot taken and both tenants waiting, the flooding tenant
    /// gets no second turn before the other gets its first.
    #[tokio::test]
    async fn turns_alternate_between_waiting_tenants() {
        let scheduler = FairScheduler::new(1);
        let first = scheduler.acquire("flood").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (tenant, index) in [("flood", 1), ("flood", 2), ("flood", 3), ("other", 1)] {
            let (scheduler, order) = (Arc::clone(&scheduler), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let _slot = scheduler.acquire(tenant).await;
                order.lock().unwrap().push(format!("{tenant}-{index}"));
            }));
            // Queue them in this order.
            tokio::task::yield_now().await;
        }
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, ["flood-1", "other-1", "flood-2", "flood-3"]);
    }

    #[tokio::test]
    async fn an_abandoned_wait_gives_its_slot_back() {
        let scheduler = FairScheduler::new(1);
        let held = scheduler.acquire("a").await;
        let abandoned = {
            let scheduler = Arc::clone(&scheduler);
            tokio::spawn(async move { scheduler.acquire("b").await })
        };
        tokio::task::yield_now().await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(held);
        // Had the abandoned waiter kept the slot, this would wait forever.
        let again =
            tokio::time::timeout(std::time::Duration::from_secs(5), scheduler.acquire("c")).await;
        assert!(again.is_ok());
    }
}
