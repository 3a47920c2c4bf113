//! JSON read with every object's keys unique. serde_json's own `Value`
//! keeps the last of repeated keys, silently; a chain file that says
//! `"workflow"` twice is refused instead, at the line and column of the
//! second.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value whose objects had no repeated key.
pub struct Unique(pub Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

/// Reads a key into `map` unless it is there already.
pub fn insert_unique<E: de::Error>(
    map: &mut Map<String, Value>,
    key: String,
    value: Value,
) -> Result<(), E> {
    if map.contains_key(&key) {
        return Err(E::custom(format!(
            "the key `{key}` appears twice in one object"
        )));
    }
    map.insert(key, value);
    Ok(())
}

/// The key under which serde_json's `arbitrary_precision` passes a
/// number's text to a visitor that is not its own (as its `Value` reads it).
const EXACT_NUMBER: &str = "$serde_json::private::Number";

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Unique::deserialize(deserializer).map(|Unique(value)| value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        let Some(first) = access.next_key::<String>()? else {
            return Ok(Value::Object(map));
        };
        if first == EXACT_NUMBER {
            // serde_json hands a number it keeps exactly (a decimal, or an
            // integer beyond 64 bits) as a one-entry map of its text.
            let text: String = access.next_value()?;
            return text.parse().map(Value::Number).map_err(de::Error::custom);
        }
        let Unique(value) = access.next_value()?;
        map.insert(first, value);
        while let Some(key) = access.next_key::<String>()? {
            let Unique(value) = access.next_value()?;
            insert_unique(&mut map, key, value)?;
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_where_it_is_and_values_are_kept() {
        let read: Unique =
            serde_json::from_str(r#"{"a": [1, -2, 2.5, "x", null, true, {"b": {}}]}"#).unwrap();
        assert_eq!(
            read.0,
            serde_json::json!({"a": [1, -2, 2.5, "x", null, true, {"b": {}}]})
        );
        let err = serde_json::from_str::<Unique>("{\"a\": {\"b\": 1,\n \"b\": 2}}")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("the key `b` appears twice"),
            "{err}"
        );
        assert_eq!(err.line(), 2);
    }
}
