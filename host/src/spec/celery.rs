//! Celery's own JSON form: what `json.dumps()` gives for a Celery signature,
//! chain, group or chord. A workflow written with Celery runs unchanged.
//!
//! ```json
//! {"task": "celery.chain", "args": [], "kwargs": {"tasks": [ … ]},
//!  "options": {}, "subtask_type": "chain", "immutable": false}
//! ```

use serde_json::{Map, Value};
use wfhost_canvas::{CHUNKS, Canvas, Chord, MAP, STARMAP};

use super::canvas::{any_signature, list, signature_fields, with_callbacks};
use crate::json::fields::{self, type_of};
use crate::json::{JsonPath, SpecIssue};

/// The keys of a serialized Celery signature.
const CELERY_KEYS: &[&str] = &[
    "task",
    "args",
    "kwargs",
    "options",
    "subtask_type",
    "immutable",
    "chord_size",
];

/// Parses a Celery canvas (`map` is `value` as an object).
pub fn canvas(map: &Map<String, Value>, value: &Value, at: &JsonPath) -> Result<Canvas, SpecIssue> {
    fields::object(value, at, "a Celery signature", CELERY_KEYS)?;
    if let Some(size) = map.get("chord_size").filter(|size| !size.is_null()) {
        // Celery fills it in while it runs a chord; a canvas to run has none.
        return Err(SpecIssue::new(
            &at.key("chord_size"),
            format!("expected null, found {}", type_of(size)),
        ));
    }
    let kind_at = at.key("subtask_type");
    let kind = match map.get("subtask_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(other) => {
            return Err(SpecIssue::new(
                &kind_at,
                format!("expected null or a canvas type, found {}", type_of(other)),
            ));
        }
    };
    let options = map.get("options");
    match kind {
        None => match map.get("task").and_then(Value::as_str) {
            Some(task @ (MAP | STARMAP | CHUNKS)) => {
                with_callbacks(mapped(task, map, at)?, options, at, "map")
            }
            _ => Ok(Canvas::Signature(signature_fields(map, at)?)),
        },
        Some("chain") => {
            not_immutable(map, at, "chain")?;
            let chain = Canvas::Chain(members(map, at, "tasks")?);
            with_callbacks(chain, options, at, "chain")
        }
        Some("group") => {
            not_immutable(map, at, "group")?;
            let group = Canvas::Group(members(map, at, "tasks")?);
            with_callbacks(group, options, at, "group")
        }
        Some("chord") => {
            not_immutable(map, at, "chord")?;
            with_callbacks(chord(map, at)?, options, at, "chord")
        }
        Some(other) => Err(SpecIssue::new(
            &kind_at,
            format!(
                "Celery's `{other}` canvas is not supported by wfhost (chain, group and chord are)"
            ),
        )),
    }
}

/// Celery's `task.map(it)`, `task.starmap(it)` and `task.chunks(it, n)`:
/// one Celery task that calls `task` for each item of `it` (with the item
/// as its one argument, or spread as its arguments), in order, and gives
/// the list of results; `chunks` splits `it` into parts of `n`, each such
/// a task, and gives the list of their lists. As in Celery, the task's own
/// arguments and options are not used, and the previous step's result is
/// not passed (they are immutable). Each call is a step of its own here.
fn mapped(task: &str, map: &Map<String, Value>, at: &JsonPath) -> Result<Canvas, SpecIssue> {
    let kwargs_at = at.key("kwargs");
    let kwargs = fields::object(
        map.get("kwargs").unwrap_or(&Value::Null),
        &kwargs_at,
        &format!("the kwargs of `{task}`"),
        &["task", "it", "n"],
    )?;
    let required = |key: &str| {
        let value = kwargs
            .get(key)
            .ok_or_else(|| SpecIssue::new(&kwargs_at, format!("missing key `{key}`")))?;
        Ok::<_, SpecIssue>((value, kwargs_at.key(key)))
    };
    let (task_value, mapped_at) = required("task")?;
    let mapped = any_signature(task_value, &mapped_at)?;
    let (it_value, it_at) = required("it")?;
    let items = fields::array(it_value, &it_at)?;
    if task == MAP {
        return Ok(mapped.map(items.iter().cloned()));
    }
    let calls = items
        .iter()
        .enumerate()
        .map(|(index, item)| Ok(fields::array(item, &it_at.index(index))?.clone()))
        .collect::<Result<Vec<_>, SpecIssue>>()?;
    if task == STARMAP {
        return Ok(mapped.starmap(calls));
    }
    let (n_value, n_at) = required("n")?;
    let n = fields::count(n_value, &n_at)?;
    let size = usize::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| SpecIssue::new(&n_at, "expected a chunk size of at least 1"))?;
    Ok(mapped.chunks(calls, size))
}

/// An immutable chain, group or chord would ignore the previous result as
/// a whole; wfhost has no such thing, so it is refused rather than dropped.
fn not_immutable(map: &Map<String, Value>, at: &JsonPath, what: &str) -> Result<(), SpecIssue> {
    if map.get("immutable").and_then(Value::as_bool) == Some(true) {
        return Err(SpecIssue::new(
            &at.key("immutable"),
            format!(
                "an immutable Celery {what} is not supported by wfhost; make its first signature immutable"
            ),
        ));
    }
    Ok(())
}

/// The canvases listed under `kwargs.<key>`.
fn members(map: &Map<String, Value>, at: &JsonPath, key: &str) -> Result<Vec<Canvas>, SpecIssue> {
    let kwargs_at = at.key("kwargs");
    let kwargs = map
        .get("kwargs")
        .ok_or_else(|| SpecIssue::new(at, format!("a Celery chain or group needs `kwargs.{key}`")))
        .and_then(|kwargs| fields::object_of_any(kwargs, &kwargs_at))?;
    let items_at = kwargs_at.key(key);
    let items = kwargs
        .get(key)
        .ok_or_else(|| SpecIssue::new(&kwargs_at, format!("missing key `{key}`")))?;
    list(fields::array(items, &items_at)?, &items_at)
}

/// `kwargs: {"header": [...] or a group, "body": ..., "kwargs": {}}`.
fn chord(map: &Map<String, Value>, at: &JsonPath) -> Result<Canvas, SpecIssue> {
    let kwargs_at = at.key("kwargs");
    let kwargs_value = map.get("kwargs").ok_or_else(|| {
        SpecIssue::new(at, "a Celery chord needs `kwargs.header` and `kwargs.body`")
    })?;
    let kwargs = fields::object(
        kwargs_value,
        &kwargs_at,
        "the chord's kwargs",
        &["header", "body", "kwargs"],
    )?;
    if let Some(extra) = kwargs.get("kwargs") {
        let extra_at = kwargs_at.key("kwargs");
        if !fields::object_of_any(extra, &extra_at)?.is_empty() {
            return Err(SpecIssue::new(
                &extra_at,
                "keyword arguments for a whole Celery chord body are not supported by wfhost; set them on the body",
            ));
        }
    }
    let header_at = kwargs_at.key("header");
    let header = match kwargs.get("header") {
        Some(Value::Array(items)) => list(items, &header_at)?,
        // Some Celery versions serialize the header as a group signature.
        Some(group @ Value::Object(_)) => match super::canvas::canvas(group, &header_at)? {
            Canvas::Group(members) => members,
            other => vec![other],
        },
        Some(other) => {
            return Err(SpecIssue::new(
                &header_at,
                format!(
                    "expected a list of signatures or a group, found {}",
                    type_of(other)
                ),
            ));
        }
        None => return Err(SpecIssue::new(&kwargs_at, "missing key `header`")),
    };
    let body = kwargs
        .get("body")
        .ok_or_else(|| SpecIssue::new(&kwargs_at, "missing key `body`"))?;
    Ok(Canvas::Chord(Chord {
        header,
        body: Box::new(super::canvas::canvas(body, &kwargs_at.key("body"))?),
    }))
}
