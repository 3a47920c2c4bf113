//! A histogram of durations over fixed buckets, as Prometheus reads one:
//! what `/metrics` tells of step durations and of commit latency.

/// Upper bounds (seconds) of the buckets: a millisecond to half a minute.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Counts of observations per bucket, their sum and their count.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Histogram {
    /// Observations in each bucket of [`BUCKETS`] (not cumulative); those
    /// above the last bound are only in `count`.
    pub buckets: [u64; BUCKETS.len()],
    /// The sum of the observations, in seconds.
    pub sum: f64,
    /// How many there were.
    pub count: u64,
}

impl Histogram {
    /// Adds one observation, in seconds.
    pub fn observe(&mut self, seconds: f64) {
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// `(upper bound, observations at or below it)` for each bucket.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        BUCKETS
            .iter()
            .zip(self.buckets)
            .scan(0, |total, (bound, count)| {
                *total += count;
                Some((*bound, *total))
            })
    }
}
