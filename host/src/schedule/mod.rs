//! Schedules (DESIGN §15): a workflow started at each tick of a cron
//! expression or an interval, by every long-running process on the
//! database, each tick exactly once however many run and whichever is
//! killed.
//!
//! - `cadence` is when a schedule ticks (cron in a time zone, or every so
//!   often), daylight saving time included;
//! - `ticks` decides, for one schedule, what each due tick becomes
//!   (started, skipped, buffered, missed) — a pure function of the record,
//!   the time and whether its previous run still runs;
//! - `firing` is the loop: a change of the record in one write
//!   transaction claims the due ticks, then their workflows start under
//!   ids `NAME@<UTC instant>`. A process killed between the two leaves the
//!   ids in the record (`starting`), and the next pass of any process
//!   starts them; an id names one workflow, so none starts twice.

mod cadence;
mod firing;
mod ticks;
mod view;

pub use cadence::{Cadence, MAX_EVERY_MS, MIN_EVERY_MS};
pub use firing::{Clock, Launcher, Scheduler, SystemClock};
pub use ticks::{MAX_TICKS_KEPT, workflow_id};
pub use view::{SHOWN_NEXT_TICKS, next_ticks, view};

use std::path::Path;

use thiserror::Error;

use crate::Host;
use crate::records::{ScheduleRecord, ScheduleSpec, Tick, TickOutcome, now_ms};
use crate::spec::{self, WorkflowSpec};
use crate::store::StoreError;

/// Why a schedule cannot be made or changed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// There is no such schedule.
    #[error("no schedule `{name}` of tenant `{tenant}`")]
    NotFound {
        /// The tenant asked about.
        tenant: String,
        /// The name asked about.
        name: String,
    },
    /// The name is taken.
    #[error(
        "schedule `{name}` of tenant `{tenant}` exists already (`wfhost schedule rm {name}` first)"
    )]
    Exists {
        /// The tenant.
        tenant: String,
        /// The name.
        name: String,
    },
    /// What was asked for is not a schedule: a bad cadence, name, window.
    #[error("{0}")]
    Invalid(String),
    /// The chain file it would run cannot run.
    #[error("{chain} cannot run: {reason}")]
    Chain {
        /// The chain file.
        chain: String,
        /// Why.
        reason: String,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The catch-up window when none is given: one minute.
pub const DEFAULT_CATCH_UP_MS: u64 = 60_000;

/// The longest schedule name, in bytes: its workflows' ids add a 25-byte
/// instant to it.
pub const MAX_NAME_BYTES: usize = 200;

/// A duration as `--every`, `--catch-up` and the API take it (`90s`,
/// `15m`, seconds…), in whole milliseconds; `what` names it in the error.
pub fn duration_ms(value: &serde_json::Value, what: &str) -> Result<u64, ScheduleError> {
    let seconds = wfhost_canvas::pause::parse_duration(value)
        .map_err(|err| ScheduleError::Invalid(format!("{what}: {err}")))?;
    Ok((seconds * 1000.0).round() as u64)
}

/// An instant as `--start`, `--end` and the API take it (ISO 8601), in
/// milliseconds since the epoch; `what` names it in the error.
pub fn instant_ms(text: &str, what: &str) -> Result<u64, ScheduleError> {
    crate::records::parse_iso8601(text).ok_or_else(|| {
        ScheduleError::Invalid(format!(
            "{what}: `{text}` is not an ISO 8601 instant (2026-12-24T18:00:00Z)"
        ))
    })
}

/// The record of a new schedule made at `now_ms`, and its cadence, once
/// its name, window and cadence are checked.
pub fn new_record(
    spec: ScheduleSpec,
    now_ms: u64,
) -> Result<(ScheduleRecord, Cadence), ScheduleError> {
    crate::names::check(&spec.name)
        .map_err(|err| ScheduleError::Invalid(format!("a schedule name {err}")))?;
    if spec.name.len() > MAX_NAME_BYTES || spec.name.contains(['@', '/']) {
        return Err(ScheduleError::Invalid(format!(
            "a schedule name is at most {MAX_NAME_BYTES} bytes, with no `@` or `/` (its workflows are NAME@INSTANT)"
        )));
    }
    if let (Some(start), Some(end)) = (spec.start_ms, spec.end_ms)
        && end <= start
    {
        return Err(ScheduleError::Invalid(
            "a schedule's end comes after its start".to_string(),
        ));
    }
    let mut record = ScheduleRecord {
        spec,
        created_at_ms: now_ms,
        next_tick_ms: None,
        buffered_ms: None,
        starting: Vec::new(),
        last_workflow: None,
        ticks: Vec::new(),
    };
    let cadence = cadence_of(&record).map_err(ScheduleError::Invalid)?;
    record.next_tick_ms = ticks::first_tick(&cadence, &record, now_ms);
    Ok((record, cadence))
}

/// What a schedule's chain is called in messages: its file, or what
/// stands for a chain submitted through the API.
fn chain_name(record: &ScheduleRecord) -> String {
    if record.spec.submitted {
        "the schedule's chain".to_string()
    } else {
        record.spec.chain_path.clone()
    }
}

/// The cadence a schedule's record says.
pub fn cadence_of(record: &ScheduleRecord) -> Result<Cadence, String> {
    match (&record.spec.cron, record.spec.every_ms) {
        (Some(cron), None) => Cadence::cron(cron, record.spec.tz.as_deref()),
        (None, Some(every_ms)) => Cadence::every(
            every_ms,
            record.spec.start_ms.unwrap_or(record.created_at_ms),
        ),
        _ => Err("a schedule runs by `--cron` or by `--every`, one of the two".to_string()),
    }
}

/// The workflow a schedule's record runs, parsed from its chain file's
/// text as it was when the schedule was made.
pub fn chain_of(record: &ScheduleRecord) -> Result<WorkflowSpec, ScheduleError> {
    if record.spec.submitted {
        return Err(ScheduleError::Chain {
            chain: chain_name(record),
            reason: "it was submitted through `serve`, which reads it with its tenant's policy"
                .to_string(),
        });
    }
    let path = Path::new(&record.spec.chain_path);
    spec::parse(&record.spec.chain, path.parent().unwrap_or(Path::new(""))).map_err(|err| {
        ScheduleError::Chain {
            chain: chain_name(record),
            reason: err.to_string(),
        }
    })
}

impl Host {
    /// Makes a schedule: its cadence, window and chain are checked first
    /// (the chain's plugins load, its tasks exist, its arguments bind), so
    /// that no tick fails on what could be known now.
    pub async fn add_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleRecord, ScheduleError> {
        let (record, _) = new_record(spec, now_ms())?;
        let workflow = chain_of(&record)?;
        self.put_schedule(record, workflow, self.ceilings()).await
    }

    /// Stores a new schedule once its workflow is checked under
    /// `ceilings`: its plugins load, its tasks exist, its arguments bind.
    pub(crate) async fn put_schedule(
        &self,
        record: ScheduleRecord,
        workflow: WorkflowSpec,
        ceilings: &crate::runtime::Ceilings,
    ) -> Result<ScheduleRecord, ScheduleError> {
        crate::executor::PreparedWorkflow::prepare(self.runtime(), workflow, ceilings.clone())
            .await
            .map_err(|err| ScheduleError::Chain {
                chain: chain_name(&record),
                reason: err.to_string(),
            })?;
        let (tenant, name) = (record.spec.tenant.clone(), record.spec.name.clone());
        let made = self.store().change_schedule(&tenant, &name, |stored| {
            if stored.is_some() {
                return false;
            }
            *stored = Some(record.clone());
            true
        })?;
        if !made {
            return Err(ScheduleError::Exists { tenant, name });
        }
        Ok(record)
    }

    /// Schedule `name` of `tenant`.
    pub fn schedule(&self, tenant: &str, name: &str) -> Result<ScheduleRecord, ScheduleError> {
        self.store()
            .schedule(tenant, name)?
            .ok_or_else(|| not_found(tenant, name))
    }

    /// Pauses schedule `name` (`true`) or lets it tick again (`false`):
    /// a schedule let go again ticks from now on, with no catch-up of the
    /// ticks it passed over while paused.
    pub fn pause_schedule(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
    ) -> Result<ScheduleRecord, ScheduleError> {
        let now = now_ms();
        let changed = self.store().change_schedule(tenant, name, |stored| {
            let record = stored.as_mut()?;
            if record.spec.paused != paused {
                record.spec.paused = paused;
                if !paused {
                    let cadence = cadence_of(record).ok();
                    record.next_tick_ms =
                        cadence.and_then(|cadence| ticks::first_tick(&cadence, record, now));
                }
            }
            Some(record.clone())
        })?;
        changed.ok_or_else(|| not_found(tenant, name))
    }

    /// Removes schedule `name`; the workflows it started stay.
    pub fn remove_schedule(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ScheduleRecord, ScheduleError> {
        let removed = self
            .store()
            .change_schedule(tenant, name, std::option::Option::take)?;
        removed.ok_or_else(|| not_found(tenant, name))
    }

    /// Claims a run of schedule `name` now, outside its cadence (`schedule
    /// trigger`): its workflow's id, which the caller starts (or any
    /// scheduler's next pass does), and the schedule as it then is.
    pub fn trigger_schedule(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(String, ScheduleRecord), ScheduleError> {
        let now = now_ms();
        let claimed = self.store().change_schedule(tenant, name, |stored| {
            let record = stored.as_mut()?;
            let id = workflow_id(&record.spec.name, now);
            record.starting.push(id.clone());
            record.last_workflow = Some(id.clone());
            ticks::remember(
                record,
                Tick {
                    at_ms: now,
                    outcome: TickOutcome::Triggered,
                    workflow: Some(id.clone()),
                    count: 1,
                },
            );
            Some((id, record.clone()))
        })?;
        claimed.ok_or_else(|| not_found(tenant, name))
    }
}

fn not_found(tenant: &str, name: &str) -> ScheduleError {
    ScheduleError::NotFound {
        tenant: tenant.to_string(),
        name: name.to_string(),
    }
}
