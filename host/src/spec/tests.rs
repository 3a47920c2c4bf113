use std::path::Path;

use serde_json::json;
use wfhost_canvas::{Canvas, Limit, sig};

use super::*;

fn parse_ok(value: serde_json::Value) -> WorkflowSpec {
    match parse(&value.to_string(), Path::new("/flows")) {
        Ok(spec) => spec,
        Err(err) => panic!("expected a valid spec, got {err:?}"),
    }
}

fn issue(value: serde_json::Value) -> SpecIssue {
    match parse(&value.to_string(), Path::new("/flows")) {
        Err(ParseError::Invalid(issue)) => issue,
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

#[test]
fn native_forms_parse_into_the_canvas_model() {
    let spec = parse_ok(json!({
        "id": "order-1",
        "plugins": {"math": "plugins/math.wasm", "img": {"path": "/abs/img.wasm", "sha256": "AB".repeat(32)}},
        "defaults": {"fuel": 1000, "memory_mb": null, "retry_backoff": true},
        "workflow": [
            {"task": "math.add", "args": [2, 2]},
            {"chain": [{"task": "math.mul", "args": [3], "immutable": true}]},
        ],
    }));
    assert_eq!(spec.id.as_deref(), Some("order-1"));
    assert_eq!(
        spec.plugins["math"].path,
        Path::new("/flows/plugins/math.wasm")
    );
    assert_eq!(spec.plugins["img"].path, Path::new("/abs/img.wasm"));
    assert_eq!(
        spec.plugins["img"].sha256.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    assert_eq!(spec.defaults.fuel, Some(Limit::Value(1000)));
    assert_eq!(spec.defaults.memory_mb, Some(Limit::Unlimited));
    let expected = Canvas::Chain(vec![
        sig("math.add").args((2, 2)).into(),
        Canvas::Chain(vec![sig("math.mul").args((3,)).si().into()]),
    ]);
    assert_eq!(spec.workflow.to_canvas().unwrap(), expected);
}

#[test]
fn the_builder_output_parses_back_to_the_same_canvas() {
    let canvas = sig("m.a").args((1, "x")).kwarg("k", json!({"n": [1]}))
        | wfhost_canvas::chord([sig("m.b"), sig("m.c").si()], sig("m.d"));
    assert_eq!(parse_canvas(&canvas.to_json()), Ok(canvas));
}

#[test]
fn unknown_keys_are_named_by_path() {
    let found = issue(json!({
        "plugins": {},
        "workflow": {"chain": [{"task": "m.a"}, {"task": "m.b", "options": {"fuell": 1}}]},
    }));
    assert_eq!(found.at.to_string(), "$.workflow.chain[1].options.fuell");
    assert!(
        found.message.contains("unknown key `fuell`"),
        "{}",
        found.message
    );

    let found = issue(json!({"plugins": {}, "workflow": [], "colour": "red"}));
    assert_eq!(found.at.to_string(), "$.colour");
}

#[test]
fn wrong_types_and_missing_keys_are_reported_where_they_are() {
    let found = issue(json!({"plugins": {}, "workflow": [{"task": "m.a", "args": 3}]}));
    assert_eq!(found.at.to_string(), "$.workflow[0].args");
    assert_eq!(found.message, "expected an array, found a number 3");

    let found = issue(json!({"workflow": []}));
    assert!(found.message.contains("missing key `plugins`"));

    let found = issue(json!({"plugins": {}, "workflow": [{"task": "add"}]}));
    assert_eq!(found.at.to_string(), "$.workflow[0].task");
    assert!(found.message.contains("plugin.task"));

    let found =
        issue(json!({"plugins": {"m": {"path": "m.wasm", "sha256": "xyz"}}, "workflow": []}));
    assert_eq!(found.at.to_string(), "$.plugins.m.sha256");
}

#[test]
fn callbacks_belong_to_signatures_not_defaults() {
    let found =
        issue(json!({"plugins": {}, "defaults": {"link": {"task": "m.a"}}, "workflow": []}));
    assert_eq!(found.at.to_string(), "$.defaults.link");
    let spec = parse_ok(json!({
        "plugins": {},
        "workflow": {"task": "m.a", "options": {"link_error": [{"task": "m.e"}]}},
    }));
    let Canvas::Signature(signature) = spec.workflow.to_canvas().unwrap() else {
        panic!("not a signature")
    };
    assert_eq!(signature.options.link_error, vec![sig("m.e")]);
}

/// Celery's `chord.link_error` copies `immutable` into an errback's
/// options; the copy is checked, and the signature's own flag decides.
#[test]
fn an_immutable_copied_into_options_is_read_as_celery_writes_it() {
    for (form, signature) in [
        (
            "native",
            json!({"task": "m.add", "args": [0, 0], "immutable": true, "options": {"immutable": true}}),
        ),
        (
            "celery",
            json!({"task": "m.add", "args": [0, 0], "kwargs": {}, "options": {"immutable": true},
                          "subtask_type": null, "immutable": true}),
        ),
    ] {
        let spec = parse_ok(json!({"plugins": {"m": "m.wasm"}, "workflow": [signature]}));
        let Canvas::Signature(parsed) = spec.workflow.to_canvas().unwrap() else {
            panic!("{form}: not a signature");
        };
        assert!(parsed.immutable, "{form}");
        assert!(parsed.options.is_empty(), "{form}: {:?}", parsed.options);
    }
    let wrong = issue(json!({"plugins": {}, "workflow": [
        {"task": "m.add", "options": {"immutable": "yes"}}]}));
    assert_eq!(wrong.at.to_string(), "$.workflow[0].options.immutable");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    match parse(
        "{\n  \"plugins\": {},\n  \"workflow\": [,]\n}",
        Path::new("."),
    ) {
        Err(ParseError::Syntax(err)) => assert_eq!((err.line(), err.column()), (3, 16)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn a_workflow_read_as_a_stream_names_the_element_at_fault() {
    let mut steps: Vec<serde_json::Value> = (0..5000)
        .map(|i| json!({"task": "math.add", "args": [i]}))
        .collect();
    steps[4321] = json!({"task": "math.add", "args": 7});
    let found = issue(json!({"plugins": {}, "workflow": steps}));
    assert_eq!(found.at.to_string(), "$.workflow[4321].args");
    let found = issue(json!({"plugins": {}, "workflow": [], "colour": 1}));
    assert_eq!(found.at.to_string(), "$.colour");
    let found = issue(json!([1]));
    assert_eq!(found.message, "expected a workflow object, found an array");
    let found = issue(json!({"plugins": {}}));
    assert!(
        found.message.starts_with("missing key `workflow`"),
        "{found}"
    );
    let repeated = r#"{"plugins": {}, "workflow": [], "workflow": []}"#;
    assert!(matches!(
        parse(repeated, Path::new("/")),
        Err(ParseError::Invalid(issue)) if issue.message.contains("repeated")
    ));
}

#[test]
fn celery_json_parses_into_the_same_canvas_as_the_native_form() {
    let celery_sig = |task: &str, args: serde_json::Value, immutable: bool| json!({"task": task, "args": args, "kwargs": {}, "options": {}, "subtask_type": null, "immutable": immutable});
    let celery = json!({
        "task": "celery.chain", "args": [], "options": {}, "subtask_type": "chain", "immutable": false,
        "kwargs": {"tasks": [
            celery_sig("math.add", json!([1, 1]), false),
            {"task": "celery.chord", "args": [], "options": {}, "subtask_type": "chord", "immutable": false,
             "kwargs": {"kwargs": {},
                        "header": {"task": "celery.group", "args": [], "options": {}, "subtask_type": "group",
                                   "immutable": false, "kwargs": {"tasks": [celery_sig("math.add", json!([10]), false)]}},
                        "body": celery_sig("math.xsum", json!([]), true)}},
        ]},
    });
    let native = sig("math.add").args((1, 1))
        | wfhost_canvas::chord([sig("math.add").args((10,))], sig("math.xsum").si());
    assert_eq!(parse_canvas(&celery), Ok(native));
}

/// A whole chain, group or chord takes callbacks (as Celery applies them)
/// and no other option: what wfhost cannot apply is refused, never dropped.
#[test]
fn celery_composites_take_callbacks_and_refuse_other_options() {
    let chain = json!({
        "task": "celery.chain", "args": [], "kwargs": {"tasks": [{"task": "m.a"}, {"task": "m.b"}]},
        "subtask_type": "chain", "immutable": false,
        "options": {"link": {"task": "m.c"}, "queue": "q"},
    });
    let issue = parse_canvas(&chain).unwrap_err();
    assert_eq!(issue.at.to_string(), "$.options.queue");
    let celery = json!({
        "task": "celery.group", "args": [], "kwargs": {"tasks": []}, "subtask_type": "group",
        "immutable": false, "options": {"link": {"task": "m.a"}},
    });
    let issue = parse_canvas(&celery).unwrap_err();
    assert_eq!(issue.at.to_string(), "$.options.link");
}

/// `{"chain": [...]}` as the workflow is streamed like a bare array: the
/// same elements, and the same issues, whatever order its keys come in.
#[test]
fn a_chain_object_workflow_reads_like_an_array() {
    let members = json!([{"task": "m.a", "args": [1]}, {"group": [{"task": "m.b"}]}]);
    let as_array = parse_ok(json!({"plugins": {}, "workflow": members}));
    let as_object = parse_ok(json!({"plugins": {}, "workflow": {"chain": members}}));
    assert_eq!(as_object.workflow.len(), 2);
    assert_eq!(
        as_object.workflow.to_canvas().unwrap(),
        as_array.workflow.to_canvas().unwrap()
    );

    let text_issue = |text: &str| match parse(text, Path::new("/flows")) {
        Err(ParseError::Invalid(issue)) => (issue.at.to_string(), issue.message),
        other => panic!("expected an invalid spec, got {other:?}"),
    };
    for text in [
        r#"{"plugins": {}, "workflow": {"chain": [{"task": "m.a"}], "x": 1}}"#,
        r#"{"plugins": {}, "workflow": {"x": 1, "chain": [{"task": "m.a"}]}}"#,
    ] {
        let (at, message) = text_issue(text);
        assert_eq!(at, "$.workflow.x", "{text}");
        assert!(
            message.contains("unknown key `x` (expected one of: chain, options)"),
            "{message}"
        );
    }
    let (at, _) = text_issue(r#"{"plugins": {}, "workflow": {"chain": [{"task": "m.a"}, 7]}}"#);
    assert_eq!(at, "$.workflow.chain[1]");
    let (at, message) = text_issue(r#"{"plugins": {}, "workflow": {"chain": 5}}"#);
    assert_eq!(at, "$.workflow.chain");
    assert!(message.contains("array"), "{message}");
}

/// Every duration from a chain file is bounded, so that no deadline made
/// from one overflows the clock (a `time_limit` of 1e19 s once panicked the
/// host after passing validation).
#[test]
fn durations_are_at_most_a_year() {
    let step = |options: serde_json::Value| json!({"plugins": {}, "workflow": [{"task": "m.a", "options": options}]});
    for key in [
        "time_limit",
        "countdown",
        "default_retry_delay",
        "retry_backoff_max",
        "retry_backoff",
    ] {
        let found = issue(step(json!({key: 1e19})));
        assert_eq!(found.at.to_string(), format!("$.workflow[0].options.{key}"));
        assert!(found.message.contains("a year"), "{key}: {}", found.message);
        let found = issue(json!({"plugins": {}, "defaults": {key: 31_536_001}, "workflow": []}));
        assert_eq!(found.at.to_string(), format!("$.defaults.{key}"));
        parse_ok(step(json!({key: 31_536_000})));
    }
    let found = issue(step(json!({"time_limit": 1e19})));
    assert!(
        found.message.ends_with("found a number 1e+19"),
        "{}",
        found.message
    );
}

/// A canvas nested as deep as a chain file may nest it is stored and read
/// back whole; one deeper is refused at its place in the file (63 nested
/// arrays were once accepted, then failed reading back from the spool).
#[test]
fn nesting_is_bounded_where_the_file_says_it() {
    fn nested(levels: usize) -> serde_json::Value {
        let mut canvas = json!({"task": "m.a"});
        for _ in 0..levels {
            canvas = json!([canvas]);
        }
        json!({"plugins": {}, "workflow": [canvas]})
    }
    // The element sits at $.workflow[0]: two levels before its own.
    let deepest = canvas::MAX_DEPTH - 2;
    let spec = parse_ok(nested(deepest));
    let read: Vec<_> = spec.workflow.canvases().collect();
    assert!(read[0].is_ok(), "{:?}", read[0]);
    for levels in [deepest + 1, 63, 100] {
        let found = issue(nested(levels));
        assert!(
            found.message.contains("nest at most 48"),
            "{levels}: {}",
            found.message
        );
        assert!(found.at.to_string().starts_with("$.workflow[0][0][0]"));
    }
    let mut callback = json!({"task": "m.e"});
    for _ in 0..30 {
        callback = json!({"task": "m.e", "options": {"link_error": callback}});
    }
    let found = issue(json!({"plugins": {}, "workflow": [callback]}));
    assert!(found.message.contains("nest at most"), "{}", found.message);
}

/// A submission to `serve` gets every unsupported option at once too.
#[test]
fn a_submission_reports_every_unsupported_option_at_once() {
    let plugins = std::collections::BTreeMap::from([(
        "m".to_string(),
        PluginRef {
            path: "/p/m.wasm".into(),
            sha256: None,
            grants: Default::default(),
        },
    )]);
    let submitter = Submitter {
        tenant: "acme",
        plugins: &plugins,
        root: None,
    };
    let text = json!({"workflow": [
        {"task": "m.a", "options": {"queue": "q"}},
        {"task": "m.b", "options": {"priority": 1}},
    ]})
    .to_string();
    let Err(ParseError::Invalid(issue)) = parse_submitted(&text, &submitter) else {
        panic!("refused");
    };
    let text = issue.to_string();
    assert!(text.contains("$.workflow[0].options.queue"), "{text}");
    assert!(
        text.contains("and at $.workflow[1].options.priority"),
        "{text}"
    );
}

/// Security probe, findings 4 and 5: every name a chain file gives — its
/// id, tenant, plugins and tasks — is at most 255 bytes and printable, and
/// the refusal names the JSON path.
#[test]
fn names_are_bounded_and_printable() {
    let long = "x".repeat(crate::names::MAX_NAME_BYTES + 1);
    let add = json!([{"task": "math.add", "args": [1, 2]}]);
    let cases = [
        (
            json!({"id": long, "plugins": {"math": "m.wasm"}, "workflow": add}),
            "$.id",
            "bytes long",
        ),
        (
            json!({"tenant": "a\u{1b}[2J", "plugins": {"math": "m.wasm"}, "workflow": add}),
            "$.tenant",
            "control character",
        ),
        (
            json!({"plugins": {"ma\nth": "m.wasm"}, "workflow": add}),
            "$.plugins",
            "control character",
        ),
        (
            json!({"plugins": {"math": "m.wasm"},
                   "workflow": [{"task": format!("math.{long}"), "args": []}]}),
            "$.workflow[0].task",
            "bytes long",
        ),
    ];
    for (document, at, needle) in cases {
        let said = issue(document).to_string();
        assert!(said.contains(at) && said.contains(needle), "{said}");
    }
}
