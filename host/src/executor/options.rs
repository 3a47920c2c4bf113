//! How a run is set up: who it runs for, how it may use the machine, and who
//! hears about it as it goes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Drain, FairScheduler};
use crate::records::{StepRecord, WorkflowRow};

/// Hears about a run as it goes, e.g. to show progress.
pub trait Observer: Send + Sync {
    /// The workflow's row is recorded (started, resumed or re-driven):
    /// from here on `status` finds it.
    fn workflow_recorded(&self, _row: &WorkflowRow) {}
    /// A step finished (succeeded, failed or was replaced).
    fn step_finished(&self, _record: &StepRecord) {}
    /// A step will be tried again after `delay`.
    fn retrying(&self, _record: &StepRecord, _reason: &str, _delay: Duration) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// Who runs a workflow: its id and tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunIdentity {
    /// The workflow's id, unique within its tenant.
    pub id: String,
    /// The tenant the workflow belongs to.
    pub tenant: String,
}

impl RunIdentity {
    /// The identity of workflow `id` of `tenant`.
    pub fn new(tenant: impl Into<String>, id: impl Into<String>) -> Self {
        RunIdentity {
            id: id.into(),
            tenant: tenant.into(),
        }
    }

    /// The identity of the workflow `row` records.
    pub fn of(row: &WorkflowRow) -> Self {
        Self::new(&row.tenant, &row.id)
    }
}

/// The most attempts any run, or any tenant's runs together, may have under
/// way at once: far more than a machine runs, and few enough to count.
pub const MAX_CONCURRENCY: usize = 65_536;

/// How many attempts a run may have under way at once.
#[derive(Debug, Clone)]
pub enum Concurrency {
    /// Slots of the run's own.
    Own(usize),
    /// Slots shared with other runs (a tenant's other workflows, say): their
    /// attempts together stay within them.
    Shared(Arc<Semaphore>),
}

/// How a run may use the machine. Every setting has a default, stated on
/// its setter; [`RunOptions::new`] is all of them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    pub(crate) concurrency: Concurrency,
    pub(crate) fair_share: Option<Arc<FairScheduler>>,
    pub(crate) attempt_pool: Option<tokio::runtime::Handle>,
    pub(crate) fuel_budget: Option<u64>,
    pub(crate) drain: Option<Arc<Drain>>,
    pub(crate) start_announced: bool,
    pub(crate) park_after: Option<Duration>,
}

/// How far off a sleep's or a wait's end must be for a run that may park
/// to park rather than wait (see [`RunOptions::park_pauses`]): parking and
/// being woken cost about a start of the run, well under this.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

impl RunOptions {
    /// Every setting at its default.
    pub fn new() -> Self {
        RunOptions {
            concurrency: Concurrency::Own(cores()),
            fair_share: None,
            attempt_pool: None,
            fuel_budget: None,
            drain: None,
            start_announced: true,
            park_after: None,
        }
    }

    /// How many attempts may run at once (group members run in parallel);
    /// 0 counts as 1, and more than [`MAX_CONCURRENCY`] as that many. By
    /// default, one per core.
    pub fn concurrency(mut self, attempts: usize) -> Self {
        self.concurrency = Concurrency::Own(attempts.clamp(1, MAX_CONCURRENCY));
        self
    }

    /// Takes attempt slots from `slots`, shared with other runs, in place of
    /// slots of the run's own. By default the run has its own.
    pub fn shared_slots(mut self, slots: Arc<Semaphore>) -> Self {
        self.concurrency = Concurrency::Shared(slots);
        self
    }

    /// Makes each attempt also wait for its tenant's turn at one of
    /// `scheduler`'s slots, shared with other tenants' runs. By default
    /// attempts wait for no turn.
    pub fn fair_share(mut self, scheduler: Arc<FairScheduler>) -> Self {
        self.fair_share = Some(scheduler);
        self
    }

    /// Runs attempts on `pool`'s threads: guest code then never holds up
    /// the threads that commit, answer requests and run other tenants'
    /// bookkeeping. By default attempts run on the caller's runtime.
    pub fn attempt_pool(mut self, pool: tokio::runtime::Handle) -> Self {
        self.attempt_pool = Some(pool);
        self
    }

    /// Whether anyone hears that the run started before it ends. By
    /// default someone does, and a new workflow's start is on the disk
    /// before its first step. A caller that reports only the run's end (a
    /// submission that waits for the result) says `false`: the start then
    /// reaches the disk as a pure step's record does, with the next commit
    /// (its first effectful step, or its end, at the latest), and a crash
    /// before then loses a workflow nobody heard of.
    pub fn start_announced(mut self, announced: bool) -> Self {
        self.start_announced = announced;
        self
    }

    /// Fuel all the workflow's attempts together may use (retries,
    /// callbacks and earlier runs of the same workflow included); each
    /// attempt gets at most what is left, and a spent budget fails the step
    /// with `fuel_exhausted`. By default there is no budget.
    pub fn fuel_budget(mut self, budget: Option<u64>) -> Self {
        self.fuel_budget = budget;
        self
    }

    /// Lets `drain` stop the run gracefully: no step starts once it is
    /// stopping, and the steps under way finish and are committed. By
    /// default the run cannot be drained.
    pub fn drain(mut self, drain: Arc<Drain>) -> Self {
        self.drain = Some(drain);
        self
    }

    /// Lets the run park: a sleep or a wait for a signal, not inside a
    /// group, that would last more than `after` ends the run, and the
    /// workflow is recorded as parked — holding no lease, task or memory —
    /// until a waker ([`crate::schedule::Scheduler`], in `serve`, `ui` and
    /// `wfhost scheduler`) resumes it at its due instant or when a signal
    /// comes. By default a run waits where it runs.
    pub fn park_pauses(mut self, after: Duration) -> Self {
        self.park_after = Some(after);
        self
    }

    /// The attempt slots of a run with these options.
    pub(crate) fn slots(&self) -> Arc<Semaphore> {
        match &self.concurrency {
            Concurrency::Own(attempts) => Arc::new(Semaphore::new(*attempts)),
            Concurrency::Shared(slots) => Arc::clone(slots),
        }
    }
}

impl Default for RunOptions {
    /// The same as [`RunOptions::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// The cores this process may use. Asked of the system once: each asking
/// reads the cgroup's quota files.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
