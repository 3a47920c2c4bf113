//! The chain-file readers under generated input: native and Celery
//! documents built from the keys the readers know, bytes of a valid file
//! flipped at random. Whatever comes in, a reader answers with a workflow
//! or an issue; it never panics, and what it accepts is stored, read back
//! and planned.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::options::STEP_OPTIONS;
use super::{ParseError, parse};
use crate::plan;

/// Keys the readers look for, and a few they do not know.
fn keys() -> Vec<&'static str> {
    let canvas = [
        "task",
        "args",
        "kwargs",
        "immutable",
        "options",
        "chain",
        "group",
        "chord",
    ];
    let celery = ["header", "body", "subtask_type", "tasks", "queue"];
    let other = ["path", "sha256", "x"];
    [
        &canvas[..],
        &celery,
        &other,
        super::TOP_LEVEL_KEYS,
        STEP_OPTIONS,
    ]
    .concat()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(keys()).prop_map(str::to_string),
        1 => "[a-z.]{0,6}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![any::<f64>(), -1e20..1e20f64]
            .prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        prop_oneof![
            proptest::sample::select(&["m.a", "m.b", "chain", "group", "chord", ""][..])
                .prop_map(Value::from),
            "[a-z.]{0,8}".prop_map(Value::from),
        ],
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(8, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Canvases of the native form, mostly well formed: what gets past the
/// reader's first checks to its deeper ones, and to storing and planning.
fn canvas() -> impl Strategy<Value = Value> {
    let option = (proptest::sample::select(STEP_OPTIONS), scalar());
    let signature = (
        proptest::sample::select(&["m.a", "m.b", "x.y.z"][..]),
        proptest::collection::vec(scalar(), 0..3),
        proptest::collection::vec(option, 0..3),
        any::<bool>(),
    )
        .prop_map(|(task, args, options, immutable)| {
            let options: Map<String, Value> = options
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            json!({"task": task, "args": args, "options": options, "immutable": immutable})
        });
    signature.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| json!({"chain": items})),
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| json!({"group": items})),
            (proptest::collection::vec(inner.clone(), 0..3), inner)
                .prop_map(|(header, body)| json!({"chord": {"header": header, "body": body}})),
        ]
    })
}

/// What a reader must do with `text`: accept it (and then store, read back
/// and plan it) or say what is wrong.
fn read(text: &str) {
    match parse(text, std::path::Path::new("/")) {
        Ok(spec) => {
            for (index, canvas) in spec.workflow.canvases().enumerate() {
                let canvas = canvas.expect("an accepted element reads back");
                plan::plan_element(&canvas, index);
            }
        }
        Err(ParseError::Syntax(_) | ParseError::Invalid(_)) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn generated_workflows_are_read_or_refused(workflow in value(), defaults in value()) {
        let plugins = json!({"m": "/m.wasm"});
        read(&json!({"plugins": plugins, "workflow": workflow}).to_string());
        read(&json!({"plugins": plugins, "defaults": defaults, "workflow": [workflow]}).to_string());
        read(&workflow.to_string());
    }

    #[test]
    fn generated_canvases_are_read_or_refused(workflow in canvas()) {
        read(&json!({"plugins": {"m": "/m.wasm"}, "workflow": workflow}).to_string());
    }

    #[test]
    fn generated_celery_canvases_are_read_or_refused(
        kind in proptest::sample::select(vec![
            Value::Null, json!("chain"), json!("group"), json!("chord"), json!("chunks"),
        ]),
        kwargs in value(),
        options in value(),
        tasks in proptest::collection::vec(value(), 0..4),
    ) {
        let mut kwargs = kwargs;
        if let Value::Object(map) = &mut kwargs {
            map.insert("tasks".into(), Value::Array(tasks.clone()));
        }
        let signature = json!({
            "task": "m.a", "args": [], "kwargs": kwargs, "options": options,
            "subtask_type": kind, "immutable": false,
        });
        read(&json!({"plugins": {"m": "/m.wasm"}, "workflow": signature}).to_string());
    }

    #[test]
    fn a_valid_file_with_bytes_flipped_is_read_or_refused(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let valid = json!({
            "id": "x", "plugins": {"m": {"path": "/m.wasm", "sha256": "ab".repeat(32)}},
            "defaults": {"fuel": null, "max_retries": 2, "retry_backoff": 0.5},
            "workflow": [
                {"task": "m.a", "args": [1, 2], "options": {"link": {"task": "m.b"}}},
                {"group": [{"task": "m.a"}, [{"task": "m.b"}, {"task": "m.c"}]]},
                {"chord": {"header": [{"task": "m.a"}], "body": {"task": "m.b"}}},
                {"subtask_type": "chain", "task": "celery.chain", "args": [], "options": {},
                 "immutable": false, "kwargs": {"tasks": [{"task": "m.a", "args": [], "kwargs": {},
                 "options": {}, "subtask_type": null, "immutable": false}]}},
            ],
        })
        .to_string();
        let mut bytes = valid.into_bytes();
        for (at, byte) in flips {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        read(&String::from_utf8_lossy(&bytes));
    }
}
