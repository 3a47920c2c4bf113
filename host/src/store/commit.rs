//! Group commit: writes that arrive together share one transaction and one
//! fsync.
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
//! the next step of the same chain starts" still holds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::tables::{EVENTS, STEPS, WORKFLOWS};
use super::{Event, StoreError, io_error, now_ms};

/// Writes gathered into one transaction at most: bounds how long the
/// writers of a batch wait for each other.
const MAX_BATCH: usize = 1024;

/// What one write changes: rows of one workflow, already serialized, and
/// the event that says why.
pub(super) struct Write {
    pub tenant: String,
    pub workflow: String,
    pub rows: Rows,
    pub event: String,
    pub step: Option<String>,
    pub detail: Option<String>,
}

/// The rows a write puts.
pub(super) enum Rows {
    /// The workflow's own row.
    Workflow(Vec<u8>),
    /// Step records by step id.
    Steps(Vec<(String, Vec<u8>)>),
}

struct Request {
    write: Write,
    done: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Default)]
struct Queue {
    /// Whether a writer is leading: committing, or about to.
    leading: bool,
    waiting: Vec<Request>,
}

/// The queue of writes to a database and the commits that drain it.
pub(super) struct Committer {
    db: Arc<Database>,
    path: PathBuf,
    queue: Mutex<Queue>,
}

impl Committer {
    pub fn new(db: Arc<Database>, path: PathBuf) -> Self {
        Committer {
            db,
            path,
            queue: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is consistent between statements, so a writer that
        // panicked holding the lock left nothing half-done.
        self.queue.lock().unwrap_or_else(|err| err.into_inner())
    }

    /// Queues `write` and returns once the transaction holding it is durable.
    pub async fn write(self: &Arc<Self>, write: Write) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let lead = {
            let mut queue = self.lock();
            queue.waiting.push(Request { write, done });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            tokio::task::yield_now().await;
            if self.lock().waiting.len() > 1 {
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
            Err(StoreError::Io {
                path: self.path.clone(),
                reason: "a commit was abandoned".into(),
            })
        })
    }

    /// Commits batches until no write is waiting, then stops leading.
    fn drain(&self) {
        loop {
            let batch: Vec<Request> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.leading = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let result = commit(&self.db, &batch);
            for request in batch {
                let answer = result.as_ref().map_err(|err| io_error(&self.path, err));
                // A writer that stopped waiting needs no answer.
                let _ = request.done.send(answer.copied());
            }
        }
    }
}

/// Applies every write of `batch` in one transaction and commits it.
fn commit(db: &Database, batch: &[Request]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    for request in batch {
        apply(&txn, &request.write)?;
    }
    txn.commit()?;
    Ok(())
}

fn apply(txn: &WriteTransaction, write: &Write) -> Result<(), redb::Error> {
    let (tenant, workflow) = (write.tenant.as_str(), write.workflow.as_str());
    match &write.rows {
        Rows::Workflow(bytes) => {
            let mut table = txn.open_table(WORKFLOWS)?;
            table.insert((tenant, workflow), bytes.as_slice())?;
        }
        Rows::Steps(records) => {
            let mut table = txn.open_table(STEPS)?;
            for (step, bytes) in records {
                table.insert((tenant, workflow, step.as_str()), bytes.as_slice())?;
            }
        }
    }
    let mut events = txn.open_table(EVENTS)?;
    let seq = events
        .range((tenant, workflow, 0u64)..=(tenant, workflow, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(key, _)| key.value().2 + 1);
    let event = Event {
        seq,
        at_ms: now_ms(),
        kind: write.event.clone(),
        step: write.step.clone(),
        detail: write.detail.clone(),
    };
    let bytes = serde_json::to_vec(&event).unwrap_or_default();
    events.insert((tenant, workflow, seq), bytes.as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use crate::report::StepRecord;
    use crate::store::Store;

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
                        .put_steps("t", &id, &[&record], "step_succeeded", None)
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
