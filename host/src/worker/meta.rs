//! Results in Celery's Redis result-backend format: the meta JSON stored
//! at `celery-task-meta-<id>` and published on the channel of the same name,
//! and failures as the exceptions Python rebuilds from it
//! (research/celery-redis.md §4).

use serde_json::{Value, json};

use super::outgoing::python_iso8601;
use crate::records::{Failure, FailureKind};

/// A task's stored state, as Celery names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Returned a value.
    Success,
    /// Failed for good.
    Failure,
    /// Failed and will run again.
    Retry,
    /// Revoked or expired before it ran.
    Revoked,
}

impl State {
    /// Celery's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Success => "SUCCESS",
            State::Failure => "FAILURE",
            State::Retry => "RETRY",
            State::Revoked => "REVOKED",
        }
    }

    /// Whether the state is an error that a chord or a chain propagates.
    pub fn is_error(self) -> bool {
        matches!(self, State::Failure | State::Revoked)
    }
}

/// An exception as Celery stores one: enough for Python to raise
/// `sys.modules[module].<kind>(message)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    /// `exc_module`: `builtins`, `celery.exceptions`, or `wfhost` (which
    /// Python does not import, so it makes a same-named class).
    pub module: String,
    /// `exc_type`.
    pub kind: String,
    /// The one argument.
    pub message: String,
}

/// Exceptions Python's `builtins` has, which a Python task's failure names
/// without a module (`ValueError: bad input`).
const BUILTIN_EXCEPTIONS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BufferError",
    "EOFError",
    "Exception",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "ImportError",
    "IndexError",
    "KeyError",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PermissionError",
    "RecursionError",
    "ReferenceError",
    "RuntimeError",
    "StopIteration",
    "TimeoutError",
    "TypeError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "ValueError",
    "ZeroDivisionError",
];

impl Exception {
    /// An exception of `module.kind` with one message.
    pub fn new(module: &str, kind: &str, message: impl Into<String>) -> Self {
        Exception {
            module: module.into(),
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// Celery's `NotRegistered(name)`.
    pub fn not_registered(task: &str) -> Self {
        Exception::new("celery.exceptions", "NotRegistered", task)
    }

    /// What Python raises for a wfhost failure. A task's own failure
    /// that names a Python exception the way a traceback's last line does
    /// (`ValueError: x`, `shop.errors.OutOfStock: x`) is raised as that
    /// exception; other failures are raised as a class named after their
    /// kind.
    pub fn of_failure(failure: &Failure) -> Self {
        let wfhost = |kind: &str| Exception::new("wfhost", kind, failure.message.clone());
        match failure.kind {
            FailureKind::Fail => {
                python_named(&failure.message).unwrap_or_else(|| wfhost("TaskFailed"))
            }
            FailureKind::RetriesExhausted => Exception::new(
                "celery.exceptions",
                "MaxRetriesExceededError",
                failure.message.clone(),
            ),
            FailureKind::TimeLimit => Exception::new(
                "celery.exceptions",
                "TimeLimitExceeded",
                failure.message.clone(),
            ),
            FailureKind::Cancelled | FailureKind::Expired => Exception::new(
                "celery.exceptions",
                "TaskRevokedError",
                failure.message.clone(),
            ),
            FailureKind::FuelExhausted => wfhost("FuelExhausted"),
            FailureKind::MemoryLimit => wfhost("MemoryLimit"),
            FailureKind::Trap => wfhost("Trap"),
            FailureKind::InvalidOutput => wfhost("InvalidOutput"),
            FailureKind::PluginError => wfhost("PluginError"),
            FailureKind::TimedOut => wfhost("TimedOut"),
        }
    }

    /// The stored form: `{"exc_type", "exc_message": [message], "exc_module"}`.
    pub fn to_json(&self) -> Value {
        json!({"exc_type": self.kind, "exc_message": [self.message], "exc_module": self.module})
    }

    /// Reads the stored form back (from a chord's joined results).
    pub fn from_json(value: &Value) -> Option<Self> {
        let kind = value.get("exc_type")?.as_str()?;
        let module = value
            .get("exc_module")
            .and_then(Value::as_str)
            .unwrap_or("builtins");
        let message = match value.get("exc_message") {
            Some(Value::Array(args)) if args.len() == 1 => text_of(&args[0]),
            Some(Value::Array(args)) => Value::Array(args.clone()).to_string(),
            Some(other) => text_of(other),
            None => String::new(),
        };
        Some(Exception::new(module, kind, message))
    }

    /// `repr()` of the exception as Python prints it: `ValueError('x')`.
    pub fn python_repr(&self) -> String {
        format!("{}({})", self.kind, python_str_repr(&self.message))
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `ValueError: x` → builtins.ValueError(x); `a.b.Error: x` → a.b.Error(x).
fn python_named(message: &str) -> Option<Exception> {
    let (name, rest) = match message.split_once(": ") {
        Some((name, rest)) => (name, rest),
        None => (message, ""),
    };
    let identifier = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !name.split('.').all(identifier) {
        return None;
    }
    match name.rsplit_once('.') {
        None if BUILTIN_EXCEPTIONS.contains(&name) => Some(Exception::new("builtins", name, rest)),
        Some((module, kind)) if kind.starts_with(|c: char| c.is_ascii_uppercase()) => {
            Some(Exception::new(module, kind, rest))
        }
        _ => None,
    }
}

/// Python's `repr()` of what `value` is in Python (`None`, `True`, `'a'`,
/// `[1, 2]`, `{'k': 1}`), as Celery's events show arguments and results.
pub fn python_value_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => python_str_repr(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_value_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => python_map_repr(map),
    }
}

/// Python's `repr()` of the dict `map` is in Python (keyword arguments).
pub fn python_map_repr(map: &serde_json::Map<String, Value>) -> String {
    let items: Vec<String> = map
        .iter()
        .map(|(key, value)| format!("{}: {}", python_str_repr(key), python_value_repr(value)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's `repr()` of a str.
fn python_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// One task's meta, in Celery's key order.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    /// The state.
    pub state: State,
    /// The value, or the exception's stored form.
    pub result: Value,
    /// A readable account of a failure.
    pub traceback: Option<String>,
    /// Ids of the tasks this one sent.
    pub children: &'a [String],
    /// The task's id.
    pub task_id: &'a str,
    /// Its group.
    pub group_id: Option<&'a str>,
    /// Who sent it.
    pub parent_id: Option<&'a str>,
    /// When it ended (ms since the epoch); none for RETRY.
    pub done_ms: Option<u64>,
    /// wfhost's own account: fuel, attempt, failure kind (Celery reads
    /// only the keys it knows).
    pub wfhost: Option<Value>,
}

impl Meta<'_> {
    /// The JSON text Celery's `_get_result_meta` would store.
    pub fn to_text(&self) -> String {
        let children: Vec<Value> = self
            .children
            .iter()
            .map(|id| json!([[id, null], null]))
            .collect();
        let mut text = format!(
            "{{\"status\": {}, \"result\": {}, \"traceback\": {}, \"children\": {}, \"date_done\": {}",
            json!(self.state.as_str()),
            self.result,
            json!(self.traceback),
            Value::Array(children),
            json!(self.done_ms.map(python_iso8601)),
        );
        if let Some(group) = self.group_id {
            text.push_str(&format!(", \"group_id\": {}", json!(group)));
        }
        if let Some(parent) = self.parent_id {
            text.push_str(&format!(", \"parent_id\": {}", json!(parent)));
        }
        text.push_str(&format!(", \"task_id\": {}", json!(self.task_id)));
        if let Some(extra) = &self.wfhost {
            text.push_str(&format!(", \"wfhost\": {extra}"));
        }
        text.push('}');
        text
    }
}

/// The key (and channel) of a task's meta.
pub fn task_key(id: &str) -> String {
    format!("celery-task-meta-{id}")
}

/// The key of a group's state, with a suffix (`.j`, `.s`, …) for a chord's.
pub fn group_key(group: &str, suffix: &str) -> String {
    format!("celery-taskset-meta-{group}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_failures_keep_their_exception() {
        let fail = |m: &str| Exception::of_failure(&Failure::new(FailureKind::Fail, m));
        assert_eq!(
            fail("ValueError: bad"),
            Exception::new("builtins", "ValueError", "bad")
        );
        assert_eq!(
            fail("shop.errors.OutOfStock: sku 1"),
            Exception::new("shop.errors", "OutOfStock", "sku 1")
        );
        assert_eq!(fail("KeyError"), Exception::new("builtins", "KeyError", ""));
        assert_eq!(
            fail("no such sku: 7"),
            Exception::new("wfhost", "TaskFailed", "no such sku: 7")
        );
        assert_eq!(
            fail("os.system: rm"),
            Exception::new("wfhost", "TaskFailed", "os.system: rm")
        );
        let time = Exception::of_failure(&Failure::new(FailureKind::TimeLimit, "late"));
        assert_eq!(time.kind, "TimeLimitExceeded");
    }

    #[test]
    fn values_repr_as_python_prints_them() {
        assert_eq!(
            python_value_repr(&json!([1, "it's", null, true, {"k": [false]}])),
            r#"[1, "it's", None, True, {'k': [False]}]"#
        );
    }

    #[test]
    fn reprs_are_pythons() {
        assert_eq!(
            Exception::new("builtins", "ValueError", "member").python_repr(),
            "ValueError('member')"
        );
        assert_eq!(
            Exception::new("b", "E", "it's").python_repr(),
            "E(\"it's\")"
        );
        assert_eq!(
            Exception::new("b", "E", "a'\"\n").python_repr(),
            "E('a\\'\"\\n')"
        );
    }

    #[test]
    fn meta_is_in_celerys_order() {
        let children = ["c1".to_string()];
        let meta = Meta {
            state: State::Success,
            result: json!(8),
            traceback: None,
            children: &children,
            task_id: "t",
            group_id: None,
            parent_id: Some("p"),
            done_ms: Some(0),
            wfhost: None,
        };
        assert_eq!(
            meta.to_text(),
            "{\"status\": \"SUCCESS\", \"result\": 8, \"traceback\": null, \"children\": [[[\"c1\",null],null]], \
             \"date_done\": \"1970-01-01T00:00:00.000000+00:00\", \"parent_id\": \"p\", \"task_id\": \"t\"}"
        );
        let parsed: Value = serde_json::from_str(&meta.to_text()).unwrap();
        assert_eq!(parsed["status"], "SUCCESS");
    }
}
