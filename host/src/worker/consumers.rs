//! The queues a worker consumes from now: those it started with, changed
//! at run time by Celery's `add_consumer` and `cancel_consumer`. Where a
//! worker sends follow-ups does not change with them (`routing.rs`): as in
//! Celery, a route is the sender's, not the consumer's.

use std::sync::{Arc, Mutex};

use super::routing::claim_keys;
use crate::lock::lock;

/// The queues consumed, and the lists a claim looks at for them.
#[derive(Debug, Default)]
pub(super) struct Consumed {
    /// The queues, in the order they were added.
    pub(super) queues: Vec<String>,
    /// (list key, queue) in kombu's claim order.
    pub(super) keys: Vec<(String, String)>,
}

impl Consumed {
    fn of(queues: Vec<String>) -> Arc<Consumed> {
        Arc::new(Consumed {
            keys: claim_keys(&queues),
            queues,
        })
    }
}

/// The queues consumed, changed by remote control.
pub(super) struct Consumers {
    now: Mutex<Arc<Consumed>>,
    changed: tokio::sync::Notify,
}

impl Consumers {
    pub(super) fn new(queues: &[String]) -> Consumers {
        Consumers {
            now: Mutex::new(Consumed::of(queues.to_vec())),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// What is consumed now.
    pub(super) fn now(&self) -> Arc<Consumed> {
        lock(&self.now).clone()
    }

    /// Starts consuming from `queue`; false when it already does.
    pub(super) fn add(&self, queue: &str) -> bool {
        self.change(|queues| {
            let new = !queues.iter().any(|q| q == queue);
            if new {
                queues.push(queue.to_string());
            }
            new
        })
    }

    /// Stops consuming from `queue`; false when it did not.
    pub(super) fn cancel(&self, queue: &str) -> bool {
        self.change(|queues| {
            let before = queues.len();
            queues.retain(|q| q != queue);
            queues.len() < before
        })
    }

    fn change(&self, edit: impl FnOnce(&mut Vec<String>) -> bool) -> bool {
        let mut now = lock(&self.now);
        let mut queues = now.queues.clone();
        let changed = edit(&mut queues);
        if changed {
            *now = Consumed::of(queues);
            self.changed.notify_waiters();
        }
        changed
    }

    /// Completes when the queues consumed change.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_come_and_go_and_the_claim_follows() {
        let consumers = Consumers::new(&["a".into()]);
        assert!(consumers.add("b"));
        assert!(!consumers.add("a"), "already consumed");
        assert_eq!(consumers.now().queues, ["a", "b"]);
        assert_eq!(
            consumers.now().keys[..2],
            [
                ("a".to_string(), "a".to_string()),
                ("b".to_string(), "b".to_string())
            ]
        );
        assert!(consumers.cancel("a"));
        assert!(!consumers.cancel("a"));
        assert!(consumers.cancel("b"));
        assert!(consumers.now().keys.is_empty(), "nothing consumed");
    }
}
