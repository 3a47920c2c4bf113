//! When and how often a step is tried again (Celery's retry options):
//! one policy for `wfhost run` and for the fleet's workers.

use std::time::Duration;

use crate::StepOptions;

/// Celery's defaults: three retries, three minutes apart, backoff capped at
/// ten minutes, jitter on.
const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_RETRY_DELAY: f64 = 180.0;
const DEFAULT_BACKOFF_MAX: f64 = 600.0;

/// No single wait is longer than a day: a step that asks for more is a bug.
const LONGEST_DELAY: Duration = Duration::from_secs(24 * 3600);

/// A step's retry options with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Further attempts a `retry` may cause after the first, where the
    /// step's options say.
    max_retries: Option<u32>,
    /// Further attempts where neither the step's options nor the task say
    /// (Celery's default, unless a driver has its own).
    pub default_max_retries: u32,
    default_retry_delay: f64,
    backoff_factor: Option<f64>,
    backoff_max: f64,
    jitter: bool,
    /// Whether fuel, memory and time failures are retried too.
    pub retry_on_limit: bool,
}

impl RetryPolicy {
    /// The policy of a step whose options (defaults applied) are `options`.
    pub fn from_options(options: &StepOptions) -> Self {
        RetryPolicy {
            max_retries: options.max_retries,
            default_max_retries: DEFAULT_MAX_RETRIES,
            default_retry_delay: options.default_retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
            backoff_factor: options.retry_backoff.and_then(|backoff| backoff.factor()),
            backoff_max: options.retry_backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX),
            jitter: options.retry_jitter.unwrap_or(true),
            retry_on_limit: options.retry_on_limit.unwrap_or(false),
        }
    }

    /// The retries allowed: the step's `max_retries`, else the task's own
    /// limit (`task_limit`, given with its retry request), else the default.
    pub fn max_retries(&self, task_limit: Option<u32>) -> u32 {
        self.max_retries
            .or(task_limit)
            .unwrap_or(self.default_max_retries)
    }

    /// Whether another attempt may follow attempt number `attempt` (from
    /// 1), under the task's own limit where it gives one.
    pub fn allows_another(&self, attempt: u32, task_limit: Option<u32>) -> bool {
        attempt <= self.max_retries(task_limit)
    }

    /// The wait before the next attempt, after `retries_done` retries: the
    /// task's own countdown, else the backoff `min(max, factor·2^n)` (with
    /// full jitter when on: `random` gives a fraction in `[0, 1)`), else
    /// `default_retry_delay`.
    pub fn delay(
        &self,
        retries_done: u32,
        countdown: Option<f64>,
        random: impl FnOnce() -> f64,
    ) -> Duration {
        let seconds = match (countdown, self.backoff_factor) {
            (Some(countdown), _) => countdown,
            (None, Some(factor)) => {
                let exponent = i32::try_from(retries_done).unwrap_or(i32::MAX);
                let delay = (factor * 2f64.powi(exponent)).min(self.backoff_max);
                if self.jitter {
                    random().clamp(0.0, 1.0) * delay
                } else {
                    delay
                }
            }
            (None, None) => self.default_retry_delay,
        };
        seconds_to_duration(seconds)
    }
}

/// Seconds as a duration, clamped to `[0, LONGEST_DELAY]`.
pub fn seconds_to_duration(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).map_or(LONGEST_DELAY, |d| d.min(LONGEST_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryBackoff;

    fn policy(options: StepOptions) -> RetryPolicy {
        RetryPolicy::from_options(&options)
    }

    #[test]
    fn celery_defaults() {
        let p = policy(StepOptions::default());
        assert!(p.allows_another(3, None));
        assert!(!p.allows_another(4, None));
        assert_eq!(p.delay(0, None, || 0.5), Duration::from_secs(180));
    }

    /// The step's option, else the task's own limit, else the default.
    #[test]
    fn the_steps_limit_then_the_tasks_then_the_default() {
        let mut p = policy(StepOptions::default());
        assert_eq!(p.max_retries(Some(5)), 5);
        p.default_max_retries = 1;
        assert_eq!(p.max_retries(None), 1);
        let p = policy(StepOptions {
            max_retries: Some(2),
            ..Default::default()
        });
        assert_eq!(p.max_retries(Some(5)), 2);
        assert!(p.allows_another(2, Some(5)) && !p.allows_another(3, Some(5)));
    }

    #[test]
    fn countdown_wins_over_backoff() {
        let p = policy(StepOptions {
            retry_backoff: Some(RetryBackoff::Enabled(true)),
            ..Default::default()
        });
        assert_eq!(p.delay(5, Some(0.5), || 0.5), Duration::from_millis(500));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_without_jitter() {
        let p = policy(StepOptions {
            retry_backoff: Some(RetryBackoff::Factor(2.0)),
            retry_backoff_max: Some(10.0),
            retry_jitter: Some(false),
            ..Default::default()
        });
        let delays: Vec<u64> = (0..5).map(|n| p.delay(n, None, || 0.5).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 10, 10]);
    }

    #[test]
    fn jitter_stays_within_the_backoff() {
        let p = policy(StepOptions {
            retry_backoff: Some(RetryBackoff::Enabled(true)),
            ..Default::default()
        });
        for random in [0.0, 0.5, 0.999, 7.0] {
            assert!(p.delay(3, None, || random) <= Duration::from_secs(8));
        }
        assert_eq!(p.delay(3, None, || 0.5), Duration::from_secs(4));
    }

    #[test]
    fn absurd_delays_are_clamped() {
        assert_eq!(seconds_to_duration(-1.0), Duration::ZERO);
        assert_eq!(seconds_to_duration(f64::MAX), LONGEST_DELAY);
    }
}
