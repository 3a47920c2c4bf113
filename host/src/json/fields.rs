//! Typed reads of JSON values that report what was expected, and where.

use serde_json::{Map, Value};

use super::{JsonPath, SpecIssue};

/// A short description of a JSON value's type, for error messages.
pub fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What was expected at `at` and what was found: a number is shown (a
/// number out of range is the usual mistake), anything else by its type.
pub fn expected(at: &JsonPath, what: &str, value: &Value) -> SpecIssue {
    let found = match value {
        Value::Number(number) => format!("{} {number}", type_of(value)),
        other => type_of(other).to_string(),
    };
    SpecIssue::new(at, format!("expected {what}, found {found}"))
}

/// The object at `at`, after checking that it has no key outside `allowed`.
pub fn object<'a>(
    value: &'a Value,
    at: &JsonPath,
    what: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, SpecIssue> {
    let Value::Object(map) = value else {
        return Err(expected(at, what, value));
    };
    if let Some(unknown) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(unknown_key(at, unknown, allowed));
    }
    Ok(map)
}

/// The issue of a key `unknown` in the object at `at`, which allows only
/// `allowed`.
pub fn unknown_key(at: &JsonPath, unknown: &str, allowed: &[&str]) -> SpecIssue {
    SpecIssue::new(
        &at.key(unknown),
        format!(
            "unknown key `{}` (expected one of: {})",
            crate::text::clipped(unknown, 64),
            allowed.join(", ")
        ),
    )
}

pub fn string<'a>(value: &'a Value, at: &JsonPath) -> Result<&'a str, SpecIssue> {
    value
        .as_str()
        .ok_or_else(|| expected(at, "a string", value))
}

pub fn boolean(value: &Value, at: &JsonPath) -> Result<bool, SpecIssue> {
    value
        .as_bool()
        .ok_or_else(|| expected(at, "true or false", value))
}

pub fn array<'a>(value: &'a Value, at: &JsonPath) -> Result<&'a Vec<Value>, SpecIssue> {
    value
        .as_array()
        .ok_or_else(|| expected(at, "an array", value))
}

/// The most seconds any duration of a chain file may be (a year): bounded
/// so that no deadline computed from one can overflow the clock.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A number of seconds from 0 to [`MAX_SECONDS`].
pub fn seconds(value: &Value, at: &JsonPath) -> Result<f64, SpecIssue> {
    match value.as_f64() {
        Some(n) if (0.0..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(expected(
            at,
            "a number of seconds from 0 to 31536000 (a year)",
            value,
        )),
    }
}

/// A whole number that must not be negative.
pub fn count(value: &Value, at: &JsonPath) -> Result<u64, SpecIssue> {
    value
        .as_u64()
        .ok_or_else(|| expected(at, "a whole number of at least 0", value))
}

/// An object with any keys (keyword arguments, say).
pub fn object_of_any<'a>(
    value: &'a Value,
    at: &JsonPath,
) -> Result<&'a Map<String, Value>, SpecIssue> {
    value
        .as_object()
        .ok_or_else(|| expected(at, "an object", value))
}
