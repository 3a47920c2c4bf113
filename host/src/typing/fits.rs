//! Whether a JSON value fits a task's JSON Schema, and if not, where and
//! why. The keywords are those the guest SDKs write (`type`, integer
//! bounds, `properties`/`required`/`additionalProperties`, `items`/
//! `prefixItems` with their lengths, `anyOf`, `const`, `enum`, string
//! lengths); any other keyword is not checked, so a schema never refuses
//! more than it states.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::describe::{schema_text, value_text};

/// Nesting checked at most: a value deeper than this is taken as fitting.
const MAX_DEPTH: usize = 64;

/// Why a value does not fit: where in it, what was expected, what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// Where, below the value (`[2].qty`); empty for the value itself.
    pub at: String,
    /// What the schema asks for there, in words.
    pub expected: String,
    /// What is there, in words.
    pub found: String,
}

/// The first place `value` does not fit `schema`, if any.
pub fn misfit(value: &Value, schema: &Value) -> Option<Misfit> {
    check(value, schema, &mut String::new(), 0)
}

fn check(value: &Value, schema: &Value, at: &mut String, depth: usize) -> Option<Misfit> {
    let Value::Object(schema) = schema else {
        // `true` admits everything, `false` nothing.
        return (schema == &Value::Bool(false)).then(|| miss(at, "nothing", value));
    };
    if depth >= MAX_DEPTH {
        return None;
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let mut deepest: Option<Misfit> = None;
        for option in options {
            match check(value, option, &mut at.clone(), depth + 1) {
                None => return None,
                // The option that got furthest says the most.
                Some(found) if deepest.as_ref().is_none_or(|d| found.at.len() > d.at.len()) => {
                    deepest = Some(found);
                }
                Some(_) => {}
            }
        }
        return Some(match deepest {
            Some(found) if !found.at.is_empty() && found.at != *at => found,
            _ => miss(at, &schema_text(&Value::Object(schema.clone())), value),
        });
    }
    if let Some(constant) = schema.get("const")
        && !same(value, constant)
    {
        return Some(miss(
            at,
            &schema_text(&Value::Object(schema.clone())),
            value,
        ));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.iter().any(|allowed| same(value, allowed))
    {
        return Some(miss(
            at,
            &schema_text(&Value::Object(schema.clone())),
            value,
        ));
    }
    if let Some(types) = schema.get("type")
        && !type_admits(types, value)
    {
        return Some(miss(
            at,
            &schema_text(&Value::Object(schema.clone())),
            value,
        ));
    }
    match value {
        Value::Number(number) => bounds(number, schema)
            .then(|| miss(at, &schema_text(&Value::Object(schema.clone())), value)),
        Value::String(text) => {
            let length = text.chars().count() as u64;
            let below = limit(schema, "minLength").is_some_and(|min| length < min);
            let above = limit(schema, "maxLength").is_some_and(|max| length > max);
            (below || above).then(|| miss(at, &schema_text(&Value::Object(schema.clone())), value))
        }
        Value::Array(items) => array(items, schema, at, depth),
        Value::Object(fields) => object(fields, schema, at, depth),
        Value::Null | Value::Bool(_) => None,
    }
}

fn miss(at: &str, expected: &str, value: &Value) -> Misfit {
    Misfit {
        at: at.to_string(),
        expected: expected.to_string(),
        found: value_text(value),
    }
}

fn limit(schema: &Map<String, Value>, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn array(
    items: &[Value],
    schema: &Map<String, Value>,
    at: &mut String,
    depth: usize,
) -> Option<Misfit> {
    let count = items.len() as u64;
    if limit(schema, "minItems").is_some_and(|min| count < min)
        || limit(schema, "maxItems").is_some_and(|max| count > max)
    {
        let expected = schema_text(&Value::Object(schema.clone()));
        return Some(miss(at, &expected, &Value::Array(items.to_vec())));
    }
    let prefix = schema
        .get("prefixItems")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (index, item) in items.iter().enumerate() {
        let item_schema = match prefix.get(index) {
            Some(schema) => schema,
            None => match schema.get("items") {
                Some(schema) => schema,
                None => continue,
            },
        };
        let mark = at.len();
        at.push_str(&format!("[{index}]"));
        if let Some(found) = check(item, item_schema, at, depth + 1) {
            return Some(found);
        }
        at.truncate(mark);
    }
    None
}

fn object(
    fields: &Map<String, Value>,
    schema: &Map<String, Value>,
    at: &mut String,
    depth: usize,
) -> Option<Misfit> {
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !fields.contains_key(required) {
            let mark = at.len();
            push_key(at, required);
            let expected = properties
                .and_then(|properties| properties.get(required))
                .map_or_else(|| "a value".to_string(), schema_text);
            let found = Misfit {
                at: at.clone(),
                expected,
                found: "nothing (a required field)".to_string(),
            };
            at.truncate(mark);
            return Some(found);
        }
    }
    for (key, value) in fields {
        let field_schema = match properties.and_then(|properties| properties.get(key)) {
            Some(schema) => schema,
            None => match schema.get("additionalProperties") {
                Some(schema) => schema,
                None => continue,
            },
        };
        let mark = at.len();
        push_key(at, key);
        if let Some(found) = check(value, field_schema, at, depth + 1) {
            return Some(found);
        }
        at.truncate(mark);
    }
    None
}

/// `.key`, or `["key"]` where the key is not a plain name.
fn push_key(at: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        at.push('.');
        at.push_str(key);
    } else {
        at.push_str(&format!("[{}]", Value::String(key.to_string())));
    }
}

/// Whether `value` is of one of `types` (a name or a list of names).
fn type_admits(types: &Value, value: &Value) -> bool {
    let admits = |name: &str| match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => value.as_number().is_some_and(is_integral),
        // A name this reader does not know is not refused.
        _ => true,
    };
    match types {
        Value::String(name) => admits(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(admits),
        _ => true,
    }
}

/// Whether `number` has no fractional part (`2`, `2.0` and `2e3` do).
pub(super) fn is_integral(number: &Number) -> bool {
    if number.is_i64() || number.is_u64() {
        return true;
    }
    let text = number.to_string();
    let Some((mantissa, exponent)) = split_number(&text) else {
        return false;
    };
    let (_, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let fraction = fraction.trim_end_matches('0');
    exponent >= 0 && (fraction.len() as i64) <= exponent
}

/// A number's mantissa and exponent: `1.5e+3` gives `("1.5", 3)`.
fn split_number(text: &str) -> Option<(&str, i64)> {
    match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => Some((mantissa, exponent.parse().ok()?)),
        None => Some((text, 0)),
    }
}

/// Whether `number` is outside the schema's `minimum` or `maximum`.
fn bounds(number: &Number, schema: &Map<String, Value>) -> bool {
    let outside = |key: &str, wrong: Ordering| {
        schema
            .get(key)
            .and_then(Value::as_number)
            .is_some_and(|bound| compare(number, bound) == Some(wrong))
    };
    outside("minimum", Ordering::Less) || outside("maximum", Ordering::Greater)
}

/// Two JSON numbers compared exactly where both are integers (of any
/// size), else as doubles.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i128(), b.as_i128()) {
        return Some(a.cmp(&b));
    }
    match (integer_digits(a), integer_digits(b)) {
        (Some((a_negative, a)), Some((b_negative, b))) => Some(match (a_negative, b_negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (negative, _) => {
                let magnitude = a.len().cmp(&b.len()).then_with(|| a.cmp(&b));
                if negative {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
        }),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// An integer's sign and digits without leading zeros, where it is
/// written as a plain integer.
fn integer_digits(number: &Number) -> Option<(bool, String)> {
    let text = number.to_string();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text.as_str()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    Some((negative && !digits.is_empty(), digits.to_string()))
}

/// JSON Schema's equality: numbers by value, the rest as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => compare(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn exact(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn integers_are_checked_against_their_range_exactly() {
        let i64_schema = json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX});
        assert_eq!(misfit(&json!(5), &i64_schema), None);
        assert_eq!(misfit(&exact("2.0"), &i64_schema), None);
        let too_large = misfit(&exact("9223372036854775808"), &i64_schema).unwrap();
        assert_eq!(too_large.found, "the integer 9223372036854775808");
        assert!(
            too_large.expected.contains("9223372036854775807"),
            "{too_large:?}"
        );
        assert!(misfit(&exact("-9223372036854775809"), &i64_schema).is_some());
        assert!(misfit(&exact("1.5"), &i64_schema).is_some());
        assert!(misfit(&json!("two"), &i64_schema).is_some());
        let u8_schema = json!({"type": "integer", "minimum": 0, "maximum": 255});
        assert!(misfit(&json!(-1), &u8_schema).is_some());
        assert_eq!(misfit(&exact("1e2"), &u8_schema), None);
    }

    #[test]
    fn a_misfit_deep_inside_is_named_where_it_is() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "lines": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"qty": {"type": "integer"}},
                    "required": ["qty"],
                }},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            "required": ["id"],
        });
        assert_eq!(
            misfit(
                &json!({"id": 1, "lines": [{"qty": 2}], "note": null}),
                &schema
            ),
            None
        );
        let found = misfit(
            &json!({"id": 1, "lines": [{"qty": 2}, {"qty": "3"}]}),
            &schema,
        )
        .unwrap();
        assert_eq!(found.at, ".lines[1].qty");
        assert_eq!(found.found, "the string \"3\"");
        let found = misfit(&json!({"lines": []}), &schema).unwrap();
        assert_eq!(found.at, ".id");
        let found = misfit(&json!({"id": 1, "note": 5}), &schema).unwrap();
        assert_eq!(found.at, ".note");
        assert_eq!(found.expected, "a string or null");
    }

    #[test]
    fn an_open_schema_or_an_unknown_keyword_refuses_nothing() {
        for value in [json!(1), json!("x"), json!([1, {"a": null}]), json!(null)] {
            assert_eq!(misfit(&value, &json!({})), None);
            assert_eq!(misfit(&value, &json!(true)), None);
            assert_eq!(misfit(&value, &json!({"pattern": "^z$"})), None);
        }
        let enum_schema =
            json!({"anyOf": [{"const": "Retail"}, {"type": "object", "required": ["Gift"]}, {}]});
        assert_eq!(misfit(&json!("Other"), &enum_schema), None);
    }
}
