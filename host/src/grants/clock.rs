//! A pinned wall clock: the `clock` capability. A step whose plugin is
//! granted `"clock": {"pinned": "2026-01-01T00:00:00Z"}` reads that instant
//! from `wasi:clocks/wall-clock` on every attempt, so a task that stamps
//! what it makes gives the same answer when it is retried, resumed or run
//! again (tests, replays, reproducible reports). It takes nothing from the
//! guest but the host's time; the monotonic clock, by which a guest
//! measures how long something takes, still runs.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wasmtime_wasi::HostWallClock;

use super::GrantError;
use super::capability::{AttemptSetup, Capability};
use crate::json::{JsonPath, SpecIssue, fields};

/// A plugin's `clock` grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockGrant {
    /// The instant the wall clock always shows; none: the host's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Instant>,
}

/// An instant at or after the Unix epoch, written in RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Instant {
    since_epoch: Duration,
}

impl TryFrom<String> for Instant {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let at: jiff::Timestamp = text.parse().map_err(|err| {
            format!("`{text}` is not an RFC 3339 instant (e.g. 2026-01-01T00:00:00Z): {err}")
        })?;
        let seconds = u64::try_from(at.as_second())
            .map_err(|_| format!("`{text}` is before 1970-01-01T00:00:00Z"))?;
        let nanos = u32::try_from(at.subsec_nanosecond()).unwrap_or_default();
        Ok(Instant {
            since_epoch: Duration::new(seconds, nanos),
        })
    }
}

impl From<Instant> for String {
    fn from(instant: Instant) -> String {
        let seconds = i64::try_from(instant.since_epoch.as_secs()).unwrap_or(i64::MAX);
        let nanos = i32::try_from(instant.since_epoch.subsec_nanos()).unwrap_or_default();
        match jiff::Timestamp::new(seconds, nanos) {
            Ok(at) => at.to_string(),
            // Only an instant read by `try_from` is ever made, and every
            // one it reads jiff can write.
            Err(_) => format!("{seconds}s after 1970-01-01T00:00:00Z"),
        }
    }
}

/// The `clock` capability.
pub struct Clock;

impl Capability for Clock {
    const NAME: &'static str = "clock";
    const INTERFACES: &'static [&'static str] = &["wasi:clocks/wall-clock"];

    type Grant = ClockGrant;
    type Ready = Option<Instant>;
    type Attempt = ();

    fn read(
        grants: &Map<String, Value>,
        at: &JsonPath,
        _base_dir: &Path,
    ) -> Result<ClockGrant, SpecIssue> {
        let Some(value) = grants.get(Self::NAME) else {
            return Ok(ClockGrant::default());
        };
        let at = at.key(Self::NAME);
        let map = fields::object(value, &at, "a clock grant", &["pinned"])?;
        let pinned = match map.get("pinned") {
            Some(text) => {
                let at = at.key("pinned");
                let text = fields::string(text, &at)?;
                Some(Instant::try_from(text.to_string()).map_err(|why| SpecIssue::new(&at, why))?)
            }
            None => None,
        };
        Ok(ClockGrant { pinned })
    }

    fn is_empty(grant: &ClockGrant) -> bool {
        grant.pinned.is_none()
    }

    /// A pinned clock shows a guest less than the host's own, so a
    /// submission may pin its clock where the policy does not; where the
    /// policy pins it, a submission gets the policy's instant and may not
    /// name another.
    fn within(asked: &ClockGrant, policy: &ClockGrant) -> Result<ClockGrant, String> {
        match (asked.pinned, policy.pinned) {
            (Some(asked), Some(pinned)) if asked != pinned => Err(format!(
                "clock.pinned: the tenant's clock is pinned at {}",
                String::from(pinned)
            )),
            (asked, pinned) => Ok(ClockGrant {
                pinned: pinned.or(asked),
            }),
        }
    }

    fn ready(grant: &ClockGrant, _plugin: &str) -> Result<Option<Instant>, GrantError> {
        Ok(grant.pinned)
    }

    fn attempt(ready: &Option<Instant>, setup: &mut AttemptSetup<'_>) -> Result<(), GrantError> {
        if let Some(instant) = ready {
            setup.builder.wall_clock(Pinned(instant.since_epoch));
        }
        Ok(())
    }
}

/// A wall clock that always shows one instant.
struct Pinned(Duration);

impl HostWallClock for Pinned {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_reads_and_writes_rfc_3339() {
        let instant = Instant::try_from("2026-01-01T00:00:00.5Z".to_string()).unwrap();
        assert_eq!(
            instant.since_epoch,
            Duration::new(1_767_225_600, 500_000_000)
        );
        assert_eq!(String::from(instant), "2026-01-01T00:00:00.5Z");
        let zoned = Instant::try_from("2026-01-01T01:00:00+01:00".to_string()).unwrap();
        assert_eq!(zoned.since_epoch.as_secs(), 1_767_225_600);
        for wrong in ["yesterday", "1969-12-31T23:59:59Z", "2026-01-01"] {
            let why = Instant::try_from(wrong.to_string()).unwrap_err();
            assert!(why.contains(wrong), "{why}");
        }
    }

    #[test]
    fn a_policy_pin_holds_and_a_submission_may_pin_an_open_clock() {
        let at = |text: &str| ClockGrant {
            pinned: Some(Instant::try_from(text.to_string()).unwrap()),
        };
        let open = ClockGrant::default();
        let (new_year, later) = (at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
        assert_eq!(Clock::within(&new_year, &open).unwrap(), new_year);
        assert_eq!(Clock::within(&open, &new_year).unwrap(), new_year);
        assert_eq!(Clock::within(&new_year, &new_year).unwrap(), new_year);
        let refused = Clock::within(&later, &new_year).unwrap_err();
        assert!(refused.contains("2026-01-01T00:00:00Z"), "{refused}");
    }
}
