//! How long each task of a plugin typically takes: a moving average of its
//! attempts, shared by every copy of the plugin, so that what one workflow
//! learned serves the next. The executor reads it to decide where an
//! attempt runs (see `executor::attempt`): handing a step to another thread
//! costs more than a quick step itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The weight of the newest attempt in a task's average, as a divisor:
/// the average follows a change of pace within a few attempts.
const NEWEST_WEIGHT: u64 = 8;

/// The typical attempt time of each task of one plugin.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Nanoseconds by task name; 0 until an attempt of the task ended.
    tasks: HashMap<String, AtomicU64>,
}

impl Pace {
    /// No attempt timed yet of the tasks named.
    pub(crate) fn new<'a>(tasks: impl IntoIterator<Item = &'a str>) -> Self {
        Pace {
            tasks: tasks
                .into_iter()
                .map(|task| (task.to_string(), AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Counts an attempt of `task` that took `took`. Attempts ending at
    /// once on two threads may each miss the other's count: an average
    /// loses nothing that matters by it.
    pub(crate) fn observe(&self, task: &str, took: Duration) {
        let Some(average) = self.tasks.get(task) else {
            return;
        };
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let before = average.load(Ordering::Relaxed);
        let after = if before == 0 {
            took
        } else {
            let (before, took) = (i128::from(before), i128::from(took));
            let moved = before + (took - before) / i128::from(NEWEST_WEIGHT);
            u64::try_from(moved.max(1)).unwrap_or(u64::MAX)
        };
        average.store(after, Ordering::Relaxed);
    }

    /// How long an attempt of `task` typically takes; none before one
    /// has ended.
    pub(crate) fn typical(&self, task: &str) -> Option<Duration> {
        let nanos = self.tasks.get(task)?.load(Ordering::Relaxed);
        (nanos > 0).then(|| Duration::from_nanos(nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_follows_attempts_and_knows_only_the_plugins_tasks() {
        let pace = Pace::new(["add", "resize"]);
        assert_eq!(pace.typical("add"), None);
        pace.observe("add", Duration::from_micros(10));
        assert_eq!(pace.typical("add"), Some(Duration::from_micros(10)));
        for _ in 0..100 {
            pace.observe("add", Duration::from_millis(2));
        }
        let typical = pace.typical("add").unwrap();
        assert!(typical > Duration::from_micros(1900), "{typical:?}");
        assert!(typical <= Duration::from_millis(2), "{typical:?}");
        assert_eq!(pace.typical("resize"), None);
        pace.observe("unknown", Duration::from_secs(1));
        assert_eq!(pace.typical("unknown"), None);
    }
}
