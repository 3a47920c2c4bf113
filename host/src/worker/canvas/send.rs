//! Sending a canvas as Celery's `Signature.apply_async` sends it: each
//! task's message with its arguments, its place in a group or chord and
//! the rest of its chain; a chord's counting set up; chunks as a group of
//! `celery.starmap` tasks. The canvas is Celery's, typed
//! ([`CelerySignature`]); where it is taken apart (groups flattened, a
//! chain's steps, one result) the rules are `wfhost_canvas`'s, those
//! `wfhost run` plans by.

use serde_json::{Value, json};
use wfhost_canvas::Expires;
use wfhost_canvas::celery::{CelerySignature, Chunks, Shape, Transport};
use wfhost_canvas::rules::{call_arguments, ends_in_many};

use super::FollowUps;
use super::effects::{FollowUp, Op};
use crate::records::{now_ms, parse_iso8601};
use crate::worker::chain::RawChain;
use crate::worker::message::{HEADER_OPTIONS, TaskMessage};
use crate::worker::meta::group_key;
use crate::worker::outgoing::{Outgoing, new_uuid};
use crate::worker::routing::list_key;

/// Signatures as the rest of a chain (given last first).
pub(super) fn raw_chain<'a>(steps: impl IntoIterator<Item = &'a CelerySignature>) -> RawChain {
    let mut chain = RawChain::default();
    add_steps(&mut chain, steps);
    chain
}

/// Adds `steps` at the end of `chain` (they run before it, last first).
fn add_steps<'a>(chain: &mut RawChain, steps: impl IntoIterator<Item = &'a CelerySignature>) {
    for step in steps {
        if let Ok(json) = serde_json::to_string(step) {
            chain.push(&json);
        }
    }
}

/// The steps of the rest of a chain read back, leniently (what is not a
/// signature is dropped), last first.
pub(super) fn parsed(chain: &RawChain) -> Vec<CelerySignature> {
    chain
        .steps()
        .filter_map(|step| serde_json::from_str(step).ok())
        .collect()
}

/// Options of a send that are not in the signature.
#[derive(Debug, Clone, Default)]
pub(super) struct Apply {
    /// The task that sends it.
    pub(super) parent_id: Option<String>,
    /// The canvas's first task.
    pub(super) root_id: Option<String>,
    /// The rest of the chain to carry (stored order: last first).
    pub(super) chain: Option<RawChain>,
    /// The chord body, for a header member.
    pub(super) chord: Option<CelerySignature>,
    /// The group and index.
    pub(super) group: Option<(String, Option<u64>)>,
}

impl Apply {
    /// The group (and index) and the chord that a canvas whose options are
    /// `opts` is a member of: the caller's, else what its options carry (a
    /// chord's body, a chain's last step, a chord that is a header member
    /// and is sent later, by the step before it).
    pub(super) fn membership(
        &self,
        opts: &Transport,
    ) -> (Option<(String, Option<u64>)>, Option<CelerySignature>) {
        let group = self
            .group
            .clone()
            .or_else(|| Some((opts.group_id.clone()?, opts.group_index)));
        let chord = self
            .chord
            .clone()
            .or_else(|| opts.chord.as_deref().cloned());
        (group, chord)
    }

    /// What runs after the canvas whose options are `opts`: the chain its
    /// caller sends it with, else the one it carries itself — a chord's
    /// body that is a chain or a chord carries the rest of the outer chain
    /// in its options, as a task body does, and is sent on its own when
    /// the header is done.
    pub(super) fn rest_of_chain(&self, opts: &Transport) -> Option<RawChain> {
        self.chain
            .clone()
            .or_else(|| (!opts.chain.is_empty()).then(|| raw_chain(&opts.chain)))
    }
}

/// Sets the membership `sig` finishes as: a member of `group` at its
/// index, counted in `chord` when there is one.
fn set_membership(
    sig: &mut CelerySignature,
    (group, index): (String, Option<u64>),
    chord: Option<CelerySignature>,
) {
    sig.options.group_id = Some(group);
    sig.options.group_index = index;
    if let Some(chord) = chord {
        sig.options.chord = Some(Box::new(chord));
    }
}

impl FollowUps<'_> {
    /// Sends `sig` with `input` in front of its own arguments, as
    /// `sig.apply_async((input,), **apply)` does.
    pub(super) fn apply(
        &self,
        out: &mut FollowUp,
        sig: &CelerySignature,
        input: Option<&Value>,
        apply: Apply,
    ) -> Option<String> {
        let opts = &sig.options;
        match &sig.shape {
            Shape::Group(members) => {
                let group_id = opts.task_id.clone().unwrap_or_else(new_uuid);
                let members = CelerySignature::flat_members(members, opts);
                self.apply_members(out, &members, input, &group_id, apply);
                Some(group_id)
            }
            Shape::Chord(chord) => {
                let mut body = chord.body.clone();
                // The chord's callbacks and errbacks are its body's.
                body.options.link.extend_from_slice(&opts.link);
                body.link_error(&opts.link_error);
                let group_id = chord
                    .header_options
                    .task_id
                    .clone()
                    .or_else(|| opts.task_id.clone())
                    .unwrap_or_else(new_uuid);
                // A chord that is a member of a chord's header (or a chain
                // ending in one) finishes as that member: its body's result
                // is the member's, as Celery's `chord.freeze` gives the body
                // the outer group, index and chord. Otherwise the body
                // belongs to the chord's own group.
                match apply.membership(opts) {
                    (Some(outer), Some(outer_body)) => {
                        set_membership(&mut body, outer, Some(outer_body));
                    }
                    _ => body.options.group_id = Some(group_id.clone()),
                }
                if let Some(chain) = apply.rest_of_chain(opts) {
                    // The chain goes on with the body's one result.
                    body = self.one_result(body);
                    body.options.chain = parsed(&chain);
                }
                let header = CelerySignature::flat_members(&chord.header, &chord.header_options);
                if header.is_empty() {
                    let body_apply = Apply {
                        chain: None,
                        chord: None,
                        group: None,
                        ..apply
                    };
                    return self.apply(out, &body, Some(&json!([])), body_apply);
                }
                out.ops.push(Op::Delete {
                    key: group_key(&group_id, ".c"),
                });
                out.ops.push(Op::Set {
                    key: group_key(&group_id, ".s"),
                    value: header.len().to_string(),
                });
                let header_apply = Apply {
                    chain: None,
                    chord: Some(body),
                    ..apply
                };
                self.apply_members(out, &header, input, &group_id, header_apply);
                Some(group_id)
            }
            Shape::Chunks(chunks) => {
                let group = self.chunks_group(chunks, opts);
                self.apply(out, &group, input, apply)
            }
            Shape::Chain(_) => {
                // A chain's callbacks are its last step's, its errbacks
                // every step's (Celery's `_chain.run`).
                let mut tasks = sig.chain_steps();
                if let Some(last) = tasks.last_mut() {
                    last.options.link.extend_from_slice(&opts.link);
                }
                for step in &mut tasks {
                    step.link_error(&opts.link_error);
                }
                // A step that the chain goes on after passes one result:
                // a group's list (as `wfhost run` and eager Celery do; a
                // worker would link the rest to each member).
                let steps = tasks.len();
                for step in tasks.iter_mut().take(steps.saturating_sub(1)) {
                    if ends_in_many(step) {
                        *step = self.one_result(step.clone());
                    }
                }
                let (first, rest) = tasks.split_first()?;
                // The chain's own later steps, stored last first.
                let mut own: Vec<CelerySignature> = rest.iter().rev().cloned().collect();
                // A chain that is a group or chord member finishes as that
                // member: its last task carries the membership.
                let (group, chord) = apply.membership(opts);
                if let (Some(group), Some(last)) = (&group, own.first_mut()) {
                    set_membership(last, group.clone(), chord.clone());
                }
                // What comes after the chain runs after its last step.
                let mut chain = apply.rest_of_chain(opts).unwrap_or_default();
                add_steps(&mut chain, &own);
                let (group, chord) = if rest.is_empty() {
                    (group, chord)
                } else {
                    (None, None)
                };
                let first_apply = Apply {
                    chain: Some(chain),
                    group,
                    chord,
                    ..apply
                };
                self.apply(out, first, input, first_apply)
            }
            Shape::Task {
                task, args, kwargs, ..
            } => {
                let args = call_arguments(input, args, sig.immutable);
                let id = opts.task_id.clone().unwrap_or_else(new_uuid);
                let (group, chord) = apply.membership(opts);
                let now = now_ms();
                let after = |seconds: f64| now.saturating_add((seconds * 1000.0) as u64);
                let eta_ms = opts
                    .countdown
                    .map(after)
                    .or_else(|| opts.eta.as_deref().and_then(parse_iso8601));
                let expires_ms = match &opts.expires {
                    Some(Expires::At(text)) => parse_iso8601(text),
                    Some(Expires::After(seconds)) => Some(after(*seconds)),
                    None => None,
                };
                let queue = self.routing.queue_for(task, opts.queue.as_deref());
                let priority = opts.priority.unwrap_or(0).min(9);
                let chain = apply
                    .chain
                    .clone()
                    .unwrap_or_else(|| raw_chain(&opts.chain));
                let seconds = |limit: Option<f64>| limit.map_or(Value::Null, |s| json!(s));
                let message = Outgoing {
                    task: task.clone(),
                    id: id.clone(),
                    root_id: apply.root_id.clone().or_else(|| Some(id.clone())),
                    parent_id: apply.parent_id.clone(),
                    group: group.as_ref().map(|(g, _)| g.clone()),
                    group_index: group.as_ref().and_then(|(_, i)| *i),
                    args,
                    kwargs: kwargs.clone(),
                    callbacks: opts.link.clone(),
                    errbacks: opts.link_error.clone(),
                    chain,
                    chord,
                    retries: 0,
                    eta_ms,
                    expires_ms,
                    timelimit: [seconds(opts.time_limit), seconds(opts.soft_time_limit)],
                    ignore_result: opts.ignore_result,
                    replaced_task_nesting: opts.replaced_task_nesting,
                    queue: queue.clone(),
                    priority,
                    options: opts
                        .other
                        .iter()
                        .filter(|(key, _)| HEADER_OPTIONS.contains(&key.as_str()))
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect(),
                };
                let key = list_key(&queue, priority);
                let text = message.envelope(&new_uuid(), self.origin);
                match eta_ms {
                    Some(due_ms) if due_ms > now => out.ops.push(Op::Delay {
                        due_ms,
                        key,
                        message: text,
                    }),
                    _ => out.ops.push(Op::Push {
                        key,
                        message: text,
                        read: message.into_read().map(Box::new),
                    }),
                }
                Some(id)
            }
        }
    }

    /// Celery's `task.chunks(it, n)` as its `apply_async` sends it: a group
    /// (with the chunks' options) of immutable `celery.starmap` signatures,
    /// each calling `task` with `n` items of `it` (the last with what is
    /// left), routed as `task` is unless the options name a queue.
    pub(super) fn chunks_group(&self, chunks: &Chunks, opts: &Transport) -> CelerySignature {
        let queue = self
            .routing
            .queue_for(chunks.task_name(), opts.queue.as_deref());
        CelerySignature {
            options: opts.clone(),
            ..CelerySignature::whole(Shape::Group(chunks.as_group(&queue)))
        }
    }

    /// Sends each of `members` as `apply` says, as the member of
    /// `group_id` at its index.
    fn apply_members(
        &self,
        out: &mut FollowUp,
        members: &[CelerySignature],
        input: Option<&Value>,
        group_id: &str,
        apply: Apply,
    ) {
        for (index, member) in members.iter().enumerate() {
            // A chord counts one result per header member: a member whose
            // result is many (a group, a chain ending in one) gives them as
            // one list, as `wfhost run` does.
            let one;
            let member = if apply.chord.is_some() && ends_in_many(member) {
                one = self.one_result(member.clone());
                &one
            } else {
                member
            };
            let member_apply = Apply {
                group: Some((group_id.to_string(), Some(index as u64))),
                ..apply.clone()
            };
            self.apply(out, member, input, member_apply);
        }
    }

    /// What sending a whole canvas from outside any task takes (a
    /// producer's `apply_async()`); none when it names no task.
    pub fn send(&self, sig: &CelerySignature) -> Option<FollowUp> {
        let mut out = FollowUp::default();
        self.apply(&mut out, sig, None, Apply::default())?;
        Some(out)
    }

    /// What `message`, a `celery.chunks` task, sends (its group of
    /// `celery.starmap` tasks, as `chunks_group` builds it), and its value:
    /// the group's result as Celery stores a `GroupResult`, its id and each
    /// member's. None when its kwargs are not a task, `it` and `n`.
    pub fn chunks(&self, message: &TaskMessage) -> Option<(FollowUp, Value)> {
        let sig = CelerySignature::from_json(json!({"task": wfhost_canvas::CHUNKS,
            "subtask_type": "chunks", "kwargs": message.kwargs}))?;
        let Shape::Chunks(chunks) = &sig.shape else {
            return None;
        };
        let mut group = self.chunks_group(chunks, &Transport::default());
        let group_id = new_uuid();
        group.options.task_id = Some(group_id.clone());
        let mut members = Vec::new();
        if let Shape::Group(tasks) = &mut group.shape {
            for task in tasks {
                let id = new_uuid();
                task.options.task_id = Some(id.clone());
                members.push(json!([[id, null], null]));
            }
        }
        let mut out = FollowUp::default();
        let apply = Apply {
            parent_id: Some(message.id.clone()),
            root_id: message.root_id.clone(),
            ..Apply::default()
        };
        self.apply(&mut out, &group, None, apply)?;
        Some((out, json!([[group_id, null], members])))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use wfhost_canvas::{CHUNKS, STARMAP};

    use super::super::testing::{celery, follow_ups, pushed, routing};
    use crate::worker::canvas::Op;
    use crate::worker::chain::RawChain;
    use crate::worker::message::TaskMessage;
    use crate::worker::meta::group_key;

    /// A chord in a chord's header counts once in the outer chord: its
    /// body carries the outer group, its index and the outer body (as
    /// Celery's `chord.freeze` gives them), and a group in the header is
    /// flattened into it.
    #[test]
    fn a_chord_in_a_header_counts_once_and_a_group_there_is_flattened() {
        let step = |task: &str| {
            json!({"task": task, "args": [], "kwargs": {}, "options": {},
                   "subtask_type": null, "immutable": false})
        };
        let chord = |header: Value, body: Value| {
            json!({"task": "celery.chord", "args": [], "subtask_type": "chord",
                   "kwargs": {"header": header, "body": body, "kwargs": {}},
                   "options": {}, "immutable": false})
        };
        let group = |tasks: Value| {
            json!({"task": "celery.group", "subtask_type": "group", "args": [],
                   "kwargs": {"tasks": tasks}, "options": {}, "immutable": false})
        };
        let inner = chord(json!([step("math.inner")]), step("math.inner_body"));
        let outer = chord(
            json!([inner, group(json!([step("math.a"), step("math.b")]))]),
            step("math.outer_body"),
        );
        let routing = routing();
        let out = follow_ups(&routing).send(&celery(outer)).unwrap();
        let sent = pushed(&out);
        let tasks: Vec<&str> = sent.iter().map(|m| m.task.as_str()).collect();
        assert_eq!(tasks, ["math.inner", "math.a", "math.b"]);
        let outer_group = sent[1].group.clone().unwrap();
        assert_eq!(sent[2].group.as_deref(), Some(outer_group.as_str()));
        assert_eq!(
            (sent[1].group_index, sent[2].group_index),
            (Some(1), Some(2))
        );
        assert!(out.ops.contains(&Op::Set {
            key: group_key(&outer_group, ".s"),
            value: "3".into()
        }));
        let inner_body = sent[0].chord.as_ref().unwrap().to_json();
        assert_eq!(inner_body["task"], "math.inner_body");
        assert_eq!(inner_body["options"]["group_id"], json!(outer_group));
        assert_eq!(inner_body["options"]["group_index"], json!(0));
        assert_eq!(inner_body["options"]["chord"]["task"], "math.outer_body");
        assert_ne!(sent[0].group.as_deref(), Some(outer_group.as_str()));
    }

    /// `task.chunks(it, n)` where a worker sends it (a callback, a later
    /// step): as Celery's `chunks.apply_async`, a group of immutable
    /// `celery.starmap` tasks over `n` items each, routed as `task`.
    #[test]
    fn chunks_become_a_group_of_starmaps_over_n_items() {
        let routing = routing();
        let follow_ups = follow_ups(&routing);
        let add = json!({"task": "math.add", "args": [], "kwargs": {}, "options": {}});
        let chunks = json!({"task": CHUNKS, "subtask_type": "chunks", "args": [],
            "kwargs": {"task": add, "it": [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]], "n": 2},
            "options": {"task_id": "g-1"}, "immutable": true});
        let out = follow_ups.send(&celery(chunks.clone())).unwrap();
        let sent = pushed(&out);
        let parts: Vec<Value> = sent.iter().map(|m| m.kwargs["it"].clone()).collect();
        assert_eq!(
            parts,
            [
                json!([[1, 1], [2, 2]]),
                json!([[3, 3], [4, 4]]),
                json!([[5, 5]])
            ]
        );
        for (index, message) in sent.iter().enumerate() {
            assert_eq!(message.task, STARMAP);
            assert_eq!(message.kwargs["task"], add);
            assert!(message.args.is_empty());
            assert_eq!(
                message.group.as_deref(),
                Some("g-1"),
                "the chunks' id is the group's"
            );
            assert_eq!(message.group_index, Some(index as u64));
            assert_eq!(message.routing_key, "wfhost", "routed as math.add is");
        }
        // Sent as a callback, the result in front is not passed (immutable).
        let mut message = TaskMessage::parse(include_str!("../testdata/chain_head.json")).unwrap();
        message.chain = RawChain::default();
        message.callbacks = vec![celery(chunks.clone())];
        let out = follow_ups.succeeded(&message, &json!(4));
        assert!(pushed(&out).iter().all(|m| m.args.is_empty()));
        assert_eq!(pushed(&out).len(), 3);
        // With no chunk size, it is Celery's `celery.chunks` task, which
        // fails where it runs.
        let mut empty = chunks;
        empty["kwargs"]["n"] = json!(0);
        let sent = pushed(&follow_ups.send(&celery(empty)).unwrap());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task, CHUNKS);
    }

    /// `celery.chunks` as a task of its own sends the same group and gives
    /// the group's result as Celery stores a `GroupResult`.
    #[test]
    fn a_chunks_task_gives_its_groups_result() {
        let routing = routing();
        let follow_ups = follow_ups(&routing);
        let mut message = TaskMessage::parse(include_str!("../testdata/chain_head.json")).unwrap();
        message.task = CHUNKS.into();
        message.kwargs = json!({"task": "math.add", "it": [[1, 2], [3, 4], [5, 6]], "n": 2})
            .as_object()
            .cloned()
            .unwrap();
        let (out, value) = follow_ups.chunks(&message).unwrap();
        let sent = pushed(&out);
        assert_eq!(sent.len(), 2);
        let group = sent[0].group.clone().unwrap();
        let members: Vec<Value> = sent.iter().map(|m| json!([[m.id, null], null])).collect();
        assert_eq!(value, json!([[group, null], members]));
        assert!(
            sent.iter()
                .all(|m| m.parent_id.as_deref() == Some(message.id.as_str()))
        );
        message.kwargs.remove("it");
        assert!(follow_ups.chunks(&message).is_none());
    }
}
