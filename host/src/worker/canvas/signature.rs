//! A Celery signature as JSON, as messages carry it: its kind, options and
//! members, and the rules of Celery's canvas that read them (how a group
//! flattens, a chain unrolls, errbacks reach a whole's steps). Lenient:
//! what is missing or of another type reads as absent.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use wfhost_canvas::{ACCUMULATE, CHUNKS, MAP, STARMAP};

/// How deep a replacement canvas may nest.
pub(super) const MAX_DEPTH: usize = 64;

pub(super) fn options(sig: &Value) -> Map<String, Value> {
    sig.get("options")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub(super) fn kind(sig: &Value) -> &str {
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
pub(super) fn signature_list(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.iter().filter(|v| v.is_object()).cloned().collect(),
        Some(sig @ Value::Object(_)) => vec![sig.clone()],
        _ => Vec::new(),
    }
}

/// A signature as raw JSON, to carry along a chain unparsed.
pub(super) fn raw(sig: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(sig).ok()
}

/// Raw steps as one JSON list.
pub(super) fn parsed(steps: &[Box<RawValue>]) -> Value {
    Value::Array(
        steps
            .iter()
            .filter_map(|step| serde_json::from_str(step.get()).ok())
            .collect(),
    )
}

/// Sets one of a signature's options, making `options` if it has none.
pub(crate) fn set_option(sig: &mut Value, name: &str, value: Value) {
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
pub(super) fn extend_list_option(sig: &mut Value, name: &str, items: &[Value]) {
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
pub(super) fn link_error(sig: &mut Value, errbacks: &[Value]) {
    let accumulated = kind(sig) == "chord"
        && sig.pointer("/kwargs/body/task").and_then(Value::as_str) == Some(ACCUMULATE);
    match sig.pointer_mut("/kwargs/header") {
        Some(header) if accumulated && kind(header) == "group" => {
            extend_list_option(header, "link_error", errbacks);
        }
        _ => extend_list_option(sig, "link_error", errbacks),
    }
}

pub(super) fn kwargs_of(sig: &Value) -> Map<String, Value> {
    sig.get("kwargs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The member signatures of a group signature (or a bare list).
pub(super) fn members(group: &Value) -> Vec<Value> {
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
pub(super) fn flat_members(group: &Value) -> Vec<Value> {
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
pub(super) fn chain_steps(chain: &Value) -> Vec<Value> {
    members(chain)
        .into_iter()
        .map(|step| match members(&step).as_slice() {
            [only] if kind(&step) == "group" => only.clone(),
            _ => step,
        })
        .collect()
}

/// Whether the result of `member` is many results: it is a group, a
/// chord, chunks, or a chain that ends in one.
pub(super) fn ends_in_many(member: &Value) -> bool {
    match kind(member) {
        "group" | "chord" | "chunks" => true,
        "chain" => members(member).last().is_some_and(ends_in_many),
        _ => false,
    }
}

/// The errbacks that run when a chord's header fails, for its body that
/// never runs: those of the body's first task, where `link_error` reaches
/// as Celery's does (every step of a chain, every member of a group, a
/// chord's body) — `wfhost run`'s rule (`executor/callbacks.rs`).
pub(super) fn body_errbacks(body: &Value) -> Vec<Value> {
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

pub(super) fn seconds(value: Option<&Value>) -> Option<f64> {
    value
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
}
