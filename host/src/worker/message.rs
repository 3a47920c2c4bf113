//! Celery's task message, protocol 2, as kombu's Redis transport carries it:
//! a JSON envelope whose `headers` say what to run and whose base64 `body`
//! is `[args, kwargs, embed]` (research/celery-redis.md §1).

use base64_simd::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use thiserror::Error;
use wfhost_canvas::StepOptions;
use wfhost_canvas::celery::CelerySignature;

use super::chain::RawChain;
use super::outgoing::python_iso8601;
use crate::records::parse_iso8601;

/// Why a message cannot be run: Celery rejects such a message without
/// storing a result (`on_invalid_task`).
#[derive(Debug, Error, PartialEq)]
pub enum MessageError {
    /// The envelope is not a JSON object.
    #[error("the message is not a JSON object: {0}")]
    Envelope(String),
    /// No `task` header: protocol 1, or not Celery's.
    #[error("the message has no `task` header (only Celery's protocol 2 is served)")]
    NotProtocol2,
    /// A content type or encoding other than UTF-8 JSON.
    #[error("content type `{0}` is not served (only application/json in utf-8)")]
    ContentType(String),
    /// A compressed body.
    #[error("compressed bodies are not served")]
    Compressed,
    /// A header of the wrong type.
    #[error("header `{0}`: {1}")]
    Header(&'static str, String),
    /// The body is not base64 of `[args, kwargs, embed]`.
    #[error("the body is not [args, kwargs, embed]: {0}")]
    Body(String),
}

/// A task message taken from a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// The task's name (`math.add`).
    pub task: String,
    /// The task id: the key of its result.
    pub id: String,
    /// The id of the canvas's first task.
    pub root_id: Option<String>,
    /// The task that sent this one.
    pub parent_id: Option<String>,
    /// The group (or chord header) it is a member of.
    pub group: Option<String>,
    /// Its place in that group.
    pub group_index: Option<u64>,
    /// Retries spent so far.
    pub retries: u32,
    /// Not to run before this instant (ms since the epoch).
    pub eta_ms: Option<u64>,
    /// Not to run after this instant (ms since the epoch).
    pub expires_ms: Option<u64>,
    /// The hard time limit, in seconds (`timelimit[0]`).
    pub time_limit: Option<f64>,
    /// Whether no result is to be stored.
    pub ignore_result: bool,
    /// How many times the task was replaced on its way here.
    pub replaced_task_nesting: u64,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Signatures to call with the result (`link`).
    pub callbacks: Vec<CelerySignature>,
    /// Signatures to call with the task id on failure (`link_error`).
    pub errbacks: Vec<CelerySignature>,
    /// The rest of the chain, last step first, unparsed: it only passes
    /// through (a long chain's message carries every later step).
    pub chain: RawChain,
    /// The chord body this task is a header member of.
    pub chord: Option<CelerySignature>,
    /// The message's priority, 0 (first) to 9.
    pub priority: u8,
    /// Whether a restore put it back after a consumer lost it.
    pub redelivered: bool,
    /// The queue it was routed to.
    pub routing_key: String,
    /// Its wfhost options: limits and retry policy ([`OPTIONS_HEADER`]).
    pub options: StepOptions,
}

/// The header of a task's options that Celery's protocol has no header
/// for: `fuel`, `memory_mb` and the retry policy (`max_retries`,
/// `default_retry_delay`, `retry_backoff`, `retry_backoff_max`,
/// `retry_jitter`, `retry_on_limit`), as a step's `options` name them. A
/// Celery client sets it with `apply_async(headers={"wfhost_options": …})`.
pub const OPTIONS_HEADER: &str = "wfhost_options";

/// The options [`OPTIONS_HEADER`] carries.
pub const HEADER_OPTIONS: [&str; 8] = [
    "fuel",
    "memory_mb",
    "max_retries",
    "default_retry_delay",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "retry_on_limit",
];

/// The options of [`OPTIONS_HEADER`]: those of [`HEADER_OPTIONS`] that it
/// names (any other key is not its to set).
fn header_options(headers: &Map<String, Value>) -> Result<StepOptions, MessageError> {
    match headers.get(OPTIONS_HEADER) {
        None | Some(Value::Null) => Ok(StepOptions::default()),
        Some(Value::Object(given)) => options_of(given),
        Some(other) => Err(MessageError::Header(
            OPTIONS_HEADER,
            format!("expected an object, found {other}"),
        )),
    }
}

/// The options of [`HEADER_OPTIONS`] that `given` names (any other key is
/// not the header's to set).
pub(super) fn options_of(given: &Map<String, Value>) -> Result<StepOptions, MessageError> {
    let known: Map<String, Value> = given
        .iter()
        .filter(|(key, _)| HEADER_OPTIONS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    serde_json::from_value(Value::Object(known))
        .map_err(|err| MessageError::Header(OPTIONS_HEADER, err.to_string()))
}

fn string_header(
    headers: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, MessageError> {
    match headers.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(MessageError::Header(
            name,
            format!("expected a string, found {other}"),
        )),
    }
}

/// An instant header: an ISO 8601 text (what Celery sends) or seconds since
/// the epoch.
fn instant_header(
    headers: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, MessageError> {
    match headers.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_iso8601(text).map(Some).ok_or_else(|| {
            MessageError::Header(name, format!("`{text}` is not an ISO 8601 instant"))
        }),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e11)
            .map(|s| Some((s * 1000.0) as u64))
            .ok_or_else(|| MessageError::Header(name, format!("{n} is not an instant"))),
        Some(other) => Err(MessageError::Header(
            name,
            format!("expected an instant, found {other}"),
        )),
    }
}

/// The envelope, its body (base64, without escapes) borrowed from the
/// message's text rather than copied.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "content-type", borrow)]
    content_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "content-encoding", borrow)]
    content_encoding: Option<std::borrow::Cow<'a, str>>,
    headers: Option<Map<String, Value>>,
    properties: Option<Map<String, Value>>,
}

/// The body: `[args, kwargs, embed]`, each of which may be null.
#[derive(Deserialize)]
struct Body(
    Option<Vec<Value>>,
    Option<Map<String, Value>>,
    Option<Embed>,
);

/// The body of an envelope whose first key is `body` (as kombu and wfhost
/// write it), found without parsing it, and the rest of the envelope with
/// a null body; none for any other envelope, which is parsed whole. A
/// long chain's body is most of its message: the quote that ends it is
/// found at memchr's speed (base64 has no quote or backslash; a body that
/// holds a backslash is left to the parser), where a JSON parser looks at
/// every byte.
fn split_body(text: &str) -> Option<(&str, String)> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"body\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let body = &rest[..end];
    if body.contains('\\') {
        return None;
    }
    Some((body, format!("{{\"body\": null{}", &rest[end + 1..])))
}

/// The canvas a message carries. A chain's later steps stay raw.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Embed {
    callbacks: Option<Value>,
    errbacks: Option<Value>,
    chain: Option<RawChain>,
    chord: Option<Value>,
}

/// A list of signatures, read leniently: what is not one is dropped.
fn signatures(value: Option<Value>, name: &str) -> Result<Vec<CelerySignature>, MessageError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => Ok(items
            .into_iter()
            .filter_map(CelerySignature::from_json)
            .collect()),
        Some(other) => Err(MessageError::Body(format!(
            "`{name}` is not a list of signatures: {other}"
        ))),
    }
}

impl TaskMessage {
    /// Reads a message as kombu pushed it.
    pub fn parse(text: &str) -> Result<TaskMessage, MessageError> {
        let split = split_body(text);
        let envelope: Envelope<'_> =
            serde_json::from_str(split.as_ref().map_or(text, |(_, rest)| rest.as_str()))
                .map_err(|err| MessageError::Envelope(err.to_string()))?;
        let headers = envelope
            .headers
            .as_ref()
            .ok_or(MessageError::NotProtocol2)?;
        let task = match headers.get("task") {
            Some(Value::String(task)) if !task.is_empty() => task.clone(),
            _ => return Err(MessageError::NotProtocol2),
        };
        let content_type = envelope
            .content_type
            .as_deref()
            .unwrap_or("application/json");
        let encoding = envelope.content_encoding.as_deref().unwrap_or("utf-8");
        if content_type != "application/json" || !encoding.eq_ignore_ascii_case("utf-8") {
            return Err(MessageError::ContentType(format!(
                "{content_type}; {encoding}"
            )));
        }
        if headers.get("compression").is_some_and(|c| !c.is_null()) {
            return Err(MessageError::Compressed);
        }
        let id =
            string_header(headers, "id")?.ok_or(MessageError::Header("id", "missing".into()))?;
        let properties = envelope.properties.as_ref();
        let body_text: &str = split
            .as_ref()
            .map(|(body, _)| *body)
            .or(envelope.body.as_deref())
            .ok_or_else(|| MessageError::Body("no body text".into()))?;
        let base64 = properties
            .and_then(|p| p.get("body_encoding"))
            .and_then(Value::as_str)
            .is_some_and(|e| e == "base64");
        let bytes = if base64 {
            BASE64
                .decode_to_vec(body_text)
                .map_err(|err| MessageError::Body(format!("not base64: {err}")))?
        } else {
            body_text.as_bytes().to_vec()
        };
        let Body(args, kwargs, embed) =
            serde_json::from_slice(&bytes).map_err(|err| MessageError::Body(err.to_string()))?;
        let (args, kwargs) = (args.unwrap_or_default(), kwargs.unwrap_or_default());
        let embed = embed.unwrap_or_default();
        let chord = match embed.chord {
            None | Some(Value::Null) => None,
            Some(chord @ Value::Object(_)) => Some(
                CelerySignature::from_json(chord)
                    .ok_or_else(|| MessageError::Body("`chord` is not a signature".into()))?,
            ),
            Some(other) => {
                return Err(MessageError::Body(format!(
                    "`chord` is not a signature: {other}"
                )));
            }
        };
        let number = |name: &'static str| -> Result<Option<u64>, MessageError> {
            match headers.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                    MessageError::Header(name, format!("expected a count, found {value}"))
                }),
            }
        };
        let retries = number("retries")?.unwrap_or(0);
        let time_limit = headers
            .get("timelimit")
            .and_then(Value::as_array)
            .and_then(|limits| limits.first())
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0);
        let delivery_info = properties
            .and_then(|p| p.get("delivery_info"))
            .and_then(Value::as_object);
        let routing_key = delivery_info
            .and_then(|d| d.get("routing_key"))
            .and_then(Value::as_str)
            .unwrap_or("celery")
            .to_string();
        let redelivered = headers
            .get("redelivered")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || delivery_info
                .and_then(|d| d.get("redelivered"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        let priority = properties
            .and_then(|p| p.get("priority"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(9) as u8;
        Ok(TaskMessage {
            task,
            id,
            root_id: string_header(headers, "root_id")?,
            parent_id: string_header(headers, "parent_id")?,
            group: string_header(headers, "group")?,
            group_index: number("group_index")?,
            retries: u32::try_from(retries).unwrap_or(u32::MAX),
            eta_ms: instant_header(headers, "eta")?,
            expires_ms: instant_header(headers, "expires")?,
            time_limit,
            ignore_result: headers
                .get("ignore_result")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            replaced_task_nesting: number("replaced_task_nesting")?.unwrap_or(0),
            args,
            kwargs,
            callbacks: signatures(embed.callbacks, "callbacks")?,
            errbacks: signatures(embed.errbacks, "errbacks")?,
            chain: embed.chain.unwrap_or_default(),
            chord,
            priority,
            redelivered,
            routing_key,
            options: header_options(headers)?,
        })
    }

    /// The message of this task's next attempt, from `text`, the message
    /// as received: the same id, one more retry, due at `eta_ms`, sent by
    /// itself (Celery's `Task.retry`).
    pub fn retried(&self, text: &str, eta_ms: u64, delivery_tag: &str) -> String {
        // Read again only here: a retry is rare, a large message is not.
        let mut envelope: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
        if let Some(Value::Object(headers)) = envelope.get_mut("headers") {
            headers.insert("retries".into(), json!(self.retries.saturating_add(1)));
            headers.insert("eta".into(), json!(python_iso8601(eta_ms)));
            headers.insert("parent_id".into(), json!(self.id));
            headers.remove("redelivered");
        }
        if let Some(Value::Object(properties)) = envelope.get_mut("properties") {
            properties.insert("delivery_tag".into(), json!(delivery_tag));
            if let Some(Value::Object(info)) = properties.get_mut("delivery_info") {
                info.remove("redelivered");
            }
        }
        Value::Object(envelope).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::outgoing::{Outgoing, new_uuid};

    /// The chain head Celery 5.7 pushed in the research capture.
    const CAPTURED: &str = include_str!("testdata/chain_head.json");

    /// The body is found without parsing it where it comes first, and
    /// every other envelope is parsed whole: the same message either way.
    #[test]
    fn a_body_that_comes_first_is_split_off_and_the_message_reads_the_same() {
        let text = include_str!("testdata/chain_head.json");
        let (body, rest) = split_body(text).expect("kombu writes the body first");
        assert!(!body.is_empty() && !body.contains('"'));
        assert!(rest.len() < text.len() - body.len() + 20);
        // The body last: parsed whole.
        let others = rest.replacen("\"body\": null, ", "", 1);
        let reordered = format!(
            "{}, \"body\": \"{body}\"}}",
            others.trim_end().strip_suffix('}').unwrap()
        );
        assert_eq!(split_body(&reordered), None);
        let fast = TaskMessage::parse(text).unwrap();
        let slow = TaskMessage::parse(&reordered).unwrap();
        assert_eq!((fast.args, fast.kwargs), (slow.args, slow.kwargs));
        assert_eq!(fast.chain.steps().count(), slow.chain.steps().count());
        assert_eq!(
            split_body(r#"{"body": "a\"b", "x": 1}"#),
            None,
            "an escape: parsed whole"
        );
        assert_eq!(split_body(r#"{"headers": {}}"#), None);
    }

    #[test]
    fn reads_a_captured_celery_message() {
        let message = TaskMessage::parse(CAPTURED).unwrap();
        assert_eq!(message.task, "tasks.add");
        assert_eq!(message.id, "f07ba015-57ba-4c57-ba2e-03c538915bd1");
        assert_eq!(message.args, [json!(2), json!(2)]);
        assert_eq!(message.chain.steps().count(), 2);
        let next: Value = serde_json::from_str(message.chain.steps().nth(1).unwrap()).unwrap();
        assert_eq!(next["args"], json!([4]));
        assert_eq!(message.routing_key, "celery");
        assert!(!message.redelivered && message.eta_ms.is_none());
    }

    #[test]
    fn what_it_writes_it_reads_back() {
        let outgoing = Outgoing {
            task: "math.add".into(),
            id: new_uuid(),
            args: vec![json!(1), json!("two")],
            group: Some("g".into()),
            group_index: Some(3),
            eta_ms: Some(1_800_000_000_123),
            queue: "wfhost".into(),
            priority: 6,
            options: json!({"max_retries": 5, "fuel": null, "queue": "ignored"})
                .as_object()
                .cloned()
                .unwrap(),
            ..Outgoing::default()
        };
        let message = TaskMessage::parse(&outgoing.envelope(&new_uuid(), "test")).unwrap();
        assert_eq!(message.args, outgoing.args);
        assert_eq!(message.group_index, Some(3));
        assert_eq!(message.eta_ms, Some(1_800_000_000_123));
        assert_eq!(message.priority, 6);
        assert_eq!(message.options.max_retries, Some(5));
        assert_eq!(message.options.fuel, Some(wfhost_canvas::Limit::Unlimited));
        let text = outgoing.envelope(&new_uuid(), "test");
        let retried = TaskMessage::parse(&message.retried(&text, 5, "tag")).unwrap();
        assert_eq!((retried.retries, retried.eta_ms), (1, Some(5)));
        assert_eq!(retried.parent_id.as_deref(), Some(outgoing.id.as_str()));
    }

    /// A message a worker makes knows, without writing and reading it,
    /// what reading its text gives — whatever it carries.
    #[test]
    fn what_it_makes_it_knows_as_read_without_reading_it() {
        let mut chain = RawChain::default();
        for step in [
            r#"{"task": "math.add", "args": [1]}"#,
            r#"{"task": "b", "x": "]\"["}"#,
        ] {
            chain.push(step);
        }
        let exact: Vec<Value> =
            serde_json::from_str(r#"[1606938044258990275541962092341162602522202993782792835301376, -18446744073709551616, 0.1, 1e300, "\"\\\n é"]"#)
                .unwrap();
        let plain = Outgoing {
            task: "math.add".into(),
            id: new_uuid(),
            args: exact,
            queue: "celery".into(),
            ..Outgoing::default()
        };
        let made = [
            plain.clone(),
            Outgoing {
                root_id: Some("root".into()),
                parent_id: Some("parent".into()),
                group: Some("g".into()),
                group_index: Some(3),
                kwargs: json!({"k": [1, {"n": null}]}).as_object().cloned().unwrap(),
                chain,
                retries: 2,
                eta_ms: Some(1_800_000_000_123),
                expires_ms: Some(1_800_000_100_000),
                timelimit: [json!(30.5), json!(10)],
                ignore_result: true,
                replaced_task_nesting: 1,
                priority: 12,
                options: json!({"max_retries": 5, "fuel": null, "queue": "ignored"})
                    .as_object()
                    .cloned()
                    .unwrap(),
                ..plain.clone()
            },
            Outgoing {
                timelimit: [json!(0), Value::Null],
                ..plain.clone()
            },
        ];
        for outgoing in made {
            let read = TaskMessage::parse(&outgoing.envelope(&new_uuid(), "test")).unwrap();
            let known = outgoing.into_read().expect("no links, no chord");
            assert_eq!(known, read);
            assert_eq!(known.chain.json(), read.chain.json());
        }
        let linked = Outgoing {
            callbacks: vec![CelerySignature::from_json(json!({"task": "t"})).unwrap()],
            ..plain
        };
        assert_eq!(
            linked.into_read(),
            None,
            "links are read back from the text"
        );
    }

    #[test]
    fn refuses_what_celery_refuses() {
        assert_eq!(
            TaskMessage::parse("{}").unwrap_err(),
            MessageError::NotProtocol2
        );
        let pickled = CAPTURED.replace("application/json", "application/x-python-serialize");
        assert!(matches!(
            TaskMessage::parse(&pickled),
            Err(MessageError::ContentType(_))
        ));
        assert!(TaskMessage::parse("[1]").is_err());
    }
}
