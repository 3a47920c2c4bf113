//! Whether what one step returns can be what the next takes: refused only
//! where no value of the one can fit the other (a string where an integer
//! is taken, a group's list of integers where a list of strings is), never
//! where they might meet.

use serde_json::Value;

/// A set of JSON types, one bit each.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Types(u8);

const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ALL: Types = Types(127);

impl Types {
    fn named(name: &str) -> Types {
        Types(match name {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => NUMBER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            // A name not known here is not refused.
            _ => ALL.0,
        })
    }

    fn of_value(value: &Value) -> Types {
        Types(match value {
            Value::Null => NULL,
            Value::Bool(_) => BOOLEAN,
            Value::Number(number) if super::fits::is_integral(number) => INTEGER,
            Value::Number(_) => NUMBER,
            Value::String(_) => STRING,
            Value::Array(_) => ARRAY,
            Value::Object(_) => OBJECT,
        })
    }

    /// Whether a value of one could be of the other: an integer is a
    /// number, and a number may be integral.
    fn meet(self, other: Types) -> bool {
        let widen = |types: Types| {
            if types.0 & (INTEGER | NUMBER) != 0 {
                types.0 | INTEGER | NUMBER
            } else {
                types.0
            }
        };
        widen(self) & widen(other) != 0
    }
}

/// The JSON types a schema admits; all of them where it says none.
fn types(schema: &Value) -> Types {
    let Value::Object(schema) = schema else {
        return if schema == &Value::Bool(false) {
            Types(0)
        } else {
            ALL
        };
    };
    if let Some(Value::Array(options)) = schema.get("anyOf") {
        return Types(options.iter().fold(0, |all, option| all | types(option).0));
    }
    if let Some(constant) = schema.get("const") {
        return Types::of_value(constant);
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Types(
            values
                .iter()
                .fold(0, |all, value| all | Types::of_value(value).0),
        );
    }
    match schema.get("type") {
        Some(Value::String(one)) => Types::named(one),
        Some(Value::Array(names)) => Types(
            names
                .iter()
                .filter_map(Value::as_str)
                .fold(0, |all, name| all | Types::named(name).0),
        ),
        _ => ALL,
    }
}

/// Whether a value of `produced` can never fit `accepted`.
pub fn never_fits(produced: &Value, accepted: &Value) -> bool {
    never(produced, accepted, 0)
}

fn never(produced: &Value, accepted: &Value, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    let made = types(produced);
    let taken = types(accepted);
    if !made.meet(taken) {
        return true;
    }
    // Lists on both sides: a list of known members, each of which can
    // never be an element of the other.
    if made == Types(ARRAY) && taken == Types(ARRAY) {
        let element = match accepted.get("items") {
            Some(element) if accepted.get("prefixItems").is_none() => element,
            _ => return false,
        };
        if let Some(Value::Array(members)) = produced.get("prefixItems") {
            return members
                .iter()
                .any(|member| never(member, element, depth + 1));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_types_that_cannot_meet_are_refused() {
        let integer = json!({"type": "integer", "minimum": 0, "maximum": 255});
        assert!(never_fits(&json!({"type": "string"}), &integer));
        assert!(!never_fits(&json!({"type": "number"}), &integer));
        assert!(!never_fits(&json!({}), &integer));
        assert!(!never_fits(&json!({"type": "string"}), &json!({})));
        assert!(!never_fits(
            &json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            &integer
        ));
        let strings = json!({"type": "array", "items": {"type": "string"}});
        let group_of_integers = json!({"type": "array", "prefixItems": [integer, integer]});
        assert!(never_fits(&group_of_integers, &strings));
        assert!(!never_fits(
            &json!({"type": "array", "items": {"type": "integer"}}),
            &strings
        ));
        assert!(never_fits(&json!({"const": "Retail"}), &integer));
    }
}
