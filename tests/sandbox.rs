//! Hostile plugins: every misbehaviour ends as a classified step failure
//! (or a denial the task sees), and the host stays up.

mod common;

use common::*;
use serde_json::{Value, json};

/// Runs one testkit step with options and returns the `--json` report's step.
fn hostile(task: &str, args: Value, options: Value) -> (Run, Value) {
    let run = run_workflow(
        json!([{"task": format!("testkit.{task}"), "args": args, "options": options}]),
        &["--json"],
    );
    let step = run.step("0");
    (run, step)
}

fn assert_failure(step: &Value, kind: &str) {
    assert_eq!(step["status"], "failed", "{step}");
    assert_eq!(step["error"]["kind"], kind, "{step}");
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let (run, step) = hostile("spin", json!([]), json!({"fuel": 50_000_000}));
    assert_eq!(run.code, 1);
    assert_failure(&step, "fuel_exhausted");
    assert_eq!(step["fuel_used"], 50_000_000);
}

#[test]
fn an_endless_loop_without_fuel_limit_hits_the_time_limit() {
    let (_, step) = hostile("spin", json!([]), json!({"fuel": null, "time_limit": 1}));
    assert_failure(&step, "time_limit");
    // The limit is wall-clock: the step ran for at least the limit.
    assert!(step["duration_ms"].as_f64().unwrap() >= 1000.0, "{step}");
}

#[test]
fn a_sleeping_step_hits_the_time_limit_without_using_fuel() {
    let (_, step) = hostile("sleep", json!([60_000]), json!({"time_limit": 0.5}));
    assert_failure(&step, "time_limit");
    assert!(step["fuel_used"].as_u64().unwrap() < 10_000_000, "{step}");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let (_, step) = hostile("hog", json!([1024]), json!({"memory_mb": 64}));
    assert_failure(&step, "memory_limit");
    // Within the limit the same task succeeds.
    let (_, step) = hostile("hog", json!([8]), json!({"memory_mb": 64}));
    assert_eq!(step["result"], 8 << 20);
}

#[test]
fn runaway_recursion_traps() {
    let (_, step) = hostile("recurse", json!([10_000_000]), json!({}));
    assert_failure(&step, "trap");
    let (_, step) = hostile("recurse", json!([100]), json!({}));
    assert_eq!(step["result"], 100);
}

#[test]
fn files_network_and_environment_are_denied() {
    let (_, step) = hostile("read_file", json!(["/etc/passwd"]), json!({}));
    assert_failure(&step, "fail");
    assert!(
        !step.to_string().contains("root:"),
        "the file's data leaked: {step}"
    );

    // Something listens, so only the sandbox can stop the connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (_, step) = hostile("connect", json!([address]), json!({}));
    assert_failure(&step, "fail");
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert!(
        accepted
            .as_ref()
            .is_err_and(|err| err.kind() == std::io::ErrorKind::WouldBlock),
        "the guest reached the listener: {accepted:?}"
    );

    let (_, step) = hostile("env", json!(["HOME"]), json!({}));
    assert_eq!(step["status"], "succeeded");
    assert_eq!(step["result"], Value::Null);
}

#[test]
fn no_step_sees_the_memory_of_another() {
    // Each step leaves a secret in its instance's memory and reports what
    // it found there. Pooled memory is reused between steps, so this holds
    // only if every slot is reset; group members run side by side too.
    let stash =
        |secret: &str| json!({"task": "testkit.stash", "args": [secret], "immutable": true});
    let secrets: Vec<String> = (0..20).map(|i| format!("secret-{i}")).collect();
    let mut workflow: Vec<Value> = secrets.iter().map(|s| stash(s)).collect();
    workflow.push(json!({"group": secrets.iter().map(|s| stash(s)).collect::<Vec<_>>()}));
    let run = run_workflow(Value::Array(workflow), &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for step in run.json()["steps"].as_array().unwrap() {
        if step["task"] == "testkit.stash" {
            assert_eq!(step["result"], "", "a step found another's data: {step}");
        }
    }
}

#[test]
fn an_oversized_result_is_invalid_output() {
    let (_, step) = hostile("big_output", json!([20 << 20]), json!({}));
    assert_failure(&step, "invalid_output");
    assert!(
        step["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{step}"
    );
}

#[test]
fn flooded_output_is_captured_truncated_and_harmless() {
    // 10 MiB to each of stdout and stderr.
    let (run, step) = hostile("print", json!(["0123456789abcdef", 655_360]), json!({}));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(step["result"], 10 << 20);
    for stream in ["stdout", "stderr"] {
        let captured = &step[stream];
        let kept = captured["text"].as_str().unwrap().len() as u64;
        let dropped = captured["truncated_bytes"].as_u64().unwrap();
        assert!(kept > 0 && dropped > 0, "{stream}: {captured}");
        assert_eq!(kept + dropped, 10 << 20, "{stream}");
    }
}

#[test]
fn guest_logs_are_kept_with_the_step_and_shown_on_stderr() {
    let (run, step) = hostile("log", json!(["hello"]), json!({}));
    let levels: Vec<&str> = step["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["trace", "debug", "info", "warn", "error"]);
    assert!(
        run.stderr
            .contains("step 0 (testkit.log) warn: warn: hello"),
        "{}",
        run.stderr
    );
}

#[test]
fn resource_limits_are_not_retried_unless_asked() {
    let (_, step) = hostile(
        "spin",
        json!([]),
        json!({"fuel": 1_000_000, "max_retries": 3, "default_retry_delay": 0}),
    );
    assert_eq!(step["attempts"], 1);
    let (_, step) = hostile(
        "spin",
        json!([]),
        json!({"fuel": 1_000_000, "max_retries": 2, "default_retry_delay": 0, "retry_on_limit": true}),
    );
    assert_eq!(step["attempts"], 3);
    assert_failure(&step, "fuel_exhausted");
}

#[test]
fn host_ceilings_refuse_steps_that_ask_for_more() {
    let over = run_workflow(
        json!([{"task": "math.add", "args": [1, 2], "options": {"fuel": 1_000_000}}]),
        &["--max-fuel", "1000"],
    );
    assert_eq!(over.code, 2, "{}", over.stderr);
    assert!(
        over.stderr.contains(
            "step 0 (`math.add`): fuel: asks for 1000000, over the host's ceiling of 1000"
        ),
        "{}",
        over.stderr
    );

    let unlimited = run_workflow(
        json!([{"task": "testkit.spin", "options": {"time_limit": null}}]),
        &["--max-time-limit", "5"],
    );
    assert_eq!(unlimited.code, 2, "{}", unlimited.stderr);
    assert!(
        unlimited
            .stderr
            .contains("time_limit: asks for no limit, but the host allows at most 5 s"),
        "{}",
        unlimited.stderr
    );

    // Without an option of its own, a step gets the host default lowered to
    // the ceiling: spin runs out of the ceiling's fuel.
    let capped = run_workflow(
        json!([{"task": "testkit.spin"}]),
        &["--json", "--max-fuel", "5000000"],
    );
    assert_eq!(capped.step("0")["error"]["kind"], "fuel_exhausted");
    assert_eq!(capped.step("0")["fuel_used"], 5_000_000);
}
