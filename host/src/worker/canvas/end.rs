//! What a task's end sends on, as Celery's worker does: a success its
//! callbacks and the next step of its chain; a failure the same failure
//! for every later step, its errbacks, and its chord counted; a complete
//! chord its body, or the body failed with `ChordError`.

use std::collections::VecDeque;

use serde_json::{Value, json};
use wfhost_canvas::celery::{CelerySignature, Shape};
use wfhost_canvas::{MAP, STARMAP};

use super::FollowUps;
use super::effects::{ChordPart, FollowUp, Op};
use super::send::{Apply, parsed};
use crate::records::now_ms;
use crate::worker::message::TaskMessage;
use crate::worker::meta::{Exception, Meta, State, task_key};
use crate::worker::outgoing::new_uuid;

/// The key, in the failure that a chord's body counts in an outer chord,
/// of the errbacks that ran for it on the way (only the chord's counting
/// holds it, never a stored result; Celery reads only the `exc_` keys).
const ERRBACKS_RAN: &str = "wfhost_errbacks_ran";

/// How many signatures a failure marks failed down a chain at most.
const MAX_MARKED: usize = 100_000;

/// The stored failure of a task that never ran (a later step of a failed
/// chain, the body of a failed chord), as an operation of the commit.
fn unrun_failure(
    id: &str,
    group: Option<&str>,
    state: State,
    result: Value,
    traceback: String,
) -> Op {
    let meta = Meta {
        state,
        result,
        traceback: Some(traceback),
        children: &[],
        task_id: id,
        group_id: group,
        parent_id: None,
        done_ms: Some(now_ms()),
        wfhost: None,
    };
    Op::Meta {
        key: task_key(id),
        text: meta.to_text(),
    }
}

/// The errbacks that run when a chord's header fails, for its body that
/// never runs: those of the body's first task, where `link_error` reaches
/// as Celery's does (every step of a chain, every member of a group, a
/// chord's body) — `wfhost run`'s rule (`executor/callbacks.rs`), which
/// reads them from its plan, where they were put when it was read.
fn body_errbacks(body: &CelerySignature) -> Vec<CelerySignature> {
    let mut sig = body.clone();
    for _ in 0..MAX_MARKED {
        let first = match &sig.shape {
            Shape::Chain(_) => sig.chain_steps().into_iter().next().map(|mut step| {
                step.link_error(&sig.options.link_error);
                step
            }),
            Shape::Group(members) => CelerySignature::flat_members(members, &sig.options)
                .into_iter()
                .next(),
            // A chord's errbacks are its body's; its first task is its
            // header's.
            Shape::Chord(chord) => Some(CelerySignature {
                options: chord.header_options.clone(),
                ..CelerySignature::whole(Shape::Group(chord.header.clone()))
            }),
            // A map's first task is its first call, which `wfhost run`
            // gives none of the map's errbacks (they are the list's).
            Shape::Task { task, kwargs, .. }
                if [MAP, STARMAP].contains(&task.as_str())
                    && kwargs
                        .get("it")
                        .and_then(Value::as_array)
                        .is_some_and(|items| !items.is_empty()) =>
            {
                None
            }
            Shape::Task { .. } | Shape::Chunks(_) => return sig.options.link_error,
        };
        match first {
            Some(first) => sig = first,
            None => break,
        }
    }
    Vec::new()
}

impl FollowUps<'_> {
    /// What a task that returned `value` sends on: its callbacks (several
    /// as one group), then the next step of its chain, each with the value
    /// in front of its arguments.
    pub fn succeeded(&self, message: &TaskMessage, value: &Value) -> FollowUp {
        let mut out = FollowUp::default();
        let apply = Apply {
            parent_id: Some(message.id.clone()),
            root_id: message.root_id.clone(),
            ..Apply::default()
        };
        match message.callbacks.as_slice() {
            [] => {}
            [callback] => {
                if let Some(id) = self.apply(&mut out, callback, Some(value), apply.clone()) {
                    out.children.push(id);
                }
            }
            callbacks => {
                let group = CelerySignature::whole(Shape::Group(callbacks.to_vec()));
                self.apply(&mut out, &group, Some(value), apply.clone());
            }
        }
        if let Some((next, rest)) = message.chain.split_next()
            && let Ok(next) = serde_json::from_str::<CelerySignature>(next)
        {
            let next_apply = Apply {
                chain: Some(rest),
                ..apply
            };
            if let Some(id) = self.apply(&mut out, &next, Some(value), next_apply) {
                out.children.push(id);
            }
        }
        if let (Some(group), Some(body)) = (&message.group, &message.chord) {
            out.parts.push(ChordPart {
                group: group.clone(),
                task_id: message.id.clone(),
                index: message.group_index,
                state: State::Success,
                result: value.clone(),
                body: body.clone(),
                parent_id: message.id.clone(),
                root_id: message.root_id.clone(),
            });
        }
        out
    }

    /// What a task that failed (or was revoked) for good marks and sends,
    /// as Celery's `mark_as_failure` does: the same failure stored for
    /// every later step of its chain (so waiting on the chain's end
    /// raises), chord members counted, and its errbacks sent as one group
    /// with the failed task's id.
    pub fn failed(
        &self,
        message: &TaskMessage,
        state: State,
        exception: &Exception,
        traceback: &str,
    ) -> FollowUp {
        let mut out = FollowUp::default();
        let stored = exception.to_json();
        if let (Some(group), Some(body)) = (&message.group, &message.chord) {
            out.parts.push(ChordPart {
                group: group.clone(),
                task_id: message.id.clone(),
                index: message.group_index,
                state,
                result: stored.clone(),
                body: body.clone(),
                parent_id: message.id.clone(),
                root_id: message.root_id.clone(),
            });
        }
        // A revoked task's chain is failed too, as `wfhost run` ends the
        // workflow (Celery's worker leaves the later steps pending), but
        // its errbacks do not run: it did not fail.
        if state.is_error() {
            let mut later = parsed(&message.chain);
            later.reverse();
            self.fail_chain(
                &mut out,
                later.into(),
                state,
                exception,
                traceback,
                (&message.id, message.root_id.as_deref()),
            );
        }
        if state == State::Failure {
            self.errbacks(
                &mut out,
                &message.errbacks,
                &message.id,
                message.root_id.as_deref(),
            );
        }
        out
    }

    /// Celery's `_fail_chain`: every later step with an id gets the
    /// failure, and so do the steps of a chain and a chord's body among
    /// them; a step that is a chord member counts as a failed member (sent
    /// by the task that failed, `failed_id`).
    fn fail_chain(
        &self,
        out: &mut FollowUp,
        mut pending: VecDeque<CelerySignature>,
        state: State,
        exception: &Exception,
        traceback: &str,
        (failed_id, root_id): (&str, Option<&str>),
    ) {
        let stored = exception.to_json();
        let mut marked = 0;
        while let Some(element) = pending.pop_front() {
            marked += 1;
            if marked > MAX_MARKED {
                break;
            }
            let opts = &element.options;
            if let Some(id) = &opts.task_id {
                out.ops.push(unrun_failure(
                    id,
                    opts.group_id.as_deref(),
                    state,
                    stored.clone(),
                    traceback.to_string(),
                ));
            }
            // A chord member (a chain's last step carries the membership)
            // counts as failed, with or without an id of its own.
            if let (Some(group), Some(body)) = (&opts.group_id, &opts.chord) {
                out.parts.push(ChordPart {
                    group: group.clone(),
                    task_id: opts.task_id.clone().unwrap_or_else(new_uuid),
                    index: opts.group_index,
                    state,
                    result: stored.clone(),
                    body: (**body).clone(),
                    parent_id: failed_id.to_string(),
                    root_id: root_id.map(str::to_string),
                });
            }
            match element.shape {
                Shape::Chord(chord) => pending.push_back(chord.body),
                Shape::Chain(steps) => pending.extend(steps),
                _ => {}
            }
        }
    }

    /// Errbacks, sent as `group(errbacks).apply_async((task_id,))`.
    fn errbacks(
        &self,
        out: &mut FollowUp,
        errbacks: &[CelerySignature],
        task_id: &str,
        root_id: Option<&str>,
    ) {
        if errbacks.is_empty() {
            return;
        }
        let group = CelerySignature::whole(Shape::Group(errbacks.to_vec()));
        let apply = Apply {
            parent_id: Some(task_id.to_string()),
            root_id: Some(root_id.unwrap_or(task_id).to_string()),
            ..Apply::default()
        };
        self.apply(out, &group, Some(&json!(task_id)), apply);
    }

    /// What the claimer of a complete chord sends: the body with the
    /// members' results in order, or, when a member failed, the body
    /// failed with Celery's `ChordError` and its errbacks sent (a body
    /// that is a member of an outer chord counts there as failed).
    pub fn chord_complete(&self, part: &ChordPart, results: &[(String, State, Value)]) -> FollowUp {
        let mut out = FollowUp::default();
        let body = &part.body;
        let failed = results.iter().find(|(_, state, _)| state.is_error());
        if let Some((member, _, stored)) = failed {
            let cause = Exception::from_json(stored)
                .unwrap_or_else(|| Exception::new("builtins", "Exception", stored.to_string()));
            let error = Exception::new(
                "celery.exceptions",
                "ChordError",
                format!("Dependency {member} raised {}", cause.python_repr()),
            );
            let traceback = format!("celery.exceptions.ChordError: {}", error.message);
            // The body never runs: every task of it that has an id (its
            // final one holds the canvas's result) gets the failure.
            let mut pending: VecDeque<CelerySignature> = [body.clone()].into();
            pending.extend(body.options.chain.iter().rev().cloned());
            let id = body.options.task_id.clone().unwrap_or_else(new_uuid);
            self.fail_chain(
                &mut out,
                pending,
                State::Failure,
                &error,
                &traceback,
                (&id, part.root_id.as_deref()),
            );
            // Errbacks that a chord nested in the header ran for this
            // failure on its way up are not run again (`wfhost run`'s
            // rule); the ones run here go up with the failure, in the
            // result an outer chord counts.
            let mut ran: Vec<CelerySignature> = match stored.get(ERRBACKS_RAN) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|item| CelerySignature::from_json(item.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let errbacks: Vec<CelerySignature> = body_errbacks(body)
                .into_iter()
                .filter(|errback| !ran.contains(errback))
                .collect();
            self.errbacks(&mut out, &errbacks, &id, part.root_id.as_deref());
            ran.extend(errbacks);
            let ran = Value::Array(ran.iter().map(CelerySignature::to_json).collect());
            for counted in &mut out.parts {
                if let Value::Object(result) = &mut counted.result {
                    result.insert(ERRBACKS_RAN.into(), ran.clone());
                }
            }
            return out;
        }
        let values: Vec<Value> = results.iter().map(|(_, _, value)| value.clone()).collect();
        let apply = Apply {
            parent_id: Some(part.parent_id.clone()),
            root_id: part.root_id.clone(),
            ..Apply::default()
        };
        self.apply(&mut out, body, Some(&Value::Array(values)), apply);
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::send::raw_chain;
    use super::super::testing::{celery, follow_ups, pushed, routing};
    use super::*;
    use crate::worker::outgoing::Outgoing;

    #[test]
    fn the_next_step_of_a_captured_chain_gets_the_result() {
        let message = TaskMessage::parse(include_str!("../testdata/chain_head.json")).unwrap();
        let routing = routing();
        let follow_ups = follow_ups(&routing);
        let out = follow_ups.succeeded(&message, &json!(4));
        let sent = pushed(&out);
        assert_eq!(sent.len(), 1);
        let next = &sent[0];
        assert_eq!(
            next.id, "12030c79-ecbc-4039-8822-e72e125ae546",
            "the frozen id"
        );
        assert_eq!(next.args, [json!(4), json!(4)]);
        assert_eq!(next.parent_id.as_deref(), Some(message.id.as_str()));
        assert_eq!(next.root_id, message.root_id);
        assert_eq!(
            next.chain.steps().count(),
            1,
            "the rest of the chain rides along"
        );
        assert_eq!(next.routing_key, "celery", "tasks.add is not served here");
        assert_eq!(out.children, std::slice::from_ref(&next.id));
    }

    /// What a one-member chord with `body` sends once its member returned 2.
    fn body_sent(body: Value) -> Vec<TaskMessage> {
        let part = ChordPart {
            group: "g".into(),
            task_id: "member".into(),
            index: Some(0),
            state: State::Success,
            result: json!(2),
            body: celery(body),
            parent_id: "member".into(),
            root_id: Some("root".into()),
        };
        let routing = routing();
        let results = [("member".to_string(), State::Success, json!(2))];
        pushed(&follow_ups(&routing).chord_complete(&part, &results))
    }

    /// A chord whose body is a chain, itself a step of a chain: once the
    /// header is done, the body's first task goes out carrying the body's
    /// later steps and then the rest of the outer chain, which the body
    /// holds in its options (it was lost, and the workflow stopped after
    /// the body; seed 7 #075 of tests/parity.rs).
    #[test]
    fn a_chain_goes_on_after_a_chord_whose_body_is_a_chain() {
        let step = |task: &str, args: Value| {
            json!({"task": task, "args": args, "kwargs": {}, "options": {},
                   "subtask_type": null, "immutable": false})
        };
        let later = step("math.mul", json!([10]));
        let mut body = json!({"task": "celery.chain", "args": [], "subtask_type": "chain",
            "kwargs": {"tasks": [step("math.xsum", json!([])), step("math.add", json!([1]))]},
            "options": {}, "immutable": false});
        body["options"]["chain"] = json!([later]);
        let sent = body_sent(body);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task, "math.xsum");
        let rest: Vec<Value> = sent[0]
            .chain
            .steps()
            .map(|raw| serde_json::from_str::<Value>(raw).unwrap()["task"].clone())
            .collect();
        assert_eq!(
            rest,
            [json!("math.mul"), json!("math.add")],
            "stored last first"
        );
    }

    /// The same for a chord whose body is a chord: the inner chord's body
    /// goes on with the rest of the outer chain (seed 7 #100).
    #[test]
    fn a_chain_goes_on_after_a_chord_whose_body_is_a_chord() {
        let step = |task: &str, args: Value| {
            json!({"task": task, "args": args, "kwargs": {}, "options": {},
                   "subtask_type": null, "immutable": false})
        };
        let mut body = json!({"task": "celery.chord", "args": [], "subtask_type": "chord",
            "kwargs": {"header": [step("math.xsum", json!([]))], "kwargs": {},
                       "body": step("math.add", json!([1]))},
            "options": {}, "immutable": false});
        body["options"]["chain"] = json!([step("math.mul", json!([10]))]);
        let sent = body_sent(body);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task, "math.xsum");
        let inner_body = sent[0]
            .chord
            .as_ref()
            .expect("the inner chord's body")
            .to_json();
        assert_eq!(inner_body["options"]["chain"][0]["task"], "math.mul");
    }

    #[test]
    fn a_failure_reaches_every_later_step_and_the_errbacks() {
        let later = json!({"task": "math.add", "args": [1], "options": {"task_id": "later"}});
        let next = json!({"task": "math.add", "args": [2], "options": {"task_id": "next"}});
        let errback = json!({"task": "math.echo", "args": [], "options": {}});
        let message = TaskMessage::parse(
            &Outgoing {
                task: "math.fail".into(),
                id: "failed".into(),
                chain: raw_chain(&[later, next].map(celery)),
                errbacks: vec![celery(errback)],
                queue: "wfhost".into(),
                ..Outgoing::default()
            }
            .envelope("tag", "test"),
        )
        .unwrap();
        let routing = routing();
        let follow_ups = follow_ups(&routing);
        let error = Exception::new("builtins", "ValueError", "x");
        let out = follow_ups.failed(&message, State::Failure, &error, "tb");
        let marked: Vec<&str> = out
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Meta { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(marked, ["celery-task-meta-next", "celery-task-meta-later"]);
        let sent = pushed(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].args,
            [json!("failed")],
            "an errback gets the failed id"
        );
    }
}
