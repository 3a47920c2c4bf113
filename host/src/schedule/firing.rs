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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use super::{ScheduleError, cadence_of, chain_of, ticks};
use crate::Host;
use crate::executor::RunIdentity;
use crate::lock::lock;
use crate::records::{ScheduleRecord, WorkflowStatus, now_ms};
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

    fn workflow(&self, record: &ScheduleRecord) -> Option<Result<WorkflowSpec, ScheduleError>> {
        (!record.spec.submitted).then(|| chain_of(record))
    }

    fn launch(
        self: Arc<Self>,
        spec: Option<WorkflowSpec>,
        identity: RunIdentity,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move {
            let ran = match spec {
                Some(spec) => self.run(spec, identity).await,
                None => self.resume(identity).await,
            };
            match ran {
                Ok(_) | Err(crate::HostError::AlreadyStarting { .. }) => Ok(()),
                Err(err) => Err(err.to_string()),
            }
        })
    }
}

/// How long the loop sleeps at most between passes: schedules made or
/// changed by other processes are seen within about this long.
const LONGEST_NAP: Duration = Duration::from_secs(1);

/// The scheduler of one process.
pub struct Scheduler {
    launcher: Arc<dyn Launcher>,
    clock: Arc<dyn Clock>,
    /// Workflows this process runs now, so a pass does not start or
    /// resume them again.
    running: Arc<Mutex<HashSet<(String, String)>>>,
    /// Whether a pass has looked for every cut-off run of every schedule
    /// (the first one does; later ones look at each one's last run).
    looked_back: bool,
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
        }
    }

    /// Handles due ticks for ever: a pass, then a nap until the next tick
    /// (a second at most).
    pub async fn run(mut self) -> Result<(), StoreError> {
        loop {
            let next = self.pass().await?;
            let now = self.clock.now_ms();
            let nap = next.map_or(LONGEST_NAP, |next| {
                Duration::from_millis(next.saturating_sub(now)).min(LONGEST_NAP)
            });
            tokio::time::sleep(nap).await;
        }
    }

    /// One pass over every schedule: claims their due ticks and starts
    /// the workflows they claimed. Returns the soonest tick not yet due.
    pub async fn pass(&mut self) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now_ms();
        let mut soonest: Option<u64> = None;
        for snapshot in self.launcher.host().store().schedules(None)? {
            if self.launcher.workflow(&snapshot).is_none() {
                continue;
            }
            let record = self.claim_due(&snapshot, now)?.unwrap_or(snapshot);
            self.start_claimed(&record)?;
            self.resume_cut_off(&record)?;
            if !record.spec.paused
                && let Some(next) = record.next_tick_ms
            {
                soonest = Some(soonest.map_or(next, |soonest| soonest.min(next)));
            }
        }
        self.looked_back = true;
        Ok(soonest)
    }

    /// Claims the due ticks of the schedule `snapshot` was read from, in
    /// one transaction; the record as it then is, if it changed.
    fn claim_due(
        &self,
        snapshot: &ScheduleRecord,
        now: u64,
    ) -> Result<Option<ScheduleRecord>, StoreError> {
        let due = snapshot.next_tick_ms.is_some_and(|tick| tick <= now);
        if snapshot.spec.paused || (!due && snapshot.buffered_ms.is_none()) {
            return Ok(None);
        }
        let Ok(cadence) = cadence_of(snapshot) else {
            return Ok(None);
        };
        let previous_runs = match &snapshot.last_workflow {
            Some(id) => self.runs(&snapshot.spec.tenant, id)?,
            None => false,
        };
        let store = self.launcher.host().store();
        store.change_schedule(&snapshot.spec.tenant, &snapshot.spec.name, |stored| {
            let record = stored.as_mut()?;
            // What another process did meanwhile is in the record read here.
            let previous_runs = previous_runs && record.last_workflow == snapshot.last_workflow;
            ticks::handle_due(record, &cadence, now, previous_runs).then(|| record.clone())
        })
    }

    /// Whether workflow `id` of `tenant` runs, here or elsewhere, or was
    /// cut off (and is to be resumed).
    fn runs(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let row = self.launcher.host().store().workflow(tenant, id)?;
        Ok(row.is_none_or(|row| {
            matches!(row.status, WorkflowStatus::Running | WorkflowStatus::CutOff)
        }))
    }

    /// Starts the workflows the record lists as starting that are not on
    /// record yet, and takes off the list those that are.
    fn start_claimed(&self, record: &ScheduleRecord) -> Result<(), StoreError> {
        if record.starting.is_empty() {
            return Ok(());
        }
        let store = self.launcher.host().store();
        let mut started = Vec::new();
        for id in &record.starting {
            if store.workflow(&record.spec.tenant, id)?.is_some() {
                started.push(id.clone());
            } else {
                self.spawn_run(record, id, true);
            }
        }
        if !started.is_empty() {
            store.change_schedule(&record.spec.tenant, &record.spec.name, |stored| {
                if let Some(record) = stored {
                    record.starting.retain(|id| !started.contains(id));
                }
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
    fn spawn_run(&self, record: &ScheduleRecord, id: &str, fresh: bool) {
        let key = (record.spec.tenant.clone(), id.to_string());
        if !lock(&self.running).insert(key.clone()) {
            return;
        }
        let spec = match self.launcher.workflow(record).filter(|_| fresh) {
            Some(Ok(spec)) => Some(spec),
            Some(Err(err)) => {
                tracing::warn!(schedule = %record.spec.name.escape_debug(), "cannot start a tick's workflow: {err}");
                lock(&self.running).remove(&key);
                return;
            }
            None => None,
        };
        let launcher = Arc::clone(&self.launcher);
        let running = Arc::clone(&self.running);
        let identity = RunIdentity::new(&record.spec.tenant, id);
        let schedule = record.spec.name.clone();
        tokio::spawn(async move {
            if let Err(err) = launcher.launch(spec, identity).await {
                tracing::warn!(
                    schedule = %schedule.escape_debug(),
                    "a scheduled workflow did not run: {err}"
                );
            }
            lock(&running).remove(&key);
        });
    }
}
