//! Chains end to end: results feed forward, immutability, kwargs, nesting,
//! failures, replacement, retries, callbacks, and the README's example.

mod common;

use common::*;
use serde_json::{Value, json};

fn add(args: Value) -> Value {
    json!({"task": "math.add", "args": args})
}

#[test]
fn each_result_is_prepended_to_the_next_step() {
    let workflow = json!([add(json!([2, 2])), add(json!([4])), add(json!([8]))]);
    let run = run_workflow(workflow.clone(), &[]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "16\n"),
        "stderr: {}",
        run.stderr
    );

    let report = run_workflow(workflow, &["--json"]);
    assert_eq!(report.code, 0);
    let doc = report.json();
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["result"], 16);
    let results: Vec<&Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["result"])
        .collect();
    assert_eq!(results, [&json!(4), &json!(8), &json!(16)]);
    assert_eq!(report.step("1")["args"], json!([4, 4]));
    assert_eq!(report.step("2")["parent"], "1");
    assert!(report.step("0")["fuel_used"].as_u64().unwrap() > 0);
}

#[test]
fn an_immutable_signature_ignores_the_previous_result() {
    let workflow =
        json!([add(json!([1, 1])), {"task": "math.mul", "args": [3, 3], "immutable": true}]);
    let run = run_workflow(workflow, &[]);
    assert_eq!(run.stdout, "9\n", "stderr: {}", run.stderr);
}

#[test]
fn keyword_arguments_bind_by_name() {
    let workflow = json!([add(json!([1, 1])), {"task": "math.add", "kwargs": {"y": 5}}]);
    assert_eq!(run_workflow(workflow, &[]).stdout, "7\n");
}

#[test]
fn nested_chains_run_flattened_with_positional_ids() {
    let workflow = json!({"chain": [
        add(json!([1, 1])),
        {"chain": [add(json!([2])), {"task": "math.mul", "args": [3]}]},
        add(json!([1])),
    ]});
    let run = run_workflow(workflow, &["--json"]);
    assert_eq!(run.json()["result"], 13);
    let ids: Vec<String> = run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["0", "1.0", "1.1", "2"]);
}

#[test]
fn a_failed_step_stops_the_chain() {
    let workflow = json!([
        add(json!([1, 1])),
        {"task": "testkit.fail", "args": ["the disk is on fire"], "immutable": true},
        add(json!([1])),
    ]);
    let run = run_workflow(workflow.clone(), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("step 1 (testkit.fail)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("fail: the disk is on fire"),
        "{}",
        run.stderr
    );

    let report = run_workflow(workflow, &["--json"]);
    assert_eq!(report.code, 1);
    let doc = report.json();
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["error"]["step"], "1");
    assert_eq!(doc["error"]["kind"], "fail");
    assert_eq!(report.step("1")["args"], json!(["the disk is on fire"]));
    let third = report.step("2");
    assert_eq!(
        (third["status"].as_str(), third["attempts"].as_u64()),
        (Some("skipped"), Some(0))
    );
}

#[test]
fn replace_runs_the_returned_canvas_in_place_of_the_step() {
    // route(5) becomes add(5, 1); route(20) becomes mul(20, 2); the chain
    // continues after each replacement with its result.
    let low = run_workflow(
        json!([{"task": "testkit.route", "args": [5]}, add(json!([100]))]),
        &["--json"],
    );
    assert_eq!(low.json()["result"], 106, "{}", low.stderr);
    assert_eq!(low.step("0")["status"], "replaced");
    assert_eq!(low.step("0.0")["task"], "math.add");
    assert_eq!(low.step("0.0")["parent"], "0");
    assert_eq!(low.step("1")["args"], json!([6, 100]));

    let high = run_workflow(
        json!([{"task": "testkit.route", "args": [20]}]),
        &["--json"],
    );
    assert_eq!(high.json()["result"], 40);
    assert_eq!(high.step("0.0")["task"], "math.mul");
}

/// As Celery's `Task.replace` does, a replaced step hands its callbacks to
/// its replacement: `link` to the step whose result is the replacement's,
/// `link_error` to each of its steps.
#[test]
fn a_replaced_step_hands_its_callbacks_to_the_replacement() {
    let echo = json!({"task": "testkit.echo"});
    let callbacks = json!({"link": echo, "link_error": echo});
    let run = run_workflow(
        json!([{"task": "testkit.route", "args": [5], "options": callbacks}]),
        &["--json"],
    );
    assert_eq!(run.json()["result"], 6, "{}", run.stderr);
    assert_eq!(run.step("0.0.link.0")["result"], 6);
    // route(2^62) becomes mul(2^62, 2), which overflows: the errback runs
    // for the replacement's step.
    let big = 1i64 << 62;
    let run = run_workflow(
        json!([{"task": "testkit.route", "args": [big], "options": callbacks}]),
        &["--json"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.step("0.0.link_error.0")["result"]["step"], "0.0");
    // A group replacement becomes, as in Celery, a chord whose body is
    // `celery.accumulate`: its result is the group's list, and a link gets
    // that list.
    let fan =
        |options: Value| json!([{"task": "testkit.fan_out", "args": [[1, 2]], "options": options}]);
    let run = run_workflow(fan(json!({"link_error": echo})), &[]);
    assert_eq!(run.stdout, "[1,2]\n", "{}", run.stderr);
    // A replacement by a one-member group stays a group: a list of one.
    let one = json!([{"task": "testkit.fan_out", "args": [[7]]}]);
    assert_eq!(run_workflow(one, &[]).stdout, "[7]\n");
    let run = run_workflow(fan(json!({"link": echo})), &["--json"]);
    assert_eq!(run.json()["result"], json!([1, 2]), "{}", run.stderr);
    let steps = run.json()["steps"].as_array().unwrap().clone();
    let of_task = |task: &str| -> Vec<Value> {
        steps
            .iter()
            .filter(|step| step["task"] == task)
            .cloned()
            .collect()
    };
    let accumulate = of_task("celery.accumulate");
    assert_eq!(accumulate.len(), 1, "{steps:?}");
    assert_eq!(accumulate[0]["result"], json!([1, 2]));
    let linked: Vec<Value> = of_task("testkit.echo")
        .into_iter()
        .filter(|step| step["id"].as_str().unwrap().contains(".link."))
        .collect();
    assert_eq!(linked.len(), 1, "{steps:?}");
    assert_eq!(linked[0]["result"], json!([1, 2]));
}

/// As Celery's `Task.replace` refuses it, a replacement by an empty chain
/// fails the step.
#[test]
fn replacing_with_an_empty_chain_fails_the_step() {
    let run = run_workflow(
        json!([{"task": "testkit.replace_with_nothing"}, add(json!([1]))]),
        &["--json"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = &run.json()["error"];
    assert_eq!(
        (&error["step"], &error["kind"]),
        (&json!("0"), &json!("fail"))
    );
    assert_eq!(error["message"], "cannot replace with an empty chain");
    assert_eq!(run.step("1")["status"], "skipped");
}

#[test]
fn a_panic_fails_the_step_with_its_message() {
    let run = run_workflow(
        json!([{"task": "testkit.panic", "args": ["no more coffee"]}]),
        &["--json"],
    );
    assert_eq!(run.code, 1);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "fail");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("no more coffee"), "{message}");
    assert!(message.contains("panicked at"), "{message}");
}

#[test]
fn a_wrongly_typed_argument_fails_the_step_naming_the_parameter() {
    // Written in the file, it is refused before anything runs.
    let refused = run_workflow(json!([{"task": "math.add", "args": ["one", 2]}]), &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "step 0 (`math.add`): add() argument 'x' (i64) at args[0]: expected an integer"
        ) && refused.stderr.contains("got the string \"one\""),
        "{}",
        refused.stderr
    );
    // Handed on by a step whose result's type is not known, it fails the
    // step that cannot take it.
    let run = run_workflow(
        json!([{"task": "testkit.echo", "args": ["one"]}, {"task": "math.add", "args": [2]}]),
        &["--json"],
    );
    assert_eq!(run.code, 1);
    let message = run.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("add() argument 'x' (i64): invalid type"),
        "{message}"
    );
    // An Option parameter may be left out.
    let run = run_workflow(
        json!([{"task": "testkit.print", "args": ["hi"]}]),
        &["--json"],
    );
    assert_eq!(run.json()["result"], 2);
    assert_eq!(run.step("0")["stdout"]["text"], "hi");
}

/// Integers of any size and decimals pass through Rust tasks exactly as
/// written, a task asking for `i128` gets one, and an integer a parameter
/// cannot hold is refused by name — never rounded into a float.
#[test]
fn numbers_pass_through_exactly_and_a_misfit_is_named() {
    let numbers: Vec<Value> = EXACT_NUMBERS.iter().map(|text| exact(text)).collect();
    let members: Vec<Value> = numbers
        .iter()
        .map(|number| {
            json!({"chain": [
                {"task": "testkit.echo", "args": [number]},
                {"task": "testkit.echo"},
            ]})
        })
        .collect();
    let run = run_workflow(
        json!([{"group": members}, {"task": "testkit.echo"}]),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_exact_numbers(&run.json()["result"], &run.stdout);
    // The text report prints them as they are, too.
    let text = run_workflow(json!([{"task": "testkit.echo", "args": [numbers]}]), &[]);
    assert!(text.stdout.contains(EXACT_NUMBERS[3]), "{}", text.stdout);

    // 2^100 + 1, then + 2^100: 128-bit arithmetic in the task.
    let wide = run_workflow(
        json!([
            {"task": "testkit.add_wide", "args": [exact("1267650600228229401496703205376"), 1]},
            {"task": "testkit.add_wide", "args": [exact("1267650600228229401496703205376")]},
        ]),
        &["--json"],
    );
    assert_eq!(wide.code, 0, "{}", wide.stderr);
    assert_eq!(
        wide.step("0")["result"].to_string(),
        "1267650600228229401496703205377"
    );
    assert_eq!(
        wide.json()["result"].to_string(),
        "2535301200456458802993406410753"
    );

    // A number handed on by a step whose result's type is not known fails
    // the step it does not fit, saying why; written in the file, it is
    // refused before anything runs.
    for (number, expected) in [
        (
            "18446744073709551616",
            "add() argument 'x' (i64): expected i64, got 18446744073709551616 (too large)",
        ),
        (
            "-9223372036854775809",
            "add() argument 'x' (i64): expected i64, got -9223372036854775809 (too small)",
        ),
        (
            "2.5",
            "add() argument 'x' (i64): expected i64, got 2.5 (not an integer)",
        ),
    ] {
        let run = run_workflow(
            json!([{"task": "testkit.echo", "args": [exact(number)]}, {"task": "math.add", "args": [1]}]),
            &["--json"],
        );
        assert_eq!(run.code, 1, "{}", run.stdout);
        let message = run.json()["error"]["message"].to_string();
        assert!(message.contains(expected), "{message}");
        let refused = run_workflow(
            json!([{"task": "math.add", "args": [exact(number), 1]}]),
            &[],
        );
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(
            refused.stderr.contains(&format!(
                "add() argument 'x' (i64) at args[0]: expected an integer from -9223372036854775808 \
                 to 9223372036854775807, got the {} {number}",
                if number.contains('.') { "number" } else { "integer" }
            )),
            "{}",
            refused.stderr
        );
    }
}

#[test]
fn retries_follow_the_step_policy() {
    let flaky = |max_retries: u32| json!({"task": "testkit.flaky", "args": ["k", 2], "options": {"max_retries": max_retries}});
    let ok = run_workflow(json!([flaky(3), add(json!([10]))]), &["--json"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.step("0")["attempts"], 3);
    assert_eq!(ok.json()["result"], 13);

    let document = json!({
        "plugins": standard_plugins(),
        "workflow": [flaky(1), add(json!([10]))],
        "on_error": {"task": "testkit.echo"},
    });
    let failed = run_document(document, &["--json"]);
    assert_eq!(failed.code, 1);
    let error = &failed.json()["error"];
    assert_eq!(
        (error["kind"].as_str(), error["attempts"].as_u64()),
        (Some("retries_exhausted"), Some(2))
    );
    let errback = failed.step("on_error");
    assert_eq!(errback["status"], "succeeded");
    let record = &errback["result"];
    assert_eq!(record["step"], "0");
    assert_eq!(record["task"], "testkit.flaky");
    assert_eq!(record["attempts"], 2);
    assert_eq!(record["error"]["kind"], "retries_exhausted");
    assert!(record["chain_id"].is_string());
    assert_eq!(failed.step("1")["status"], "skipped");
}

#[test]
fn links_run_with_the_result_and_do_not_change_the_chain() {
    let workflow = json!([
        {"task": "math.add", "args": [1, 2], "options": {"link": {"task": "math.mul", "args": [100]}}},
        add(json!([1])),
    ]);
    let run = run_workflow(workflow, &["--json"]);
    assert_eq!(run.json()["result"], 4);
    assert_eq!(run.step("0.link.0")["result"], 300);
}

#[test]
fn the_id_and_tenant_reach_the_report() {
    let run = run_workflow(
        json!([add(json!([1, 1]))]),
        &["--json", "--id", "order-7", "--tenant", "acme"],
    );
    assert_eq!(
        (run.json()["id"].as_str(), run.json()["tenant"].as_str()),
        (Some("order-7"), Some("acme"))
    );
}

#[test]
fn inspect_lists_tasks_with_parameters_and_docs() {
    let math = plugin("math");
    let run = run_args(&["inspect", math.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("math.add(x: i64, y: i64)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Adds two 64-bit integers."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("math.xsum(numbers: Vec<i64>)"),
        "{}",
        run.stdout
    );

    let listing = run_args(&["inspect", math.to_str().unwrap(), "--json"]).json();
    let names: Vec<&str> = listing["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "mul", "xsum"]);
    assert_eq!(listing["tasks"][0]["params"][1]["name"], "y");
    assert_eq!(listing["tasks"][0]["doc"], "Adds two 64-bit integers.");
}

/// `inspect` gives each task's return type, and with `--json` its
/// arguments and result as JSON Schema documents that a JSON Schema
/// library reads, accepting what the task takes and refusing what it does
/// not — structs with their fields and which they need, integers with
/// their range.
#[test]
fn inspect_gives_return_types_and_json_schemas() {
    let math = run_args(&["inspect", plugin("math").to_str().unwrap()]);
    assert!(
        math.stdout.contains("math.add(x: i64, y: i64) -> i64"),
        "{}",
        math.stdout
    );
    assert!(
        math.stdout.contains("math.xsum(numbers: Vec<i64>) -> i64"),
        "{}",
        math.stdout
    );
    let testkit = run_args(&["inspect", plugin("testkit").to_str().unwrap()]);
    assert!(
        testkit
            .stdout
            .contains("testkit.print(text: String, times: Option<u64>) -> u64"),
        "{}",
        testkit.stdout
    );

    let listing = run_args(&["inspect", plugin("shop").to_str().unwrap(), "--json"]).json();
    let charge = listing["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["name"] == "charge")
        .unwrap()
        .clone();
    assert_eq!(charge["returns"], "Charged");
    let input = &charge["input_schema"];
    assert_eq!(
        input["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        input["properties"]["order"]["required"],
        json!(["cents", "customer", "id", "items"])
    );
    assert_eq!(
        input["properties"]["order"]["properties"]["items"]["items"]["properties"]["quantity"]["maximum"],
        u32::MAX
    );

    if !python_module_is_installed("jsonschema") {
        println!("skipped the JSON Schema library's check: python3 cannot import jsonschema");
        return;
    }
    let order = json!({"id": "o-1", "customer": "ada", "items": [{"sku": "tea", "quantity": 2}], "cents": 1200});
    let cases = json!([
        {
            "schema": input,
            "valid": [{"order": order}],
            "invalid": [
                {},
                {"order": {"id": "o-1"}},
                {"order": {"id": "o-1", "customer": "ada", "items": [{"sku": "tea", "quantity": -1}], "cents": 1}},
                {"order": {"id": "o-1", "customer": "ada", "items": [], "cents": "12"}},
            ],
        },
        {
            "schema": charge["output_schema"],
            "valid": [{"order": order, "charge_id": "ch-1"}],
            "invalid": [{"order": order}],
        },
    ]);
    let mut checker = std::process::Command::new("python3")
        .arg(repo_root().join("tests/fixtures/check_schemas.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    checker
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let output = checker.wait_with_output().unwrap();
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    for result in results.as_array().unwrap() {
        assert_eq!(result["schema"], Value::Null, "{results}");
        assert!(
            result["valid"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_null),
            "{results}"
        );
        assert!(
            result["invalid"]
                .as_array()
                .unwrap()
                .iter()
                .all(|refused| refused == true),
            "{results}"
        );
    }
}

#[test]
fn the_readme_example_runs() {
    // The example names its plugin by its path in the repository: the
    // chain file points it at the component these tests built.
    let chain = etl_example();
    let run = run_file(&chain, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let loaded = std::fs::read_to_string(chain.dir.path().join("out/report.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&loaded).unwrap(),
        serde_json::from_str::<Value>(&run.stdout).unwrap()
    );
    let totals: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        totals["EU"],
        json!({"orders": 2, "quantity": 5, "revenue": 57.5})
    );
    assert_eq!(
        totals["US"],
        json!({"orders": 2, "quantity": 4, "revenue": 31.0})
    );
    assert!(
        totals.get("APAC").is_none(),
        "returns are dropped: {totals}"
    );
}

#[test]
fn a_failing_errback_is_recorded_and_runs_once() {
    let document = json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "testkit.fail", "args": ["first"], "options": {"link_error": {"task": "testkit.fail", "args": ["errback broke"], "immutable": true}}}],
        "on_error": {"task": "testkit.fail", "args": ["on_error broke"], "immutable": true},
    });
    let run = run_document(document, &["--json"]);
    assert_eq!(run.code, 1);
    // The workflow's error stays the failed step's, not the errbacks'.
    assert_eq!(run.json()["error"]["message"], "first");
    assert_eq!(
        run.step("0.link_error.0")["error"]["message"],
        "errback broke"
    );
    assert_eq!(run.step("on_error")["error"]["message"], "on_error broke");
    assert_eq!(run.json()["steps"].as_array().unwrap().len(), 3);
}

/// Celery's `eta`: a step's first attempt waits for the moment it names.
#[test]
fn an_eta_holds_a_step_until_its_moment() {
    let eta_ms = wfhost::records::now_ms() + 1200;
    let eta = wfhost::records::iso8601(eta_ms);
    let run = run_workflow(
        json!([add(json!([1, 1])), {"task": "math.add", "args": [1], "options": {"eta": eta}}]),
        &["--json"],
    );
    assert_eq!(run.json()["result"], 3, "{}", run.stderr);
    let started = run.step("1")["started_at_ms"].as_u64().unwrap();
    assert!(
        started >= eta_ms,
        "started at {started}, before its eta {eta_ms}"
    );
    let both = run_workflow(
        json!([{"task": "math.add", "args": [1, 1], "options": {"eta": eta, "countdown": 1}}]),
        &[],
    );
    assert_eq!(both.code, 2);
    assert!(
        both.stderr.contains("`eta` and `countdown` both say when"),
        "{}",
        both.stderr
    );
    let wrong = run_workflow(
        json!([{"task": "math.add", "args": [1, 1], "options": {"eta": "tomorrow"}}]),
        &[],
    );
    assert!(
        wrong
            .stderr
            .contains("$.workflow[0].options.eta: `tomorrow` is not a moment in ISO 8601"),
        "{}",
        wrong.stderr
    );
}

/// Celery's `expires`: a step that has not started when it expires fails
/// with kind `expired`, counting no attempt, and, as a revoked Celery task,
/// calls no errback; waiting for a slot counts as not started.
#[test]
fn a_step_that_has_not_started_by_its_expiry_expires() {
    let errback = json!({"task": "testkit.echo"});
    let late = json!({"task": "math.add", "args": [1, 1],
                      "options": {"countdown": 1, "expires": 0.3, "link_error": errback}});
    let run = run_workflow(json!([late, add(json!([5]))]), &["--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["error"]["kind"], "expired", "{report}");
    let step = run.step("0");
    assert_eq!(
        (&step["status"], &step["attempts"]),
        (&json!("failed"), &json!(0)),
        "{step}"
    );
    assert!(
        step["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not started by 20")
    );
    assert_eq!(run.step("1")["status"], "skipped");
    assert_eq!(
        report["steps"].as_array().unwrap().len(),
        2,
        "no errback ran"
    );

    // Two members with one slot: the second waits for the first's second
    // and expires meanwhile.
    let slow = json!({"task": "testkit.slow_add", "args": [0, 1, 1000]});
    let short = json!({"task": "math.add", "args": [1, 1], "options": {"expires": 0.3}});
    let run = run_workflow(
        json!([{"group": [slow, short]}]),
        &["--json", "--concurrency", "1"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.step("0.1")["error"]["kind"], "expired");
    // A moment in the future, and a step that starts before it.
    let later = wfhost::records::iso8601(wfhost::records::now_ms() + 60_000);
    let run = run_workflow(
        json!([{"task": "math.add", "args": [1, 1], "options": {"expires": later}}]),
        &[],
    );
    assert_eq!(run.stdout, "2\n", "{}", run.stderr);
}

/// A callback that runs only on failure and whose arguments would not bind
/// is a warning, not a refusal, as Celery runs such a workflow: the run goes
/// ahead, and if the errback runs, its step fails on the binding.
#[test]
fn an_errback_that_would_not_bind_is_a_warning_not_a_refusal() {
    // math.add takes two arguments; an errback gets one (the error record).
    let errback = json!({"task": "math.add"});
    let document = |second: Value| {
        json!({"plugins": standard_plugins(), "workflow": [
            {"task": "math.add", "args": [1, 1], "options": {"link_error": errback}},
            second,
        ]})
    };
    let chain = chain_file(&document(add(json!([1]))));
    let validated = chain.command(&["validate", chain.path.to_str().unwrap(), "--json"]);
    assert_eq!(validated.code, 0, "{}", validated.stderr);
    assert!(
        validated
            .stderr
            .contains("warning: step 0.link_error.0 (`math.add`)"),
        "{}",
        validated.stderr
    );
    let warning = &validated.json()["warnings"][0];
    assert_eq!(warning["step"], "0.link_error.0", "{warning}");
    let run = run_file(&chain, &[]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "3\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("warning: step 0.link_error.0"),
        "{}",
        run.stderr
    );
    // A success callback that would not bind still refuses the workflow.
    let linked = json!({"plugins": standard_plugins(), "workflow": [
        {"task": "math.add", "args": [1, 1], "options": {"link": errback}}]});
    assert_eq!(run_document(linked, &[]).code, 2);
    // When the step fails, the errback runs and fails on its arguments.
    let failing = document(
        json!({"task": "testkit.fail", "args": ["no"], "immutable": true,
                                  "options": {"link_error": errback}}),
    );
    let run = run_document(failing, &["--json"]);
    assert_eq!(run.code, 1);
    let errback_run = run.step("1.link_error.0");
    assert_eq!(errback_run["status"], "failed", "{errback_run}");
}
