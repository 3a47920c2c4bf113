//! Canvases in wfhost's native JSON form: a signature object, `{"chain": …}`,
//! `{"group": …}`, `{"chord": {"header", "body"}}`, or a bare array (a chain).

use serde_json::{Map, Value};
use wfhost_canvas::pause::{Pause, parse_duration, signal_name};
use wfhost_canvas::{Canvas, Chord, Signature, StepOptions};

use super::options::{Callbacks, options};
use crate::json::fields::{self, type_of};
use crate::json::{JsonPath, SpecIssue};

const SIGNATURE_KEYS: &[&str] = &["task", "args", "kwargs", "immutable", "options"];

/// The deepest a canvas may sit in a chain file, in keys and indices from
/// the root. The host stores a canvas in a form about twice as deep, and
/// reads it back with serde_json, which stops at 128 levels: a deeper
/// canvas is refused here, at its place in the user's file.
pub const MAX_DEPTH: usize = 48;

fn not_too_deep(at: &JsonPath) -> Result<(), SpecIssue> {
    if at.depth() > MAX_DEPTH {
        return Err(SpecIssue::new(
            at,
            format!("canvases nest at most {MAX_DEPTH} keys and indices deep"),
        ));
    }
    Ok(())
}

/// Parses the canvas at `at`.
pub fn canvas(value: &Value, at: &JsonPath) -> Result<Canvas, SpecIssue> {
    not_too_deep(at)?;
    match value {
        Value::Array(items) => Ok(Canvas::Chain(list(items, at)?)),
        Value::Object(map) if map.contains_key("subtask_type") => {
            super::celery::canvas(map, value, at)
        }
        Value::Object(map) if map.contains_key("task") => {
            Ok(Canvas::Signature(signature(map, value, at)?))
        }
        Value::Object(map) if map.contains_key("chain") => {
            let chain = Canvas::Chain(members(value, map, "chain", at)?);
            with_callbacks(chain, map.get("options"), at, "chain")
        }
        Value::Object(map) if map.contains_key("group") => {
            let group = Canvas::Group(members(value, map, "group", at)?);
            with_callbacks(group, map.get("options"), at, "group")
        }
        Value::Object(map) if map.contains_key("chord") => {
            fields::object(value, at, "a chord", &["chord", "options"])?;
            let whole = at.clone();
            let at = at.key("chord");
            let chord = fields::object(&map["chord"], &at, "a chord", &["header", "body"])?;
            let header_at = at.key("header");
            let header = chord.get("header").ok_or_else(|| {
                SpecIssue::new(&at, "a chord needs a `header` (a list of canvases)")
            })?;
            let body = chord
                .get("body")
                .ok_or_else(|| SpecIssue::new(&at, "a chord needs a `body` (a canvas)"))?;
            let chord = Canvas::Chord(Chord {
                header: list(fields::array(header, &header_at)?, &header_at)?,
                body: Box::new(canvas(body, &at.key("body"))?),
            });
            with_callbacks(chord, map.get("options"), &whole, "chord")
        }
        Value::Object(map) if map.contains_key("sleep") || map.contains_key("wait") => {
            pause(value, map, at).map(Canvas::Signature)
        }
        Value::Object(_) => Err(SpecIssue::new(
            at,
            "expected a canvas: an object with `task`, `chain`, `group`, `chord`, `sleep` or `wait`, or an array of canvases",
        )),
        other => Err(SpecIssue::new(
            at,
            format!(
                "expected a canvas (an object or an array), found {}",
                type_of(other)
            ),
        )),
    }
}

/// A durable sleep, `{"sleep": DURATION}`, or a wait for a signal,
/// `{"wait": NAME, "timeout": DURATION}`, each with the `options` of any
/// signature: the built-in signature that does it ([`Pause`]).
fn pause(value: &Value, map: &Map<String, Value>, at: &JsonPath) -> Result<Signature, SpecIssue> {
    let duration = |key: &str| {
        let at = at.key(key);
        parse_duration(&map[key]).map_err(|message| SpecIssue::new(&at, message))
    };
    let pause = if map.contains_key("sleep") {
        fields::object(value, at, "a sleep", &["sleep", "options"])?;
        Pause::Sleep {
            seconds: duration("sleep")?,
        }
    } else {
        fields::object(value, at, "a wait", &["wait", "timeout", "options"])?;
        let name_at = at.key("wait");
        let name = fields::string(&map["wait"], &name_at)?;
        Pause::Wait {
            signal: signal_name(name).map_err(|message| SpecIssue::new(&name_at, message))?,
            timeout: match map.get("timeout") {
                None | Some(Value::Null) => None,
                Some(_) => Some(duration("timeout")?),
            },
        }
    };
    let mut signature = pause.signature();
    if let Some(given) = map.get("options") {
        signature.options = options(given, &at.key("options"), Callbacks::Allowed)?;
    }
    Ok(signature)
}

/// The canvases listed under `key` of an object whose only other key may
/// be `options`.
fn members(
    value: &Value,
    map: &Map<String, Value>,
    key: &str,
    at: &JsonPath,
) -> Result<Vec<Canvas>, SpecIssue> {
    fields::object(value, at, &format!("a {key}"), &[key, "options"])?;
    let at = at.key(key);
    list(fields::array(&map[key], &at)?, &at)
}

pub fn list(items: &[Value], at: &JsonPath) -> Result<Vec<Canvas>, SpecIssue> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| canvas(item, &at.index(i)))
        .collect()
}

/// `canvas` with the callbacks that `given` (the options at `at.options`)
/// gives a whole chain, group or chord, applied as Celery applies them
/// (see [`Canvas::link`] and [`Canvas::link_error`]).
pub fn with_callbacks(
    mut canvas: Canvas,
    given: Option<&Value>,
    at: &JsonPath,
    what: &str,
) -> Result<Canvas, SpecIssue> {
    let Some(given) = given else {
        return Ok(canvas);
    };
    let callbacks = whole_callbacks(given, at, what)?;
    for callback in callbacks.link {
        canvas.link(callback);
    }
    for errback in callbacks.link_error {
        canvas.link_error(errback);
    }
    Ok(canvas)
}

/// The callbacks of the options `given` to a whole chain, group or chord
/// at `at`: only `link` and `link_error` apply to a whole, and a group
/// cannot be linked.
pub fn whole_callbacks(given: &Value, at: &JsonPath, what: &str) -> Result<StepOptions, SpecIssue> {
    let at = at.key("options");
    let object = fields::object_of_any(given, &at)?;
    if let Some(key) = object
        .keys()
        .find(|key| !["link", "link_error"].contains(&key.as_str()))
    {
        return Err(SpecIssue::new(
            &at.key(key),
            format!(
                "only `link` and `link_error` apply to a whole {what}; set `{key}` on its signatures"
            ),
        ));
    }
    if what == "group" && object.contains_key("link") {
        // Celery's `group.apply_async(link=…)` refuses it the same way.
        return Err(SpecIssue::new(
            &at.key("link"),
            "a group cannot be linked: use a chord (the group followed by the callback)",
        ));
    }
    options(given, &at, Callbacks::Allowed)
}

/// A task name, which must be `plugin.task`.
pub fn checked_task_name<'a>(task: &'a str, at: &JsonPath) -> Result<&'a str, SpecIssue> {
    crate::names::check(task).map_err(|err| SpecIssue::new(at, format!("a task name {err}")))?;
    match wfhost_canvas::name::split(task) {
        Some(_) => Ok(task),
        None => Err(SpecIssue::new(
            at,
            format!("task `{task}` must be named `plugin.task` (e.g. `math.add`)"),
        )),
    }
}

/// A single signature in either form, as callbacks are given.
pub fn any_signature(value: &Value, at: &JsonPath) -> Result<Signature, SpecIssue> {
    not_too_deep(at)?;
    let map = value.as_object().ok_or_else(|| {
        SpecIssue::new(
            at,
            format!("expected a signature, found {}", type_of(value)),
        )
    })?;
    match canvas(value, at)? {
        Canvas::Signature(signature) => Ok(signature),
        _ if map.contains_key("subtask_type") || !map.contains_key("task") => Err(SpecIssue::new(
            at,
            "expected a single signature, not a chain, group or chord",
        )),
        _ => signature(map, value, at),
    }
}

/// Parses a signature object (`map` is `value` as an object).
pub fn signature(
    map: &Map<String, Value>,
    value: &Value,
    at: &JsonPath,
) -> Result<Signature, SpecIssue> {
    fields::object(value, at, "a signature", SIGNATURE_KEYS)?;
    signature_fields(map, at)
}

/// The fields both forms of a signature share: `task`, `args`, `kwargs`,
/// `immutable` and `options`. The caller has checked for unknown keys.
pub fn signature_fields(map: &Map<String, Value>, at: &JsonPath) -> Result<Signature, SpecIssue> {
    let task_at = at.key("task");
    let task = map
        .get("task")
        .ok_or_else(|| SpecIssue::new(at, "a signature needs a `task`"))
        .and_then(|task| fields::string(task, &task_at))?;
    let mut signature = Signature::new(checked_task_name(task, &task_at)?);
    if let Some(args) = map.get("args") {
        signature.args = fields::array(args, &at.key("args"))?.clone();
    }
    if let Some(kwargs) = map.get("kwargs") {
        let kwargs_at = at.key("kwargs");
        signature.kwargs = fields::object_of_any(kwargs, &kwargs_at)?.clone();
    }
    if let Some(immutable) = map.get("immutable") {
        signature.immutable = fields::boolean(immutable, &at.key("immutable"))?;
    }
    if let Some(opts) = map.get("options") {
        let opts_at = at.key("options");
        signature.options = match opts.as_object() {
            // Celery copies a signature's `immutable` into its options when
            // it makes an errback immutable (`chord.link_error`); as in
            // Celery, the signature's own flag decides, so the copy is only
            // checked.
            Some(object) if object.contains_key("immutable") => {
                fields::boolean(&object["immutable"], &opts_at.key("immutable"))?;
                let mut rest = object.clone();
                rest.remove("immutable");
                options(&Value::Object(rest), &opts_at, Callbacks::Allowed)?
            }
            _ => options(opts, &opts_at, Callbacks::Allowed)?,
        };
    }
    Ok(signature)
}
