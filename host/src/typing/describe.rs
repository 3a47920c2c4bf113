//! Schemas and values in words, for the messages of `validate`, `run` and
//! `serve`: "an integer from 0 to 255", "the string \"two\"".

use serde_json::Value;

/// Words longer than this are cut.
const MOST_CHARS: usize = 120;

/// What `schema` admits, in words.
pub fn schema_text(schema: &Value) -> String {
    crate::text::clipped(&words(schema, 0), MOST_CHARS).into_owned()
}

fn words(schema: &Value, depth: usize) -> String {
    let Value::Object(schema) = schema else {
        return if schema == &Value::Bool(false) {
            "nothing"
        } else {
            "anything"
        }
        .to_string();
    };
    if depth > 3 {
        return "a value".to_string();
    }
    if let Some(Value::Array(options)) = schema.get("anyOf") {
        let mut texts: Vec<String> = options
            .iter()
            .map(|option| words(option, depth + 1))
            .collect();
        texts.dedup();
        return texts.join(" or ");
    }
    if let Some(constant) = schema.get("const") {
        return constant.to_string();
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        let values: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("one of {}", values.join(", "));
    }
    let names: Vec<&str> = match schema.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => return "anything".to_string(),
    };
    let texts: Vec<String> = names
        .iter()
        .map(|name| one_type(name, schema, depth))
        .collect();
    texts.join(" or ")
}

fn one_type(name: &str, schema: &serde_json::Map<String, Value>, depth: usize) -> String {
    match name {
        "integer" => match (schema.get("minimum"), schema.get("maximum")) {
            (Some(min), Some(max)) => format!("an integer from {min} to {max}"),
            (Some(min), None) => format!("an integer of at least {min}"),
            (None, Some(max)) => format!("an integer of at most {max}"),
            (None, None) => "an integer".to_string(),
        },
        "number" => "a number".to_string(),
        "string" => match (schema.get("minLength"), schema.get("maxLength")) {
            (Some(min), Some(max)) if min == max && min == &Value::from(1) => {
                "one character".to_string()
            }
            _ => "a string".to_string(),
        },
        "boolean" => "true or false".to_string(),
        "null" => "null".to_string(),
        "array" => {
            if let Some(Value::Array(items)) = schema.get("prefixItems") {
                let items: Vec<String> = items.iter().map(|item| words(item, depth + 1)).collect();
                format!("a list of {} ({})", items.len(), items.join(", "))
            } else {
                match schema.get("items") {
                    Some(items) if items != &Value::Object(Default::default()) => {
                        format!("a list of {}", plural(&words(items, depth + 1)))
                    }
                    _ => "a list".to_string(),
                }
            }
        }
        "object" => match schema.get("properties").and_then(Value::as_object) {
            Some(properties) if !properties.is_empty() => {
                let names: Vec<&str> = properties.keys().map(String::as_str).take(8).collect();
                let more = if properties.len() > 8 { ", …" } else { "" };
                format!("an object with {}{more}", names.join(", "))
            }
            _ => "an object".to_string(),
        },
        other => other.to_string(),
    }
}

/// "integers" for "an integer": the things a list holds.
fn plural(one: &str) -> String {
    let bare = one
        .strip_prefix("an ")
        .or_else(|| one.strip_prefix("a "))
        .unwrap_or(one);
    match bare.split_once(' ') {
        Some((head, rest)) => format!("{head}s {rest}"),
        None => format!("{bare}s"),
    }
}

/// What `value` is, in words: "the integer 5", "the string \"two\"".
pub fn value_text(value: &Value) -> String {
    let text = match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) if super::fits::is_integral(number) => {
            format!("the integer {number}")
        }
        Value::Number(number) => format!("the number {number}"),
        Value::String(_) => format!("the string {value}"),
        Value::Array(items) => format!("a list of {}", items.len()),
        Value::Object(fields) if fields.is_empty() => "an empty object".to_string(),
        Value::Object(fields) => {
            let names: Vec<&str> = fields.keys().map(String::as_str).take(5).collect();
            format!("an object with {}", names.join(", "))
        }
    };
    crate::text::clipped(&text, MOST_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schemas_and_values_read_as_words() {
        assert_eq!(
            schema_text(&json!({"type": "integer", "minimum": 0, "maximum": 255})),
            "an integer from 0 to 255"
        );
        assert_eq!(
            schema_text(&json!({"type": "array", "items": {"type": "string"}})),
            "a list of strings"
        );
        assert_eq!(
            schema_text(&json!({"anyOf": [{"type": "integer"}, {"type": "null"}]})),
            "an integer or null"
        );
        assert_eq!(schema_text(&json!({})), "anything");
        assert_eq!(value_text(&json!("two")), "the string \"two\"");
        assert_eq!(value_text(&json!(1.5)), "the number 1.5");
        assert_eq!(value_text(&json!([1, 2])), "a list of 2");
    }
}
