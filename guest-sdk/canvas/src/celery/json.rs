//! Celery's JSON of a signature: read leniently (see the module above),
//! written as Celery's client writes it.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{
    CHAIN, CHORD, CeleryChord, CelerySignature, Chunks, GROUP, MAX_DEPTH, Shape, Transport,
};
use crate::CHUNKS;

/// Seconds: finite, not negative, under 1e9 (some thirty years).
pub(super) fn seconds(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
}

/// One signature or a list of them, as `link` and `link_error` may be.
pub(super) fn signature_list(value: Value, depth: usize) -> Vec<CelerySignature> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| CelerySignature::read(item, depth + 1))
            .collect(),
        one @ Value::Object(_) => CelerySignature::read(one, depth + 1).into_iter().collect(),
        _ => Vec::new(),
    }
}

pub(super) fn string(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// Takes `key` out of `map`, or null.
fn take(map: &mut Map<String, Value>, key: &str) -> Value {
    map.remove(key).unwrap_or(Value::Null)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl CelerySignature {
    /// Reads a signature leniently (see the module's documentation); none
    /// when `value` is not one: not an object, a task without a name, a
    /// chord without a body.
    pub fn from_json(value: Value) -> Option<Self> {
        Self::read(value, 0)
    }

    pub(super) fn read(value: Value, depth: usize) -> Option<Self> {
        if depth > MAX_DEPTH {
            return None;
        }
        let Value::Object(mut map) = value else {
            return None;
        };
        let task = string(take(&mut map, "task"));
        let subtask_type = string(take(&mut map, "subtask_type"));
        let kind = subtask_type.as_deref().or(match task.as_deref() {
            Some(GROUP) => Some("group"),
            Some(CHORD) => Some("chord"),
            Some(CHAIN) => Some("chain"),
            Some(CHUNKS) => Some("chunks"),
            _ => None,
        });
        let mut kwargs = object(take(&mut map, "kwargs"));
        let args = match take(&mut map, "args") {
            Value::Array(args) => args,
            _ => Vec::new(),
        };
        let members = |kwargs: &mut Map<String, Value>| match take(kwargs, "tasks") {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|item| Self::read(item, depth + 1))
                .collect(),
            _ => Vec::new(),
        };
        let shape = match kind {
            Some("chain") => Shape::Chain(members(&mut kwargs)),
            Some("group") => Shape::Group(members(&mut kwargs)),
            Some("chord") => {
                let body = Self::read(take(&mut kwargs, "body"), depth + 1)?;
                let (header, header_options) = match take(&mut kwargs, "header") {
                    Value::Array(items) => (
                        items
                            .into_iter()
                            .filter_map(|item| Self::read(item, depth + 1))
                            .collect(),
                        Transport::default(),
                    ),
                    header => match Self::read(header, depth + 1) {
                        Some(CelerySignature {
                            shape: Shape::Group(members),
                            options,
                            ..
                        }) => (members, options),
                        Some(other) => (vec![other], Transport::default()),
                        None => (Vec::new(), Transport::default()),
                    },
                };
                Shape::Chord(Box::new(CeleryChord {
                    header,
                    header_options,
                    body,
                    kwargs: object(take(&mut kwargs, "kwargs")),
                }))
            }
            Some("chunks") if Self::chunks_of(&kwargs).is_some() => {
                Shape::Chunks(Self::chunks_of(&kwargs)?)
            }
            // Chunks that cannot be split are sent as Celery's
            // `celery.chunks` task, which fails when it runs.
            other => Shape::Task {
                task: task.filter(|task| !task.is_empty())?,
                args,
                kwargs,
                subtask_type: other.map(str::to_string).filter(|_| subtask_type.is_some()),
            },
        };
        let options = Transport::read(object(take(&mut map, "options")), depth);
        let immutable = take(&mut map, "immutable").as_bool().unwrap_or(false);
        Some(CelerySignature {
            shape,
            options,
            immutable,
            extra: map,
        })
    }

    fn chunks_of(kwargs: &Map<String, Value>) -> Option<Chunks> {
        let task = kwargs.get("task")?;
        let named = match task {
            Value::String(name) => !name.is_empty(),
            signature => signature.get("task").and_then(Value::as_str).is_some(),
        };
        let n = usize::try_from(kwargs.get("n")?.as_u64()?)
            .ok()
            .filter(|n| *n > 0)?;
        Some(Chunks {
            task: task.clone(),
            it: kwargs.get("it")?.as_array()?.clone(),
            n,
        })
        .filter(|_| named)
    }

    /// The signature as Celery's JSON.
    pub fn to_json(&self) -> Value {
        // Serializing JSON values and numbers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for CelerySignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// A group as Celery writes a chord's header.
        struct Header<'a>(&'a CeleryChord);
        impl Serialize for Header<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("task", GROUP)?;
                map.serialize_entry("args", &[(); 0])?;
                map.serialize_entry("kwargs", &Tasks(&self.0.header))?;
                map.serialize_entry("options", &self.0.header_options)?;
                map.serialize_entry("subtask_type", "group")?;
                map.serialize_entry("immutable", &false)?;
                map.end()
            }
        }
        struct Tasks<'a>(&'a [CelerySignature]);
        impl Serialize for Tasks<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("tasks", self.0)?;
                map.end()
            }
        }
        struct ChordKwargs<'a>(&'a CeleryChord);
        impl Serialize for ChordKwargs<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("header", &Header(self.0))?;
                map.serialize_entry("body", &self.0.body)?;
                map.serialize_entry("kwargs", &self.0.kwargs)?;
                map.end()
            }
        }
        struct ChunksKwargs<'a>(&'a Chunks);
        impl Serialize for ChunksKwargs<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("task", &self.0.task)?;
                map.serialize_entry("it", &self.0.it)?;
                map.serialize_entry("n", &self.0.n)?;
                map.end()
            }
        }

        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("task", self.name())?;
        match &self.shape {
            Shape::Task {
                args,
                kwargs,
                subtask_type,
                ..
            } => {
                map.serialize_entry("args", args)?;
                map.serialize_entry("kwargs", kwargs)?;
                map.serialize_entry("subtask_type", subtask_type)?;
            }
            Shape::Chain(steps) | Shape::Group(steps) => {
                map.serialize_entry("args", &[(); 0])?;
                map.serialize_entry("kwargs", &Tasks(steps))?;
                let kind = if matches!(self.shape, Shape::Chain(_)) {
                    "chain"
                } else {
                    "group"
                };
                map.serialize_entry("subtask_type", kind)?;
            }
            Shape::Chord(chord) => {
                map.serialize_entry("args", &[(); 0])?;
                map.serialize_entry("kwargs", &ChordKwargs(chord))?;
                map.serialize_entry("subtask_type", "chord")?;
            }
            Shape::Chunks(chunks) => {
                map.serialize_entry("args", &[(); 0])?;
                map.serialize_entry("kwargs", &ChunksKwargs(chunks))?;
                map.serialize_entry("subtask_type", "chunks")?;
            }
        }
        map.serialize_entry("options", &self.options)?;
        map.serialize_entry("immutable", &self.immutable)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CelerySignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        CelerySignature::from_json(value).ok_or_else(|| D::Error::custom("not a Celery signature"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A signature as Celery 5.7's client serializes one (captured).
    fn captured_chord() -> Value {
        json!({"task": "celery.chord", "args": [], "kwargs": {
            "header": {"task": "celery.group", "args": [], "kwargs": {"tasks": [
                {"task": "math.add", "args": [1, 2], "kwargs": {}, "options": {"task_id": "a"},
                 "subtask_type": null, "immutable": false, "chord_size": null}]},
                "options": {"task_id": "g"}, "subtask_type": "group", "immutable": false},
            "body": {"task": "math.xsum", "args": [], "kwargs": {},
                     "options": {"task_id": "b", "reply_to": "r-1"},
                     "subtask_type": null, "immutable": false, "chord_size": null},
            "kwargs": {}},
            "options": {"link_error": {"task": "math.oops", "args": [], "kwargs": {},
                        "options": {}, "subtask_type": null, "immutable": true}},
            "subtask_type": "chord", "immutable": false})
    }

    #[test]
    fn a_celery_signature_reads_typed_and_writes_back_what_it_read() {
        let read = CelerySignature::from_json(captured_chord()).unwrap();
        let Shape::Chord(chord) = &read.shape else {
            panic!("a chord: {read:?}")
        };
        assert_eq!(chord.header_options.task_id.as_deref(), Some("g"));
        assert_eq!(chord.header[0].options.task_id.as_deref(), Some("a"));
        assert_eq!(chord.body.options.other["reply_to"], "r-1");
        assert_eq!(read.options.link_error.len(), 1, "one errback, not a list");
        assert!(read.options.link_error[0].immutable);
        let mut expected = captured_chord();
        // One errback is written as a list of one, as Celery reads either.
        expected["options"]["link_error"] = json!([expected["options"]["link_error"].clone()]);
        assert_eq!(read.to_json(), expected);
    }

    #[test]
    fn what_is_not_a_signature_reads_as_absent() {
        for bad in [
            json!(3),
            json!({"args": [1]}),
            json!({"task": ""}),
            json!({"task": "celery.chord", "kwargs": {"header": []}}),
        ] {
            assert_eq!(CelerySignature::from_json(bad.clone()), None, "{bad}");
        }
        let lenient = CelerySignature::from_json(json!({"task": "m.a", "args": "x",
            "options": {"countdown": "soon", "priority": 300, "fuel": 7}, "immutable": 1}))
        .unwrap();
        assert_eq!(lenient.options.countdown, None);
        assert_eq!(lenient.options.priority, Some(255));
        assert_eq!(lenient.options.other["fuel"], 7);
        assert!(!lenient.immutable);
        // Chunks that cannot be split stay Celery's task, which fails.
        let chunks = CelerySignature::from_json(json!({"task": "celery.chunks",
            "subtask_type": "chunks", "kwargs": {"task": "m.a", "it": [[1]], "n": 0}}))
        .unwrap();
        assert_eq!(chunks.name(), CHUNKS);
        assert!(matches!(chunks.shape, Shape::Task { .. }));
    }
}
