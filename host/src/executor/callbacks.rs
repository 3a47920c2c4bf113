//! Callbacks: a step's `link` callbacks after it succeeds, its
//! `link_error` callbacks and the workflow's `on_error` after it fails, a
//! chord body's `link_error` when its header fails, each a durable step of
//! its own that runs once.

use serde_json::{Map, Value};
use wfhost_canvas::Signature;

use super::error::ExecutorError;
use super::walk::{AttemptsEnd, Run};
use crate::plan::{self, Node, StepId};
use crate::records::{Failure, FailureKind, StepRecord, StepStatus, WorkflowError};

impl Run<'_> {
    /// Runs a step's `link` or `link_error` callbacks with one argument.
    pub(super) async fn callbacks(
        &self,
        step_id: &StepId,
        kind: fn(&StepId, usize) -> StepId,
        callbacks: &[Signature],
        argument: &Value,
    ) -> Result<(), ExecutorError> {
        for (index, callback) in callbacks.iter().enumerate() {
            let id = kind(step_id, index);
            self.callback(id, step_id, callback, argument).await?;
        }
        Ok(())
    }

    /// A chord's header failed with `error`, so its body never runs: the
    /// body's `link_error` callbacks run instead, as Celery's backend calls
    /// them (`chord_error_from_stack`), with an error record of the body
    /// that names the failed member. A body that is a chain or a group
    /// carries its errbacks on each of its steps (`Canvas::link_error`);
    /// those of its first step are the body's. A cancelled or expired member
    /// did not fail, and calls none.
    ///
    /// When the failure came up through a chord nested in the header, that
    /// chord's body ran its errbacks already, and an errback of this body
    /// that is the same signature does not run again. Celery's
    /// `chord.link_error` writes the errback into nested chords' bodies
    /// too, and Celery's worker calls it once, from the nested chord (the
    /// outer chord never hears of the failure); here the outer chord ends,
    /// and the errback still runs once.
    pub(super) async fn header_failed(
        &self,
        chord: &StepId,
        header: &[Vec<Node>],
        body: &[Node],
        error: &WorkflowError,
    ) -> Result<(), ExecutorError> {
        if error.kind.is_revoked() {
            return Ok(());
        }
        let Some(first) = plan::steps(body).into_iter().next() else {
            return Ok(());
        };
        let errbacks = &first.signature.options.link_error;
        if errbacks.is_empty() {
            return Ok(());
        }
        let mut ran = Vec::new();
        errbacks_ran_on_the_way(header, &error.step, &mut ran);
        let body_record = StepRecord::new(
            &first.id.to_string(),
            Some(chord.to_string()),
            &first.signature.task,
            Vec::new(),
            Map::new(),
        );
        let failure = Failure::new(
            error.kind,
            format!("chord member {} failed: {}", error.step, error.message),
        );
        let record = body_record.error_record(&self.identity.id, &failure);
        for (index, errback) in errbacks.iter().enumerate() {
            if !ran.contains(&errback) {
                let id = StepId::link_error(&first.id, index);
                self.callback(id, &first.id, errback, &record).await?;
            }
        }
        Ok(())
    }

    /// Runs one callback as a durable step of its own, once: a callback an
    /// earlier run finished is not run again. Its failure is recorded and
    /// triggers nothing further, so a failing errback cannot loop.
    pub(super) async fn callback(
        &self,
        id: StepId,
        parent: &str,
        callback: &Signature,
        argument: &Value,
    ) -> Result<(), ExecutorError> {
        let previous = self.earlier_record(&id)?;
        if let Some(done) = &previous
            && matches!(done.status, StepStatus::Succeeded | StepStatus::Failed)
        {
            self.observer.step_finished(done);
            return Ok(());
        }
        let input = Some(argument.clone());
        let parent = Some(parent.to_string());
        let mut record = self.call_record(&id, parent, callback, input, previous.as_ref());
        // Held until the callback's outcome is committed.
        let (end, _working) = self
            .run_step(callback, &mut record, previous.as_ref())
            .await?;
        let event = match end {
            AttemptsEnd::Value(value) => {
                record.status = StepStatus::Succeeded;
                record.result = Some(value);
                "callback_succeeded"
            }
            AttemptsEnd::Replace(_) => {
                record.status = StepStatus::Failed;
                record.error = Some(Failure::new(
                    FailureKind::InvalidOutput,
                    "a callback cannot replace itself",
                ));
                "callback_failed"
            }
            AttemptsEnd::Failed(failure) => {
                record.status = StepStatus::Failed;
                record.error = Some(failure);
                "callback_failed"
            }
        };
        self.commit(&[&record], event, None).await?;
        self.observer.step_finished(&record);
        Ok(())
    }
}

/// The errbacks that chords nested in `nodes` ran for a failure of step
/// `failed` in their headers: each such chord's body's (see
/// [`Run::header_failed`]), inner chords' included.
fn errbacks_ran_on_the_way<'n>(nodes: &'n [Vec<Node>], failed: &str, ran: &mut Vec<&'n Signature>) {
    for node in nodes.iter().flatten() {
        match node {
            Node::Step(_) => {}
            Node::Group { id, members } if id.holds(failed) => {
                errbacks_ran_on_the_way(members, failed, ran);
            }
            Node::Chord { body, .. } if node.id().body().holds(failed) => {
                errbacks_ran_on_the_way(std::slice::from_ref(body), failed, ran);
            }
            Node::Chord { id, header, body } if id.holds(failed) => {
                if let Some(first) = plan::steps(body).into_iter().next() {
                    ran.extend(&first.signature.options.link_error);
                }
                errbacks_ran_on_the_way(header, failed, ran);
            }
            Node::Group { .. } | Node::Chord { .. } => {}
        }
    }
}
