//! Tasks written in Python with the guest SDK (`guest-sdk/python`), built
//! by `wfhost build-py` with componentize-py and run by the real binary:
//! Celery's task API behaves as in Celery, and failures are named.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{
    EXACT_NUMBERS, Run, exact, plugin, repo_root, run_args, run_document, sdk_component, wfhost,
};
use serde_json::{Value, json};

/// The component of `tests/fixtures/python/celery_api.py`, or `None` where
/// componentize-py is missing (outside CI).
fn api() -> Option<PathBuf> {
    sdk_component("tests/fixtures/python/celery_api.py")
}

/// Runs `workflow` over the Python tasks and `math`, reporting as JSON.
fn run(api: &PathBuf, workflow: Value, extra: &[&str]) -> Run {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    run_document(
        json!({
            "id": "py-1",
            "plugins": {"celery_api": api, "math": plugin("math")},
            "workflow": workflow,
        }),
        &args,
    )
}

/// The report of a one-step workflow calling `task` with `args`, `kwargs`
/// and step `options`.
fn call(api: &PathBuf, task: &str, args: Value, kwargs: Value, options: Value) -> Value {
    let step = json!({"task": format!("celery_api.{task}"), "args": args, "kwargs": kwargs, "options": options});
    let run = run(api, json!([step]), &[]);
    assert!(
        run.code == 0 || run.code == 1,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    run.step("0")
}

#[test]
fn a_python_module_lists_its_tasks_as_python_declares_them() {
    let Some(api) = api() else { return };
    let listing = run_args(&["inspect", "--json", api.to_str().unwrap()]).json();
    let task = |name: &str| {
        listing["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|task| task["name"] == name)
            .unwrap_or_else(|| panic!("no task {name} in {listing}"))
            .clone()
    };
    let add = task("add");
    assert_eq!(add["doc"], "Adds two numbers.");
    assert_eq!(
        add["params"],
        json!([
            {"name": "x", "type_name": "int", "optional": false},
            {"name": "y", "type_name": "int", "optional": true},
        ])
    );
    // A bound task's `self` is not a parameter.
    let names = |task: Value| -> Vec<String> {
        task["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(task("whoami")), ["*args", "**kwargs"]);
    assert_eq!(
        names(task("python_signature")),
        ["a", "/", "b", "*", "c", "**rest"]
    );
    let text = run_args(&["inspect", api.to_str().unwrap()]).stdout;
    assert!(
        text.contains("celery_api.add(x: int, y: int = 0) -> int"),
        "{text}"
    );
    assert!(
        text.contains("celery_api.python_signature(a: Any, /, b: Any, *, c: Any = 3, **rest: Any)"),
        "{text}"
    );
    // Types from the annotations, as JSON Schema.
    assert_eq!(add["returns"], "int");
    assert_eq!(
        add["input_schema"]["properties"],
        json!({"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}})
    );
    assert_eq!(add["input_schema"]["required"], json!(["x"]));
    assert_eq!(add["output_schema"]["type"], "integer");
    assert_eq!(
        task("total")["input_schema"]["properties"]["values"],
        json!({"type": "array"})
    );
    // What a bound task returns is not known: it may replace itself.
    assert_eq!(task("fan")["output_schema"]["type"], Value::Null);
}

#[test]
fn the_request_and_argument_binding_behave_as_in_celery() {
    let Some(api) = api() else { return };
    let step = call(
        &api,
        "whoami",
        json!([1, "two"]),
        json!({"k": 3}),
        json!({}),
    );
    assert_eq!(
        step["result"],
        json!({
            "id": "py-1/0", "root_id": "py-1", "workflow_id": "py-1", "step_id": "0",
            "retries": 0, "tenant": "default", "task": "celery_api.whoami",
            "args": [1, "two"], "kwargs": {"k": 3}, "called_directly": false,
            "name": "celery_api.whoami",
        })
    );
    let step = call(
        &api,
        "python_signature",
        json!([1, 2]),
        json!({"c": 4, "z": 5}),
        json!({}),
    );
    assert_eq!(step["result"], json!([1, 2, 4, {"z": 5}]));
    // Python's rules are checked before anything runs.
    let refused = run(
        &api,
        json!([{"task": "celery_api.python_signature", "kwargs": {"a": 1, "b": 2}}]),
        &[],
    );
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("python_signature() would miss required argument 'a'"),
        "{}",
        refused.stderr
    );
    // A task's result flows into the next as its first argument.
    let chained = run(
        &api,
        json!([
            {"task": "celery_api.add", "args": [2, 3]},
            {"task": "math.mul", "args": [10]},
            {"task": "celery_api.add", "kwargs": {"y": 1}},
        ]),
        &[],
    );
    assert_eq!(chained.json()["result"], 51, "{}", chained.stderr);
}

#[test]
fn retry_and_autoretry_behave_as_in_celery() {
    let Some(api) = api() else { return };
    let step = call(&api, "patient", json!([2]), json!({}), json!({}));
    assert_eq!(
        (step["result"].clone(), step["attempts"].clone()),
        (json!(2), json!(3))
    );

    // The task's own max_retries: then `exc` is raised, or
    // MaxRetriesExceededError without one.
    let step = call(&api, "limited", json!([true]), json!({}), json!({}));
    assert_eq!(step["attempts"], 2);
    assert_eq!(
        step["error"],
        json!({"kind": "fail", "message": "celery_api.OutOfStock: sku 12"})
    );
    let step = call(&api, "limited", json!([false]), json!({}), json!({}));
    let message = step["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "wfhost_task.exceptions.MaxRetriesExceededError: Can't retry celery_api.limited[py-1/0]"
        ),
        "{message}"
    );

    // A limit of the task's own above the default of three is kept to
    // (`@app.task(max_retries=5)`, `retry_kwargs={"max_retries": 5}`).
    let step = call(&api, "persistent", json!([4]), json!({}), json!({}));
    assert_eq!(
        (step["result"].clone(), step["attempts"].clone()),
        (json!(4), json!(5)),
        "{step}"
    );
    let step = call(&api, "flaky", json!([4]), json!({}), json!({}));
    assert_eq!(step["result"], "ok after 4 retries", "{step}");
    let step = call(&api, "persistent", json!([6]), json!({}), json!({}));
    assert_eq!(step["attempts"], 6, "{step}");
    assert!(
        step["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("MaxRetriesExceededError")),
        "{step}"
    );

    // The step's max_retries bounds them too.
    let step = call(
        &api,
        "patient",
        json!([5]),
        json!({}),
        json!({"max_retries": 1}),
    );
    assert_eq!(step["error"]["kind"], "retries_exhausted", "{step}");
    assert_eq!(step["attempts"], 2);

    // autoretry_for, and dont_autoretry_for.
    let step = call(&api, "flaky", json!([2]), json!({}), json!({}));
    assert_eq!(step["result"], "ok after 2 retries");
    assert_eq!(step["attempts"], 3);
    let step = call(
        &api,
        "flaky",
        json!([0]),
        json!({"refused": true}),
        json!({}),
    );
    assert_eq!(step["attempts"], 1);
    assert_eq!(step["error"]["message"], "ConnectionRefusedError: refused");

    // retry_backoff: Celery's countdown of factor * 2**retries, 1 s here.
    let started = Instant::now();
    let step = call(&api, "backing_off", json!([]), json!({}), json!({}));
    assert_eq!(
        (step["result"].clone(), step["attempts"].clone()),
        (json!(1), json!(2))
    );
    assert!(
        started.elapsed().as_secs_f64() >= 1.0,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn replace_takes_celery_canvases_of_python_and_rust_steps() {
    let Some(api) = api() else { return };
    // A chord whose members chain a Python and a Rust step.
    let fan = run(&api, json!([{"task": "celery_api.fan", "args": [3]}]), &[]);
    assert_eq!(fan.json()["result"], 60, "{}", fan.stderr);
    assert_eq!(fan.step("0")["status"], "replaced");
    // `|`, `.s()`, `.si()` and `.set()`.
    let chained = run(
        &api,
        json!([{"task": "celery_api.to_chain", "args": [1]}, {"task": "math.add", "args": [5]}]),
        &[],
    );
    assert_eq!(chained.json()["result"], 7, "{}", chained.stderr);
    let grouped = run(
        &api,
        json!([{"task": "celery_api.to_group", "args": [3]}]),
        &[],
    );
    assert_eq!(
        grouped.json()["result"],
        json!([1, 2, 3]),
        "{}",
        grouped.stderr
    );
}

/// Integers of any size and decimals reach a Python task as `int` and
/// `float` and come back exactly, between Rust steps; Python's own float
/// arithmetic keeps its shortest form; a Python integer too large for a
/// Rust `i64` parameter is refused by name.
#[test]
fn python_tasks_take_and_give_numbers_exactly() {
    let Some(api) = api() else { return };
    let plugins = json!({"celery_api": api, "math": plugin("math"), "testkit": plugin("testkit")});
    let members: Vec<Value> = EXACT_NUMBERS
        .iter()
        .map(|text| {
            // Rust echo, Python add of 0 (an int stays an int, a float a
            // float), Rust echo.
            json!({"chain": [
                {"task": "testkit.echo", "args": [exact(text)]},
                {"task": "celery_api.add", "args": [0]},
                {"task": "testkit.echo"},
            ]})
        })
        .collect();
    let run = run_document(
        json!({"plugins": plugins, "workflow": [{"group": members}]}),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // 3.14159265358979323846264338327950288 is a float in Python, and
    // `+ 0` gives its nearest double: every other number is as written.
    let mut expected: Vec<Value> = EXACT_NUMBERS.iter().map(|text| exact(text)).collect();
    expected[7] = exact("3.141592653589793");
    assert_eq!(run.json()["result"], json!(expected), "{}", run.stdout);

    // Python's arithmetic on big integers, and on floats.
    let sums = run_document(
        json!({"plugins": plugins, "workflow": [{"group": [
            {"task": "celery_api.add", "args": [exact(EXACT_NUMBERS[3]), 1]},
            {"task": "celery_api.plus", "args": [exact("0.1"), exact("0.2")]},
        ]}]}),
        &["--json"],
    );
    assert_eq!(sums.code, 0, "{}", sums.stderr);
    assert_eq!(
        sums.json()["result"].to_string(),
        "[1606938044258990275541962092341162602522202993782792835301377,0.30000000000000004]"
    );

    let misfit = run_document(
        json!({"plugins": plugins, "workflow": [
            {"task": "celery_api.add", "args": [exact(EXACT_NUMBERS[0]), 0]},
            {"task": "math.add", "args": [1]},
        ]}),
        &["--json"],
    );
    assert_eq!(misfit.code, 1, "{}", misfit.stdout);
    let message = misfit.json()["error"]["message"].to_string();
    assert!(
        message.contains("expected i64, got 18446744073709551616 (too large)"),
        "{message}"
    );
}

/// A Python task's annotations are its types: a literal that does not fit
/// and a result that cannot flow into the next step are refused before
/// anything runs, every problem named; parameters without annotations
/// take anything.
#[test]
fn python_annotations_are_checked_before_anything_runs() {
    let Some(api) = api() else { return };
    let plugins = json!({"celery_api": api, "math": plugin("math")});
    let wrong = common::chain_file(&json!({"plugins": plugins, "workflow": [
        {"task": "celery_api.add", "args": ["one", 2]},
        {"task": "celery_api.shouts"},
        {"task": "celery_api.nap", "args": [1, "long"], "immutable": true},
    ]}));
    let path = wrong.path.to_str().unwrap();
    for command in ["validate", "run"] {
        let refused = wrong.command(&[command, path]);
        assert_eq!(refused.code, 2, "{command}: {}", refused.stderr);
        for expected in [
            "step 0 (`celery_api.add`): add() argument 'x' (int) at args[0]: expected an integer, \
             got the string \"one\"",
            "step 2 (`celery_api.nap`): nap() argument 'seconds' (float) at args[1]: expected a \
             number, got the string \"long\"",
            "step 1 (`celery_api.shouts`): shouts() argument 'text' (str) would get the result of \
             step 0 (`celery_api.add`): an integer, where it takes a string",
        ] {
            assert!(
                refused.stderr.contains(expected),
                "{command}: {}",
                refused.stderr
            );
        }
    }
    assert_eq!(wrong.command(&["list", "--json"]).json(), json!([]));

    // Without annotations, anything goes; an int flows into a float.
    let right = common::chain_file(&json!({"plugins": plugins, "workflow": [
        {"task": "celery_api.python_signature", "args": ["x", [1]], "kwargs": {"c": {"any": 1}}},
        {"task": "math.add", "args": [1, 2], "immutable": true},
        {"task": "celery_api.plus", "args": [0.5]},
    ]}));
    let valid = right.command(&["validate", right.path.to_str().unwrap()]);
    assert_eq!(valid.code, 0, "{}", valid.stderr);
}

#[test]
fn python_failures_are_named_by_type_message_and_traceback() {
    let Some(api) = api() else { return };
    let step = call(&api, "fails", json!([]), json!({}), json!({}));
    assert_eq!(
        step["error"],
        json!({"kind": "fail", "message": "celery_api.OutOfStock: sku 12 is gone"})
    );
    let stderr = step["stderr"]["text"].as_str().unwrap();
    assert!(
        stderr.starts_with("Traceback (most recent call last):"),
        "{stderr}"
    );
    // The module's own file name, not where the component mounts it.
    assert!(
        stderr.contains("File \"celery_api.py\", line") && stderr.contains("in fails"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wfhost_task"),
        "the SDK's frames are left out: {stderr}"
    );
    // Python looked for its source file to print the traceback; a failure
    // that is not about files is not explained by that.
    assert!(!step.to_string().contains("denied"), "{step}");

    let step = call(&api, "fails_builtin", json!(["x"]), json!({}), json!({}));
    assert_eq!(
        step["error"]["message"],
        "ValueError: invalid literal for int() with base 10: 'x'"
    );
    // A path under no grant: Python's own error, and the grant named.
    let step = call(
        &api,
        "reads",
        json!(["/secret/orders.csv"]),
        json!({}),
        json!({}),
    );
    let message = step["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("FileNotFoundError: ")
            && message.contains("'/secret/orders.csv'")
            && message.ends_with(
                "(the host denied: no grant covers /secret/orders.csv: the plugin has no dirs \
                 grant (grants.dirs))"
            ),
        "{message}"
    );
    let step = call(&api, "rejects", json!([]), json!({}), json!({}));
    assert_eq!(step["error"]["message"], "rejected: malformed order");
    let step = call(&api, "exits", json!([3]), json!({}), json!({}));
    assert_eq!(
        step["error"]["message"],
        "celery_api.exits exited with status 3 (SystemExit)"
    );
    let step = call(&api, "unserializable", json!([]), json!({}), json!({}));
    let message = step["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the result is not JSON") && message.contains("object"),
        "{message}"
    );
    let step = call(&api, "dynamic", json!([]), json!({}), json!({}));
    let message = step["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("ModuleNotFoundError: No module named 'fractions'")
            && message.contains("import 'fractions' at the top of 'celery_api'"),
        "{message}"
    );
}

#[test]
fn a_memory_error_is_the_memory_limit() {
    let Some(api) = api() else { return };
    let limit = json!({"memory_mb": 48});
    let step = call(&api, "hog", json!([96]), json!({}), limit.clone());
    assert_eq!(step["error"]["kind"], "memory_limit", "{step}");
    let message = step["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("exceeded the memory limit of 48 MiB")
            && message.ends_with(": MemoryError"),
        "{message}"
    );
    // Under the limit the same task succeeds.
    let step = call(&api, "hog", json!([4]), json!({}), limit);
    assert_eq!(step["result"], 4, "{step}");
}

#[test]
fn python_logging_and_output_reach_the_step_record() {
    let Some(api) = api() else { return };
    let step = call(&api, "shouts", json!(["<b>"]), json!({}), json!({}));
    assert_eq!(step["result"], "<b>");
    assert_eq!(
        step["logs"],
        json!([
            {"level": "info", "message": "celery_api: info <b>"},
            {"level": "warn", "message": "celery_api: warning <b>"},
            {"level": "error", "message": "celery_api: error <b>"},
        ])
    );
    assert_eq!(step["stdout"]["text"], "printed <b>\n");
}

#[test]
fn sixty_four_python_steps_run_at_once() {
    let Some(api) = api() else { return };
    let members: Vec<Value> = (0..64)
        .map(|i| json!({"task": "celery_api.nap", "args": [i, 0.3]}))
        .collect();
    let started = Instant::now();
    let run = run(&api, json!({"group": members}), &["--concurrency", "64"]);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: Vec<i64> = (0..64).collect();
    assert_eq!(run.json()["result"], json!(expected));
    println!("64 Python steps of 0.3 s each at --concurrency 64: {elapsed:?}");
}

/// More attempts at once than the instance pool holds (64 components):
/// the ones that find it full wait for room, none fails.
#[test]
fn attempts_beyond_the_instance_pool_wait_for_room() {
    let Some(api) = api() else { return };
    let members: Vec<Value> = (0..100)
        .map(|i| json!({"task": "celery_api.nap", "args": [i, 0.2]}))
        .collect();
    let run = run(&api, json!({"group": members}), &["--concurrency", "100"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: Vec<i64> = (0..100).collect();
    assert_eq!(run.json()["result"], json!(expected));
    let attempts: Vec<Value> = run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["task"] == "celery_api.nap")
        .map(|step| step["attempts"].clone())
        .collect();
    assert_eq!(attempts, vec![json!(1); 100]);
}

#[test]
fn a_module_that_imports_inside_a_task_is_refused_at_build() {
    if !common::python3_runs("a_module_that_imports_inside_a_task_is_refused_at_build") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("lazy.py");
    std::fs::write(
        &module,
        "from wfhost_task import shared_task\n\n\n@shared_task\ndef work():\n    import fractions\n    return 1\n",
    )
    .unwrap();
    let built = common::wfhost()
        .arg("build-py")
        .arg(&module)
        .arg("-o")
        .arg(dir.path().join("lazy.wasm"))
        .env("PYTHONPATH", repo_root().join("guest-sdk/python"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert_eq!(built.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "lazy.py:6: work() imports 'fractions', which the module does not import when it loads"
        ) && stderr.contains("move them to the top of the module"),
        "{stderr}"
    );
    assert!(!dir.path().join("lazy.wasm").exists());
}

/// `pip install ./guest-sdk/python` installs the SDK with the WIT it
/// builds against (the repository's own, not a copy that could drift) and
/// the build command.
#[test]
fn the_sdk_installs_with_pip_and_ships_the_wit() {
    if !common::python3_runs("the_sdk_installs_with_pip_and_ships_the_wit") {
        return;
    }
    let target = tempfile::tempdir().unwrap();
    let installed = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(target.path())
        .arg(repo_root().join("guest-sdk/python"))
        .output()
        .unwrap();
    common::assert_succeeded(&installed);
    let shipped = std::fs::read_to_string(target.path().join("wfhost_task/wit/task.wit")).unwrap();
    let wit = std::fs::read_to_string(repo_root().join("wit/task.wit")).unwrap();
    assert_eq!(shipped, wit);
    let usage = std::process::Command::new("python3")
        .args(["-m", "wfhost_task", "build", "--help"])
        .env("PYTHONPATH", target.path())
        .current_dir(target.path())
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&usage.stdout);
    assert!(
        usage.status.success() && help.contains("Build a Python tasks module"),
        "{help}"
    );
}

/// A large component's first compile takes seconds: it is said on stderr
/// (a line when stderr is not a terminal), and not again once compiled.
#[test]
fn a_first_compile_is_said_and_later_uses_are_silent() {
    let Some(api) = api() else { return };
    let dir = tempfile::tempdir().unwrap();
    let inspect = || {
        Run::from(
            wfhost()
                .arg("inspect")
                .arg(&api)
                .env("WFHOST_CACHE_DIR", dir.path().join("cache"))
                .output()
                .unwrap(),
        )
    };
    let first = inspect();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first
            .stderr
            .matches("compiling celery_api.wasm (first use)…")
            .count(),
        1,
        "{}",
        first.stderr
    );
    let again = inspect();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("compiling"), "{}", again.stderr);
}
