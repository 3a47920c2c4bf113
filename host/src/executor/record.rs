//! What a run writes: each step's record, keeping the place an earlier run
//! gave it, committed with its event; the records an earlier run left,
//! read back one by one; and the steps a failure leaves skipped.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value};
use wfhost_canvas::Signature;
use wfhost_canvas::rules::call_arguments;

use super::Continuation;
use super::error::ExecutorError;
use super::nodes::Nodes;
use super::walk::Run;
use crate::plan::{self, Node, StepId};
use crate::records::StepRecord;
use crate::store::Flush;

/// Nodes recorded as skipped per commit.
const SKIP_BATCH: usize = 1024;

/// Which stored steps a re-driven workflow keeps: all but the errbacks of
/// the failure, which run again if the step fails again. The failed step's
/// record stays, so its attempts continue where they stopped.
fn redrive_keeps(step: &StepRecord, failed_step: Option<&str>) -> bool {
    !StepId::from_stored(step.id.as_str()).is_errback_of(failed_step)
}

impl Run<'_> {
    pub(super) fn take_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The record an earlier run left for `id` that this run reuses. Each
    /// step id is visited once in a run, so each record is reused once.
    pub(super) fn earlier_record(&self, id: &str) -> Result<Option<StepRecord>, ExecutorError> {
        let failed_step = match self.continuation {
            Continuation::Fresh => return Ok(None),
            Continuation::Resume => None,
            Continuation::Redrive { failed_step } => failed_step.as_deref(),
        };
        let record = self
            .store
            .step(&self.identity.tenant, &self.identity.id, id)?;
        Ok(record.filter(|step| redrive_keeps(step, failed_step)))
    }

    /// A new record for `id`, keeping the position of an earlier one.
    pub(super) fn new_record(
        &self,
        id: &str,
        parent: Option<String>,
        task: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        previous: Option<&StepRecord>,
    ) -> StepRecord {
        let mut record = StepRecord::new(id, parent, task, args, kwargs);
        record.seq = previous.map_or_else(|| self.take_seq(), |previous| previous.seq);
        record
    }

    /// A new record for the call `signature` makes as step `id`: its
    /// arguments, with `input` (the previous result, or a callback's
    /// argument) in front unless the signature is immutable.
    pub(super) fn call_record(
        &self,
        id: &str,
        parent: Option<String>,
        signature: &Signature,
        input: Option<Value>,
        previous: Option<&StepRecord>,
    ) -> StepRecord {
        let args = call_arguments(input.as_ref(), &signature.args, signature.immutable);
        let kwargs = signature.kwargs.clone();
        self.new_record(id, parent, &signature.task, args, kwargs, previous)
    }

    /// Commits records with one event; the run moves on only once this returns.
    pub(super) async fn commit(
        &self,
        records: &[&StepRecord],
        event: &str,
        detail: Option<String>,
    ) -> Result<(), ExecutorError> {
        self.commit_flushed(records, event, detail, Flush::BeforeReturning)
            .await
    }

    /// Commits the record of a node that succeeded; one that ends the
    /// workflow reaches the disk with the workflow's end.
    pub(super) async fn commit_success(
        &self,
        record: &StepRecord,
        event: &str,
        ends_workflow: bool,
    ) -> Result<(), ExecutorError> {
        let flush = if ends_workflow {
            Flush::WithWorkflowEnd
        } else {
            Flush::BeforeReturning
        };
        self.commit_flushed(&[record], event, None, flush).await
    }

    /// Commits records with one event, flushed as `flush` says — or at
    /// once, in every durability mode, when one of them is a step of an
    /// effectful plugin (DESIGN §7).
    pub(super) async fn commit_flushed(
        &self,
        records: &[&StepRecord],
        event: &str,
        detail: Option<String>,
        flush: Flush,
    ) -> Result<(), ExecutorError> {
        let flush = if records.iter().any(|record| self.is_effectful(&record.task)) {
            Flush::Always
        } else {
            flush
        };
        self.store
            .put_steps(
                &self.identity.tenant,
                &self.identity.id,
                records,
                event,
                detail,
                flush,
            )
            .await?;
        Ok(())
    }

    /// Whether a step of `task` (`plugin.task`) holds a grant that reaches
    /// outside its sandbox.
    pub(super) fn is_effectful(&self, task: &str) -> bool {
        let plugin = wfhost_canvas::plugin_of(task).unwrap_or_default();
        self.workflow.plugins.access(plugin).is_effectful()
    }

    /// Records the nodes `rest` has left as skipped, a batch of them per
    /// commit, so a long workflow stopped early is not skipped in one
    /// transaction whole.
    pub(super) async fn skip_rest(&self, rest: &mut Nodes<'_>) -> Result<(), ExecutorError> {
        if let Nodes::Planned(nodes) = rest {
            return self.skip(&[nodes.as_slice()]).await;
        }
        loop {
            let batch: Vec<Node> = rest
                .take_batch(SKIP_BATCH)?
                .into_iter()
                .map(Cow::into_owned)
                .collect();
            if batch.is_empty() {
                return Ok(());
            }
            self.skip(&[&batch]).await?;
        }
    }

    /// Records the steps of the node lists `runs` as skipped, in one commit.
    pub(super) async fn skip(&self, runs: &[&[Node]]) -> Result<(), ExecutorError> {
        let skipped: Vec<StepRecord> = runs
            .iter()
            .flat_map(|nodes| plan::steps(nodes))
            .map(|step| {
                let previous = self.earlier_record(&step.id)?;
                let signature = &step.signature;
                Ok(self.call_record(&step.id, None, signature, None, previous.as_ref()))
            })
            .collect::<Result<_, ExecutorError>>()?;
        if skipped.is_empty() {
            return Ok(());
        }
        let refs: Vec<&StepRecord> = skipped.iter().collect();
        self.commit(
            &refs,
            "steps_skipped",
            Some(format!("{} steps", skipped.len())),
        )
        .await
    }
}
