//! The canvas over the protocol: what a finished task sends on, built as
//! Celery's worker and `Signature.apply_async` build it (the next step of
//! its chain, its callbacks and errbacks, a chord's header and body), and
//! what a failure marks failed down the chain (research/celery-redis.md
//! §3, §5). Everything here only builds operations; `commit` carries them
//! out at once.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use wfhost_canvas::{CHUNKS, MAP, STARMAP};

use super::message::{HEADER_OPTIONS, Outgoing, TaskMessage, new_uuid};
use super::meta::{Exception, Meta, State, group_key, task_key};
use super::routing::Routing;
use crate::records::now_ms;

/// One effect of a commit on Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Stores and publishes a task's meta (unless SUCCESS is stored).
    Meta { key: String, text: String },
    /// Pushes a message onto a list.
    Push { key: String, message: String },
    /// Appends an entry to a list (an audit record), oldest first.
    Append { key: String, entry: String },
    /// Holds a message in the delayed set until `due_ms`.
    Delay {
        due_ms: u64,
        key: String,
        message: String,
    },
    /// Sets a key with the result expiry.
    Set { key: String, value: String },
    /// Deletes a key.
    Delete { key: String },
    /// Ends a chord: its keys are deleted and its claim marked done.
    ChordDone { group: String },
    /// The operations after it happen only while this chord's body claim
    /// is held.
    Guard { group: String, token: String },
    /// The operations after it happen whatever the claim.
    Unguard,
}

/// A chord header member's result to count before the commit (Celery's
/// `on_chord_part_return`).
#[derive(Debug, Clone)]
pub struct ChordPart {
    /// The chord's group id.
    pub group: String,
    /// The member's task id.
    pub task_id: String,
    /// Its index in the header.
    pub index: Option<u64>,
    /// Its state.
    pub state: State,
    /// Its value, or its exception's stored form.
    pub result: Value,
    /// The chord's body signature.
    pub body: Value,
    /// The member that finished it, the body's parent.
    pub parent_id: String,
    /// The canvas's root.
    pub root_id: Option<String>,
}

/// What one task's end sends on.
#[derive(Debug, Default)]
pub struct FollowUp {
    /// The effects, in order.
    pub ops: Vec<Op>,
    /// Chord members to count first.
    pub parts: Vec<ChordPart>,
    /// Ids of the tasks sent directly (the meta's `children`).
    pub children: Vec<String>,
}

/// Builds follow-up messages: the worker's routing and identity.
pub struct Sender<'a> {
    /// Which queue a task goes to.
    pub routing: &'a Routing,
    /// The `origin` header: `wfhost@host:pid`.
    pub origin: &'a str,
}

/// Options of a send that are not in the signature.
#[derive(Debug, Clone, Default)]
struct Apply {
    parent_id: Option<String>,
    root_id: Option<String>,
    /// The rest of the chain to carry (stored order: last first).
    chain: Option<Vec<Box<RawValue>>>,
    /// The chord body, for a header member.
    chord: Option<Value>,
    /// The group and index.
    group: Option<(String, Option<u64>)>,
}

impl Apply {
    /// The group (and index) and the chord that a canvas whose options are
    /// `opts` is a member of: the caller's, else what its options carry (a
    /// chord's body, a chain's last step, a chord that is a header member
    /// and is sent later, by the step before it).
    fn membership(
        &self,
        opts: &Map<String, Value>,
    ) -> (Option<(String, Option<u64>)>, Option<Value>) {
        let group = self.group.clone().or_else(|| {
            let group = opts.get("group_id").and_then(Value::as_str)?;
            Some((
                group.to_string(),
                opts.get("group_index").and_then(Value::as_u64),
            ))
        });
        let chord = self
            .chord
            .clone()
            .or_else(|| opts.get("chord").filter(|c| c.is_object()).cloned());
        (group, chord)
    }

    /// What runs after the canvas whose options are `opts`: the chain its
    /// caller sends it with, else the one it carries itself — a chord's
    /// body that is a chain or a chord carries the rest of the outer chain
    /// in its options, as a task body does, and is sent on its own when
    /// the header is done.
    fn rest_of_chain(&self, opts: &Map<String, Value>) -> Option<Vec<Box<RawValue>>> {
        self.chain.clone().or_else(|| {
            let own: Vec<Box<RawValue>> = signature_list(opts.get("chain"))
                .iter()
                .filter_map(raw)
                .collect();
            (!own.is_empty()).then_some(own)
        })
    }
}

fn options(sig: &Value) -> Map<String, Value> {
    sig.get("options")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn kind(sig: &Value) -> &str {
    match sig.get("subtask_type").and_then(Value::as_str) {
        Some(kind) => kind,
        None => match sig.get("task").and_then(Value::as_str) {
            Some("celery.group") => "group",
            Some("celery.chord") => "chord",
            Some("celery.chain") => "chain",
            Some(CHUNKS) => "chunks",
            _ => "",
        },
    }
}

/// A list option that may be one signature or a list of them.
fn signature_list(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.iter().filter(|v| v.is_object()).cloned().collect(),
        Some(sig @ Value::Object(_)) => vec![sig.clone()],
        _ => Vec::new(),
    }
}

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

/// A signature as raw JSON, to carry along a chain unparsed.
fn raw(sig: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(sig).ok()
}

/// Raw steps as one JSON list.
fn parsed(steps: &[Box<RawValue>]) -> Value {
    Value::Array(
        steps
            .iter()
            .filter_map(|step| serde_json::from_str(step.get()).ok())
            .collect(),
    )
}

/// Sets one of a signature's options, making `options` if it has none.
pub(super) fn set_option(sig: &mut Value, name: &str, value: Value) {
    let Some(sig) = sig.as_object_mut() else {
        return;
    };
    let options = sig
        .entry("options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    if let Some(options) = options.as_object_mut() {
        options.insert(name.to_string(), value);
    }
}

/// Appends `items` to a signature's list option `name` (Celery's
/// `extend_list_option`).
fn extend_list_option(sig: &mut Value, name: &str, items: &[Value]) {
    if items.is_empty() {
        return;
    }
    let mut list = signature_list(sig.get("options").and_then(|o| o.get(name)));
    list.extend(items.iter().cloned());
    set_option(sig, name, Value::Array(list));
}

/// Links `errbacks` to a canvas (Celery's `link_error`): into its
/// options, from which each kind passes them on when it is sent. A group
/// made into a chord for its one result ([`Sender::one_result`]) keeps
/// them on the group, where its members find them, as for the group it
/// was.
fn link_error(sig: &mut Value, errbacks: &[Value]) {
    let accumulated = kind(sig) == "chord"
        && sig.pointer("/kwargs/body/task").and_then(Value::as_str) == Some(super::ACCUMULATE);
    match sig.pointer_mut("/kwargs/header") {
        Some(header) if accumulated && kind(header) == "group" => {
            extend_list_option(header, "link_error", errbacks);
        }
        _ => extend_list_option(sig, "link_error", errbacks),
    }
}

fn kwargs_of(sig: &Value) -> Map<String, Value> {
    sig.get("kwargs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The member signatures of a group signature (or a bare list).
fn members(group: &Value) -> Vec<Value> {
    match group {
        Value::Array(items) => items.clone(),
        sig => match kwargs_of(sig).get("tasks") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        },
    }
}

/// The members of a group or chord header, a group listed directly among
/// them flattened into them at any depth (Celery's `group._prepared`, and
/// `wfhost run`'s plan): `group(a, group(b, c))` has three members, each
/// with the errbacks of the groups it was in.
fn flat_members(group: &Value) -> Vec<Value> {
    fn flatten(group: &Value, out: &mut Vec<Value>, depth: usize) {
        // A group's errbacks are its members' (Celery's `group.link_error`).
        let errbacks = signature_list(options(group).get("link_error"));
        for mut member in members(group) {
            link_error(&mut member, &errbacks);
            if kind(&member) == "group" && depth < MAX_DEPTH {
                flatten(&member, out, depth + 1);
            } else {
                out.push(member);
            }
        }
    }
    let mut out = Vec::new();
    flatten(group, &mut out, 0);
    out
}

/// The steps of a chain, a one-member group among them unrolled into its
/// member, as Celery's `_chain.prepare_steps` does (elsewhere a group of
/// one stays a group, whose result is a list of one).
fn chain_steps(chain: &Value) -> Vec<Value> {
    members(chain)
        .into_iter()
        .map(|step| match members(&step).as_slice() {
            [only] if kind(&step) == "group" => only.clone(),
            _ => step,
        })
        .collect()
}

/// The errbacks that run when a chord's header fails, for its body that
/// never runs: those of the body's first task, where `link_error` reaches
/// as Celery's does (every step of a chain, every member of a group, a
/// chord's body) — `wfhost run`'s rule (`executor/callbacks.rs`).
fn body_errbacks(body: &Value) -> Vec<Value> {
    let mut sig = body.clone();
    for _ in 0..MAX_DEPTH {
        let first = match kind(&sig) {
            "chain" => {
                let errbacks = signature_list(options(&sig).get("link_error"));
                chain_steps(&sig).into_iter().next().map(|mut step| {
                    link_error(&mut step, &errbacks);
                    step
                })
            }
            "group" => flat_members(&sig).into_iter().next(),
            // A chord's errbacks are its body's; its first task is its
            // header's.
            "chord" => match kwargs_of(&sig).get("header") {
                Some(Value::Array(tasks)) => Some(json!({"task": "celery.group",
                    "subtask_type": "group", "kwargs": {"tasks": tasks}})),
                header => header.cloned(),
            },
            // A map's first task is its first call, which `wfhost run`
            // gives none of the map's errbacks (they are the list's).
            _ if [MAP, STARMAP]
                .contains(&sig.get("task").and_then(Value::as_str).unwrap_or(""))
                && kwargs_of(&sig)
                    .get("it")
                    .and_then(Value::as_array)
                    .is_some_and(|items| !items.is_empty()) =>
            {
                None
            }
            _ => return signature_list(options(&sig).get("link_error")),
        };
        match first {
            Some(first) => sig = first,
            None => break,
        }
    }
    Vec::new()
}

fn seconds(value: Option<&Value>) -> Option<f64> {
    value
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
}

impl Sender<'_> {
    /// Sends `sig` with `partial` arguments in front of its own, as
    /// `sig.apply_async(partial, **apply)` does.
    fn apply(
        &self,
        out: &mut FollowUp,
        sig: &Value,
        partial: &[Value],
        apply: Apply,
    ) -> Option<String> {
        let opts = options(sig);
        match kind(sig) {
            "group" => {
                let group_id = opts
                    .get("task_id")
                    .and_then(Value::as_str)
                    .map_or_else(new_uuid, str::to_string);
                self.apply_members(out, &flat_members(sig), partial, &group_id, apply);
                Some(group_id)
            }
            "chord" => {
                let kwargs = kwargs_of(sig);
                let header = kwargs
                    .get("header")
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new()));
                let mut body = kwargs.get("body").cloned().filter(Value::is_object)?;
                // The chord's callbacks and errbacks are its body's.
                extend_list_option(&mut body, "link", &signature_list(opts.get("link")));
                link_error(&mut body, &signature_list(opts.get("link_error")));
                let group_id = options(&header)
                    .get("task_id")
                    .or_else(|| opts.get("task_id"))
                    .and_then(Value::as_str)
                    .map_or_else(new_uuid, str::to_string);
                // A chord that is a member of a chord's header (or a chain
                // ending in one) finishes as that member: its body's result
                // is the member's, as Celery's `chord.freeze` gives the body
                // the outer group, index and chord. Otherwise the body
                // belongs to the chord's own group.
                match apply.membership(&opts) {
                    (Some((outer, index)), Some(outer_body)) => {
                        set_option(&mut body, "group_id", json!(outer));
                        set_option(&mut body, "group_index", json!(index));
                        set_option(&mut body, "chord", outer_body);
                    }
                    _ => set_option(&mut body, "group_id", json!(group_id)),
                }
                if let Some(chain) = apply.rest_of_chain(&opts) {
                    // The chain goes on with the body's one result.
                    body = self.one_result(body);
                    set_option(&mut body, "chain", parsed(&chain));
                }
                let header_members = flat_members(&header);
                if header_members.is_empty() {
                    let body_apply = Apply {
                        chain: None,
                        chord: None,
                        group: None,
                        ..apply
                    };
                    return self.apply(out, &body, &[json!([])], body_apply);
                }
                out.ops.push(Op::Delete {
                    key: group_key(&group_id, ".c"),
                });
                out.ops.push(Op::Set {
                    key: group_key(&group_id, ".s"),
                    value: header_members.len().to_string(),
                });
                let header_apply = Apply {
                    chain: None,
                    chord: Some(body),
                    ..apply
                };
                self.apply_members(out, &header_members, partial, &group_id, header_apply);
                Some(group_id)
            }
            "chunks" => {
                let group = self.chunks_group(sig)?;
                self.apply(out, &group, partial, apply)
            }
            "chain" => {
                // A chain's callbacks are its last step's, its errbacks
                // every step's (Celery's `_chain.run`).
                let mut tasks = chain_steps(sig);
                if let Some(last) = tasks.last_mut() {
                    extend_list_option(last, "link", &signature_list(opts.get("link")));
                }
                let errbacks = signature_list(opts.get("link_error"));
                for step in &mut tasks {
                    link_error(step, &errbacks);
                }
                // A step that the chain goes on after passes one result:
                // a group's list (as `wfhost run` and eager Celery do; a
                // worker would link the rest to each member).
                let steps = tasks.len();
                for step in tasks.iter_mut().take(steps.saturating_sub(1)) {
                    if ends_in_many(step) {
                        *step = self.one_result(step.take());
                    }
                }
                let (first, rest) = tasks.split_first()?;
                // The chain's own later steps, stored last first.
                let mut own: Vec<Value> = rest.iter().rev().cloned().collect();
                // A chain that is a group or chord member finishes as that
                // member: its last task carries the membership.
                let (group, chord) = apply.membership(&opts);
                if let (Some((group, index)), Some(last)) = (&group, own.first_mut()) {
                    set_option(last, "group_id", json!(group));
                    set_option(last, "group_index", json!(index));
                    if let Some(chord) = &chord {
                        set_option(last, "chord", chord.clone());
                    }
                }
                // What comes after the chain runs after its last step.
                let mut chain = apply.rest_of_chain(&opts).unwrap_or_default();
                chain.extend(own.iter().filter_map(raw));
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
                self.apply(out, first, partial, first_apply)
            }
            _ => {
                let task = sig.get("task").and_then(Value::as_str)?.to_string();
                let immutable = sig
                    .get("immutable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let mut args: Vec<Value> = if immutable {
                    Vec::new()
                } else {
                    partial.to_vec()
                };
                if let Some(Value::Array(own)) = sig.get("args") {
                    args.extend(own.iter().cloned());
                }
                let id = opts
                    .get("task_id")
                    .and_then(Value::as_str)
                    .map_or_else(new_uuid, str::to_string);
                let (group, chord) = apply.membership(&opts);
                let now = now_ms();
                let eta_ms = seconds(opts.get("countdown"))
                    .map(|s| now + (s * 1000.0) as u64)
                    .or_else(|| {
                        opts.get("eta")
                            .and_then(Value::as_str)
                            .and_then(crate::records::parse_iso8601)
                    });
                let expires_ms = match opts.get("expires") {
                    Some(Value::String(text)) => crate::records::parse_iso8601(text),
                    other => seconds(other).map(|s| now + (s * 1000.0) as u64),
                };
                let queue = self
                    .routing
                    .queue_for(&task, opts.get("queue").and_then(Value::as_str));
                let priority = opts
                    .get("priority")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(9) as u8;
                let chain = apply.chain.clone().unwrap_or_else(|| {
                    signature_list(opts.get("chain"))
                        .iter()
                        .filter_map(raw)
                        .collect()
                });
                let message = Outgoing {
                    task,
                    id: id.clone(),
                    root_id: apply.root_id.clone().or_else(|| Some(id.clone())),
                    parent_id: apply.parent_id.clone(),
                    group: group.as_ref().map(|(g, _)| g.clone()),
                    group_index: group.as_ref().and_then(|(_, i)| *i),
                    args,
                    kwargs: kwargs_of(sig),
                    callbacks: signature_list(opts.get("link")),
                    errbacks: signature_list(opts.get("link_error")),
                    chain,
                    chord,
                    retries: 0,
                    eta_ms,
                    expires_ms,
                    timelimit: [
                        opts.get("time_limit").cloned().unwrap_or(Value::Null),
                        opts.get("soft_time_limit").cloned().unwrap_or(Value::Null),
                    ],
                    ignore_result: opts
                        .get("ignore_result")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    replaced_task_nesting: opts
                        .get("replaced_task_nesting")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    queue: queue.clone(),
                    priority,
                    options: opts
                        .iter()
                        .filter(|(key, _)| HEADER_OPTIONS.contains(&key.as_str()))
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect(),
                };
                let key = self.routing.list_key(&queue, priority);
                let text = message.envelope(&new_uuid(), self.origin);
                match eta_ms {
                    Some(due_ms) if due_ms > now => out.ops.push(Op::Delay {
                        due_ms,
                        key,
                        message: text,
                    }),
                    _ => out.ops.push(Op::Push { key, message: text }),
                }
                Some(id)
            }
        }
    }

    /// Celery's `task.chunks(it, n)` as its `apply_async` sends it: a group
    /// (with the chunks' options) of immutable `celery.starmap` signatures,
    /// each calling `task` with `n` items of `it` (the last with what is
    /// left), routed as `task` is unless the options name a queue; none
    /// when `task`, `it` or `n` is missing or unusable.
    fn chunks_group(&self, sig: &Value) -> Option<Value> {
        let kwargs = kwargs_of(sig);
        let task = kwargs.get("task")?;
        let name = match task {
            Value::String(name) => name.as_str(),
            signature => signature.get("task")?.as_str()?,
        };
        let items = kwargs.get("it")?.as_array()?;
        let size = usize::try_from(kwargs.get("n")?.as_u64()?)
            .ok()
            .filter(|n| *n > 0)?;
        let opts = options(sig);
        let queue = self
            .routing
            .queue_for(name, opts.get("queue").and_then(Value::as_str));
        let starmaps: Vec<Value> = items
            .chunks(size)
            .map(|part| {
                json!({"task": STARMAP, "args": [], "kwargs": {"task": task, "it": part},
                    "options": {"queue": queue}, "subtask_type": null, "immutable": true})
            })
            .collect();
        Some(
            json!({"task": "celery.group", "subtask_type": "group", "args": [],
            "kwargs": {"tasks": starmaps}, "options": opts, "immutable": false}),
        )
    }

    /// Sends each of `members` as `apply` says, as the member of
    /// `group_id` at its index.
    fn apply_members(
        &self,
        out: &mut FollowUp,
        members: &[Value],
        partial: &[Value],
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
            self.apply(out, member, partial, member_apply);
        }
    }

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
        let partial = [value.clone()];
        match message.callbacks.as_slice() {
            [] => {}
            [callback] => {
                if let Some(id) = self.apply(&mut out, callback, &partial, apply.clone()) {
                    out.children.push(id);
                }
            }
            callbacks => {
                let group = json!({"task": "celery.group", "subtask_type": "group",
                    "kwargs": {"tasks": callbacks}, "options": {}});
                self.apply(&mut out, &group, &partial, apply.clone());
            }
        }
        if let Some((next, rest)) = message.chain.split_last()
            && let Ok(next) = serde_json::from_str::<Value>(next.get())
        {
            let next_apply = Apply {
                chain: Some(rest.to_vec()),
                ..apply
            };
            if let Some(id) = self.apply(&mut out, &next, &partial, next_apply) {
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
        if state == State::Failure {
            self.fail_chain(
                &mut out,
                message
                    .chain
                    .iter()
                    .rev()
                    .filter_map(|step| serde_json::from_str(step.get()).ok())
                    .collect(),
                state,
                exception,
                traceback,
                (&message.id, message.root_id.as_deref()),
            );
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
        mut pending: std::collections::VecDeque<Value>,
        state: State,
        exception: &Exception,
        traceback: &str,
        (failed_id, root_id): (&str, Option<&str>),
    ) {
        let stored = exception.to_json();
        let mut guard = 0;
        while let Some(element) = pending.pop_front() {
            guard += 1;
            if guard > 100_000 {
                break;
            }
            let opts = options(&element);
            let id = opts.get("task_id").and_then(Value::as_str);
            let group = opts.get("group_id").and_then(Value::as_str);
            if let Some(id) = id {
                out.ops.push(unrun_failure(
                    id,
                    group,
                    state,
                    stored.clone(),
                    traceback.to_string(),
                ));
            }
            // A chord member (a chain's last step carries the membership)
            // counts as failed, with or without an id of its own.
            if let (Some(group), Some(body)) = (group, opts.get("chord").filter(|c| c.is_object()))
            {
                out.parts.push(ChordPart {
                    group: group.to_string(),
                    task_id: id.map_or_else(new_uuid, str::to_string),
                    index: opts.get("group_index").and_then(Value::as_u64),
                    state,
                    result: stored.clone(),
                    body: body.clone(),
                    parent_id: failed_id.to_string(),
                    root_id: root_id.map(str::to_string),
                });
            }
            match kind(&element) {
                "chord" => {
                    if let Some(body) = kwargs_of(&element).get("body").filter(|b| b.is_object()) {
                        pending.push_back(body.clone());
                    }
                }
                "chain" => pending.extend(members(&element)),
                _ => {}
            }
        }
    }

    /// Errbacks, sent as `group(errbacks).apply_async((task_id,))`.
    fn errbacks(
        &self,
        out: &mut FollowUp,
        errbacks: &[Value],
        task_id: &str,
        root_id: Option<&str>,
    ) {
        if errbacks.is_empty() {
            return;
        }
        let group = json!({"task": "celery.group", "subtask_type": "group",
            "kwargs": {"tasks": errbacks}, "options": {}});
        let apply = Apply {
            parent_id: Some(task_id.to_string()),
            root_id: Some(root_id.unwrap_or(task_id).to_string()),
            ..Apply::default()
        };
        self.apply(out, &group, &[json!(task_id)], apply);
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
            let opts = options(body);
            // The body never runs: every task of it that has an id (its
            // final one holds the canvas's result) gets the failure.
            let mut pending: std::collections::VecDeque<Value> = [body.clone()].into();
            pending.extend(signature_list(opts.get("chain")).into_iter().rev());
            let id = opts
                .get("task_id")
                .and_then(Value::as_str)
                .map_or_else(new_uuid, str::to_string);
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
            let mut ran = signature_list(stored.get(ERRBACKS_RAN));
            let errbacks: Vec<Value> = body_errbacks(body)
                .into_iter()
                .filter(|errback| !ran.contains(errback))
                .collect();
            self.errbacks(&mut out, &errbacks, &id, part.root_id.as_deref());
            ran.extend(errbacks);
            for counted in &mut out.parts {
                if let Value::Object(result) = &mut counted.result {
                    result.insert(ERRBACKS_RAN.into(), Value::Array(ran.clone()));
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
        self.apply(&mut out, body, &[Value::Array(values)], apply);
        out
    }
}

/// The key, in the failure that a chord's body counts in an outer chord,
/// of the errbacks that ran for it on the way (only the chord's counting
/// holds it, never a stored result; Celery reads only the `exc_` keys).
const ERRBACKS_RAN: &str = "wfhost_errbacks_ran";

/// How deep a replacement canvas may nest.
const MAX_DEPTH: usize = 64;

/// A canvas in wfhost's native JSON form (what a task's replacement is:
/// a signature, `{"chain"}`, `{"group"}`, `{"chord"}` or a list) in
/// Celery's signature form; a signature already in Celery's form is kept.
pub fn celery_signature(native: &Value) -> Result<Value, String> {
    fn convert(native: &Value, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        let list = |items: &Value| -> Result<Vec<Value>, String> {
            items
                .as_array()
                .ok_or_else(|| format!("expected a list, found {items}"))?
                .iter()
                .map(|item| convert(item, depth + 1))
                .collect()
        };
        let compound = |kind: &str, tasks: Vec<Value>| {
            json!({"task": format!("celery.{kind}"), "subtask_type": kind, "args": [],
                   "kwargs": {"tasks": tasks}, "options": {}, "immutable": false})
        };
        match native {
            Value::Array(_) => Ok(compound("chain", list(native)?)),
            Value::Object(map) if map.contains_key("task") => {
                if map.get("subtask_type").is_some_and(|kind| !kind.is_null()) {
                    return Ok(native.clone());
                }
                let task = map["task"].as_str().ok_or("`task` is not a string")?;
                Ok(json!({
                    "task": task,
                    "args": map.get("args").cloned().unwrap_or(json!([])),
                    "kwargs": map.get("kwargs").cloned().unwrap_or(json!({})),
                    "options": map.get("options").cloned().unwrap_or(json!({})),
                    "immutable": map.get("immutable").cloned().unwrap_or(json!(false)),
                    "subtask_type": null,
                }))
            }
            Value::Object(map) if map.len() == 1 => {
                let (kind, inner) = map.iter().next().ok_or("an empty object")?;
                match kind.as_str() {
                    "chain" | "group" => Ok(compound(kind, list(inner)?)),
                    "chord" => {
                        let header = inner.get("header").ok_or("a chord needs a `header`")?;
                        let body = inner.get("body").ok_or("a chord needs a `body`")?;
                        Ok(
                            json!({"task": "celery.chord", "subtask_type": "chord", "args": [],
                            "kwargs": {"header": compound("group", list(header)?),
                                       "body": convert(body, depth + 1)?, "kwargs": {}},
                            "options": {}, "immutable": false}),
                        )
                    }
                    other => Err(format!("`{other}` is not a canvas")),
                }
            }
            other => Err(format!("not a canvas: {other}")),
        }
    }
    convert(native, 0)
}

/// Where, in a canvas, the task whose result is the canvas's result is
/// (a JSON pointer): the signature itself, a chain's last task, a chord's
/// body.
fn final_task(sig: &Value) -> String {
    match kind(sig) {
        "chain" => match sig.pointer("/kwargs/tasks").and_then(Value::as_array) {
            Some(tasks) if !tasks.is_empty() => {
                let last = tasks.len() - 1;
                format!("/kwargs/tasks/{last}{}", final_task(&tasks[last]))
            }
            _ => String::new(),
        },
        "chord" => match sig.pointer("/kwargs/body").filter(|body| body.is_object()) {
            Some(body) => format!("/kwargs/body{}", final_task(body)),
            None => String::new(),
        },
        _ => String::new(),
    }
}

/// The task whose result is a canvas's result (see [`final_task`]).
pub(super) fn final_task_mut(sig: &mut Value) -> Option<&mut Value> {
    let path = final_task(sig);
    sig.pointer_mut(&path)
}

/// Whether the result of `member` is many results: it is a group, a
/// chord, chunks, or a chain that ends in one.
fn ends_in_many(member: &Value) -> bool {
    match kind(member) {
        "group" | "chord" | "chunks" => true,
        "chain" => members(member).last().is_some_and(ends_in_many),
        _ => false,
    }
}

impl Sender<'_> {
    /// A canvas whose result one task holds: a group becomes a chord whose
    /// body, `celery.accumulate`, returns the members' results as one list
    /// (what Celery's `Task.replace` does with a group), and so do chunks
    /// (a group of `celery.starmap` tasks) and a group that ends a chain or
    /// is a chord's body, where `wfhost run` gives the list as the canvas's
    /// result too; any other canvas is itself.
    pub(super) fn one_result(&self, mut sig: Value) -> Value {
        if kind(&sig) == "chunks"
            && let Some(group) = self.chunks_group(&sig)
        {
            sig = group;
        }
        if kind(&sig) == "chain" {
            let steps = Value::Array(chain_steps(&sig));
            if let Some(tasks) = sig.pointer_mut("/kwargs/tasks") {
                *tasks = steps;
            }
        }
        let last = match kind(&sig) {
            "chain" => sig
                .pointer_mut("/kwargs/tasks")
                .and_then(Value::as_array_mut)
                .and_then(|tasks| tasks.last_mut()),
            "chord" => sig
                .pointer_mut("/kwargs/body")
                .filter(|body| body.is_object()),
            _ => None,
        };
        if let Some(last) = last {
            *last = self.one_result(last.take());
        }
        if kind(&sig) != "group" {
            return sig;
        }
        json!({"task": "celery.chord", "subtask_type": "chord", "args": [],
            "kwargs": {"header": sig, "kwargs": {},
                       "body": {"task": super::ACCUMULATE, "args": [], "kwargs": {"index": 0},
                                "options": {}, "immutable": false, "subtask_type": null}},
            "options": {}, "immutable": false})
    }
}

impl Sender<'_> {
    /// What a task replaced by `replacement` sends (Celery's
    /// `Task.replace`): the replacement, whose final task takes over the
    /// replaced task's id, callbacks, errbacks and place in its group or
    /// chord, followed by the rest of the replaced task's chain. A group
    /// becomes a chord with `celery.accumulate`, so its results arrive as
    /// one list. No result is stored for the replaced task.
    pub fn replaced(&self, message: &TaskMessage, replacement: &Value) -> Result<FollowUp, String> {
        let mut sig = self.one_result(celery_signature(replacement)?);
        let Some(last) = final_task_mut(&mut sig) else {
            return Err("the replacement has no final task".into());
        };
        set_option(last, "task_id", json!(message.id));
        set_option(
            last,
            "replaced_task_nesting",
            json!(message.replaced_task_nesting + 1),
        );
        if !message.callbacks.is_empty() {
            set_option(last, "link", json!(message.callbacks));
        }
        if !message.errbacks.is_empty() {
            set_option(last, "link_error", json!(message.errbacks));
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
        self.apply(&mut out, &sig, &[], apply)
            .ok_or_else(|| "the replacement names no task".to_string())?;
        Ok(out)
    }
}

impl Sender<'_> {
    /// What sending a whole canvas from outside any task takes (a
    /// producer's `apply_async()`); none when it names no task.
    pub fn send(&self, sig: &Value) -> Option<FollowUp> {
        let mut out = FollowUp::default();
        self.apply(&mut out, sig, &[], Apply::default())?;
        Some(out)
    }

    /// What `message`, a `celery.chunks` task, sends (its group of
    /// `celery.starmap` tasks, as `chunks_group` builds it), and its value:
    /// the group's result as Celery stores a `GroupResult`, its id and each
    /// member's. None when its kwargs are not a task, `it` and `n`.
    pub fn chunks(&self, message: &TaskMessage) -> Option<(FollowUp, Value)> {
        let sig = json!({"task": CHUNKS, "subtask_type": "chunks",
            "kwargs": message.kwargs, "options": {}});
        let mut group = self.chunks_group(&sig)?;
        let group_id = new_uuid();
        set_option(&mut group, "task_id", json!(group_id));
        let mut members = Vec::new();
        if let Some(Value::Array(tasks)) = group.pointer_mut("/kwargs/tasks") {
            for task in tasks {
                let id = new_uuid();
                set_option(task, "task_id", json!(id));
                members.push(json!([[id, null], null]));
            }
        }
        let mut out = FollowUp::default();
        let apply = Apply {
            parent_id: Some(message.id.clone()),
            root_id: message.root_id.clone(),
            ..Apply::default()
        };
        self.apply(&mut out, &group, &[], apply)?;
        Some((out, json!([[group_id, null], members])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Routing {
        Routing {
            queues: vec!["wfhost".into()],
            served: vec!["math".into()],
            default_queue: "celery".into(),
        }
    }

    fn sender(routing: &Routing) -> Sender<'_> {
        Sender {
            routing,
            origin: "test",
        }
    }

    fn pushed(out: &FollowUp) -> Vec<TaskMessage> {
        out.ops
            .iter()
            .filter_map(|op| match op {
                Op::Push { message, .. } | Op::Delay { message, .. } => {
                    Some(TaskMessage::parse(message).unwrap())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_next_step_of_a_captured_chain_gets_the_result() {
        let message = TaskMessage::parse(include_str!("testdata/chain_head.json")).unwrap();
        let routing = routing();
        let sender = sender(&routing);
        let out = sender.succeeded(&message, &json!(4));
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
        assert_eq!(next.chain.len(), 1, "the rest of the chain rides along");
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
            body,
            parent_id: "member".into(),
            root_id: Some("root".into()),
        };
        let routing = routing();
        let results = [("member".to_string(), State::Success, json!(2))];
        pushed(&sender(&routing).chord_complete(&part, &results))
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
        set_option(&mut body, "chain", json!([later]));
        let sent = body_sent(body);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task, "math.xsum");
        let rest: Vec<Value> = sent[0]
            .chain
            .iter()
            .map(|raw| serde_json::from_str::<Value>(raw.get()).unwrap()["task"].clone())
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
        set_option(&mut body, "chain", json!([step("math.mul", json!([10]))]));
        let sent = body_sent(body);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task, "math.xsum");
        let inner_body = sent[0].chord.as_ref().expect("the inner chord's body");
        assert_eq!(inner_body["options"]["chain"][0]["task"], "math.mul");
    }

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
        let out = sender(&routing).send(&outer).unwrap();
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
        let inner_body = sent[0].chord.as_ref().unwrap();
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
        let sender = sender(&routing);
        let add = json!({"task": "math.add", "args": [], "kwargs": {}, "options": {}});
        let chunks = json!({"task": CHUNKS, "subtask_type": "chunks", "args": [],
            "kwargs": {"task": add, "it": [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]], "n": 2},
            "options": {"task_id": "g-1"}, "immutable": true});
        let out = sender.send(&chunks).unwrap();
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
        let mut message = TaskMessage::parse(include_str!("testdata/chain_head.json")).unwrap();
        message.chain.clear();
        message.callbacks = vec![chunks.clone()];
        let out = sender.succeeded(&message, &json!(4));
        assert!(pushed(&out).iter().all(|m| m.args.is_empty()));
        assert_eq!(pushed(&out).len(), 3);
        // No chunk size, no tasks.
        let mut empty = chunks;
        empty["kwargs"]["n"] = json!(0);
        assert!(sender.send(&empty).is_none());
    }

    /// `celery.chunks` as a task of its own sends the same group and gives
    /// the group's result as Celery stores a `GroupResult`.
    #[test]
    fn a_chunks_task_gives_its_groups_result() {
        let routing = routing();
        let sender = sender(&routing);
        let mut message = TaskMessage::parse(include_str!("testdata/chain_head.json")).unwrap();
        message.task = CHUNKS.into();
        message.kwargs = json!({"task": "math.add", "it": [[1, 2], [3, 4], [5, 6]], "n": 2})
            .as_object()
            .cloned()
            .unwrap();
        let (out, value) = sender.chunks(&message).unwrap();
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
        assert!(sender.chunks(&message).is_none());
    }

    #[test]
    fn a_native_canvas_becomes_celerys_and_a_chord_sets_its_size() {
        let native = json!({"chain": [
            {"task": "math.add", "args": [1, 2]},
            {"chord": {"header": [{"task": "math.add", "args": [1]}, {"task": "math.add", "args": [2]}],
                       "body": {"task": "math.xsum"}}},
        ]});
        let sig = celery_signature(&native).unwrap();
        assert_eq!(kind(&sig), "chain");
        assert_eq!(final_task(&sig), "/kwargs/tasks/1/kwargs/body");
        assert!(celery_signature(&json!({"nope": []})).is_err());
        assert!(celery_signature(&json!(3)).is_err());

        let chord = &sig["kwargs"]["tasks"][1];
        let routing = routing();
        let sender = sender(&routing);
        let out = sender.send(chord).unwrap();
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
        assert_eq!(body["task"], "math.xsum");
        assert_eq!(body["options"]["group_id"], json!(group));
        assert_eq!(sent[0].routing_key, "wfhost");
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
                chain: [&later, &next].iter().filter_map(|s| raw(s)).collect(),
                errbacks: vec![errback],
                queue: "wfhost".into(),
                ..Outgoing::default()
            }
            .envelope("tag", "test"),
        )
        .unwrap();
        let routing = routing();
        let sender = sender(&routing);
        let error = Exception::new("builtins", "ValueError", "x");
        let out = sender.failed(&message, State::Failure, &error, "tb");
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
