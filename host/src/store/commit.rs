//! Group commit, and when commits are made ([`Durability`], [`Flush`]):
//! writes that arrive together share one transaction and one flush.
//!
//! Every commit is durable: the database is shared with other processes
//! (redb's multi-writer mode), where a commit exists once it is on the
//! disk. What a write may do instead is wait in memory for a later commit.
//! By default ([`Durability::Grouped`]) a pure step's record does: the step
//! after it starts at once, while a thread of the committer's own flushes
//! what has gathered, one transaction for all of it, at most once a
//! millisecond ([`GROUP_WINDOW`]). Writes are committed in the order they
//! were made, so what is on the disk after a crash is always a prefix of
//! what was written, and a write that must be durable before its writer
//! goes on — a workflow's start and end, an effectful step's start and
//! outcome ([`Flush::Always`]), every step with [`Durability::Strict`] —
//! carries every write before it to the disk too.
//!
//! The first writer to find no commit under way leads: it yields once, so
//! that writers running beside it in the same task (group members) can
//! queue their writes, then commits everything queued, again and again
//! until the queue is empty. Writers that arrive while a commit is under
//! way queue their write and wait for the leader's answer. A lone writer
//! commits on its own thread: a hand-over to another thread costs about as
//! much as the commit on a small VM. When others are writing too, the
//! leader commits on a blocking thread, so that the rest of its task keeps
//! going and steps that finish together share a flush.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use redb::{ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;
use super::error::{catching, damaged_by_panic, panic_text, redb_error};
use super::handle::{Db, Opened};
use super::tables::{
    CANCELS, ELEMENTS, EVENTS, HEADS, JOURNAL, JournalKey, META, PARKED, PARKED_BY_DUE, SIGNALS,
    STEPS, WORKFLOWS, whole_journal,
};
use crate::histogram::Histogram;
use crate::lock::lock;
use crate::records::{Event, Signal, now_ms};

/// How the records of finished steps reach the disk. A workflow's start and
/// end, and the records of effectful steps (those holding a grant), are
/// committed before anything goes on in every mode; the modes differ in the
/// records of pure steps, whose effects stay inside their sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A pure step's record waits in memory while the next step runs; the
    /// committer's thread flushes what has gathered in one transaction, at
    /// most once per [`GROUP_WINDOW`]. Nothing is reported, and no
    /// effectful step starts, before everything it depends on is on the
    /// disk; a crash loses only pure steps whose records were not yet
    /// flushed, and `resume` runs them again. The default.
    #[default]
    Grouped,
    /// Every step's record is on the disk before the step that made it
    /// moves on: one flush per step.
    Strict,
    /// Like [`Durability::Grouped`], with at most one commit of pure steps'
    /// records per `window`: fewer flushes, for disks whose flush is slow.
    Batched {
        /// The longest a finished step's record waits for its commit.
        window: Duration,
    },
}

impl Durability {
    /// How long the committer's thread lets writes gather before it
    /// commits them.
    fn gathering(self) -> Duration {
        match self {
            Durability::Grouped => GROUP_WINDOW,
            Durability::Strict => Duration::ZERO,
            Durability::Batched { window } => window,
        }
    }
}

/// When a write of step records must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Flush {
    /// Before the writer goes on with [`Durability::Strict`]; with the
    /// other modes, as soon as the committer's thread gets to it.
    #[default]
    BeforeReturning,
    /// With the workflow's final write, which the writer makes next: the
    /// last step of a workflow needs no commit of its own, since nothing
    /// runs between its record and the workflow's end. A crash in between
    /// loses the step, and `resume` runs it again, as if the crash had come
    /// before its commit.
    WithWorkflowEnd,
    /// With whatever commit comes next, or within the store's window
    /// ([`LAZY_WINDOW`] with [`Durability::Strict`]): news that nothing
    /// waits for, such as a step's attempt having started, which shows
    /// while the attempt runs and is overwritten by its outcome.
    Lazily,
    /// A workflow's start that nobody is told of before the workflow ends
    /// (a submission that waits for the result): with whatever commit comes
    /// next, as [`Flush::Lazily`] — a short workflow's end, its first
    /// effectful step, the committer's thread within [`LAZY_WINDOW`] at the
    /// latest — or before the writer goes on with [`Durability::Strict`].
    /// Commits keep their order, so nothing of the workflow is on the disk
    /// without it; a crash before then loses a workflow nobody heard of.
    Unannounced,
    /// Before the writer goes on, whatever the store's [`Durability`]: the
    /// records of an effectful step (one holding a grant), whose input must
    /// be durable before it starts and whose outcome must be durable before
    /// anything after it starts, so that `resume` never repeats an effect
    /// whose success was recorded.
    Always,
}

/// How often at most the committer's thread commits pure steps' records
/// with [`Durability::Grouped`]. Committing each as it comes would leave a
/// handful of records per commit, and a commit costs many times what a
/// record adds to it; a millisecond's records share one instead, at no
/// cost to what is reported, which waits for its own commit, and to
/// `resume`, which runs again only pure steps lost in a crash.
pub(crate) const GROUP_WINDOW: Duration = Duration::from_millis(1);

/// How long a write marked [`Flush::Lazily`] waits for a commit at most
/// with [`Durability::Strict`].
pub(crate) const LAZY_WINDOW: Duration = Duration::from_millis(100);

/// Writes that may wait in memory at most: past them, a writer waits for
/// its commit, so that steps far faster than the disk cannot fill memory.
const MAX_AHEAD: usize = MAX_BATCH;

/// Writes gathered into one transaction at most: bounds how long the
/// writers of a batch wait for each other.
const MAX_BATCH: usize = 1024;

/// What one write changes: rows of one workflow, already serialized, and
/// the event that says why.
pub(super) struct Write {
    pub tenant: String,
    pub workflow: String,
    pub rows: Rows,
    /// Why, for the workflow's event log; a write of elements before the
    /// workflow starts has none.
    pub event: Option<String>,
    pub step: Option<String>,
    pub detail: Option<String>,
    pub flush: Flush,
    /// When the write was made: its event's time, even when its commit
    /// comes later.
    pub at_ms: u64,
    /// Whether no other write can be on its way to join this one's
    /// commit: a workflow's last write (its steps are done) while this
    /// process runs no other workflow. Its writer commits at once rather
    /// than first letting other tasks run (and waking an idle thread to
    /// run them).
    pub alone: bool,
}

impl Write {
    /// A write of `rows` of workflow `workflow` of `tenant`, made now,
    /// with no event, committed before its writer goes on.
    pub fn new(tenant: &str, workflow: &str, rows: Rows) -> Self {
        Write {
            tenant: tenant.to_string(),
            workflow: workflow.to_string(),
            rows,
            event: None,
            step: None,
            detail: None,
            flush: Flush::BeforeReturning,
            at_ms: now_ms(),
            alone: false,
        }
    }

    /// The write with an event of `kind` (about `step`, if any) that says
    /// `detail`.
    pub fn with_event(mut self, kind: &str, step: Option<String>, detail: Option<String>) -> Self {
        self.event = Some(kind.to_string());
        self.step = step;
        self.detail = detail;
        self
    }
}

/// The rows a write puts.
pub(super) enum Rows {
    /// The workflow's own row, and its head (and elements) when it starts
    /// or its head changes.
    Workflow {
        row: Vec<u8>,
        started: Option<Started>,
        /// Whether the row is the workflow's last: a request to cancel it
        /// is then answered, and removed.
        ends: bool,
    },
    /// Elements of a workflow about to start, from index `first` on.
    Elements { first: u64, elements: Vec<Vec<u8>> },
    /// Step records by step id.
    Steps(Vec<(String, Vec<u8>)>),
    /// A request that the workflow, running in another process, be
    /// cancelled.
    CancelRequest,
    /// A signal: a new one, numbered after the workflow's last, when `seq`
    /// is none; else signal `seq` rewritten (taken by a wait).
    Signal { seq: Option<u64>, signal: Signal },
    /// The workflow parked until `due` (milliseconds since the epoch,
    /// `u64::MAX` until a signal), or, with none, no longer parked.
    Park { due: Option<u64> },
    /// The workflow's removal: its row, head, elements, steps, events and
    /// any request to cancel it.
    Removal,
    /// A setting of the file (the write's workflow is none).
    Meta { key: &'static str, value: u64 },
}

/// What a starting workflow stores besides its row: its head, and its
/// elements from `first_element` on (none, when only its head changes).
pub(super) struct Started {
    pub head: Vec<u8>,
    pub first_element: u64,
    pub elements: Vec<Vec<u8>>,
}

struct Request {
    write: Write,
    /// Who waits for the commit; a write held for a later commit has none.
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// Why writes were lost: a commit failed. Every later write of the
/// workflows it held is refused, so that nothing of theirs is recorded on
/// top of what is missing; other workflows go on, so that a full disk,
/// once it has room again, takes new work without a restart.
#[derive(Clone)]
enum Lost {
    Redb(Arc<redb::Error>),
    Panicked(String),
}

struct Queue {
    /// Whether a writer is leading: committing, or about to.
    leading: bool,
    waiting: Vec<Request>,
    /// When a commit was last made.
    committed_at: Instant,
    /// Workflows (tenant, id) with writes lost, and why.
    lost: HashMap<(String, String), Lost>,
    /// How long each commit took.
    latency: Histogram,
}

impl Queue {
    /// Why `write`'s workflow has lost writes, if it has.
    fn lost_for(&self, write: &Write) -> Option<&Lost> {
        if self.lost.is_empty() {
            return None;
        }
        self.lost
            .get(&(write.tenant.clone(), write.workflow.clone()))
    }
}

/// The queue of writes to a database and the commits that drain it.
pub(super) struct Committer {
    db: Arc<Db>,
    path: PathBuf,
    durability: Durability,
    queue: Mutex<Queue>,
    wake: Arc<Wake>,
}

/// What wakes the committer's thread: writes left waiting, or the end.
#[derive(Default)]
struct Wake {
    state: Mutex<WakeState>,
    signal: Condvar,
}

#[derive(Default)]
struct WakeState {
    /// Writes wait that are to be committed now (a pure step's outcome).
    pending: bool,
    /// Since when writes wait that may wait up to [`LAZY_WINDOW`] for a
    /// commit (a step's start), if any do.
    lazy_since: Option<Instant>,
    closed: bool,
}

impl Wake {
    /// Wakes the thread to commit now (or, `closing`, to end).
    fn set(&self, closing: bool) {
        let mut state = lock(&self.state);
        state.closed |= closing;
        if !state.pending || closing {
            state.pending = true;
            self.signal.notify_one();
        }
    }

    /// Has the thread commit within [`LAZY_WINDOW`], unless a commit
    /// comes first: news that nothing waits for is not worth a commit of
    /// its own while others are on their way.
    fn set_lazy(&self) {
        let mut state = lock(&self.state);
        if state.lazy_since.is_none() {
            state.lazy_since = Some(Instant::now());
            self.signal.notify_one();
        }
    }

    /// Waits until there is something to commit; false once the
    /// committer is gone.
    fn wait(&self) -> bool {
        let mut state = lock(&self.state);
        loop {
            if state.pending {
                state.pending = false;
                state.lazy_since = None;
                return !state.closed;
            }
            state = match state.lazy_since.map(|since| since + LAZY_WINDOW) {
                Some(due) if Instant::now() >= due => {
                    state.lazy_since = None;
                    return !state.closed;
                }
                Some(due) => match self.signal.wait_timeout(state, due - Instant::now()) {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                },
                None => match self.signal.wait(state) {
                    Ok(state) => state,
                    Err(poisoned) => poisoned.into_inner(),
                },
            };
        }
    }
}

impl Committer {
    /// A committer for `db`, and the thread that commits writes left
    /// waiting, once the mode's gathering time ([`Durability::gathering`])
    /// has passed since the last commit.
    pub fn start(
        db: Arc<Db>,
        path: PathBuf,
        durability: Durability,
    ) -> Result<Arc<Self>, StoreError> {
        let wake = Arc::new(Wake::default());
        let committer = Arc::new(Committer {
            db,
            path: path.clone(),
            durability,
            queue: Mutex::new(Queue {
                leading: false,
                waiting: Vec::new(),
                committed_at: Instant::now(),
                latency: Histogram::default(),
                lost: HashMap::new(),
            }),
            wake: Arc::clone(&wake),
        });
        let weak = Arc::downgrade(&committer);
        thread::Builder::new()
            .name("wfhost-flush".into())
            .spawn(move || commit_in_background(&wake, &weak, durability.gathering()))
            .map_err(|source| StoreError::FlushThread { path, source })?;
        Ok(committer)
    }

    /// Returns once every write made so far is committed (or lost), by
    /// this thread or by a leader already under way.
    /// How long the commits so far took.
    pub fn latency(&self) -> Histogram {
        lock(&self.queue).latency.clone()
    }

    pub fn commit_all(&self) {
        loop {
            self.commit_waiting();
            {
                let queue = lock(&self.queue);
                if queue.waiting.is_empty() && !queue.leading {
                    return;
                }
            }
            // Another thread leads: its drain ends once the queue is empty.
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Commits every write waiting, unless a leader is doing so already.
    pub fn commit_waiting(&self) {
        if self.take_lead() {
            self.drain(Until::Empty);
        }
    }

    /// Leads the commits of the writes waiting, if there are any and no
    /// other writer leads.
    fn take_lead(&self) -> bool {
        let mut queue = lock(&self.queue);
        !queue.waiting.is_empty() && !std::mem::replace(&mut queue.leading, true)
    }

    /// Whether `write` may wait in memory for a later commit.
    fn may_wait(&self, write: &Write, queue: &Queue) -> bool {
        if !matches!(write.rows, Rows::Steps(_)) && write.flush != Flush::Unannounced {
            // A workflow's start and end are what its caller acts on.
            return false;
        }
        if queue.waiting.len() >= MAX_AHEAD {
            return false;
        }
        match (write.flush, self.durability) {
            (Flush::Always, _) => false,
            (Flush::WithWorkflowEnd | Flush::Lazily, _) => true,
            (Flush::BeforeReturning | Flush::Unannounced, Durability::Strict) => false,
            (
                Flush::BeforeReturning | Flush::Unannounced,
                Durability::Grouped | Durability::Batched { .. },
            ) => true,
        }
    }

    /// Queues `write` and returns once the transaction holding it is
    /// durable, or at once when it may wait for a later commit.
    pub async fn write(self: &Arc<Self>, write: Write) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let alone = write.alone;
        let lead = {
            let mut queue = lock(&self.queue);
            if let Some(lost) = queue.lost_for(&write) {
                return Err(self.error(lost));
            }
            if self.may_wait(&write, &queue) {
                let now = write.flush == Flush::BeforeReturning;
                queue.waiting.push(Request { write, done: None });
                drop(queue);
                if now {
                    self.wake.set(false);
                } else {
                    self.wake.set_lazy();
                }
                return Ok(());
            }
            queue.waiting.push(Request {
                write,
                done: Some(done),
            });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            if !alone {
                tokio::task::yield_now().await;
            }
            // Writes held for a later commit (a step's start) have nobody
            // waiting: only other waiting writers are worth a hand-over.
            let writers = lock(&self.queue)
                .waiting
                .iter()
                .filter(|request| request.done.is_some())
                .count();
            if writers > 1 {
                // Others are writing too: commit on a blocking thread, so
                // that this task's other futures (group members) can start
                // their next attempts during the flush.
                let committer = Arc::clone(self);
                if tokio::task::spawn_blocking(move || committer.drain(Until::Empty))
                    .await
                    .is_err()
                {
                    self.drain(Until::Empty);
                }
            } else {
                self.drain(Until::Empty);
            }
        }
        committed.await.unwrap_or_else(|_| {
            Err(StoreError::Abandoned {
                path: self.path.clone(),
            })
        })
    }

    /// The error of writes lost as `lost` says.
    fn error(&self, lost: &Lost) -> StoreError {
        match lost {
            Lost::Redb(err) => redb_error(&self.path, Arc::clone(err)),
            Lost::Panicked(what) => damaged_by_panic(&self.path, what),
        }
    }

    /// Commits batches until `until` says, then stops leading.
    fn drain(&self, until: Until) {
        let mut committed = false;
        loop {
            let batch: Vec<Request> = {
                let mut queue = lock(&self.queue);
                let nobody_waits = || !queue.waiting.iter().any(|request| request.done.is_some());
                let done = queue.waiting.is_empty()
                    || (matches!(until, Until::NobodyWaits) && committed && nobody_waits());
                if done {
                    queue.leading = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            // A panic inside redb (a damaged file) fails the commit, and
            // every writer of it hears so.
            let started = Instant::now();
            let result = match catching(|| commit(&self.db.get(), &batch).map_err(Arc::new)) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => {
                    // redb takes no transaction on a handle that saw an I/O
                    // error (a full disk): the commits after this one go to
                    // a handle opened again.
                    self.db.reopen();
                    Err(Lost::Redb(err))
                }
                Err(panic) => Err(Lost::Panicked(panic_text(panic.as_ref()))),
            };
            tracing::trace!(
                writes = batch.len(),
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                ok = result.is_ok(),
                "commit"
            );
            {
                let mut queue = lock(&self.queue);
                queue.committed_at = Instant::now();
                queue.latency.observe(started.elapsed().as_secs_f64());
                if let Err(lost) = &result {
                    for request in &batch {
                        let key = (request.write.tenant.clone(), request.write.workflow.clone());
                        queue.lost.entry(key).or_insert_with(|| lost.clone());
                    }
                    // What of theirs waits behind the lost writes is
                    // refused too; the others' writes stay queued.
                    let waiting = std::mem::take(&mut queue.waiting);
                    for request in waiting {
                        match queue.lost_for(&request.write).cloned() {
                            Some(lost) => {
                                if let Some(done) = request.done {
                                    let _ = done.send(Err(self.error(&lost)));
                                }
                            }
                            None => queue.waiting.push(request),
                        }
                    }
                }
            }
            for request in batch {
                let answer = result.as_ref().map_err(|lost| self.error(lost)).copied();
                // A writer that stopped waiting needs no answer.
                if let Some(done) = request.done {
                    let _ = done.send(answer);
                }
            }
            committed = true;
        }
    }
}

/// How long a leader goes on committing.
#[derive(Clone, Copy)]
enum Until {
    /// Until no write is waiting: a writer that waits for its own commit
    /// leads so.
    Empty,
    /// After one batch, until no writer waits for its commit: the
    /// committer's thread leads so, and lets the writes that keep arriving
    /// meanwhile (which nobody waits for) gather for its next commit.
    NobodyWaits,
}

/// The committer's thread: woken when writes are left waiting, it lets
/// them gather for `gathering` after the last commit, then commits them.
/// It holds the committer only while it looks or commits, so that the
/// store can close while it sleeps.
fn commit_in_background(wake: &Wake, committer: &Weak<Committer>, gathering: Duration) {
    while wake.wait() {
        if !gathering.is_zero() {
            let Some(since) = committer
                .upgrade()
                .map(|committer| lock(&committer.queue).committed_at.elapsed())
            else {
                return;
            };
            if let Some(rest) = gathering.checked_sub(since) {
                thread::sleep(rest);
            }
        }
        match committer.upgrade() {
            Some(committer) => {
                if committer.take_lead() {
                    committer.drain(Until::NobodyWaits);
                }
            }
            None => return,
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.wake.set(true);
        // Nothing written may be left behind when the store closes; a
        // damaged file that makes redb panic here is past saving.
        let _ = catching(|| self.commit_all());
    }
}

/// Applies every write of `batch` in one transaction and commits it,
/// durably.
fn commit(db: &Opened, batch: &[Request]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut tables = BatchTables::new(&txn);
        for request in batch {
            apply(&mut tables, &request.write)?;
        }
    }
    txn.commit()?;
    Ok(())
}

type WorkflowsTable<'txn> = Table<'txn, (&'static str, &'static str), &'static [u8]>;
type JournalTable<'txn> = Table<'txn, JournalKey, &'static [u8]>;

/// The tables most writes of a batch touch, each opened once for the
/// whole batch, and each workflow's next event number once it is known:
/// opening a table, and finding a workflow's last event, cost more than
/// the insert of a step's record itself.
struct BatchTables<'txn> {
    txn: &'txn WriteTransaction,
    workflows: Option<WorkflowsTable<'txn>>,
    journal: Option<JournalTable<'txn>>,
    next_event: HashMap<(&'txn str, &'txn str), u64>,
}

impl<'txn> BatchTables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        BatchTables {
            txn,
            workflows: None,
            journal: None,
            next_event: HashMap::new(),
        }
    }

    fn workflows(&mut self) -> Result<&mut WorkflowsTable<'txn>, redb::Error> {
        if self.workflows.is_none() {
            self.workflows = Some(self.txn.open_table(WORKFLOWS.table)?);
        }
        Ok(self.workflows.as_mut().expect("opened above"))
    }

    fn journal(&mut self) -> Result<&mut JournalTable<'txn>, redb::Error> {
        if self.journal.is_none() {
            self.journal = Some(self.txn.open_table(JOURNAL)?);
        }
        Ok(self.journal.as_mut().expect("opened above"))
    }

    /// Appends `event` to the log of workflow `workflow` of `tenant`,
    /// numbered after its last event.
    fn append_event(
        &mut self,
        tenant: &'txn str,
        workflow: &'txn str,
        mut event: Event,
    ) -> Result<(), redb::Error> {
        let known = self.next_event.get(&(tenant, workflow)).copied();
        let journal = self.journal()?;
        let seq = match known {
            Some(seq) => seq,
            None => journal
                .range(EVENTS.from(tenant, workflow, 0))?
                .next_back()
                .transpose()?
                .map_or(0, |(key, _)| key.value().3 + 1),
        };
        event.seq = seq;
        let key = EVENTS.key(tenant, workflow, seq, "");
        journal.insert(key, EVENTS.encode(&key, &event).as_slice())?;
        self.next_event.insert((tenant, workflow), seq + 1);
        Ok(())
    }

    /// Stores `elements` of workflow `workflow` of `tenant`, sealed, from
    /// index `first` on.
    fn put_elements(
        &mut self,
        tenant: &str,
        workflow: &str,
        first: u64,
        elements: &[Vec<u8>],
    ) -> Result<(), redb::Error> {
        let journal = self.journal()?;
        if first == 0 {
            // A start of the same id, killed after it stored some of its
            // elements, left them: none may pass for this start's.
            journal.retain_in(ELEMENTS.from(tenant, workflow, 0), |_, _| false)?;
        }
        for (index, json) in (first..).zip(elements) {
            journal.insert(ELEMENTS.key(tenant, workflow, index, ""), json.as_slice())?;
        }
        Ok(())
    }
}

fn apply<'a>(tables: &mut BatchTables<'a>, write: &'a Write) -> Result<(), redb::Error> {
    let txn = tables.txn;
    let (tenant, workflow) = (write.tenant.as_str(), write.workflow.as_str());
    match &write.rows {
        Rows::Workflow { row, started, ends } => {
            tables
                .workflows()?
                .insert((tenant, workflow), row.as_slice())?;
            if let Some(started) = started {
                let head = HEADS.key(tenant, workflow, 0, "");
                tables.journal()?.insert(head, started.head.as_slice())?;
                tables.put_elements(tenant, workflow, started.first_element, &started.elements)?;
            }
            if *ends {
                txn.open_table(CANCELS)?.remove((tenant, workflow))?;
            }
        }
        Rows::Elements { first, elements } => {
            tables.put_elements(tenant, workflow, *first, elements)?;
        }
        Rows::Steps(records) => {
            let journal = tables.journal()?;
            for (step, bytes) in records {
                journal.insert(STEPS.key(tenant, workflow, 0, step), bytes.as_slice())?;
            }
        }
        Rows::CancelRequest => {
            txn.open_table(CANCELS)?
                .insert((tenant, workflow), write.at_ms)?;
        }
        Rows::Signal { seq, signal } => {
            let journal = tables.journal()?;
            let seq = match seq {
                Some(seq) => *seq,
                None => journal
                    .range(SIGNALS.from(tenant, workflow, 0))?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(key, _)| key.value().3 + 1),
            };
            let signal = Signal {
                seq,
                ..signal.clone()
            };
            let key = SIGNALS.key(tenant, workflow, seq, &signal.name);
            journal.insert(key, SIGNALS.encode(&key, &signal).as_slice())?;
        }
        Rows::Park { due } => park(txn, tenant, workflow, *due)?,
        Rows::Removal => {
            tables.workflows()?.remove((tenant, workflow))?;
            txn.open_table(CANCELS)?.remove((tenant, workflow))?;
            park(txn, tenant, workflow, None)?;
            tables
                .journal()?
                .retain_in(whole_journal(tenant, workflow), |_, _| false)?;
            tables.next_event.remove(&(tenant, workflow));
        }
        Rows::Meta { key, value } => {
            txn.open_table(META)?.insert(*key, *value)?;
        }
    }
    let Some(kind) = &write.event else {
        return Ok(());
    };
    let event = Event {
        seq: 0,
        at_ms: write.at_ms,
        kind: kind.clone(),
        step: write.step.clone(),
        detail: write.detail.clone(),
    };
    tables.append_event(tenant, workflow, event)
}

/// Parks workflow `workflow` of `tenant` until `due`, or unparks it: both
/// of its entries, by workflow and by due, change together.
fn park(
    txn: &WriteTransaction,
    tenant: &str,
    workflow: &str,
    due: Option<u64>,
) -> Result<(), redb::Error> {
    let mut parked = txn.open_table(PARKED)?;
    let mut by_due = txn.open_table(PARKED_BY_DUE)?;
    let before = parked.remove((tenant, workflow))?.map(|due| due.value());
    if let Some(before) = before {
        by_due.remove((before, tenant, workflow))?;
    }
    if let Some(due) = due {
        parked.insert((tenant, workflow), due)?;
        by_due.insert((due, tenant, workflow), ())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use crate::records::StepRecord;
    use crate::store::{Flush, Store};

    /// Writes step `step` of workflow `workflow` of tenant `t`, with `args`.
    async fn put_step(store: &Store, workflow: &str, step: usize, args: Vec<serde_json::Value>) {
        let record = StepRecord::new(&step.to_string(), None, "t.x", args, Map::new());
        let event = "step_succeeded";
        let flush = Flush::BeforeReturning;
        store
            .put_steps("t", workflow, &[&record], event, None, flush)
            .await
            .unwrap();
    }

    /// Writes that nobody waits for share commits: each workflow's events
    /// are numbered on from its last, whatever batch they share, and a
    /// workflow removed and written again starts its log afresh.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_gathered_into_one_commit_keep_each_logs_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let put = |workflow: &'static str, step: usize| put_step(&store, workflow, step, vec![]);
        for step in 0..40 {
            put("kept", step).await;
            put("removed", step).await;
        }
        // Written while the removal's writer leads (it yields once before
        // committing), so they share its commit.
        let written_after = async {
            for step in 0..3 {
                put("removed", step).await;
                put("kept", 40 + step).await;
            }
        };
        let (removed, ()) = tokio::join!(store.remove_workflow("t", "removed"), written_after);
        removed.unwrap();
        store.flush();
        let seqs = |workflow| -> Vec<(u64, String)> {
            let events = store.events("t", workflow).unwrap();
            events
                .into_iter()
                .map(|e| (e.seq, e.step.unwrap()))
                .collect()
        };
        let expected = |steps: std::ops::Range<usize>| -> Vec<(u64, String)> {
            steps
                .enumerate()
                .map(|(seq, step)| (seq as u64, step.to_string()))
                .collect()
        };
        assert_eq!(seqs("kept"), expected(0..43));
        assert_eq!(seqs("removed"), expected(0..3));
        assert_eq!(store.steps("t", "removed").unwrap().len(), 3);
    }

    /// Many writers on many threads at once: every write lands, once, and
    /// every workflow's event log stays gapless and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits_and_lose_nothing() {
        const WORKFLOWS: usize = 20;
        const STEPS: usize = 25;
        let dir = tempfile::tempdir().unwrap();
        // Writers that wait for their commits, as every one does here.
        let store = Store::open_with(&dir.path().join("state.redb"), super::Durability::Strict);
        let store = std::sync::Arc::new(store.unwrap());
        let writers = (0..WORKFLOWS).map(|workflow| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let id = format!("wf-{workflow}");
                for step in 0..STEPS {
                    put_step(&store, &id, step, vec![json!(step)]).await;
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.unwrap();
        }
        for workflow in 0..WORKFLOWS {
            let id = format!("wf-{workflow}");
            let steps = store.steps("t", &id).unwrap();
            assert_eq!(steps.len(), STEPS);
            let events = store.events("t", &id).unwrap();
            let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
            assert_eq!(seqs, (0..STEPS as u64).collect::<Vec<_>>());
            let order: Vec<String> = events.into_iter().filter_map(|e| e.step).collect();
            let expected: Vec<String> = (0..STEPS).map(|step| step.to_string()).collect();
            assert_eq!(order, expected, "a workflow's writes keep their order");
        }
    }
}
