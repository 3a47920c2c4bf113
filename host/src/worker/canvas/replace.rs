//! Replacement (Celery's `Task.replace`): a canvas read as `wfhost run`
//! reads one, made Celery's, made to give one result, and sent in the
//! replaced task's place.

use serde_json::Value;
use wfhost_canvas::celery::CelerySignature;

use super::FollowUps;
use super::effects::FollowUp;
use super::send::Apply;
use crate::worker::message::TaskMessage;

/// A canvas given as JSON (a task's replacement, a workflow to submit) as
/// Celery's signature: read as `wfhost run` reads a canvas, wfhost's
/// native form or Celery's; Celery's JSON with its transport options (what
/// a Celery client sends, `subtask_type` and all) is taken as Celery's
/// worker takes it.
pub fn celery_signature(given: &Value) -> Result<CelerySignature, String> {
    if given.get("subtask_type").is_some() {
        return CelerySignature::from_json(given.clone())
            .ok_or_else(|| format!("not a Celery signature: {given}"));
    }
    let canvas = crate::spec::parse_canvas(given).map_err(|issue| issue.to_string())?;
    Ok(CelerySignature::from(&canvas))
}

impl FollowUps<'_> {
    /// A canvas whose result one task holds ([`CelerySignature::one_result`]),
    /// chunks' parts routed as their task is.
    pub(crate) fn one_result(&self, sig: CelerySignature) -> CelerySignature {
        sig.one_result(&|task, queue| self.routing.queue_for(task, queue))
    }

    /// What a task replaced by `replacement` sends (Celery's
    /// `Task.replace`): the replacement, whose final task takes over the
    /// replaced task's id, callbacks, errbacks and place in its group or
    /// chord, followed by the rest of the replaced task's chain. A group
    /// becomes a chord with `celery.accumulate`, so its results arrive as
    /// one list. No result is stored for the replaced task.
    pub fn replaced(&self, message: &TaskMessage, replacement: &Value) -> Result<FollowUp, String> {
        let mut sig = self.one_result(celery_signature(replacement)?);
        let last = sig
            .final_task_mut()
            .ok_or("the replacement has no final task")?;
        last.options.task_id = Some(message.id.clone());
        last.options.replaced_task_nesting = message.replaced_task_nesting + 1;
        if !message.callbacks.is_empty() {
            last.options.link = message.callbacks.clone();
        }
        if !message.errbacks.is_empty() {
            last.options.link_error = message.errbacks.clone();
        }
        let mut out = FollowUp::default();
        let apply = Apply {
            parent_id: Some(message.id.clone()),
            root_id: message.root_id.clone(),
            chain: (!message.chain.is_empty()).then(|| message.chain.clone()),
            chord: message.chord.clone(),
            group: message
                .group
                .clone()
                .map(|group| (group, message.group_index)),
        };
        self.apply(&mut out, &sig, None, apply)
            .ok_or_else(|| "the replacement names no task".to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wfhost_canvas::celery::Shape;

    use super::super::testing::{follow_ups, pushed, routing};
    use super::*;
    use crate::worker::canvas::Op;
    use crate::worker::meta::group_key;

    #[test]
    fn a_native_canvas_becomes_celerys_and_a_chord_sets_its_size() {
        let native = json!({"chain": [
            {"task": "math.add", "args": [1, 2]},
            {"chord": {"header": [{"task": "math.add", "args": [1]}, {"task": "math.add", "args": [2]}],
                       "body": {"task": "math.xsum"}}},
        ]});
        let mut sig = celery_signature(&native).unwrap();
        assert!(matches!(sig.shape, Shape::Chain(_)));
        assert_eq!(sig.final_task_mut().unwrap().name(), "math.xsum");
        assert!(celery_signature(&json!({"nope": []})).is_err());
        assert!(celery_signature(&json!(3)).is_err());

        let Shape::Chain(steps) = &sig.shape else {
            unreachable!()
        };
        let chord = &steps[1];
        let routing = routing();
        let follow_ups = follow_ups(&routing);
        let out = follow_ups.send(chord).unwrap();
        let sent = pushed(&out);
        assert_eq!(sent.len(), 2);
        let group = sent[0].group.clone().unwrap();
        assert!(out.ops.contains(&Op::Set {
            key: group_key(&group, ".s"),
            value: "2".into()
        }));
        assert_eq!(
            (sent[0].group_index, sent[1].group_index),
            (Some(0), Some(1))
        );
        let body = sent[0].chord.as_ref().unwrap();
        assert_eq!(body.name(), "math.xsum");
        assert_eq!(body.options.group_id.as_ref(), Some(&group));
        assert_eq!(sent[0].routing_key, "wfhost");
    }
}
