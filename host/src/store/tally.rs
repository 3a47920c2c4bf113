//! A workflow's tally: what its step records add up to, kept with every
//! commit that writes them, so that `status` of a workflow of hundreds of
//! thousands of steps reads one entry and its latest records, not every
//! record.
//!
//! Each step write counts its record's status in and the status of the
//! record it replaces out; the replaced record's status is found in its
//! stored text (a record's status is written before anything a task gives,
//! see `StepRecord`), so a write reads nothing more than the insert hands
//! back. A workflow written before tallies were kept has none, and is read
//! record by record as before; one that has a tally keeps it for good.

use std::collections::BTreeMap;

use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};

use crate::records::{StepRecord, StepStatus};

/// The records a tally names by id: the latest, to be shown by `status`.
pub(crate) const LATEST: usize = 40;

/// What a workflow's step records add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tally {
    /// Records by their status's name.
    pub by_status: BTreeMap<String, u64>,
    /// The latest moment a record names (its start or end), in
    /// milliseconds since the epoch.
    pub last_moment_ms: u64,
    /// The records first made last (the highest `seq`), as `(seq, id)`,
    /// oldest first: at most [`LATEST`].
    pub latest: Vec<(u64, String)>,
}

/// What a step write tells its workflow's tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counted {
    pub status: StepStatus,
    pub seq: u64,
    pub moment_ms: u64,
}

impl Counted {
    /// What `record` tells the tally once written.
    pub fn of(record: &StepRecord) -> Self {
        Counted {
            status: record.status,
            seq: record.seq,
            moment_ms: record.last_moment_ms(),
        }
    }
}

impl Tally {
    /// Counts the record of step `id` written as `now`, in place of one
    /// whose status was `was` (none: a new record).
    pub fn count(&mut self, id: &str, now: &Counted, was: Option<StepStatus>) {
        if let Some(was) = was
            && let Some(n) = self.by_status.get_mut(was.as_str())
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_status.remove(was.as_str());
            }
        }
        *self
            .by_status
            .entry(now.status.as_str().to_string())
            .or_default() += 1;
        self.last_moment_ms = self.last_moment_ms.max(now.moment_ms);
        if was.is_none() {
            self.note_latest(now.seq, id);
        }
    }

    /// Keeps `(seq, id)` among the latest records, if it is one of them.
    fn note_latest(&mut self, seq: u64, id: &str) {
        let full = self.latest.len() >= LATEST;
        if full && self.latest.first().is_some_and(|(first, _)| *first > seq) {
            return;
        }
        let at = self.latest.partition_point(|(other, _)| *other < seq);
        self.latest.insert(at, (seq, id.to_string()));
        if self.latest.len() > LATEST {
            self.latest.remove(0);
        }
    }

    /// How many records it counts.
    pub fn records(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Its counts by status (a status this host does not know, written by
    /// a later one, is left out).
    pub fn statuses(&self) -> Vec<(StepStatus, u64)> {
        self.by_status
            .iter()
            .filter_map(|(name, n)| Some((status_named(name)?, *n)))
            .collect()
    }

    /// How many of its records have `status`.
    #[cfg(test)]
    pub fn of_status(&self, status: StepStatus) -> u64 {
        self.by_status.get(status.as_str()).copied().unwrap_or(0)
    }
}

/// The status of the step record whose stored text is `json`: the first
/// `"status":"…"` in it, which is the record's own because the fields
/// before it (id, seq, parent, task) hold no JSON of a task's.
pub(crate) fn status_in(json: &[u8]) -> Option<StepStatus> {
    const KEY: &[u8] = b"\"status\":\"";
    let start = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = json[start..].iter().position(|&b| b == b'"')?;
    status_named(std::str::from_utf8(&json[start..start + len]).ok()?)
}

/// The status whose stored name is `name`.
fn status_named(name: &str) -> Option<StepStatus> {
    let name: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.into_deserializer();
    StepStatus::deserialize(name).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    fn record(id: &str, seq: u64, status: StepStatus) -> StepRecord {
        let mut record = StepRecord::new(
            id,
            None,
            "t.echo",
            vec![json!({"status": "failed", "x": "\"status\":\"skipped\""})],
            Map::new(),
        );
        record.seq = seq;
        record.status = status;
        record.result = Some(json!({"status": "waiting"}));
        record
    }

    /// A task's arguments and result may hold a `status` of their own; the
    /// record's is found all the same, because it is stored before them.
    #[test]
    fn a_stored_record_s_own_status_is_found_before_anything_a_task_gave() {
        for status in [
            StepStatus::Succeeded,
            StepStatus::Running,
            StepStatus::Retrying,
        ] {
            let stored = serde_json::to_vec(&record("3", 3, status)).unwrap();
            assert_eq!(status_in(&stored), Some(status));
        }
        assert_eq!(status_in(b"{\"id\":\"0\"}"), None);
    }

    #[test]
    fn a_tally_follows_records_replaced_and_keeps_the_latest() {
        let mut tally = Tally::default();
        for seq in 0..60u64 {
            let running = record(&seq.to_string(), seq, StepStatus::Running);
            tally.count(&running.id, &Counted::of(&running), None);
            let done = record(&seq.to_string(), seq, StepStatus::Succeeded);
            tally.count(&done.id, &Counted::of(&done), Some(StepStatus::Running));
        }
        assert_eq!(tally.records(), 60);
        assert_eq!(tally.of_status(StepStatus::Succeeded), 60);
        assert_eq!(tally.of_status(StepStatus::Running), 0);
        let latest: Vec<u64> = tally.latest.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(latest, (20..60).collect::<Vec<_>>());
        // A record first made out of order lands in its place, or not at
        // all when older than every one kept.
        let late = record("x", 25, StepStatus::Skipped);
        tally.count("x", &Counted::of(&late), None);
        assert_eq!(tally.latest.first().unwrap().0, 21);
        assert!(tally.latest.contains(&(25, "x".to_string())));
        let old = record("y", 1, StepStatus::Skipped);
        tally.count("y", &Counted::of(&old), None);
        assert!(!tally.latest.iter().any(|(_, id)| id == "y"));
        assert_eq!(tally.records(), 62);
    }
}
