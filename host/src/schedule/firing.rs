//! The scheduler: a loop, in every long-running process on the database,
//! that handles each schedule's due ticks and starts their workflows.
//!
//! A pass over a schedule first claims its due ticks in one write
//! transaction (`ticks::handle_due` on the record as the transaction reads
//! it: a tick another process handled is no longer due), then starts every
//! workflow the record lists as `starting` — its own claims, and those of a
//! process killed before it started them — and takes off the list those
//! now on record. Workflows run in this process; one this process finds
//! cut off (its process was killed) it resumes. Claims on a workflow's
//! lease keep two processes from running one workflow at once.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ScheduleError, cadence_of, chain_of, ticks};
use crate::executor::{PARK_AFTER, RunIdentity, RunOptions, Silent};
use crate::lifecycle::{Begun, Host, Intent};
use crate::lock::lock;
use crate::records::{ScheduleRecord, TickOutcome, WorkflowStatus, now_ms};
use crate::spec::WorkflowSpec;
use crate::store::StoreError;

/// Where the scheduler takes "now" from: the system's clock, or, in
/// tests, one they set.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// What a scheduler starts its ticks' workflows with: the host alone
/// (`wfhost scheduler`), or a service, which runs them as its tenants'
/// (`serve`, `ui`).
pub trait Launcher: Send + Sync + 'static {
    /// The host whose database holds the schedules.
    fn host(&self) -> &Host;

    /// Whether this process fires `record`'s ticks: not when it could not
    /// read its workflow (see [`Launcher::workflow`]).
    fn fires(&self, record: &ScheduleRecord) -> bool;

    /// Whether this process wakes `tenant`'s parked workflows.
    fn serves(&self, tenant: &str) -> bool;

    /// The workflow a tick of `record` runs; none when this process cannot
    /// read it (a schedule made through `serve`'s API, whose chain only a
    /// process with its tenant's policy reads), which is then left to
    /// processes that can.
    fn workflow(&self, record: &ScheduleRecord) -> Option<Result<WorkflowSpec, ScheduleError>>;

    /// Starts workflow `identity` as `spec`, or resumes it when `spec` is
    /// none; returns once it has ended, or runs on its own.
    fn launch(
        self: Arc<Self>,
        spec: Option<WorkflowSpec>,
        identity: RunIdentity,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

impl Launcher for Host {
    fn host(&self) -> &Host {
        self
    }

    fn fires(&self, record: &ScheduleRecord) -> bool {
        !record.spec.submitted
    }

    fn serves(&self, _tenant: &str) -> bool {
        true
    }

    fn workflow(&self, record: &ScheduleRecord) -> Option<Result<WorkflowSpec, ScheduleError>> {
        self.fires(record).then(|| chain_of(record))
    }

    fn launch(
        self: Arc<Self>,
        spec: Option<WorkflowSpec>,
        identity: RunIdentity,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move {
            let intent = Intent::start_or_resume(spec);
            let options = RunOptions::new().park_pauses(PARK_AFTER);
            let ran = match self.begin(identity, intent).await {
                Ok(Begun::Ready(ready)) => self.execute(*ready, &options, &Silent).await.map(drop),
                Ok(_) | Err(crate::HostError::AlreadyStarting { .. }) => Ok(()),
                Err(err) => Err(err),
            };
            ran.map_err(|err| err.to_string())
        })
    }
}

/// How long the loop sleeps at most between passes, and how often it reads
/// every schedule: schedules made or changed by other processes, and runs
/// another process's death cut off, are seen within about this long.
const LONGEST_NAP: Duration = Duration::from_secs(1);

/// How long the loop sleeps at least between passes: ticks due within it
/// share one pass and one transaction, at the cost of as much lateness.
const SHORTEST_NAP: Duration = Duration::from_millis(10);

/// The scheduler of one process.
pub struct Scheduler {
    launcher: Arc<dyn Launcher>,
    clock: Arc<dyn Clock>,
    /// Workflows this process runs now, so a pass does not start or
    /// resume them again.
    running: Arc<Mutex<HashSet<RunIdentity>>>,
    /// Whether a pass has looked for every cut-off run of every schedule
    /// (the first one does; later ones look at each one's last run).
    looked_back: bool,
    /// The schedules as last read or changed here: passes between full
    /// reads look only at those due.
    known: Vec<ScheduleRecord>,
    /// When the schedules were last read whole.
    read_at: Option<std::time::Instant>,
}

impl Scheduler {
    /// A scheduler over the database of `launcher`'s host, reading the
    /// time from `clock`.
    pub fn new(launcher: Arc<dyn Launcher>, clock: Arc<dyn Clock>) -> Self {
        Scheduler {
            launcher,
            clock,
            running: Arc::default(),
            looked_back: false,
            known: Vec::new(),
            read_at: None,
        }
    }

    /// Handles due ticks for ever: a pass, then a nap until the next tick
    /// (a second at most).
    pub async fn run(mut self) -> Result<(), StoreError> {
        let launcher = Arc::clone(&self.launcher);
        loop {
            // Listening before looking: a workflow parked meanwhile is seen.
            let changed = launcher.host().parking_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next = self.pass().await?;
            let now = self.clock.now_ms();
            let nap = next.map_or(LONGEST_NAP, |next| {
                Duration::from_millis(next.saturating_sub(now)).clamp(SHORTEST_NAP, LONGEST_NAP)
            });
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                () = changed => {}
            }
        }
    }

    /// One pass: claims the due ticks of every schedule, all in one
    /// transaction, starts the workflows they claimed, and wakes the parked
    /// workflows due. Every schedule is read, and the runs of each looked
    /// after, at most once per `LONGEST_NAP`; passes in between look only
    /// at the schedules due. Returns the soonest tick or due instant ahead.
    pub async fn pass(&mut self) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now_ms();
        let whole = self
            .read_at
            .is_none_or(|read_at| read_at.elapsed() >= LONGEST_NAP);
        let mut known = std::mem::take(&mut self.known);
        if whole {
            known = self.launcher.host().store().schedules(None)?;
            known.retain(|record| self.launcher.fires(record));
            self.read_at = Some(std::time::Instant::now());
        }
        let changed = self.claim_due(&mut known, now)?;
        if whole {
            self.start_claimed(known.iter())?;
            for record in &known {
                self.resume_cut_off(record)?;
            }
            self.looked_back = true;
        } else {
            self.start_claimed(changed.iter().map(|index| &known[*index]))?;
        }
        let next_parked = self.wake_parked(now)?;
        let soonest = known
            .iter()
            .filter(|record| !record.spec.paused)
            .filter_map(|record| record.next_tick_ms)
            .chain(next_parked)
            .min();
        self.known = known;
        Ok(soonest)
    }

    /// Resumes the parked workflows due by `now` that this process serves;
    /// returns when the next one is due.
    fn wake_parked(&self, now: u64) -> Result<Option<u64>, StoreError> {
        let parked = self.launcher.host().store().parked_due(now)?;
        for (tenant, id) in parked.due {
            if self.launcher.serves(&tenant) {
                self.spawn(RunIdentity::new(&tenant, &id), None, None);
            }
        }
        Ok(parked.next_ms)
    }

    /// Claims the due ticks (and buffered ticks whose wait is over) of the
    /// schedules `records` were read as, in one transaction, and puts in
    /// `records` what each then is; returns the indices of those whose
    /// ticks this pass handled.
    fn claim_due(
        &self,
        records: &mut [ScheduleRecord],
        now: u64,
    ) -> Result<Vec<usize>, StoreError> {
        let mut due = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let due_now = record.next_tick_ms.is_some_and(|tick| tick <= now);
            if record.spec.paused || (!due_now && record.buffered_ms.is_none()) {
                continue;
            }
            let Ok(cadence) = cadence_of(record) else {
                continue;
            };
            due.push((index, cadence));
        }
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(&str, &str)> = due
            .iter()
            .map(|(index, ..)| {
                let spec = &records[*index].spec;
                (spec.tenant.as_str(), spec.name.as_str())
            })
            .collect();
        let store = self.launcher.host().store();
        let fresh = store.change_schedules(&keys, |at, stored| {
            let (_, cadence) = &due[at];
            let record = stored.as_mut()?;
            // Judged on the record as this transaction reads it, with what
            // another process (or a failed start here) did meanwhile; a
            // store that cannot say counts it as running.
            let previous_runs = match &record.last_workflow {
                Some(id) => self.runs(record, id).unwrap_or(true),
                None => false,
            };
            let handled = ticks::handle_due(record, cadence, now, previous_runs);
            Some((handled, record.clone()))
        })?;
        let mut changed = Vec::new();
        for ((index, ..), fresh) in due.iter().zip(fresh) {
            let known = &mut records[*index];
            match fresh {
                Some((handled, record)) => {
                    *known = record;
                    if handled {
                        changed.push(*index);
                    }
                }
                // Removed meanwhile: nothing of it is due until the next
                // whole read, which no longer finds it.
                None => {
                    known.next_tick_ms = None;
                    known.buffered_ms = None;
                    known.starting.clear();
                }
            }
        }
        Ok(changed)
    }

    /// Whether workflow `id` of `record`'s schedule runs, here or
    /// elsewhere, was cut off (and is to be resumed), or is about to start.
    fn runs(&self, record: &ScheduleRecord, id: &str) -> Result<bool, StoreError> {
        let row = self
            .launcher
            .host()
            .store()
            .workflow(&record.spec.tenant, id)?;
        Ok(match row {
            Some(row) => matches!(row.status, WorkflowStatus::Running | WorkflowStatus::CutOff),
            None => record.starting.iter().any(|starting| starting == id),
        })
    }

    /// Starts the workflows the records list as starting that are not on
    /// record yet, and takes off the lists, in one transaction, those that
    /// are — and those that cannot start (their chain no longer loads),
    /// whose ticks are recorded as failed.
    fn start_claimed<'r>(
        &self,
        records: impl Iterator<Item = &'r ScheduleRecord>,
    ) -> Result<(), StoreError> {
        let store = self.launcher.host().store();
        let mut keys = Vec::new();
        let mut done = Vec::new();
        for record in records.filter(|record| !record.starting.is_empty()) {
            let (mut on_record, mut failed) = (Vec::new(), Vec::new());
            for id in &record.starting {
                if store.workflow(&record.spec.tenant, id)?.is_some() {
                    on_record.push(id.clone());
                } else if !self.spawn_run(record, id, true) {
                    failed.push(id.clone());
                }
            }
            if !on_record.is_empty() || !failed.is_empty() {
                keys.push((record.spec.tenant.as_str(), record.spec.name.as_str()));
                done.push((on_record, failed));
            }
        }
        if !keys.is_empty() {
            store.change_schedules(&keys, |at, stored| {
                let Some(record) = stored else {
                    return;
                };
                let (on_record, failed) = &done[at];
                record.starting.retain(|id| !on_record.contains(id));
                given_up(record, failed);
            })?;
        }
        Ok(())
    }

    /// Resumes the schedule's workflows that a killed process cut off:
    /// every one on the first pass, the last one on later passes.
    fn resume_cut_off(&self, record: &ScheduleRecord) -> Result<(), StoreError> {
        let ids: Vec<&String> = if self.looked_back {
            record.last_workflow.iter().collect()
        } else {
            record
                .ticks
                .iter()
                .filter_map(|tick| tick.workflow.as_ref())
                .collect()
        };
        for id in ids {
            let row = self
                .launcher
                .host()
                .store()
                .workflow(&record.spec.tenant, id)?;
            if row.is_some_and(|row| row.status == WorkflowStatus::CutOff) {
                self.spawn_run(record, id, false);
            }
        }
        Ok(())
    }

    /// Runs workflow `id` of the schedule in this process, unless it runs
    /// here already: started afresh, or resumed. Another process running
    /// it is told apart by its lease, and then nothing runs here.
    /// Whether it could: a workflow whose chain no longer loads cannot.
    fn spawn_run(&self, record: &ScheduleRecord, id: &str, fresh: bool) -> bool {
        let identity = RunIdentity::new(&record.spec.tenant, id);
        if lock(&self.running).contains(&identity) {
            return true;
        }
        // Read only to start afresh: a resume reads its stored form.
        let spec = match fresh.then(|| self.launcher.workflow(record)).flatten() {
            Some(Ok(spec)) => Some(spec),
            Some(Err(err)) => {
                let name = record.spec.name.escape_debug();
                tracing::warn!(schedule = %name, id = %id.escape_debug(), "a tick's workflow cannot start: {err}");
                return false;
            }
            None => None,
        };
        self.spawn(identity, spec, Some(record.spec.name.clone()));
        true
    }

    /// Runs workflow `identity` in this process — started as `spec`, or
    /// resumed — unless it runs here already. A tick's workflow (of
    /// `schedule`) that does not start is given up: its tick is recorded as
    /// failed, and it no longer counts as the schedule's run.
    fn spawn(&self, identity: RunIdentity, spec: Option<WorkflowSpec>, schedule: Option<String>) {
        if !lock(&self.running).insert(identity.clone()) {
            return;
        }
        let launcher = Arc::clone(&self.launcher);
        let running = Arc::clone(&self.running);
        tokio::spawn(async move {
            if let Err(err) = Arc::clone(&launcher).launch(spec, identity.clone()).await {
                tracing::warn!(
                    tenant = %identity.tenant.escape_debug(),
                    id = %identity.id.escape_debug(),
                    "a scheduled or parked workflow did not run: {err}"
                );
                if let Some(schedule) = schedule {
                    let store = launcher.host().store();
                    let failed = [identity.id.clone()];
                    let given = store.change_schedule(&identity.tenant, &schedule, |stored| {
                        if let Some(record) = stored {
                            given_up(record, &failed);
                        }
                    });
                    if let Err(err) = given {
                        tracing::warn!("cannot record a tick's failed start: {err}");
                    }
                }
            }
            lock(&running).remove(&identity);
        });
    }
}

/// Gives up the workflows `failed` of `record`'s ticks, which could not
/// start: off the starting list, their ticks recorded as failed.
fn given_up(record: &mut ScheduleRecord, failed: &[String]) {
    record.starting.retain(|id| !failed.contains(id));
    for tick in &mut record.ticks {
        if tick.workflow.as_ref().is_some_and(|id| failed.contains(id)) {
            tick.outcome = TickOutcome::Failed;
        }
    }
}
