//! The resource limits of one attempt, and the limiter that enforces memory.

use std::time::Duration;

use wfhost_canvas::{Limit, StepOptions};

/// What one attempt may use. `None` means no limit of that kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Fuel units (about one per wasm instruction).
    pub fuel: Option<u64>,
    /// Bytes of linear memory, over all of the component's memories.
    pub memory_bytes: Option<u64>,
    /// Wall-clock time, including time spent blocked in host calls.
    pub time_limit: Option<Duration>,
    /// Bytes of the result's JSON text; a larger result is `invalid_output`.
    pub max_result_bytes: usize,
    /// Bytes kept of each of stdout and stderr; the rest is counted and dropped.
    pub max_output_bytes: usize,
    /// Log records kept per attempt; the rest are counted and dropped.
    pub max_log_records: usize,
}

impl Default for Limits {
    /// The host's defaults: about a second of busy CPU, 256 MiB, five minutes.
    /// (Ceilings may lower them; see [`Ceilings::default_limits`].)
    fn default() -> Self {
        Limits {
            fuel: Some(10_000_000_000),
            memory_bytes: Some(256 << 20),
            time_limit: Some(Duration::from_secs(300)),
            max_result_bytes: 16 << 20,
            max_output_bytes: 256 << 10,
            max_log_records: 1000,
        }
    }
}

impl Limits {
    /// These limits with a step's options over them: a number sets a limit,
    /// `null` ([`Limit::Unlimited`]) removes it, an option left out keeps it.
    pub fn with_options(&self, options: &StepOptions) -> Limits {
        fn pick<T, U>(
            option: Option<Limit<T>>,
            kept: Option<U>,
            convert: impl Fn(T) -> U,
        ) -> Option<U> {
            match option {
                None => kept,
                Some(Limit::Unlimited) => None,
                Some(Limit::Value(value)) => Some(convert(value)),
            }
        }
        Limits {
            fuel: pick(options.fuel, self.fuel, |fuel| fuel),
            memory_bytes: pick(options.memory_mb, self.memory_bytes, mib),
            time_limit: pick(options.time_limit, self.time_limit, |seconds| {
                Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
            }),
            ..self.clone()
        }
    }

    /// These limits, none above `ceiling`'s: one that `ceiling` has and
    /// these lack is `ceiling`'s.
    pub fn at_most(&self, ceiling: &Limits) -> Limits {
        Limits {
            fuel: lower(self.fuel, ceiling.fuel),
            memory_bytes: lower(self.memory_bytes, ceiling.memory_bytes),
            time_limit: lower(self.time_limit, ceiling.time_limit),
            ..self.clone()
        }
    }
}

/// The lower of two limits, `None` being none.
fn lower<T: Ord + Copy>(limit: Option<T>, ceiling: Option<T>) -> Option<T> {
    match (limit, ceiling) {
        (Some(limit), Some(ceiling)) => Some(limit.min(ceiling)),
        (limit, ceiling) => limit.or(ceiling),
    }
}

/// The most any attempt may be given, whatever its workflow asks for.
///
/// A workflow asking for more (or for no limit where a ceiling exists) is
/// refused before it runs rather than silently clamped, so what a step was
/// promised is what it gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ceilings {
    /// The most fuel an attempt may have.
    pub fuel: Option<u64>,
    /// The most linear memory an attempt may have, in bytes.
    pub memory_bytes: Option<u64>,
    /// The longest wall-clock limit an attempt may have.
    pub time_limit: Option<Duration>,
}

/// `mb` MiB in bytes, saturating.
pub fn mib(mb: u64) -> u64 {
    mb.saturating_mul(1 << 20)
}

impl Ceilings {
    /// Ceilings of at most `fuel` units, `memory_mb` MiB and `time_limit`
    /// per attempt; `None` sets no ceiling of that kind.
    pub fn at_most(
        fuel: Option<u64>,
        memory_mb: Option<u64>,
        time_limit: Option<Duration>,
    ) -> Self {
        Ceilings {
            fuel,
            memory_bytes: memory_mb.map(mib),
            time_limit,
        }
    }

    /// The host's default limits, lowered to fit under the ceilings.
    pub fn default_limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            fuel: lower(defaults.fuel, self.fuel),
            memory_bytes: lower(defaults.memory_bytes, self.memory_bytes),
            time_limit: lower(defaults.time_limit, self.time_limit),
            ..defaults
        }
    }

    /// Checks `limits` against the ceilings; the error names the first one
    /// exceeded.
    pub fn admit(&self, limits: &Limits) -> Result<(), String> {
        fn check<T: PartialOrd>(
            what: &str,
            asked: Option<T>,
            ceiling: Option<T>,
            show: impl Fn(&T) -> String,
        ) -> Result<(), String> {
            match (asked, ceiling) {
                (None, Some(ceiling)) => Err(format!(
                    "{what}: asks for no limit, but the host allows at most {}",
                    show(&ceiling)
                )),
                (Some(asked), Some(ceiling)) if asked > ceiling => Err(format!(
                    "{what}: asks for {}, over the host's ceiling of {}",
                    show(&asked),
                    show(&ceiling)
                )),
                _ => Ok(()),
            }
        }
        check("fuel", limits.fuel, self.fuel, |n| n.to_string())?;
        check("memory_mb", limits.memory_bytes, self.memory_bytes, |b| {
            format!("{} MiB", b >> 20)
        })?;
        check("time_limit", limits.time_limit, self.time_limit, |d| {
            format!("{} s", d.as_secs_f64())
        })
    }
}

/// Grants memory growth up to the limit and remembers a denial, so that the
/// trap that follows it is reported as `memory_limit` rather than as an
/// anonymous `unreachable`.
pub struct MemoryLimiter {
    max_bytes: Option<u64>,
    used_bytes: u64,
    /// The total the guest asked for when growth was denied.
    pub denied: Option<u64>,
}

/// Table elements one attempt may have; guards against table bombs.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub fn new(max_bytes: Option<u64>) -> Self {
        MemoryLimiter {
            max_bytes,
            used_bytes: 0,
            denied: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired - current) as u64;
        let total = self.used_bytes + growth;
        if self.max_bytes.is_some_and(|max| total > max) {
            self.denied = Some(total);
            return Ok(false);
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's options set, remove or keep each limit; a worker's limits
    /// then cap them, and stand where a step removed one.
    #[test]
    fn options_set_remove_or_keep_limits_and_a_ceiling_caps_them() {
        let worker = Limits {
            fuel: Some(1_000),
            memory_bytes: Some(mib(64)),
            time_limit: Some(Duration::from_secs(10)),
            ..Limits::default()
        };
        let options = StepOptions {
            fuel: Some(Limit::Value(5_000)),
            memory_mb: Some(Limit::Value(16)),
            time_limit: Some(Limit::Unlimited),
            ..StepOptions::default()
        };
        let asked = worker.with_options(&options);
        assert_eq!(
            (asked.fuel, asked.memory_bytes, asked.time_limit),
            (Some(5_000), Some(mib(16)), None)
        );
        let capped = asked.at_most(&worker);
        assert_eq!(
            (capped.fuel, capped.memory_bytes, capped.time_limit),
            (Some(1_000), Some(mib(16)), Some(Duration::from_secs(10)))
        );
        assert_eq!(worker.with_options(&StepOptions::default()), worker);
    }
}
