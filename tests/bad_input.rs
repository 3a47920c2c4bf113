//! Wrong input exits 2 with a message that names the problem and where it is,
//! and nothing runs.

mod common;

use common::*;
use serde_json::{Value, json};

fn assert_input_error(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout, "", "nothing may be printed as a result");
    for needle in needles {
        // Exactly once: a cause printed both in a message and again as its
        // source would repeat it.
        assert_eq!(
            run.stderr.matches(needle).count(),
            1,
            "expected {needle:?} once in: {}",
            run.stderr
        );
    }
}

#[test]
fn a_missing_chain_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let output = wfhost()
        .arg("run")
        .arg(&missing)
        .env("WFHOST_DB", dir.path().join("state.redb"))
        .output()
        .unwrap();
    let run = Run::from(output);
    assert_input_error(&run, &["cannot read", "No such file or directory"]);
}

/// A workflow that cannot run is named by its chain file, not by an id it
/// never had, and a plugin file that cannot be read by where the chain file
/// names it.
#[test]
fn a_refused_run_names_its_file_and_the_plugin_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("shop.json");
    std::fs::write(
        &chain,
        r#"{"plugins": {"shop": "shop.wasm"}, "workflow": {"task": "shop.buy"}}"#,
    )
    .unwrap();
    let run = |chain: &std::path::Path| {
        Run::from(
            wfhost()
                .arg("run")
                .arg(chain)
                .env("WFHOST_DB", dir.path().join("state.redb"))
                .output()
                .unwrap(),
        )
    };
    let refused = run(&chain);
    assert_input_error(
        &refused,
        &[
            "shop.json cannot run: $.plugins.shop: cannot read",
            "shop.wasm: No such file or directory",
        ],
    );
    assert!(!refused.stderr.contains("wf-"), "{}", refused.stderr);

    let unknown = dir.path().join("unknown.json");
    std::fs::write(
        &unknown,
        json!({
            "plugins": {"math": plugin_dir().join("math.wasm")},
            "workflow": {"chain": [{"task": "math.nope"}, {"task": "math.add", "args": [1, 2]}]},
        })
        .to_string(),
    )
    .unwrap();
    let refused = run(&unknown);
    assert_input_error(
        &refused,
        &[
            "unknown.json cannot run: step 0 (`math.nope`)",
            "step 1 (`math.add`)",
        ],
    );
    assert!(!refused.stderr.contains("wf-"), "{}", refused.stderr);
}

#[test]
fn malformed_json_names_line_and_column() {
    let chain = chain_text("{\n  \"plugins\": {},\n  \"workflow\": [,]\n}\n");
    let run = run_file(&chain, &[]);
    let location = format!("{}:3:16: malformed JSON", chain.path.display());
    assert_input_error(&run, &[&location]);
}

#[test]
fn unknown_keys_name_their_json_path() {
    let run = run_workflow(
        json!([{"task": "math.add", "args": [1, 2], "options": {"retries": 3}}]),
        &[],
    );
    assert_input_error(
        &run,
        &["$.workflow[0].options.retries", "unknown key `retries`"],
    );
}

#[test]
fn a_missing_plugin_file_is_named() {
    let run = run_document(
        json!({"plugins": {"math": "nowhere/math.wasm"}, "workflow": []}),
        &[],
    );
    assert_input_error(&run, &["$.plugins.math: cannot read", "nowhere/math.wasm"]);
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    // The smallest core module: magic and version 1, no sections.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();

    let run = run_document(json!({"plugins": {"notes": text}, "workflow": []}), &[]);
    assert_input_error(
        &run,
        &[
            "plugin `notes`",
            "is not a WebAssembly component",
            "not WebAssembly",
        ],
    );
    let run = run_document(json!({"plugins": {"core": core}, "workflow": []}), &[]);
    assert_input_error(
        &run,
        &["plugin `core`", "core WebAssembly module", "wasm32-wasip2"],
    );
}

#[test]
fn a_component_of_another_world_is_a_plugin_error() {
    let run = run_document(
        json!({"plugins": {"alien": plugin("alien")}, "workflow": []}),
        &[],
    );
    assert_input_error(
        &run,
        &[
            "plugin `alien`",
            "acme:alien/secrets@1.0.0",
            "does not grant",
        ],
    );
    let run = run_args(&["inspect", plugin("alien").to_str().unwrap()]);
    assert_input_error(&run, &["acme:alien/secrets"]);
}

#[test]
fn an_unknown_task_or_plugin_is_named_with_its_step() {
    let run = run_workflow(
        json!([{"task": "math.add", "args": [1, 1]}, {"task": "math.sub", "args": [1]}]),
        &[],
    );
    assert_input_error(
        &run,
        &[
            "step 1 (`math.sub`)",
            "plugin `math` has no task `sub`",
            "add, mul, xsum",
        ],
    );
    let run = run_workflow(json!([{"task": "img.resize"}]), &[]);
    assert_input_error(&run, &["step 0 (`img.resize`)", "no plugin named `img`"]);
}

#[test]
fn a_sha256_pin_must_match() {
    let math = plugin("math");
    let actual = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(std::fs::read(&math).unwrap()))
    };
    let wrong = "0".repeat(64);
    let run = run_document(
        json!({"plugins": {"math": {"path": math, "sha256": wrong}}, "workflow": []}),
        &[],
    );
    assert_input_error(&run, &["sha256 mismatch", &wrong, &actual]);

    let run = run_document(
        json!({"plugins": {"math": {"path": math, "sha256": actual}}, "workflow": [{"task": "math.add", "args": [1, 2]}]}),
        &[],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "3\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run_args(&["run"]).code, 2);
    assert_eq!(run_args(&["frobnicate"]).code, 2);
}

#[test]
fn arity_and_keywords_are_checked_before_anything_runs() {
    let workflow = json!([
        {"task": "math.add", "args": [1, 2]},
        // Receives the previous result: add(3, 4, 5) is one too many.
        {"task": "math.add", "args": [4, 5]},
        {"task": "math.mul", "kwargs": {"z": 1}},
        {"group": [{"task": "math.xsum", "args": [[1]]}, {"task": "math.add", "kwargs": {"x": 1}}]},
    ]);
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    let validate = chain.command(&["validate", chain.path.to_str().unwrap()]);
    let expected = [
        "step 1 (`math.add`): add() takes 2 positional arguments but 3 would be given (counting the previous result)",
        "step 2 (`math.mul`): mul() has no parameter 'z'",
        "step 2 (`math.mul`): mul() would miss required argument 'y' (counting the previous result)",
        "step 3.0 (`math.xsum`): xsum() takes 1 positional argument but 2 would be given (counting the previous result)",
        "step 3.1 (`math.add`): add() would get multiple values for argument 'x' (counting the previous result)",
    ];
    assert_input_error(&validate, &expected);
    // `run` refuses the same file the same way, and runs nothing.
    let run = run_file(&chain, &[]);
    assert_input_error(&run, &expected);
    assert!(
        !run.stderr.contains("step 0 (`math.add`)"),
        "{}",
        run.stderr
    );
    assert_eq!(chain.command(&["list", "--json"]).json(), json!([]));
}

/// Arguments written in the file, and results flowing from step to step,
/// are checked against the types the plugins describe: `validate` and
/// `run` name every problem with its step, where in the step, the
/// parameter, what it takes and what it would get, and nothing runs; the
/// same workflow with its types right validates.
#[test]
fn types_that_cannot_fit_are_refused_before_anything_runs() {
    let workflow = |x: Value, second: Value| {
        json!([
            {"task": "math.add", "args": [x, 2]},
            {"task": "testkit.log", "args": ["hi"], "immutable": true},
            {"task": "math.mul", "args": [3]},
            {"group": [
                {"task": "testkit.log", "args": ["a"], "immutable": true},
                second,
            ]},
            {"task": "testkit.fan_in"},
            {"task": "testkit.add_wide", "kwargs": {"y": exact("170141183460469231731687303715884105728")}},
        ])
    };
    let wrong = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": workflow(json!("two"), json!({"task": "testkit.log", "args": ["b"], "immutable": true})),
    }));
    let expected = [
        "step 0 (`math.add`): add() argument 'x' (i64) at args[0]: expected an integer from \
         -9223372036854775808 to 9223372036854775807, got the string \"two\"",
        "step 5 (`testkit.add_wide`): add_wide() argument 'y' (i128) at kwargs.y: expected an \
         integer from -170141183460469231731687303715884105728 to \
         170141183460469231731687303715884105727, got the integer \
         170141183460469231731687303715884105728",
        "step 2 (`math.mul`): mul() argument 'x' (i64) would get the result of step 1 \
         (`testkit.log`): a string, where it takes an integer from -9223372036854775808 to \
         9223372036854775807",
        "step 4 (`testkit.fan_in`): fan_in() argument 'values' (Vec<i64>) would get the result \
         of group 3: a list of 2 (a string, a string), where it takes a list of integers from \
         -9223372036854775808 to 9223372036854775807",
    ];
    let validate = wrong.command(&["validate", wrong.path.to_str().unwrap()]);
    assert_input_error(&validate, &expected);
    let run = run_file(&wrong, &[]);
    assert_input_error(&run, &expected);
    assert_eq!(wrong.command(&["list", "--json"]).json(), json!([]));

    // Right types validate: integers flow into integers, a task whose
    // result's type is not known (`echo`) hands on anything.
    let right = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 2]},
            {"task": "testkit.echo"},
            {"task": "math.mul", "args": [3]},
            {"group": [{"task": "math.add", "args": [1]}, {"task": "testkit.echo"}]},
            {"task": "testkit.fan_in"},
            {"task": "testkit.add_wide", "kwargs": {"y": exact("170141183460469231731687303715884105726")}},
        ],
    }));
    let validate = right.command(&["validate", right.path.to_str().unwrap()]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
}

#[test]
fn validate_accepts_a_good_file_and_names_its_plugins() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 2]}, {"task": "testkit.echo", "args": []}, {"task": "math.xsum", "args": [[1]], "immutable": true}],
    }));
    let run = chain.command(&["validate", chain.path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("valid: 3 steps; plugins: math (sha256 "),
        "{}",
        run.stdout
    );
}

/// Numbers past what the host can count are refused where they are written,
/// not met later as a panic (a `time_limit` of 1e19 s passed validation and
/// then overflowed the clock; a concurrency past a semaphore's range
/// panicked at start).
#[test]
fn numbers_past_the_host_s_range_are_refused_where_they_are() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "defaults": {"time_limit": 1e19},
        "workflow": [{"task": "math.add", "args": [1, 2]}],
    }));
    for command in ["run", "validate"] {
        let run = chain.command(&[command, chain.path.to_str().unwrap()]);
        assert_input_error(&run, &["$.defaults.time_limit", "a year"]);
    }
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 2]}],
    }));
    let path = chain.path.to_str().unwrap();
    let run = chain.command(&["run", path, "--concurrency", "2305843009213693952"]);
    assert_input_error(&run, &["--concurrency", "1..=65536"]);
    let run = chain.command(&["run", path, "--concurrency", "65536"]);
    assert_eq!((run.code, run.stdout.trim()), (0, "3"), "{}", run.stderr);
}

/// A plugin path must name a regular file of a component's size: a device
/// was read until memory ran out, and a pipe waited on forever.
#[test]
fn a_plugin_path_that_is_no_component_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("plugin.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let huge = dir.path().join("huge.wasm");
    // Sparse: it takes no room on the disk.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let cases = [
        ("/dev/zero".to_string(), "is not a regular file"),
        (fifo.display().to_string(), "is not a regular file"),
        (dir.path().display().to_string(), "is not a regular file"),
        (
            huge.display().to_string(),
            "is 300 MiB, more than the 256 MiB",
        ),
    ];
    for (path, why) in cases {
        let chain = chain_file(&json!({
            "plugins": {"p": path},
            "workflow": [{"task": "p.t"}],
        }));
        let started = std::time::Instant::now();
        let run = run_file(&chain, &[]);
        assert_input_error(&run, &[&format!("plugin `p`: {path} {why}")]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{path} took {:?}",
            started.elapsed()
        );
    }
}

/// A key repeated anywhere in a chain file is refused, not read as its
/// last value.
#[test]
fn a_repeated_key_is_refused_wherever_it_is() {
    let plugins = serde_json::to_string(&standard_plugins()).unwrap();
    let nested = format!(
        r#"{{"plugins": {plugins},
 "workflow": [{{"task": "math.add", "args": [1, 2],
 "args": [3, 4]}}]}}"#
    );
    let chain = chain_text(&nested);
    let run = run_file(&chain, &[]);
    assert_input_error(&run, &["the key `args` appears twice", ":3:"]);
    let top = format!(r#"{{"id": "a", "plugins": {plugins}, "id": "b", "workflow": []}}"#);
    let run = run_file(&chain_text(&top), &[]);
    assert_input_error(&run, &["the key `id` is repeated"]);
}

/// A canvas nested deeper than a chain file may nest one is refused at its
/// place in the user's file, not later from the host's own spool; one as
/// deep as allowed runs.
#[test]
fn nesting_is_refused_at_its_place_in_the_file() {
    let nested = |levels: usize| {
        let mut canvas = json!({"task": "math.add", "args": [1, 2]});
        for _ in 0..levels {
            canvas = json!([canvas]);
        }
        json!({"plugins": standard_plugins(), "workflow": [canvas]})
    };
    let chain = chain_file(&nested(63));
    let run = run_file(&chain, &[]);
    let place = format!("{}: at $.workflow[0]", chain.path.display());
    assert_input_error(&run, &[&place, "canvases nest at most 48"]);
    let run = run_workflow(nested(46)["workflow"].clone(), &[]);
    assert_eq!((run.code, run.stdout.trim()), (0, "3"), "{}", run.stderr);
}

/// What an error quotes from the input is bounded: a huge unknown key, and
/// a call with many keywords that do not bind, print their first
/// characters and problems and a count (they once printed 100 MB and 195 MB).
#[test]
fn error_output_is_bounded_however_large_the_mistake() {
    let huge_key = "k".repeat(5 << 20);
    let chain = chain_text(&format!(
        r#"{{"plugins": {{}}, "workflow": [], "{huge_key}": 1}}"#
    ));
    let run = run_file(&chain, &[]);
    // The key is named in its path and in the message, cut in both.
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("unknown key `kkkk"), "{}", run.stderr);
    assert!(
        run.stderr.contains("(5242816 more characters)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.len() < 4096,
        "{} bytes of stderr",
        run.stderr.len()
    );

    let kwargs: serde_json::Map<String, serde_json::Value> =
        (0..200_000).map(|i| (format!("x{i}"), json!(i))).collect();
    let run = run_workflow(
        json!([{"task": "math.add", "args": [1, 2], "kwargs": kwargs}]),
        &[],
    );
    assert_input_error(
        &run,
        &["… and 199990 more keyword arguments that do not bind"],
    );
    assert!(
        run.stderr.len() < 4096,
        "{} bytes of stderr",
        run.stderr.len()
    );
}
