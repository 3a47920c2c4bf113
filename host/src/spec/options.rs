//! Step options, in `defaults` or a signature's `options`.

use serde_json::Value;
use wfhost_canvas::{Expires, Limit, RetryBackoff, Signature, StepOptions};

use super::canvas::any_signature;
use super::deferred;
use crate::json::fields::{self, count, seconds};
use crate::json::{JsonPath, SpecIssue};

/// Options every step may set.
pub(super) const STEP_OPTIONS: &[&str] = &[
    "countdown",
    "eta",
    "expires",
    "max_retries",
    "default_retry_delay",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "time_limit",
    "fuel",
    "memory_mb",
    "retry_on_limit",
    "link",
    "link_error",
];

/// Options Celery knows that wfhost does not implement: refused by name,
/// never silently dropped.
const CELERY_ONLY_OPTIONS: &[&str] = &[
    "queue",
    "routing_key",
    "exchange",
    "priority",
    "soft_time_limit",
    "task_id",
    "serializer",
    "compression",
    "headers",
    "shadow",
    "ignore_result",
    "reply_to",
    "retry",
    "retry_policy",
    "group_id",
    "group_index",
    "chord",
    "root_id",
    "parent_id",
    "add_to_parent",
    "stamped_headers",
    "stamps",
    "autoretry_for",
    "rate_limit",
    "acks_late",
];

/// Whether callbacks may be given: in a signature's options, not in defaults.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Callbacks {
    Allowed,
    Refused,
}

/// Parses an options object.
pub fn options(
    value: &Value,
    at: &JsonPath,
    callbacks: Callbacks,
) -> Result<StepOptions, SpecIssue> {
    let map = fields::object_of_any(value, at)?;
    // Options wfhost does not know are all reported, with every other such
    // option of the document, but stop nothing here.
    for key in map
        .keys()
        .filter(|key| !STEP_OPTIONS.contains(&key.as_str()))
    {
        let issue = if CELERY_ONLY_OPTIONS.contains(&key.as_str()) {
            SpecIssue::new(
                &at.key(key),
                format!("the Celery option `{key}` is not supported by wfhost"),
            )
        } else {
            fields::unknown_key(at, key, STEP_OPTIONS)
        };
        deferred::defer(issue)?;
    }
    let mut options = StepOptions::default();
    for (key, value) in map
        .iter()
        .filter(|(key, _)| STEP_OPTIONS.contains(&key.as_str()))
    {
        let at = at.key(key);
        match key.as_str() {
            "countdown" => options.countdown = Some(seconds(value, &at)?),
            "eta" => options.eta = Some(moment(value, &at)?.to_string()),
            "expires" => {
                options.expires = Some(match value {
                    Value::String(_) => Expires::At(moment(value, &at)?.to_string()),
                    _ => Expires::After(seconds(value, &at).map_err(|_| {
                        SpecIssue::new(
                            &at,
                            "expected seconds (at most a year) or a moment in ISO 8601",
                        )
                    })?),
                });
            }
            "max_retries" => {
                let n = count(value, &at)?;
                options.max_retries = Some(u32::try_from(n).map_err(|_| {
                    SpecIssue::new(&at, format!("{n} retries is more than wfhost allows"))
                })?);
            }
            "default_retry_delay" => options.default_retry_delay = Some(seconds(value, &at)?),
            "retry_backoff" => options.retry_backoff = Some(backoff(value, &at)?),
            "retry_backoff_max" => options.retry_backoff_max = Some(seconds(value, &at)?),
            "retry_jitter" => options.retry_jitter = Some(fields::boolean(value, &at)?),
            "retry_on_limit" => options.retry_on_limit = Some(fields::boolean(value, &at)?),
            "time_limit" => options.time_limit = Some(limit(value, &at, positive_seconds)?),
            "fuel" => options.fuel = Some(limit(value, &at, positive_count)?),
            "memory_mb" => options.memory_mb = Some(limit(value, &at, positive_count)?),
            "link" | "link_error" => {
                if callbacks == Callbacks::Refused {
                    return Err(SpecIssue::new(
                        &at,
                        format!("`{key}` belongs to one step: set it in a signature's options"),
                    ));
                }
                let list = callback_list(value, &at)?;
                if key == "link" {
                    options.link = list;
                } else {
                    options.link_error = list;
                }
            }
            _ => return Err(SpecIssue::new(&at, format!("unknown option `{key}`"))),
        }
    }
    if options.eta.is_some() && options.countdown.is_some() {
        return Err(SpecIssue::new(
            &at.key("eta"),
            "`eta` and `countdown` both say when the step starts: give one",
        ));
    }
    Ok(options)
}

/// A moment in ISO 8601 (`2026-11-28T15:00:00Z`, `…+01:00`, or no offset
/// for UTC), as Celery writes `eta` and `expires`.
fn moment<'v>(value: &'v Value, at: &JsonPath) -> Result<&'v str, SpecIssue> {
    let text = fields::string(value, at)?;
    match crate::records::parse_iso8601(text) {
        Some(_) => Ok(text),
        None => Err(SpecIssue::new(
            at,
            format!("`{text}` is not a moment in ISO 8601 (such as 2026-11-28T15:00:00Z)"),
        )),
    }
}

fn backoff(value: &Value, at: &JsonPath) -> Result<RetryBackoff, SpecIssue> {
    match value {
        Value::Bool(enabled) => Ok(RetryBackoff::Enabled(*enabled)),
        _ => seconds(value, at).map(RetryBackoff::Factor).map_err(|_| {
            SpecIssue::new(
                at,
                "expected true, false or a backoff factor in seconds (at most a year)",
            )
        }),
    }
}

fn limit<T>(
    value: &Value,
    at: &JsonPath,
    parse: impl Fn(&Value, &JsonPath) -> Result<T, SpecIssue>,
) -> Result<Limit<T>, SpecIssue> {
    match value {
        Value::Null => Ok(Limit::Unlimited),
        _ => parse(value, at).map(Limit::Value),
    }
}

fn positive_seconds(value: &Value, at: &JsonPath) -> Result<f64, SpecIssue> {
    match value.as_f64() {
        Some(n) if n > 0.0 && n <= fields::MAX_SECONDS => Ok(n),
        _ => Err(fields::expected(
            at,
            "a number of seconds above 0 and at most 31536000 (a year), or null for no limit",
            value,
        )),
    }
}

fn positive_count(value: &Value, at: &JsonPath) -> Result<u64, SpecIssue> {
    match value.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(fields::expected(
            at,
            "a whole number above 0 (or null for no limit)",
            value,
        )),
    }
}

/// A callback is one signature or a list of them, as in Celery.
fn callback_list(value: &Value, at: &JsonPath) -> Result<Vec<Signature>, SpecIssue> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| callback(item, &at.index(i)))
            .collect(),
        _ => Ok(vec![callback(value, at)?]),
    }
}

fn callback(value: &Value, at: &JsonPath) -> Result<Signature, SpecIssue> {
    any_signature(value, at)
}
