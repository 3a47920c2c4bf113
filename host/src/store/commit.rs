//! Group commit, and when commits reach the disk ([`Durability`], [`Flush`]):
//! writes that arrive together share one transaction and one fsync.
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
//!
//! A writer waits for the commit that holds its write, so "committed before
//! the next step of the same chain starts" still holds. A write marked
//! [`Flush::WithWorkflowEnd`] (a workflow's last step) is committed without
//! a flush of its own: the workflow's final write follows at once and
//! flushes both. With
//! [`Durability::Batched`], step commits within a window are not flushed
//! one by one: the first after the window has passed flushes, and a thread
//! flushes what a quiet window left behind.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;
use super::error::{Db, catching, panicked, redb_error};
use super::tables::{ELEMENTS, EVENTS, SPECS, STEPS, WORKFLOWS};
use crate::lock::lock;
use crate::records::{Event, now_ms};

/// How the commits of finished steps reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is flushed before the step that made it moves on: a
    /// crash loses nothing that was committed. The default.
    #[default]
    Immediate,
    /// Step commits are flushed together, at least once per `window`; a
    /// crash may lose the steps finished in the last `window`, and
    /// `resume` runs them again. A workflow's start and end are always
    /// flushed. This is sound only for steps whose effects stay inside the
    /// sandbox, so that running one twice changes nothing outside it —
    /// which is every step while the host grants no capability.
    Batched {
        /// The longest a finished step waits for its flush.
        window: std::time::Duration,
    },
}

/// When a write of step records must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Flush {
    /// Before the writer goes on, as the store's [`Durability`] says.
    #[default]
    BeforeReturning,
    /// With the workflow's final write, which the writer makes next: the
    /// last step of a workflow needs no flush of its own, since nothing
    /// runs between its commit and the workflow's end. A crash in between
    /// loses the step, and `resume` runs it again, as if the crash had come
    /// before its commit.
    WithWorkflowEnd,
}

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
    /// Whether the commit holding this write also records redb's
    /// allocator state, so that the store can be left without redb's close
    /// ([`super::Store::exit`]).
    pub record_allocator_state: bool,
}

/// The rows a write puts.
pub(super) enum Rows {
    /// The workflow's own row, and the workflow itself when it starts.
    Workflow {
        row: Vec<u8>,
        started: Option<Started>,
    },
    /// Elements of a workflow about to start, from index `first` on.
    Elements { first: u64, elements: Vec<Vec<u8>> },
    /// Step records by step id.
    Steps(Vec<(String, Vec<u8>)>),
}

/// What a starting workflow stores besides its row: its head, and its
/// elements from `first_element` on.
pub(super) struct Started {
    pub head: Vec<u8>,
    pub first_element: u64,
    pub elements: Vec<Vec<u8>>,
}

struct Request {
    write: Write,
    done: oneshot::Sender<Result<(), StoreError>>,
}

struct Queue {
    /// Whether a writer is leading: committing, or about to.
    leading: bool,
    waiting: Vec<Request>,
    /// When a commit last reached the disk.
    flushed_at: Instant,
    /// Commits made so far without a flush (a count), and how many of
    /// them a flush has covered since: the difference is what a crash
    /// would lose.
    unflushed: u64,
    flushed: u64,
    /// Whether the last commit recorded redb's allocator state.
    last_recorded_state: bool,
}

/// The queue of writes to a database and the commits that drain it.
pub(super) struct Committer {
    db: Arc<Db>,
    path: PathBuf,
    durability: Durability,
    queue: Mutex<Queue>,
}

impl Committer {
    /// A committer for `db`; with [`Durability::Batched`], a thread also
    /// flushes what is left unflushed once its window has passed.
    pub fn start(
        db: Arc<Db>,
        path: PathBuf,
        durability: Durability,
    ) -> Result<Arc<Self>, StoreError> {
        let committer = Arc::new(Committer {
            db,
            path: path.clone(),
            durability,
            queue: Mutex::new(Queue {
                leading: false,
                waiting: Vec::new(),
                flushed_at: Instant::now(),
                unflushed: 0,
                flushed: 0,
                last_recorded_state: false,
            }),
        });
        if let Durability::Batched { window } = durability {
            let weak = Arc::downgrade(&committer);
            thread::Builder::new()
                .name("wfhost-flush".into())
                .spawn(move || {
                    loop {
                        thread::sleep(window);
                        let Some(committer) = weak.upgrade() else {
                            return;
                        };
                        if lock(&committer.queue).flushed_at.elapsed() >= window {
                            // A failed flush is tried again next time, and
                            // the workflow's own writes are always flushed.
                            let _ = committer.flush();
                        }
                    }
                })
                .map_err(|source| StoreError::FlushThread { path, source })?;
        }
        Ok(committer)
    }

    /// Makes every commit so far durable, if any is not yet.
    fn flush(&self) -> Result<(), redb::Error> {
        let covering = {
            let queue = lock(&self.queue);
            if queue.unflushed == queue.flushed {
                return Ok(());
            }
            queue.unflushed
        };
        // An empty commit with the default durability flushes the ones
        // before it.
        self.db.begin_write()?.commit()?;
        let mut queue = lock(&self.queue);
        queue.flushed = queue.flushed.max(covering);
        queue.flushed_at = Instant::now();
        queue.last_recorded_state = false;
        Ok(())
    }

    /// Whether the last commit recorded redb's allocator state, so that
    /// the next open can load it rather than rebuild it from every table.
    pub fn last_commit_recorded_state(&self) -> bool {
        lock(&self.queue).last_recorded_state
    }

    /// Whether the next commit, holding `batch`, must reach the disk before
    /// its writers go on.
    fn must_flush(&self, batch: &[Request]) -> bool {
        let waits_for_flush = |request: &Request| request.write.flush == Flush::BeforeReturning;
        match self.durability {
            Durability::Immediate => batch.iter().any(waits_for_flush),
            Durability::Batched { window } => {
                // A workflow's start and end are what its caller acts on.
                batch
                    .iter()
                    .any(|request| matches!(request.write.rows, Rows::Workflow { .. }))
                    || lock(&self.queue).flushed_at.elapsed() >= window
            }
        }
    }

    /// Queues `write` and returns once the transaction holding it is durable.
    pub async fn write(self: &Arc<Self>, write: Write) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let lead = {
            let mut queue = lock(&self.queue);
            queue.waiting.push(Request { write, done });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            tokio::task::yield_now().await;
            if lock(&self.queue).waiting.len() > 1 {
                // Others are writing too: commit on a blocking thread, so
                // that this task's other futures (group members) can start
                // their next attempts during the flush.
                let committer = Arc::clone(self);
                if tokio::task::spawn_blocking(move || committer.drain())
                    .await
                    .is_err()
                {
                    self.drain();
                }
            } else {
                self.drain();
            }
        }
        committed.await.unwrap_or_else(|_| {
            Err(StoreError::Abandoned {
                path: self.path.clone(),
            })
        })
    }

    /// Commits batches until no write is waiting, then stops leading.
    fn drain(&self) {
        loop {
            let batch: Vec<Request> = {
                let mut queue = lock(&self.queue);
                if queue.waiting.is_empty() {
                    queue.leading = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let durable = self.must_flush(&batch);
            // Recording the state makes redb commit in two phases, a flush
            // more; only a durable commit's record is worth one.
            let record_state = durable
                && batch
                    .iter()
                    .any(|request| request.write.record_allocator_state);
            // A panic inside redb (a damaged file) fails the commit, and
            // every writer of it hears so.
            let result =
                catching(|| commit(&self.db, &batch, durable, record_state).map_err(Arc::new));
            if matches!(result, Ok(Ok(()))) {
                let mut queue = lock(&self.queue);
                queue.last_recorded_state = record_state;
                if durable {
                    queue.flushed = queue.unflushed;
                    queue.flushed_at = Instant::now();
                } else {
                    queue.unflushed += 1;
                }
            }
            for request in batch {
                let answer = match &result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(redb_error(&self.path, Arc::clone(err))),
                    Err(panic) => Err(panicked(&self.path, panic.as_ref())),
                };
                // A writer that stopped waiting needs no answer.
                let _ = request.done.send(answer);
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Nothing committed may be left unflushed when the store closes;
        // a damaged file that makes redb panic here is past saving.
        let _ = catching(|| self.flush());
    }
}

/// Applies every write of `batch` in one transaction and commits it,
/// flushed to the disk or not, recording redb's allocator state or not.
fn commit(
    db: &Database,
    batch: &[Request],
    durable: bool,
    record_state: bool,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    if !durable {
        txn.set_durability(redb::Durability::None)?;
    }
    txn.set_quick_repair(record_state);
    for request in batch {
        apply(&txn, &request.write)?;
    }
    txn.commit()?;
    Ok(())
}

fn apply(txn: &WriteTransaction, write: &Write) -> Result<(), redb::Error> {
    let (tenant, workflow) = (write.tenant.as_str(), write.workflow.as_str());
    match &write.rows {
        Rows::Workflow { row, started } => {
            let mut table = txn.open_table(WORKFLOWS.table)?;
            table.insert((tenant, workflow), row.as_slice())?;
            if let Some(started) = started {
                let mut specs = txn.open_table(SPECS.table)?;
                specs.insert((tenant, workflow), started.head.as_slice())?;
                put_elements(txn, write, started.first_element, &started.elements)?;
            }
        }
        Rows::Elements { first, elements } => put_elements(txn, write, *first, elements)?,
        Rows::Steps(records) => {
            let mut table = txn.open_table(STEPS.table)?;
            for (step, bytes) in records {
                table.insert((tenant, workflow, step.as_str()), bytes.as_slice())?;
            }
        }
    }
    let Some(kind) = &write.event else {
        return Ok(());
    };
    let mut events = txn.open_table(EVENTS.table)?;
    let seq = events
        .range((tenant, workflow, 0u64)..=(tenant, workflow, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(key, _)| key.value().2 + 1);
    let event = Event {
        seq,
        at_ms: now_ms(),
        kind: kind.clone(),
        step: write.step.clone(),
        detail: write.detail.clone(),
    };
    events.insert((tenant, workflow, seq), EVENTS.encode(&event).as_slice())?;
    Ok(())
}

fn put_elements(
    txn: &WriteTransaction,
    write: &Write,
    first: u64,
    elements: &[Vec<u8>],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(ELEMENTS.table)?;
    for (index, json) in (first..).zip(elements) {
        table.insert(
            (write.tenant.as_str(), write.workflow.as_str(), index),
            json.as_slice(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use crate::records::StepRecord;
    use crate::store::{Flush, Store};

    /// Many writers on many threads at once: every write lands, once, and
    /// every workflow's event log stays gapless and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits_and_lose_nothing() {
        const WORKFLOWS: usize = 20;
        const STEPS: usize = 25;
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
        let writers = (0..WORKFLOWS).map(|workflow| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let id = format!("wf-{workflow}");
                for step in 0..STEPS {
                    let record = StepRecord::new(
                        &step.to_string(),
                        None,
                        "t.x",
                        vec![json!(step)],
                        Map::new(),
                    );
                    store
                        .put_steps(
                            "t",
                            &id,
                            &[&record],
                            "step_succeeded",
                            None,
                            Flush::BeforeReturning,
                        )
                        .await
                        .unwrap();
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
