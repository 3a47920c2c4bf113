//! What a task takes and returns, as JSON Schema, learned from the types'
//! own serde implementations: a probe deserializer answers each request a
//! type makes of it (an `i64`, a struct with these fields, a sequence of
//! something) with a value, and writes down what was asked. So a schema
//! says what the parameter reads — its integer range, its fields and which
//! it needs, its enum's variants — renames and defaults included, and no
//! type needs anything beyond the `Deserialize` it already has.
//!
//! What the probe cannot learn is left open (`{}`, any value): a type that
//! reads "anything" (`serde_json::Value`, untagged enums), a type that
//! refuses every value the probe offers (a string that must parse as a
//! date), or a part beyond the probe's depth or number of runs. An open
//! schema is never a guess: the host checks only what a schema states.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_json::{Map, Value, json};

/// Types nest at most this deep before the probe stops (a recursive type
/// would nest forever).
const MAX_DEPTH: usize = 24;
/// The most times one type is probed: enum variants and left-out fields
/// each take a run.
const MAX_RUNS: usize = 256;

/// The JSON Schema of what `T` deserializes from, or `{}` where the probe
/// learns nothing.
pub fn schema_of<T: DeserializeOwned>() -> Value {
    let Some(base) = probe::<T>(&Plan::default()) else {
        return json!({});
    };
    let mut schema = base.schema;
    let mut runs = 1;
    // Every combination of enum variants, depth first, each run merged in.
    let mut pending = next_plans(&Plan::default(), &base.enums);
    let mut explored = vec![(Plan::default(), base.fields)];
    while let Some(plan) = pending.pop() {
        if runs >= MAX_RUNS {
            break;
        }
        runs += 1;
        if let Some(found) = probe::<T>(&plan) {
            merge(&mut schema, found.schema);
            pending.extend(next_plans(&plan, &found.enums));
            explored.push((plan, found.fields));
        }
    }
    // A field is required when leaving it out alone fails the type.
    let mut optional = BTreeSet::new();
    let mut decided = BTreeSet::new();
    for (plan, fields) in explored {
        for (occurrence, field) in fields.into_iter().enumerate() {
            if decided.contains(&field) {
                continue;
            }
            if runs >= MAX_RUNS {
                break;
            }
            runs += 1;
            let omitting = Plan {
                omit: Some(occurrence),
                ..plan.clone()
            };
            if probe::<T>(&omitting).is_some() {
                optional.insert(field.clone());
            }
            decided.insert(field);
        }
    }
    finish(&mut schema, "", &decided, &optional);
    schema
}

/// `{"params": [...], "returns": ...}`: what the `describe` export gives
/// for one task.
#[doc(hidden)]
pub fn task_schema(params: Vec<Value>, returns: Value) -> Value {
    json!({"params": params, "returns": returns})
}

/// A task's result type, for the code `#[task]` writes: a type that
/// deserializes gives its schema ([`KnownReturns`]), any other (a
/// replacement canvas, a type that only serializes) is left open
/// ([`OpenReturns`]). Method resolution picks the first that applies:
/// `(&Returns::<T>::new()).returns_schema()`.
#[doc(hidden)]
pub struct Returns<T>(std::marker::PhantomData<T>);

impl<T> Returns<T> {
    /// The result type `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Returns(std::marker::PhantomData)
    }
}

/// The schema of a result type that deserializes.
#[doc(hidden)]
pub trait KnownReturns {
    /// Its schema.
    fn returns_schema(&self) -> Value;
}

impl<T: DeserializeOwned> KnownReturns for Returns<T> {
    fn returns_schema(&self) -> Value {
        schema_of::<T>()
    }
}

/// The schema of any other result type: open.
#[doc(hidden)]
pub trait OpenReturns {
    /// `{}`.
    fn returns_schema(&self) -> Value;
}

impl<T> OpenReturns for &Returns<T> {
    fn returns_schema(&self) -> Value {
        json!({})
    }
}

/// The choices of one run: which variant each enum met takes (by the
/// order they are met; the first where none is given), and which struct
/// field, by the order fields are met, is left out.
#[derive(Debug, Clone, Default)]
struct Plan {
    variants: Vec<usize>,
    omit: Option<usize>,
}

/// The runs after `plan`: for each enum met past the choices `plan`
/// made, each of its other variants.
fn next_plans(plan: &Plan, enums: &[usize]) -> Vec<Plan> {
    let mut plans = Vec::new();
    for (at, &count) in enums.iter().enumerate().skip(plan.variants.len()) {
        for variant in 1..count {
            let mut variants: Vec<usize> = plan.variants.clone();
            variants.resize(at, 0);
            variants.push(variant);
            plans.push(Plan {
                variants,
                omit: None,
            });
        }
    }
    plans
}

/// What one run learned.
struct Found {
    schema: Value,
    /// How many variants each enum met has, in the order met.
    enums: Vec<usize>,
    /// Where each struct field met is (a pointer into `schema` to its
    /// struct, and its name), in the order met.
    fields: Vec<(String, String)>,
}

/// One run: `None` when the type refused what the probe offered.
fn probe<T: DeserializeOwned>(plan: &Plan) -> Option<Found> {
    let run = Rc::new(RefCell::new(Run {
        plan: plan.clone(),
        enums: Vec::new(),
        fields: 0,
        field_places: Vec::new(),
    }));
    let slot = Slot::default();
    let probe = Probe {
        run: run.clone(),
        slot: slot.clone(),
        depth: 0,
        at: String::new(),
    };
    T::deserialize(probe).ok()?;
    let run = run.borrow();
    Some(Found {
        schema: slot.take(),
        enums: run.enums.clone(),
        fields: run.field_places.clone(),
    })
}

/// What a run keeps across the probes it makes.
struct Run {
    plan: Plan,
    enums: Vec<usize>,
    fields: usize,
    field_places: Vec<(String, String)>,
}

/// Where a probe writes the schema it learned.
#[derive(Clone, Default)]
struct Slot(Rc<RefCell<Option<Value>>>);

impl Slot {
    fn put(&self, schema: Value) {
        *self.0.borrow_mut() = Some(schema);
    }

    fn take(&self) -> Value {
        self.0.borrow_mut().take().unwrap_or_else(|| json!({}))
    }
}

/// The deserializer that offers values and writes down what was asked.
struct Probe {
    run: Rc<RefCell<Run>>,
    slot: Slot,
    depth: usize,
    /// A JSON pointer to this schema within the whole.
    at: String,
}

impl Probe {
    /// A probe of a part of this one, at `step` (pointer segments, names
    /// escaped) below it.
    fn child(&self, slot: &Slot, step: &str) -> Result<Probe, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error("too deep".into()));
        }
        Ok(Probe {
            run: self.run.clone(),
            slot: slot.clone(),
            depth: self.depth + 1,
            at: format!("{}/{step}", self.at),
        })
    }

    fn integer(&self, min: &str, max: &str) -> Value {
        let bound = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        json!({"type": "integer", "minimum": bound(min), "maximum": bound(max)})
    }
}

/// The probe's own error: a type refused what it was offered.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error(message.to_string())
    }
}

macro_rules! integer {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let schema = self.integer(&<$ty>::MIN.to_string(), &<$ty>::MAX.to_string());
            self.slot.put(schema);
            visitor.$visit(1)
        }
    };
}

impl<'de> de::Deserializer<'de> for Probe {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot.put(json!({}));
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot.put(json!({"type": "boolean"}));
        visitor.visit_bool(false)
    }

    integer!(deserialize_i8, visit_i8, i8);
    integer!(deserialize_i16, visit_i16, i16);
    integer!(deserialize_i32, visit_i32, i32);
    integer!(deserialize_i64, visit_i64, i64);
    integer!(deserialize_i128, visit_i128, i128);
    integer!(deserialize_u8, visit_u8, u8);
    integer!(deserialize_u16, visit_u16, u16);
    integer!(deserialize_u32, visit_u32, u32);
    integer!(deserialize_u64, visit_u64, u64);
    integer!(deserialize_u128, visit_u128, u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot.put(json!({"type": "number"}));
        visitor.visit_f32(1.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot.put(json!({"type": "number"}));
        visitor.visit_f64(1.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot
            .put(json!({"type": "string", "minLength": 1, "maxLength": 1}));
        visitor.visit_char('a')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot.put(json!({"type": "string"}));
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // serde_json reads bytes from a string or a list of numbers.
        self.slot.put(json!({}));
        visitor.visit_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let inner = Slot::default();
        let value = visitor.visit_some(self.child(&inner, "anyOf/0")?)?;
        self.slot
            .put(json!({"anyOf": [inner.take(), {"type": "null"}]}));
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.slot.put(json!({"type": "null"}));
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let item = Slot::default();
        let value = visitor.visit_seq(Items {
            probes: vec![self.child(&item, "items")?],
        })?;
        self.slot
            .put(json!({"type": "array", "items": item.take()}));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let slots: Vec<Slot> = (0..len).map(|_| Slot::default()).collect();
        let probes = slots
            .iter()
            .enumerate()
            .map(|(index, slot)| self.child(slot, &format!("prefixItems/{index}")))
            .collect::<Result<Vec<_>, _>>()?;
        let value = visitor.visit_seq(Items { probes })?;
        let items: Vec<Value> = slots.iter().map(Slot::take).collect();
        self.slot.put(json!({
            "type": "array", "prefixItems": items, "minItems": len, "maxItems": len,
        }));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let key = Slot::default();
        let entry = Slot::default();
        let value = visitor.visit_map(Entry {
            key: Some(self.child(&key, "propertyNames")?),
            value: Some(self.child(&entry, "additionalProperties")?),
        })?;
        self.slot.put(json!({
            "type": "object", "additionalProperties": entry.take(),
        }));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let omit = {
            let mut run = self.run.borrow_mut();
            let first = run.fields;
            run.fields += fields.len();
            for field in fields {
                run.field_places
                    .push((self.at.clone(), (*field).to_string()));
            }
            run.plan
                .omit
                .and_then(|omit| omit.checked_sub(first))
                .filter(|omit| *omit < fields.len())
        };
        let given: Vec<(&'static str, Slot)> = fields
            .iter()
            .enumerate()
            .filter(|(index, _)| Some(*index) != omit)
            .map(|(_, field)| (*field, Slot::default()))
            .collect();
        let probes = given
            .iter()
            .map(|(field, slot)| {
                Ok((
                    *field,
                    self.child(slot, &format!("properties/{}", escape(field)))?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let value = visitor.visit_map(Fields {
            fields: probes.into_iter().rev().collect(),
            next: None,
        })?;
        let properties: Map<String, Value> = given
            .iter()
            .map(|(field, slot)| (field.to_string(), slot.take()))
            .collect();
        self.slot
            .put(json!({"type": "object", "properties": properties}));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let chosen = {
            let mut run = self.run.borrow_mut();
            let met = run.enums.len();
            run.enums.push(variants.len());
            run.plan.variants.get(met).copied().unwrap_or(0)
        };
        let Some(name) = variants.get(chosen) else {
            return Err(Error("no such variant".into()));
        };
        let content = Slot::default();
        let value = visitor.visit_enum(Variant {
            name,
            probe: self.child(&content, &format!("x-variants/{}", escape(name)))?,
        })?;
        // Kept by name while runs are merged; `finish` writes `oneOf`.
        let mut variants_found = Map::new();
        variants_found.insert(name.to_string(), content.take());
        self.slot
            .put(json!({"x-variants": variants_found, "x-count": variants.len()}));
        Ok(value)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
}

/// The elements of a sequence or tuple: one probe each.
struct Items {
    probes: Vec<Probe>,
}

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.probes.is_empty() {
            return Ok(None);
        }
        let probe = self.probes.remove(0);
        seed.deserialize(probe).map(Some)
    }
}

/// One entry of a map.
struct Entry {
    key: Option<Probe>,
    value: Option<Probe>,
}

impl<'de> MapAccess<'de> for Entry {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.key.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let probe = self.value.take().ok_or_else(|| Error("no value".into()))?;
        seed.deserialize(probe)
    }
}

/// A struct's fields, each named and probed (in reverse, popped).
struct Fields {
    fields: Vec<(&'static str, Probe)>,
    next: Option<Probe>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((field, probe)) = self.fields.pop() else {
            return Ok(None);
        };
        self.next = Some(probe);
        let name: StrDeserializer<Error> = field.into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let probe = self.next.take().ok_or_else(|| Error("no value".into()))?;
        seed.deserialize(probe)
    }
}

/// The variant a run chose, and what its content reads.
struct Variant {
    name: &'static str,
    probe: Probe,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = Probe;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Probe), Error> {
        let name: BorrowedStrDeserializer<Error> = BorrowedStrDeserializer::new(self.name);
        Ok((seed.deserialize(name)?, self.probe))
    }
}

impl<'de> VariantAccess<'de> for Probe {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        self.slot.put(json!({"type": "null"}));
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

/// `name` as a segment of a JSON pointer.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Puts what another run learned into `into`: the same shape, save the
/// variants each chose.
fn merge(into: &mut Value, other: Value) {
    match (into, other) {
        (Value::Object(into), Value::Object(other)) => {
            for (key, value) in other {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(into), Value::Array(other)) => {
            for (existing, value) in into.iter_mut().zip(other) {
                merge(existing, value);
            }
        }
        _ => {}
    }
}

/// Writes each struct's `required` (fields decided and not optional) and
/// each enum's `anyOf` in Serde's external tagging: a unit variant is its
/// name, any other `{"Name": content}`; an enum with variants no run
/// could read is left open beside them (`{}`).
fn finish(
    schema: &mut Value,
    at: &str,
    decided: &BTreeSet<(String, String)>,
    optional: &BTreeSet<(String, String)>,
) {
    let Value::Object(map) = schema else { return };
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties" | "x-variants", Value::Object(children)) => {
                for (name, child) in children.iter_mut() {
                    let pointer = format!("{at}/{key}/{}", escape(name));
                    finish(child, &pointer, decided, optional);
                }
            }
            ("prefixItems", Value::Array(items)) => {
                for (index, child) in items.iter_mut().enumerate() {
                    finish(
                        child,
                        &format!("{at}/prefixItems/{index}"),
                        decided,
                        optional,
                    );
                }
            }
            ("anyOf", Value::Array(items)) => {
                for (index, child) in items.iter_mut().enumerate() {
                    finish(child, &format!("{at}/anyOf/{index}"), decided, optional);
                }
            }
            (key, child) => finish(child, &format!("{at}/{key}"), decided, optional),
        }
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        let required: Vec<Value> = properties
            .keys()
            .filter(|name| {
                let field = (at.to_string(), (*name).clone());
                decided.contains(&field) && !optional.contains(&field)
            })
            .map(|name| Value::String(name.clone()))
            .collect();
        if !required.is_empty() {
            map.insert("required".into(), Value::Array(required));
        }
    }
    let count = map.remove("x-count").and_then(|count| count.as_u64());
    if let Some(Value::Object(variants)) = map.remove("x-variants") {
        let unread = count.is_some_and(|count| count > variants.len() as u64);
        let mut any_of: Vec<Value> = variants
            .into_iter()
            .map(|(name, content)| {
                if content == json!({"type": "null"}) {
                    json!({"const": name})
                } else {
                    json!({
                        "type": "object",
                        "properties": {name.clone(): content},
                        "required": [name],
                        "additionalProperties": false,
                    })
                }
            })
            .collect();
        if unread {
            any_of.push(json!({}));
        }
        map.insert("anyOf".into(), Value::Array(any_of));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: u32,
        #[serde(rename = "amountCents")]
        cents: i64,
        note: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
        kind: Kind,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        Retail,
        Wholesale { buyer: String },
        Gift(Box<Order>),
    }

    #[test]
    fn scalars_carry_their_range() {
        assert_eq!(
            schema_of::<u8>(),
            json!({"type": "integer", "minimum": 0, "maximum": 255})
        );
        assert_eq!(
            schema_of::<i128>()["minimum"].to_string(),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(schema_of::<f64>(), json!({"type": "number"}));
        assert_eq!(schema_of::<String>(), json!({"type": "string"}));
        assert_eq!(schema_of::<Value>(), json!({}));
        assert_eq!(
            schema_of::<Option<bool>>(),
            json!({"anyOf": [{"type": "boolean"}, {"type": "null"}]})
        );
        assert_eq!(
            schema_of::<Vec<(u8, String)>>(),
            json!({"type": "array", "items": {
                "type": "array", "minItems": 2, "maxItems": 2,
                "prefixItems": [{"type": "integer", "minimum": 0, "maximum": 255}, {"type": "string"}],
            }})
        );
        assert_eq!(
            schema_of::<BTreeMap<String, f64>>(),
            json!({"type": "object", "additionalProperties": {"type": "number"}})
        );
    }

    #[test]
    fn structs_name_their_fields_and_which_are_required() {
        let schema = schema_of::<Order>();
        let properties = &schema["properties"];
        assert_eq!(properties["id"]["maximum"], u32::MAX);
        assert_eq!(properties["amountCents"]["type"], "integer");
        assert_eq!(properties["tags"]["items"]["type"], "string");
        assert_eq!(
            schema["required"],
            json!(["amountCents", "id", "kind"]),
            "{schema}"
        );
        // The enum's three variants, the recursive one cut off where the
        // probe stops.
        let variants = properties["kind"]["anyOf"].as_array().unwrap();
        assert!(variants.contains(&json!({"const": "Retail"})), "{schema}");
        assert!(
            variants
                .iter()
                .any(|variant| variant["properties"]["Wholesale"]["required"] == json!(["buyer"])),
            "{schema}"
        );
        assert!(
            variants
                .iter()
                .any(|variant| variant["required"] == json!(["Gift"])),
            "{schema}"
        );
    }

    #[test]
    fn a_type_that_refuses_every_offer_is_left_open() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Strict(#[serde(deserialize_with = "refuse")] u8);
        fn refuse<'de, D: serde::Deserializer<'de>>(_: D) -> Result<u8, D::Error> {
            Err(de::Error::custom("never"))
        }
        assert_eq!(schema_of::<Strict>(), json!({}));
    }
}
