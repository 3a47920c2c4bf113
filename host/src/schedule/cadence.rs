//! When a schedule ticks: a cron expression read in an IANA time zone, or
//! a fixed interval. Cron is croner's (5 fields, 6 with seconds first,
//! ranges, steps, names, `@hourly`…); zones are jiff's, from the time zone
//! database built into the binary, so a tick falls the same on every
//! machine.
//!
//! Daylight saving time, as DESIGN §15 says: a local time that does not
//! exist (the clock jumps over it) fires once, at the next valid instant; a
//! local time that occurs twice (the clock goes back) fires once, at its
//! first occurrence.

use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The shortest interval of `--every`.
pub const MIN_EVERY_MS: u64 = 1000;

/// The longest interval of `--every`: ten years.
pub const MAX_EVERY_MS: u64 = 10 * 365 * 86_400 * 1000;

/// How many occurrences a search for the next tick looks at at most: a
/// local time that occurs twice is passed over once, so two would do;
/// more bound a search in a zone that keeps folding.
const MAX_PASSED_OVER: usize = 16;

/// A schedule's cadence, parsed.
#[derive(Debug, Clone)]
pub enum Cadence {
    /// By the calendar.
    Cron {
        /// The expression.
        cron: Box<Cron>,
        /// The zone it is read in.
        zone: TimeZone,
    },
    /// Every `every_ms` milliseconds from `anchor_ms`.
    Every {
        /// The interval.
        every_ms: u64,
        /// An instant of a tick: the schedule's start, or its making.
        anchor_ms: u64,
    },
}

impl Cadence {
    /// The cadence of a cron expression in zone `tz` (UTC if none).
    pub fn cron(expression: &str, tz: Option<&str>) -> Result<Self, String> {
        let cron = Cron::from_str(expression.trim())
            .map_err(|err| format!("`{expression}` is not a cron expression: {err}"))?;
        let zone = match tz {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| {
                format!("`{name}` is not a time zone (an IANA name, such as `Europe/Paris`)")
            })?,
        };
        Ok(Cadence::Cron {
            cron: Box::new(cron),
            zone,
        })
    }

    /// The cadence of an interval of `every_ms`, ticking at `anchor_ms`
    /// and every interval before and after it.
    pub fn every(every_ms: u64, anchor_ms: u64) -> Result<Self, String> {
        if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&every_ms) {
            return Err(format!(
                "an interval is from 1 second to 10 years, not {} s",
                every_ms as f64 / 1000.0
            ));
        }
        Ok(Cadence::Every {
            every_ms,
            anchor_ms,
        })
    }

    /// The first tick strictly after `after_ms`, if there is one.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Cadence::Every {
                every_ms,
                anchor_ms,
            } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let periods = (after_ms - anchor_ms) / every_ms + 1;
                anchor_ms.checked_add(periods.checked_mul(*every_ms)?)
            }
            Cadence::Cron { cron, zone } => {
                let after = Timestamp::from_millisecond(i64::try_from(after_ms).ok()?).ok()?;
                let mut from = after.to_zoned(zone.clone());
                for _ in 0..MAX_PASSED_OVER {
                    let next = cron.find_next_occurrence(&from, false).ok()?;
                    // The second occurrence of a local time the clock went
                    // back over: its first occurrence was the tick.
                    let ambiguous = zone.to_ambiguous_zoned(next.datetime());
                    let later = ambiguous.is_ambiguous()
                        && ambiguous.later().is_ok_and(|later| later == next);
                    if !later {
                        return u64::try_from(next.timestamp().as_millisecond()).ok();
                    }
                    from = next;
                }
                None
            }
        }
    }

    /// The first `count` ticks after `after_ms`.
    pub fn upcoming(&self, after_ms: u64, count: usize) -> Vec<u64> {
        let mut ticks = Vec::with_capacity(count);
        let mut after = after_ms;
        while ticks.len() < count {
            match self.next_after(after) {
                Some(tick) => {
                    ticks.push(tick);
                    after = tick;
                }
                None => break,
            }
        }
        ticks
    }

    /// The shortest gap between two of the next few ticks after
    /// `after_ms`: what a tenant's `min_schedule_interval` is held to.
    pub fn shortest_gap_ms(&self, after_ms: u64) -> Option<u64> {
        match self {
            Cadence::Every { every_ms, .. } => Some(*every_ms),
            Cadence::Cron { .. } => self
                .upcoming(after_ms, 64)
                .windows(2)
                .map(|pair| pair[1] - pair[0])
                .min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(instant: &str) -> u64 {
        Timestamp::from_str(instant).unwrap().as_millisecond() as u64
    }

    fn iso(ms: u64) -> String {
        crate::records::iso8601(ms)
    }

    fn ticks(cadence: &Cadence, after: &str, count: usize) -> Vec<String> {
        cadence
            .upcoming(ms(after), count)
            .into_iter()
            .map(iso)
            .collect()
    }

    /// Spring forward in Paris (2026-03-29, 02:00 → 03:00): 02:30 does not
    /// exist and fires once at 03:00; an hourly cron fires at 01:00 and
    /// 03:00, not twice at 03:00.
    #[test]
    fn a_local_time_the_clock_jumps_over_fires_once_at_the_next_valid_instant() {
        let daily = Cadence::cron("30 2 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(
            ticks(&daily, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"]
        );
        let half_hourly = Cadence::cron("*/30 * * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(
            ticks(&half_hourly, "2026-03-28T23:59:00Z", 4),
            [
                "2026-03-29T00:00:00.000Z",
                "2026-03-29T00:30:00.000Z",
                "2026-03-29T01:00:00.000Z",
                "2026-03-29T01:30:00.000Z",
            ]
        );
    }

    /// Fall back in Paris (2026-10-25, 03:00 → 02:00): 02:00 and 02:30
    /// occur twice, and fire once, at their first occurrence.
    #[test]
    fn a_local_time_that_occurs_twice_fires_once() {
        let half_hourly = Cadence::cron("*/30 * * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(
            ticks(&half_hourly, "2026-10-24T23:15:00Z", 4),
            [
                "2026-10-24T23:30:00.000Z", // 01:30 CEST
                "2026-10-25T00:00:00.000Z", // 02:00 CEST
                "2026-10-25T00:30:00.000Z", // 02:30 CEST
                "2026-10-25T02:00:00.000Z", // 03:00 CET: 02:00 and 02:30 CET passed over
            ]
        );
        let daily = Cadence::cron("30 2 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(
            ticks(&daily, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]
        );
    }

    #[test]
    fn crons_take_seconds_names_and_nicknames() {
        let every_two_seconds = Cadence::cron("*/2 * * * * *", None).unwrap();
        assert_eq!(
            ticks(&every_two_seconds, "2026-01-01T00:00:00.500Z", 2),
            ["2026-01-01T00:00:02.000Z", "2026-01-01T00:00:04.000Z"]
        );
        let weekdays = Cadence::cron("0 9 * * MON-FRI", Some("America/New_York")).unwrap();
        // Friday 2 January 2026, then Monday the 5th.
        assert_eq!(
            ticks(&weekdays, "2026-01-02T00:00:00Z", 2),
            ["2026-01-02T14:00:00.000Z", "2026-01-05T14:00:00.000Z"]
        );
        let hourly = Cadence::cron("@hourly", None).unwrap();
        assert_eq!(
            ticks(&hourly, "2026-01-01T10:59:59Z", 1),
            ["2026-01-01T11:00:00.000Z"]
        );
        for (bad, says) in [
            ("61 * * * *", "is not a cron expression"),
            ("* * *", "is not a cron expression"),
        ] {
            assert!(
                Cadence::cron(bad, None).unwrap_err().contains(says),
                "{bad}"
            );
        }
        let zone = Cadence::cron("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(zone.contains("not a time zone"), "{zone}");
    }

    #[test]
    fn an_interval_ticks_from_its_anchor() {
        let anchor = ms("2026-01-01T00:00:00Z");
        let every = Cadence::every(90_000, anchor).unwrap();
        assert_eq!(every.next_after(anchor - 1), Some(anchor));
        assert_eq!(every.next_after(anchor), Some(anchor + 90_000));
        assert_eq!(every.next_after(anchor + 90_001), Some(anchor + 180_000));
        assert!(Cadence::every(999, anchor).is_err());
    }
}
