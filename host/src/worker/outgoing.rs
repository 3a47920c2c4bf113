//! Task messages to publish, as Celery's `as_task_v2` and kombu's
//! `prepare_message` make them, and the ids they carry.

use base64_simd::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Map, Value, json};
use wfhost_canvas::celery::CelerySignature;

use super::chain::RawChain;
use super::message::{OPTIONS_HEADER, TaskMessage, options_of};
use crate::records::iso8601;

/// An instant as Python's `datetime.isoformat()` writes an aware UTC time:
/// `2026-11-28T13:40:01.123000+00:00`.
pub fn python_iso8601(ms: u64) -> String {
    let text = iso8601(ms);
    format!("{}000+00:00", text.trim_end_matches('Z'))
}

/// A task message to publish, as Celery's `as_task_v2` builds it.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// The task's name.
    pub task: String,
    /// Its id.
    pub id: String,
    /// The canvas's first task.
    pub root_id: Option<String>,
    /// The task that sends it.
    pub parent_id: Option<String>,
    /// Its group, and its place there.
    pub group: Option<String>,
    /// Its place in the group.
    pub group_index: Option<u64>,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// `link`.
    pub callbacks: Vec<CelerySignature>,
    /// `link_error`.
    pub errbacks: Vec<CelerySignature>,
    /// The rest of the chain, last step first.
    pub chain: RawChain,
    /// The chord body, for a header member.
    pub chord: Option<CelerySignature>,
    /// Retries spent.
    pub retries: u32,
    /// Due time (ms since the epoch).
    pub eta_ms: Option<u64>,
    /// Expiry (ms since the epoch).
    pub expires_ms: Option<u64>,
    /// `[hard, soft]` time limits.
    pub timelimit: [Value; 2],
    /// Whether no result is to be stored.
    pub ignore_result: bool,
    /// How many times it was replaced.
    pub replaced_task_nesting: u64,
    /// The queue.
    pub queue: String,
    /// The priority, 0 to 9.
    pub priority: u8,
    /// Its wfhost options ([`OPTIONS_HEADER`]); none are sent when empty.
    pub options: Map<String, Value>,
}

impl Outgoing {
    /// The envelope's JSON text, as kombu's `prepare_message` and
    /// `_inplace_augment_message` make it, with `delivery_tag` and `origin`.
    pub fn envelope(&self, delivery_tag: &str, origin: &str) -> String {
        let optional = |value: &Option<String>| value.as_ref().map_or(Value::Null, |v| json!(v));
        let body = self.body();
        let argsrepr = Value::Array(self.args.clone()).to_string();
        let mut envelope = json!({
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": self.task,
                "id": self.id,
                "shadow": null,
                "eta": self.eta_ms.map_or(Value::Null, |ms| json!(python_iso8601(ms))),
                "expires": self.expires_ms.map_or(Value::Null, |ms| json!(python_iso8601(ms))),
                "group": optional(&self.group),
                "group_index": self.group_index.map_or(Value::Null, |i| json!(i)),
                "retries": self.retries,
                "timelimit": self.timelimit,
                "root_id": self.root_id.clone().unwrap_or_else(|| self.id.clone()),
                "parent_id": optional(&self.parent_id),
                "argsrepr": argsrepr,
                "kwargsrepr": Value::Object(self.kwargs.clone()).to_string(),
                "origin": origin,
                "ignore_result": self.ignore_result,
                "replaced_task_nesting": self.replaced_task_nesting,
                "stamped_headers": null,
                "stamps": {},
            },
            "properties": {
                "correlation_id": self.id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": self.priority,
                "body_encoding": "base64",
                "delivery_tag": delivery_tag,
            },
        });
        if !self.options.is_empty()
            && let Some(Value::Object(headers)) = envelope.get_mut("headers")
        {
            headers.insert(OPTIONS_HEADER.into(), Value::Object(self.options.clone()));
        }
        // The body first, as kombu writes it, and encoded straight into
        // the text: base64 needs no escaping (a long chain's body is most
        // of its message).
        let rest = envelope.to_string();
        let mut text = String::with_capacity(body.len() / 3 * 4 + rest.len() + 16);
        text.push_str("{\"body\": \"");
        BASE64.encode_append(body, &mut text);
        text.push_str("\", ");
        text.push_str(rest.strip_prefix('{').unwrap_or(&rest));
        text
    }

    /// The message as a worker reads it from [`Outgoing::envelope`]'s
    /// text — what `TaskMessage::parse` gives — made without writing and
    /// reading it, for the worker that runs it next itself (a long
    /// chain's message is mostly the rest of the chain: reading it back is
    /// a base64 and a JSON pass over it). None for a message with links or
    /// a chord body, whose signatures a worker reads leniently from their
    /// JSON: those are read back from the text.
    pub fn into_read(self) -> Option<TaskMessage> {
        if !self.callbacks.is_empty() || !self.errbacks.is_empty() || self.chord.is_some() {
            return None;
        }
        let options = options_of(&self.options).ok()?;
        Some(TaskMessage {
            root_id: Some(self.root_id.unwrap_or_else(|| self.id.clone())),
            task: self.task,
            id: self.id,
            parent_id: self.parent_id,
            group: self.group,
            group_index: self.group_index,
            retries: self.retries,
            eta_ms: self.eta_ms,
            expires_ms: self.expires_ms,
            time_limit: self.timelimit[0]
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0),
            ignore_result: self.ignore_result,
            replaced_task_nesting: self.replaced_task_nesting,
            args: self.args,
            kwargs: self.kwargs,
            callbacks: Vec::new(),
            errbacks: Vec::new(),
            chain: self.chain,
            chord: None,
            priority: self.priority.min(9),
            redelivered: false,
            routing_key: self.queue,
            options,
        })
    }

    /// The body, `[args, kwargs, embed]`: the rest of the chain written as
    /// the text it is, nulls where there is nothing.
    fn body(&self) -> String {
        let mut body = String::with_capacity(self.chain.json().len() + 256);
        body.push('[');
        body.push_str(&json(&self.args));
        body.push_str(", ");
        body.push_str(&json(&self.kwargs));
        body.push_str(", {\"callbacks\": ");
        body.push_str(&json(
            &(!self.callbacks.is_empty()).then_some(&self.callbacks),
        ));
        body.push_str(", \"errbacks\": ");
        body.push_str(&json(
            &(!self.errbacks.is_empty()).then_some(&self.errbacks),
        ));
        body.push_str(", \"chain\": ");
        body.push_str(if self.chain.is_empty() {
            "null"
        } else {
            self.chain.json()
        });
        body.push_str(", \"chord\": ");
        body.push_str(&json(&self.chord));
        body.push_str("}]");
        body
    }
}

/// The JSON of a part of a body.
fn json<T: Serialize>(value: &T) -> String {
    // Plain JSON values and typed signatures always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A fresh random id in UUID 4 form, as Celery's ids and delivery tags are.
pub(crate) fn new_uuid() -> String {
    let bits = fastrand::u128(..);
    // Version 4, variant 1.
    let bits = (bits & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_uuid4() {
        let id = new_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, new_uuid());
    }
}
