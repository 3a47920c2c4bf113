//! Celery's `rate_limit` command: at most so many tasks of one name start
//! per second on this worker (`"10/s"`, `"100/m"`, `"1000/h"`, or a number
//! per second). A task over its rate goes back to the delayed messages in
//! Redis until its turn, so it holds neither a slot nor the worker's
//! memory while it waits.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::lock::lock;
use crate::records::now_ms;

/// The rate limits of one worker, by task name.
#[derive(Default)]
pub(super) struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// One task's turn: tasks start at least `interval_ms` apart.
struct Bucket {
    interval_ms: f64,
    next_ms: f64,
}

/// The tasks per second of Celery's rate string; none for `0`, `""`
/// (which lift the limit), `Err` for what is not a rate.
pub(super) fn per_second(rate: &str) -> Result<Option<f64>, String> {
    let rate = rate.trim();
    let (count, unit) = rate.split_once('/').unwrap_or((rate, "s"));
    if count.is_empty() {
        return Ok(None);
    }
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{rate}` is not a rate such as 10/s, 100/m or 1000/h"))?;
    let seconds = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("`{other}` is not s, m or h")),
    };
    if !count.is_finite() || count < 0.0 {
        return Err(format!("`{rate}` is not a rate"));
    }
    Ok((count > 0.0).then(|| count / seconds))
}

impl RateLimits {
    /// Sets (or with none, lifts) the rate of task `name`.
    pub(super) fn set(&self, name: &str, per_second: Option<f64>) {
        let mut buckets = lock(&self.buckets);
        match per_second {
            Some(rate) => {
                buckets.insert(
                    name.to_string(),
                    Bucket {
                        interval_ms: 1000.0 / rate.max(1e-6),
                        next_ms: 0.0,
                    },
                );
            }
            None => {
                buckets.remove(name);
            }
        }
    }

    /// Whether a task of `name` may start now; when not, the instant (ms)
    /// of its turn.
    pub(super) fn take(&self, name: &str) -> Result<(), u64> {
        let mut buckets = lock(&self.buckets);
        let Some(bucket) = buckets.get_mut(name) else {
            return Ok(());
        };
        let now = now_ms() as f64;
        if now >= bucket.next_ms {
            bucket.next_ms = now + bucket.interval_ms;
            Ok(())
        } else {
            Err(bucket.next_ms.ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_celery_writes_them() {
        assert_eq!(per_second("10/s"), Ok(Some(10.0)));
        assert_eq!(per_second("120/m"), Ok(Some(2.0)));
        assert_eq!(per_second("5"), Ok(Some(5.0)));
        assert_eq!(per_second("0"), Ok(None));
        assert!(per_second("ten/s").is_err() && per_second("1/d").is_err());
    }

    #[test]
    fn a_second_task_waits_its_turn() {
        let limits = RateLimits::default();
        assert_eq!(limits.take("a"), Ok(()));
        limits.set("a", Some(1.0));
        assert_eq!(limits.take("a"), Ok(()));
        let turn = limits.take("a").unwrap_err();
        assert!(turn > now_ms() + 900, "one second apart");
        limits.set("a", None);
        assert_eq!(limits.take("a"), Ok(()));
    }
}
