//! Replacement (Celery's `Task.replace`): a canvas in wfhost's native form
//! made Celery's, made to give one result, and sent in the replaced task's
//! place.

use serde_json::{Value, json};
use wfhost_canvas::ACCUMULATE;

use super::Sender;
use super::effects::FollowUp;
use super::send::Apply;
use super::signature::{MAX_DEPTH, chain_steps, kind, set_option};
use crate::worker::message::TaskMessage;

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
            // A whole, and the callbacks of the whole in its `options`.
            Value::Object(map)
                if map.len() == 1 || (map.len() == 2 && map.contains_key("options")) =>
            {
                let (kind, inner) = map
                    .iter()
                    .find(|(key, _)| key.as_str() != "options")
                    .ok_or("an object of options only")?;
                let mut whole = match kind.as_str() {
                    "chain" | "group" => compound(kind, list(inner)?),
                    "chord" => {
                        let header = inner.get("header").ok_or("a chord needs a `header`")?;
                        let body = inner.get("body").ok_or("a chord needs a `body`")?;
                        json!({"task": "celery.chord", "subtask_type": "chord", "args": [],
                            "kwargs": {"header": compound("group", list(header)?),
                                       "body": convert(body, depth + 1)?, "kwargs": {}},
                            "options": {}, "immutable": false})
                    }
                    other => return Err(format!("`{other}` is not a canvas")),
                };
                if let Some(options) = map.get("options") {
                    let options = options.as_object().ok_or("`options` is not an object")?;
                    for (key, given) in options {
                        if !["link", "link_error"].contains(&key.as_str()) {
                            return Err(format!("`{key}` is not an option of a whole {kind}"));
                        }
                        let callbacks = match given {
                            Value::Array(items) => items.clone(),
                            one => vec![one.clone()],
                        };
                        let callbacks = callbacks
                            .iter()
                            .map(|callback| convert(callback, depth + 1))
                            .collect::<Result<Vec<_>, _>>()?;
                        set_option(&mut whole, key, Value::Array(callbacks));
                    }
                }
                Ok(whole)
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
pub(crate) fn final_task_mut(sig: &mut Value) -> Option<&mut Value> {
    let path = final_task(sig);
    sig.pointer_mut(&path)
}

impl Sender<'_> {
    /// A canvas whose result one task holds: a group becomes a chord whose
    /// body, `celery.accumulate`, returns the members' results as one list
    /// (what Celery's `Task.replace` does with a group), and so do chunks
    /// (a group of `celery.starmap` tasks) and a group that ends a chain or
    /// is a chord's body, where `wfhost run` gives the list as the canvas's
    /// result too; any other canvas is itself.
    pub(crate) fn one_result(&self, mut sig: Value) -> Value {
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
                       "body": {"task": ACCUMULATE, "args": [], "kwargs": {"index": 0},
                                "options": {}, "immutable": false, "subtask_type": null}},
            "options": {}, "immutable": false})
    }

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{pushed, routing, sender};
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
}
