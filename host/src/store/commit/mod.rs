//! Group commit, and when commits are made ([`Durability`], [`Flush`]):
//! writes that arrive together share one transaction and one flush.
//!
//! Every commit is durable: the database is shared with other processes
//! (redb's multi-writer mode), where a commit exists once it is on the
//! disk. What a write may do instead is wait in memory for a later commit.
//! By default ([`Durability::Grouped`]) a pure step's record does: the step
//! after it starts at once, while a thread of the committer's own flushes
//! what has gathered, one transaction for all of it, at most once a
//! millisecond ([`policy::GROUP_WINDOW`]). Writes are committed in the order they
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

mod apply;
mod policy;
mod request;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::StoreError;
use super::error::{catching, damaged_by_panic, panic_text, redb_error};
use super::handle::Db;
use crate::histogram::Histogram;
use crate::lock::lock;
use apply::commit;
pub use policy::Durability;
pub(crate) use policy::Flush;
use policy::LAZY_WINDOW;
use policy::{MAX_AHEAD, MAX_BATCH};
pub(super) use request::{Rows, Started, Write};

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
