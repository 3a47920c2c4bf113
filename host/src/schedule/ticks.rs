//! What a schedule's due ticks become, decided on its record alone: the
//! same record, time and answer to "does the previous run still run?"
//! always give the same decision, so that whichever process handles a
//! tick, it comes to the same.

use super::Cadence;
use crate::records::{Overlap, ScheduleRecord, Tick, TickOutcome, iso8601};

/// Ticks a record keeps, the latest.
pub const MAX_TICKS_KEPT: usize = 50;

/// Due ticks one pass handles at most per schedule: a schedule long
/// without a process catches up over several passes.
const MAX_TICKS_PER_PASS: usize = 1000;

/// The id of the workflow a schedule's tick at `at_ms` starts.
pub fn workflow_id(name: &str, at_ms: u64) -> String {
    format!("{name}@{}", iso8601(at_ms))
}

/// The first tick at or after `now_ms` within the schedule's window.
pub(super) fn first_tick(cadence: &Cadence, record: &ScheduleRecord, now_ms: u64) -> Option<u64> {
    let from = record
        .spec
        .start_ms
        .map_or(now_ms, |start| start.max(now_ms));
    let tick = cadence.next_after(from.saturating_sub(1))?;
    within_end(record, tick)
}

/// `tick`, unless it falls after the schedule's end.
pub(super) fn within_end(record: &ScheduleRecord, tick: u64) -> Option<u64> {
    record
        .spec
        .end_ms
        .is_none_or(|end| tick <= end)
        .then_some(tick)
}

/// Adds `tick` to the ticks the record keeps; missed ticks in a row are
/// one entry.
pub(super) fn remember(record: &mut ScheduleRecord, tick: Tick) {
    if let Some(last) = record.ticks.last_mut()
        && last.outcome == TickOutcome::Missed
        && tick.outcome == TickOutcome::Missed
    {
        last.count += tick.count;
        last.at_ms = tick.at_ms;
        return;
    }
    record.ticks.push(tick);
    let extra = record.ticks.len().saturating_sub(MAX_TICKS_KEPT);
    record.ticks.drain(..extra);
}

/// Handles the record's ticks due by `now_ms`, and a buffered tick whose
/// wait is over: each becomes started, skipped, buffered or missed, and the
/// workflows to start are added to `starting`. `previous_runs` says whether
/// the schedule's last workflow still runs, is about to start, or was cut
/// off (and is to be resumed). Returns whether anything changed.
pub(super) fn handle_due(
    record: &mut ScheduleRecord,
    cadence: &Cadence,
    now_ms: u64,
    previous_runs: bool,
) -> bool {
    if record.spec.paused {
        return false;
    }
    let mut running = previous_runs;
    let mut changed = false;
    if let Some(buffered) = record.buffered_ms.filter(|_| !running) {
        record.buffered_ms = None;
        start(record, buffered);
        running = true;
        changed = true;
    }
    for _ in 0..MAX_TICKS_PER_PASS {
        let Some(tick) = record.next_tick_ms.filter(|tick| *tick <= now_ms) else {
            break;
        };
        changed = true;
        record.next_tick_ms = cadence
            .next_after(tick)
            .and_then(|next| within_end(record, next));
        if now_ms.saturating_sub(tick) > record.spec.catch_up_ms {
            remember(record, outcome(tick, TickOutcome::Missed));
            continue;
        }
        match (record.spec.overlap, running) {
            (Overlap::AllowAll, _) | (_, false) => {
                start(record, tick);
                running = true;
            }
            (Overlap::BufferOne, true) if record.buffered_ms.is_none() => {
                record.buffered_ms = Some(tick);
                remember(record, outcome(tick, TickOutcome::Buffered));
            }
            _ => remember(record, outcome(tick, TickOutcome::Skipped)),
        }
    }
    changed
}

fn outcome(at_ms: u64, outcome: TickOutcome) -> Tick {
    Tick {
        at_ms,
        outcome,
        workflow: None,
        count: 1,
    }
}

/// Claims the workflow of the tick at `at_ms`.
fn start(record: &mut ScheduleRecord, at_ms: u64) {
    let id = workflow_id(&record.spec.name, at_ms);
    record.starting.push(id.clone());
    record.last_workflow = Some(id.clone());
    remember(
        record,
        Tick {
            workflow: Some(id),
            ..outcome(at_ms, TickOutcome::Started)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ScheduleSpec;

    const SECOND: u64 = 1000;
    const T0: u64 = 1_800_000_000_000;

    fn every_second(overlap: Overlap) -> (ScheduleRecord, Cadence) {
        let record = ScheduleRecord {
            spec: ScheduleSpec {
                name: "s".into(),
                tenant: "t".into(),
                cron: None,
                tz: None,
                every_ms: Some(SECOND),
                overlap,
                catch_up_ms: 5 * SECOND,
                start_ms: Some(T0),
                end_ms: None,
                paused: false,
                chain: String::new(),
                chain_path: String::new(),
                submitted: false,
            },
            created_at_ms: T0,
            next_tick_ms: Some(T0),
            buffered_ms: None,
            starting: Vec::new(),
            last_workflow: None,
            ticks: Vec::new(),
        };
        let cadence = Cadence::every(SECOND, T0).unwrap();
        (record, cadence)
    }

    fn outcomes(record: &ScheduleRecord) -> Vec<(u64, &'static str, u64)> {
        record
            .ticks
            .iter()
            .map(|tick| {
                (
                    (tick.at_ms - T0) / SECOND,
                    tick.outcome.as_str(),
                    tick.count,
                )
            })
            .collect()
    }

    #[test]
    fn ticks_older_than_the_catch_up_window_are_missed_and_the_rest_fire_once_each() {
        let (mut record, cadence) = every_second(Overlap::AllowAll);
        // Ticks 0..=10 are due at 10 s; 0–4 are over 5 s old.
        assert!(handle_due(&mut record, &cadence, T0 + 10 * SECOND, false));
        let mut expected = vec![(4, "missed", 5)];
        expected.extend((5..=10).map(|tick| (tick, "started", 1)));
        assert_eq!(outcomes(&record), expected);
        assert_eq!(record.starting.len(), 6);
        assert_eq!(record.next_tick_ms, Some(T0 + 11 * SECOND));
        // Nothing more is due: a second pass at the same time changes nothing.
        assert!(!handle_due(&mut record, &cadence, T0 + 10 * SECOND, true));
    }

    #[test]
    fn skip_and_buffer_one_wait_for_the_previous_run() {
        let (mut skip, cadence) = every_second(Overlap::Skip);
        handle_due(&mut skip, &cadence, T0 + 2 * SECOND, false);
        assert_eq!(
            outcomes(&skip),
            [(0, "started", 1), (1, "skipped", 1), (2, "skipped", 1)]
        );

        let (mut buffer, cadence) = every_second(Overlap::BufferOne);
        handle_due(&mut buffer, &cadence, T0 + 2 * SECOND, true);
        assert_eq!(
            outcomes(&buffer),
            [(0, "buffered", 1), (1, "skipped", 1), (2, "skipped", 1)]
        );
        // The previous run ended: the buffered tick starts, under its own id.
        handle_due(&mut buffer, &cadence, T0 + 2 * SECOND, false);
        assert_eq!(buffer.starting, [workflow_id("s", T0)]);
        assert_eq!(buffer.buffered_ms, None);
    }

    #[test]
    fn a_paused_schedule_or_one_past_its_end_does_nothing() {
        let (mut paused, cadence) = every_second(Overlap::AllowAll);
        paused.spec.paused = true;
        assert!(!handle_due(&mut paused, &cadence, T0 + 3 * SECOND, false));
        assert!(paused.ticks.is_empty());

        let (mut ending, cadence) = every_second(Overlap::AllowAll);
        ending.spec.end_ms = Some(T0 + SECOND);
        handle_due(&mut ending, &cadence, T0 + 3 * SECOND, false);
        assert_eq!(outcomes(&ending), [(0, "started", 1), (1, "started", 1)]);
        assert_eq!(ending.next_tick_ms, None);
    }

    #[test]
    fn a_workflow_id_names_the_schedule_and_the_ticks_utc_instant() {
        assert_eq!(
            workflow_id("nightly", 1_796_083_200_000),
            "nightly@2026-12-01T00:00:00.000Z"
        );
    }
}
