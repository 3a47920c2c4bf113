//! `wfhost worker` serving an unmodified Python Celery 5.7 client from a
//! real `redis-server`: three worker processes take the client's chains,
//! groups and chords, and `AsyncResult.get()` returns values and raises
//! errors as it does with Celery's own worker.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fleet::Fleet;
use serde_json::{Value, json};

fn ready(test: &str) -> bool {
    common::redis::available(test) && common::python3_runs(test) && common::celery_is_installed()
}

fn by_scenario(results: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    results
        .into_iter()
        .map(|result| (result["scenario"].as_str().unwrap().to_string(), result))
        .collect()
}

#[test]
fn a_celery_client_runs_its_canvas_on_wfhost_workers() {
    if !ready("a_celery_client_runs_its_canvas_on_wfhost_workers") {
        return;
    }
    let fleet = Fleet::start("worker-canvas", 3, &[]);
    let seen = by_scenario(fleet.client(&[
        "send_task",
        "chain_of_three",
        "group_of_ten",
        "chord_sum",
        "chord_of_hundred",
        "failing_step",
        "failing_chord_member",
        "link_and_link_error",
        "retry",
        "replace",
        "expires",
        "countdown",
        "not_registered",
        "grants",
        "maps",
        "exact_numbers",
    ]));

    assert_eq!(seen["send_task"]["value"], 5);
    let chain = &seen["chain_of_three"];
    assert_eq!(chain["value"], 80, "{chain}");
    assert_eq!(chain["parents"], json!([8, 4]), "{chain}");
    assert_eq!(chain["parent_state"], "SUCCESS");
    let doubled: Vec<i64> = (0..10).map(|i| i * 2).collect();
    assert_eq!(seen["group_of_ten"]["value"], json!(doubled));
    assert_eq!(
        seen["chord_sum"]["value"],
        (0..20).map(|i| i * 2).sum::<i64>()
    );
    let maps = &seen["maps"];
    assert_eq!(maps["mapped"], json!([3, 3]), "{maps}");
    assert_eq!(maps["starred"], json!([3, 7]), "{maps}");
    assert_eq!(maps["in_chain"], 18, "{maps}");
    assert_eq!(maps["linked"], 18, "a link gets the map's list: {maps}");
    assert_eq!(maps["failing"]["type"], "TaskFailed", "{maps}");
    assert_eq!(
        maps["chunks"],
        json!([[3, 7], [11]]),
        "celery.chunks as a task: {maps}"
    );
    // Python's integers of any size and its floats come back as sent.
    let exact = &seen["exact_numbers"];
    assert_eq!(exact["echoed"], true, "{exact}");
    assert_eq!(exact["grouped"], true, "{exact}");
    assert_eq!(exact["wide"], true, "{exact}");
    assert!(
        exact["misfit"]["message"].as_str().is_some_and(
            |message| message.contains("expected i64, got 18446744073709551616 (too large)")
        ),
        "{exact}"
    );
    let hundred: Vec<i64> = (0..100).map(|i| i + 1).collect();
    assert_eq!(
        seen["chord_of_hundred"]["value"],
        json!(hundred),
        "results in member order"
    );

    let failing = &seen["failing_step"];
    assert_eq!(failing["seen"]["type"], "TaskFailed", "{failing}");
    assert_eq!(failing["seen"]["message"], "boom", "{failing}");
    assert_eq!(failing["failed_state"], "FAILURE");
    assert_eq!(
        failing["last_state"], "FAILURE",
        "the failure reaches the chain's end"
    );

    let member = &seen["failing_chord_member"];
    // `get()` raises the member's error when the member has failed by the
    // time it looks at the parents, else the body's ChordError, which
    // names it (so with Celery's own worker too).
    let raised = member["seen"]["message"].as_str().unwrap();
    match member["seen"]["type"].as_str().unwrap() {
        "TaskFailed" => assert_eq!(raised, "member"),
        "ChordError" => assert!(raised.ends_with("raised TaskFailed('member')"), "{member}"),
        other => panic!("raised {other}: {member}"),
    }
    assert_eq!(member["body_state"], "FAILURE");
    assert_eq!(member["body_error"]["type"], "ChordError", "{member}");
    assert_eq!(member["body_raised"]["type"], "ChordError", "{member}");
    let chord_message = member["body_error"]["message"].as_str().unwrap();
    assert!(
        chord_message.ends_with("raised TaskFailed('member')"),
        "{chord_message}"
    );

    let linked = &seen["link_and_link_error"];
    assert_eq!(
        (linked["first"].clone(), linked["linked"].clone()),
        (json!(2), json!(7)),
        "{linked}"
    );
    assert_eq!(linked["seen"]["type"], "TaskFailed");
    assert_eq!(
        linked["errback_saw"], linked["failed_id"],
        "the errback gets the failed task's id"
    );

    let retry = &seen["retry"];
    assert_eq!(
        retry["value"], 3,
        "two retries, then the third attempt: {retry}"
    );
    assert!(
        retry["states"]
            .as_array()
            .unwrap()
            .contains(&json!("RETRY")),
        "{retry}"
    );
    assert_eq!(retry["id_kept"], true);
    assert_eq!(
        retry["own_limit"], 5,
        "max_retries 5 in the wfhost_options header: {retry}"
    );
    assert_eq!(
        retry["default_limit"]["type"], "MaxRetriesExceededError",
        "{retry}"
    );

    let replace = &seen["replace"];
    assert_eq!(
        replace["value"], 41,
        "route(20) became mul(20, 2), then add 1: {replace}"
    );
    assert_eq!(
        replace["replaced"], 40,
        "the replacement answers for the replaced id"
    );
    assert_eq!(
        replace["fanned"],
        json!([1, "two", 3]),
        "a group replacement gives a list"
    );
    assert_eq!(replace["nothing"]["type"], "InvalidOutput", "{replace}");

    let expired = &seen["expires"];
    assert_eq!(expired["seen"]["type"], "TaskRevokedError", "{expired}");
    assert_eq!(expired["state"], "REVOKED");

    let countdown = &seen["countdown"];
    assert_eq!(countdown["value"], 3);
    assert!(countdown["waited"].as_f64().unwrap() >= 1.4, "{countdown}");

    let unknown = &seen["not_registered"]["seen"];
    assert_eq!(unknown["type"], "NotRegistered", "{unknown}");
    assert_eq!(unknown["message"], "'testkit.no_such_task'");

    let grants = &seen["grants"];
    assert_eq!(
        grants["granted"], "images",
        "plugins.toml's grants reach the task: {grants}"
    );
    assert!(
        grants["refused"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{grants}"
    );

    fleet.assert_nothing_left();
}

/// A real `celery worker` for the Python tasks, on the `celery` queue.
struct PythonWorker(Child);

impl PythonWorker {
    fn start(fleet: &Fleet, extra_env: &[(&str, &str)]) -> PythonWorker {
        let log = std::fs::File::create(fleet.logs.join("celery-worker.log")).unwrap();
        let child = Command::new("python3")
            .args([
                "-m", "celery", "-A", "pytasks", "worker", "-Q", "celery", "-P", "solo",
            ])
            .args([
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ])
            .args(["--loglevel", "INFO"])
            .current_dir(common::repo_root().join("tests/fixtures/celery_fleet"))
            .env("BROKER", fleet.redis.url())
            .envs(extra_env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting celery worker");
        PythonWorker(child)
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        common::kill(&mut self.0);
    }
}

#[test]
fn a_chain_crosses_python_celery_and_wfhost_workers() {
    if !ready("a_chain_crosses_python_celery_and_wfhost_workers") {
        return;
    }
    let fleet = Fleet::start("worker-mixed", 2, &[]);
    let _python = PythonWorker::start(&fleet, &[]);
    let seen = by_scenario(fleet.client(&["mixed_chain", "python_errback"]));
    // double(2) on Python, add(4, 3) on wfhost, double(7) on Python.
    assert_eq!(seen["mixed_chain"]["value"], 14, "{}", seen["mixed_chain"]);
    let errback = &seen["python_errback"];
    assert_eq!(
        errback["errback"],
        format!("errback saw {}", errback["failed_id"].as_str().unwrap()),
        "a Python errback of a wasm task runs on the Python worker: {errback}"
    );
    fleet.assert_nothing_left();
}

/// The audit list's entries: how many commits of each outcome each task
/// id has.
fn audit(fleet: &Fleet) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut commits: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in fleet.redis.cli(&["LRANGE", AUDIT, "0", "-1"]).lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        commits
            .entry(entry["id"].as_str().unwrap().to_string())
            .or_default()
            .push(entry["outcome"].as_str().unwrap().to_string());
    }
    commits
}

const AUDIT: &str = "wfhost.audit";

#[test]
fn workers_killed_at_random_lose_nothing_and_commit_each_task_once() {
    if !ready("workers_killed_at_random_lose_nothing_and_commit_each_task_once") {
        return;
    }
    // Kills at random may take one message down several times: none is
    // to be set aside as poison here.
    let flags = [
        "--visibility-timeout",
        "2",
        "--restore-interval",
        "0.5",
        "--audit-list",
        AUDIT,
        "--max-deliveries",
        "1000",
    ];
    let mut fleet = Fleet::start("worker-crash", 3, &flags);
    let mut client = fleet
        .client_command(&["crash_load"])
        .env("TIMEOUT", "300")
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the Celery client");
    // Read as it comes: its one line is larger than a pipe holds.
    let mut stdout = client.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let mut kills = 0;
    while kills < 12 && client.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(fastrand::u64(200..700)));
        let victim = fastrand::usize(..fleet.workers.len());
        common::kill(&mut fleet.workers[victim]);
        kills += 1;
        // The replacement takes the dead one's place (and name).
        fleet.workers[victim] = fleet.spawn_worker(
            &format!("w{victim}"),
            &format!("worker-{victim}-after-{kills}.log"),
            "2",
            &flags,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = client.kill();
            let keys = fleet.redis.keys("celery-task-meta-*").len();
            panic!(
                "the client never finished after {kills} kills: {} unacked, {} queued, {} delayed, \
                 {keys} results, chord keys {:?}, {} audit entries; see {}",
                fleet.redis.number(&["HLEN", "unacked"]),
                fleet.redis.number(&["LLEN", "wfhost"]),
                fleet.redis.number(&["ZCARD", "wfhost.delayed"]),
                fleet.redis.keys("celery-taskset-meta-*"),
                fleet.redis.number(&["LLEN", AUDIT]),
                fleet.logs.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        kills >= 10,
        "only {kills} kills: the load ended too soon to be a test"
    );
    let status = client.wait().unwrap();
    let output = reader.join().unwrap();
    assert!(
        status.success(),
        "the client failed; worker logs: {}",
        fleet.logs.display()
    );
    let seen: Value = serde_json::from_str(output.lines().next().unwrap()).unwrap();

    let expected: Vec<i64> = (0..200).map(|i| i + 9).collect();
    assert_eq!(seen["values"], json!(expected), "every chain's value");
    assert_eq!(
        seen["chord_values"],
        json!([19900, 39800]),
        "every chord's value"
    );

    let commits = audit(&fleet);
    let ids = seen["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 200 * 10 + 2 * 201);
    for id in ids {
        let id = id.as_str().unwrap();
        let outcomes = commits.get(id).map(Vec::as_slice).unwrap_or_default();
        let successes = outcomes.iter().filter(|o| *o == "SUCCESS").count();
        assert_eq!(
            successes, 1,
            "task {id} committed {outcomes:?} over {kills} kills"
        );
    }
    let restored = restored_by_wfhost(&fleet);
    assert!(
        restored > 0,
        "no kill left a claim to restore: not a test of recovery"
    );
    let duplicates: usize = commits
        .values()
        .map(|o| o.iter().filter(|o| *o == "duplicate").count())
        .sum();
    println!(
        "{kills} kills; {restored} claims restored; {} commits of {} tasks; \
         {duplicates} redelivered successes acknowledged",
        commits.values().map(Vec::len).sum::<usize>(),
        ids.len()
    );
    fleet.assert_nothing_left();
}

/// How many claims the wfhost workers' sweeps put back, from their logs.
fn restored_by_wfhost(fleet: &Fleet) -> u64 {
    let mut restored = 0;
    for entry in std::fs::read_dir(&fleet.logs).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("put back messages")) {
            restored += line
                .rsplit("restored=")
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    restored
}

#[test]
fn a_python_worker_restores_what_a_killed_wfhost_worker_held() {
    if !ready("a_python_worker_restores_what_a_killed_wfhost_worker_held") {
        return;
    }
    let flags = ["--visibility-timeout", "2", "--audit-list", AUDIT];
    let mut fleet = Fleet::start("worker-restore", 1, &flags);
    let sent = fleet.client(&["held_load"]).remove(0);
    let ids: Vec<&str> = sent["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    // Two run (two slots), two are claimed ahead (the prefetch).
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.redis.number(&["HLEN", "unacked"]) < 4 {
        assert!(Instant::now() < deadline, "the worker never claimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::kill(&mut fleet.workers[0]);
    assert_eq!(
        fleet.redis.number(&["HLEN", "unacked"]),
        4,
        "the dead worker's claims stay"
    );

    // Only Celery's own worker is alive: kombu's sweep must put the dead
    // wfhost worker's claims back on the wfhost queue.
    let python = PythonWorker::start(&fleet, &[("VISIBILITY_TIMEOUT", "2")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fleet.redis.number(&["HLEN", "unacked"]) > 0
        || fleet.redis.number(&["LLEN", "wfhost"]) < 4
    {
        assert!(
            Instant::now() < deadline,
            "kombu did not restore the claims; see {}",
            fleet.logs.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(python);

    fleet.workers.clear();
    fleet.add_worker(&flags);
    let ids_text = ids.join(",");
    let seen = fleet
        .client_with(&["wait_for"], &[("IDS", &ids_text)])
        .remove(0);
    assert_eq!(seen["values"], json!([0, 2, 4, 6]));
    let commits = audit(&fleet);
    for id in ids {
        assert_eq!(commits[id], ["SUCCESS"], "task {id}");
    }
    fleet.assert_nothing_left();
}

#[test]
fn wfhost_run_sends_a_workflow_to_the_fleet_and_status_shows_it() {
    if !ready("wfhost_run_sends_a_workflow_to_the_fleet_and_status_shows_it") {
        return;
    }
    let fleet = Fleet::start("worker-run", 2, &[]);
    let plugins = json!({
        "math": common::plugin_dir().join("math.wasm"),
        "testkit": common::plugin_dir().join("testkit.wasm"),
    });
    let run = |workflow: Value| {
        let file = common::chain_file(&json!({"plugins": plugins, "workflow": workflow}));
        common::Run::from(
            common::wfhost()
                .args(["run", "--broker", &fleet.redis.url(), "--wait", "60"])
                .arg(&file.path)
                .output()
                .unwrap(),
        )
    };
    // add(1, 2) = 3; a chord of add(3, 1) and add(3, 2), summed: 9.
    let chained = run(json!({"chain": [
        {"task": "math.add", "args": [1, 2]},
        {"chord": {"header": [{"task": "math.add", "args": [1]}, {"task": "math.add", "args": [2]}],
                   "body": {"task": "math.xsum"}}},
        {"task": "math.mul", "args": [10]},
    ]}));
    assert_eq!(chained.code, 0, "{}", chained.stderr);
    assert_eq!(chained.stdout.trim(), "90");
    let grouped = run(
        json!({"group": [{"task": "math.add", "args": [1, 1]}, {"task": "testkit.echo", "args": ["x"]}]}),
    );
    assert_eq!(grouped.stdout.trim(), r#"[2,"x"]"#, "{}", grouped.stderr);
    // Celery's own JSON form (`json.dumps(chain)`) is sent as it is.
    let sig = |task: &str, args: Value| {
        json!({"task": task, "args": args, "kwargs": {}, "options": {},
               "subtask_type": null, "immutable": false})
    };
    let celery_form = run(
        json!({"task": "celery.chain", "subtask_type": "chain", "args": [],
        "kwargs": {"tasks": [sig("math.add", json!([1, 1])), sig("math.mul", json!([3]))]},
        "options": {}, "immutable": false}),
    );
    assert_eq!(celery_form.stdout.trim(), "6", "{}", celery_form.stderr);
    // A sleep or a wait is the host's own step, which Celery's protocol
    // has no form for: refused by name, nothing sent.
    let paused = run(json!([{"task": "math.add", "args": [1, 1]}, {"sleep": "1s"}]));
    assert_eq!(paused.code, 2, "{}", paused.stderr);
    assert!(
        paused
            .stderr
            .contains("a `wfhost.sleep` step is not sent to a fleet"),
        "{}",
        paused.stderr
    );
    let failed = run(json!([{"task": "testkit.fail", "args": ["no"]}]));
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("wfhost.TaskFailed: no"),
        "{}",
        failed.stderr
    );

    let status = common::Run::from(
        common::wfhost()
            .args(["worker", "status", "--broker", &fleet.redis.url(), "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status = status.json();
    assert_eq!(status["workers"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(status["queues"], json!([["wfhost", 0]]));
    assert_eq!(status["unacked"], 0);
    fleet.assert_nothing_left();
}

/// `run --broker` sends the workflow the file means: its `defaults` and
/// each step's options (fuel, memory, the retry policy) and its `id` do on
/// the fleet what they do in `run`; what a fleet cannot honour is refused
/// by name (issue "One canvas, two drivers").
#[test]
fn run_broker_honours_defaults_and_step_options_as_run_does() {
    if !ready("run_broker_honours_defaults_and_step_options_as_run_does") {
        return;
    }
    // The workers keep Celery's default of three retries.
    let fleet = Fleet::start("worker-run-options", 1, &[]);
    let plugins = json!({
        "math": common::plugin_dir().join("math.wasm"),
        "testkit": common::plugin_dir().join("testkit.wasm"),
    });
    let state = tempfile::tempdir().unwrap();
    // The same file through `run` and through `run --broker`.
    let both = |document: Value| {
        let mut document = document;
        document["plugins"] = plugins.clone();
        let file = common::chain_file(&document);
        let run = |command: &mut std::process::Command| {
            common::Run::from(command.arg(&file.path).output().unwrap())
        };
        let local = run(common::wfhost_in(state.path()).arg("run"));
        let remote =
            run(common::wfhost().args(["run", "--broker", &fleet.redis.url(), "--wait", "60"]));
        (local, remote)
    };
    let flaky = |key: &str, failures: u32, options: Value| json!({"task": "testkit.flaky", "args": [key, failures], "options": options});

    // Both drivers give `value`.
    let both_give = |document: Value, value: &str| {
        let (local, remote) = both(document);
        for (driver, run) in [("run", local), ("run --broker", remote)] {
            assert_eq!(
                (run.code, run.stdout.trim()),
                (0, value),
                "{driver}: {}",
                run.stderr
            );
        }
    };

    // A step's own limit above the workers' default of three.
    both_give(
        json!({"workflow": [flaky("five", 4, json!({"max_retries": 5}))]}),
        "5",
    );
    // A task's own limit (`#[task(max_retries = 5)]`) above the default,
    // and past it.
    let stubborn =
        |failures: u32| json!({"workflow": [{"task": "testkit.stubborn", "args": [failures]}]});
    both_give(stubborn(4), "5");
    let (local, remote) = both(stubborn(6));
    assert_eq!((local.code, remote.code), (1, 1), "{}", remote.stderr);
    // The defaults' limit below it.
    let (local, remote) = both(json!({
        "defaults": {"max_retries": 1},
        "workflow": [flaky("one", 2, json!({}))],
    }));
    assert_eq!(local.code, 1, "{}", local.stderr);
    assert_eq!(remote.code, 1, "{}", remote.stderr);
    assert!(remote.stderr.contains("Can't retry"), "{}", remote.stderr);

    // Fuel from the defaults, memory from the step: each fails the step on
    // both drivers, where without it the step succeeds.
    let burn = json!([{"task": "testkit.burn", "args": [100_000_000]}]);
    let (local, remote) = both(json!({"defaults": {"fuel": 1_000_000}, "workflow": burn}));
    assert!(local.stderr.contains("fuel"), "{}", local.stderr);
    assert_eq!(remote.code, 1, "{}", remote.stderr);
    assert!(remote.stderr.contains("FuelExhausted"), "{}", remote.stderr);
    let hog = |options: Value| json!([{"task": "testkit.hog", "args": [64], "options": options}]);
    let (local, remote) = both(json!({"workflow": hog(json!({"memory_mb": 16}))}));
    assert_eq!(local.code, 1, "{}", local.stderr);
    assert_eq!(remote.code, 1, "{}", remote.stderr);
    assert!(remote.stderr.contains("MemoryLimit"), "{}", remote.stderr);
    let (local, remote) = both(json!({"workflow": hog(json!({}))}));
    assert_eq!((local.code, remote.code), (0, 0), "{}", remote.stderr);
    assert_eq!(local.stdout, remote.stdout);

    // The file's id is the result's.
    let (_, remote) = both(json!({"id": "fleet-run-7", "workflow": [
        {"task": "math.add", "args": [1, 2]}]}));
    assert_eq!(remote.stdout.trim(), "3", "{}", remote.stderr);
    assert!(
        remote.stderr.contains("sent as task fleet-run-7"),
        "{}",
        remote.stderr
    );
    // What a fleet has no place for is refused by name, and nothing is sent.
    for (key, value) in [
        ("tenant", json!("acme")),
        ("on_error", json!({"task": "testkit.echo", "args": ["x"]})),
    ] {
        let mut document = json!({"workflow": [{"task": "math.add", "args": [1, 2]}]});
        document[key] = value;
        let (_, remote) = both(document);
        assert_eq!(remote.code, 2, "{}", remote.stderr);
        assert!(
            remote.stderr.contains(&format!("`{key}`")),
            "{}",
            remote.stderr
        );
    }
    fleet.assert_nothing_left();
}

/// Celery's remote control reaches the fleet (issue "The fleet in
/// Celery's own tools"): `inspect ping` and `registered` are answered by
/// both workers, `active` and `query_task` name a running task on its
/// worker, a revoke of a task waiting on its countdown keeps it from ever
/// running (REVOKED), a revoke with `terminate` ends a 20 s task within a
/// second, a time limit set for a task ends its next attempt, `celery
/// inspect ping` itself lists both, and `shutdown` stops the one it names.
#[test]
fn celery_inspect_and_revoke_reach_the_fleet() {
    if !ready("celery_inspect_and_revoke_reach_the_fleet") {
        return;
    }
    let mut fleet = Fleet::start("worker-control", 2, &[]);
    fleet.wait_for_workers(2);
    let names = ["w0", "w1"];
    let seen =
        by_scenario(fleet.client_with(&["control"], &[("WORKERS", "2"), ("SHUTDOWN", "w1")]));
    let control = &seen["control"];
    for name in &names {
        assert_eq!(control["ping"][name], json!({"ok": "pong"}), "{control}");
        let registered = control["registered"][name].as_array().unwrap();
        assert!(
            registered.contains(&json!("math.add")) && registered.contains(&json!("testkit.sleep")),
            "{control}"
        );
        assert!(
            control["cli"]["stdout"].as_str().unwrap().contains(name),
            "{control}"
        );
    }
    assert_eq!(control["cli"]["status"], 0, "{control}");
    let active_on = control["active_on"]
        .as_str()
        .expect("a worker lists the task");
    assert!(names.contains(&active_on), "{control}");
    assert!(
        control["query_task"][active_on]
            .as_object()
            .is_some_and(|found| found.len() == 1),
        "{control}"
    );
    assert_eq!(control["short"], 1500);

    assert_eq!(control["waiting"]["type"], "TaskRevokedError", "{control}");
    assert_eq!(control["waiting_state"], "REVOKED");
    assert_eq!(control["revoked_listed"], true, "{control}");
    assert!(control["long_on"].is_string(), "{control}");
    let replies = control["terminate_reply"].to_string();
    assert!(replies.contains("terminate: "), "{control}");
    assert_eq!(control["long"]["type"], "TaskRevokedError", "{control}");
    assert_eq!(control["long_state"], "REVOKED");
    let after = control["terminated_after"].as_f64().unwrap();
    assert!(after < 1.5, "terminated after {after} s: {control}");
    for reply in control["time_limit_reply"].as_array().unwrap() {
        let reply = reply.as_object().unwrap().values().next().unwrap();
        assert_eq!(reply["ok"], "time limits set successfully", "{control}");
    }
    assert_eq!(control["limited"]["type"], "TimeLimitExceeded", "{control}");
    for name in &names {
        // Started with 2 slots, grown by 3, shrunk by 1.
        let pool = &control["stats"][name]["pool"];
        assert_eq!(pool["max-concurrency"], 4, "{control}");
    }
    assert!(control["pool_grow"].to_string().contains("pool will grow"));
    assert!(
        control["pool_shrink"]
            .to_string()
            .contains("pool will shrink")
    );
    // `cancel_consumer` and `add_consumer`: a task sent to a queue no
    // worker consumes waits, one sent to an added queue runs, and the
    // waiting one runs once its queue is consumed again.
    let replies = |key: &str| -> Vec<String> {
        control[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {control}"))
            .iter()
            .flat_map(|reply| reply.as_object().unwrap().values())
            .map(|reply| reply["ok"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        replies("cancel_consumer"),
        ["no longer consuming from wfhost"; 2],
        "{control}"
    );
    assert_eq!(replies("add_other"), ["add consumer other"; 2], "{control}");
    assert_eq!(
        replies("add_consumer"),
        ["add consumer wfhost"; 2],
        "{control}"
    );
    let queue_names = |key: &str, name: &str| -> Vec<String> {
        control[key][name]
            .as_array()
            .unwrap_or_else(|| panic!("{key} of {name}: {control}"))
            .iter()
            .map(|queue| queue["name"].as_str().unwrap().to_string())
            .collect()
    };
    for name in &names {
        assert!(
            queue_names("queues_cancelled", name).is_empty(),
            "{control}"
        );
        assert_eq!(
            queue_names("queues_added", name),
            ["other", "wfhost"],
            "{control}"
        );
    }
    assert_eq!(control["parked_state"], "PENDING", "{control}");
    assert_eq!(control["other"], 2, "{control}");
    assert_eq!(control["parked"], 42, "{control}");

    // `shutdown` to w1: it stops as on SIGTERM, and w0 goes on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = fleet.workers[1].try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "w1 did not stop");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        fleet.workers[0].try_wait().unwrap().is_none(),
        "w0 stopped too"
    );
    fleet.assert_nothing_left();
}

/// Celery's events reach Flower and `celery events` (issue "The fleet in
/// Celery's own tools"): with `-E`, `celery events --dump` prints the
/// events of a chain's tasks on the wfhost workers, and Flower 2.2's HTTP
/// API names both workers and shows the chain's tasks SUCCESS.
#[test]
fn flower_and_celery_events_see_the_fleet() {
    if !ready("flower_and_celery_events_see_the_fleet") {
        return;
    }
    if !common::python_module_is_installed("flower") {
        eprintln!("skipped flower_and_celery_events_see_the_fleet: Flower is not installed");
        return;
    }
    let fleet = Fleet::start("worker-events", 2, &["-E"]);
    fleet.wait_for_workers(2);
    let port = common::free_port();
    let fixtures = common::repo_root().join("tests/fixtures/celery_fleet");
    let flower = common::ChildGuard(
        std::process::Command::new("python3")
            .args(["-m", "celery", "-A", "client", "flower"])
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .current_dir(&fixtures)
            .env("BROKER", fleet.redis.url())
            .env("FLOWER_UNAUTHENTICATED_API", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(fleet.logs.join("flower.log")).unwrap())
            .spawn()
            .expect("starting Flower"),
    );
    let seen = by_scenario(fleet.client_with(
        &["events"],
        &[("FLOWER", &format!("http://127.0.0.1:{port}"))],
    ));
    drop(flower);
    let events = &seen["events"];
    assert_eq!(events["value"], 30, "{events}");
    let dump = events["dump"].as_str().unwrap();
    for id in events["ids"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        for kind in ["task received", "task started", "task succeeded"] {
            assert!(
                dump.lines()
                    .any(|line| line.contains(id) && line.contains(kind)),
                "`celery events --dump` shows no {kind} of {id}:\n{dump}"
            );
        }
    }
    assert_eq!(events["flower"]["workers"], json!(["w0", "w1"]), "{events}");
    for state in events["flower"]["tasks"].as_object().unwrap().values() {
        assert_eq!(state, "SUCCESS", "{events}");
    }
    fleet.assert_nothing_left();
}

/// Celery's `rate_limit` paces a task on the fleet: at 5/s, six sent at
/// once end at least a second apart, first to last, and all run, as on
/// Celery's own worker (the same scenario gave 1.004 s there).
#[test]
fn celery_rate_limit_paces_a_task_on_the_fleet() {
    if !ready("celery_rate_limit_paces_a_task_on_the_fleet") {
        return;
    }
    let fleet = Fleet::start("worker-rate", 1, &[]);
    fleet.wait_for_workers(1);
    let seen = by_scenario(fleet.client_with(&["rate"], &[("WORKERS", "1")]));
    let rate = &seen["rate"];
    assert_eq!(
        rate["set"],
        json!([{"w0": {"ok": "new rate limit set successfully"}}]),
        "{rate}"
    );
    assert_eq!(rate["values"], json!([0, 1, 2, 3, 4, 5]), "{rate}");
    let span = rate["span"].as_f64().unwrap();
    assert!(span >= 0.9, "six at 5/s ended within {span} s");
    // Celery's own worker answers `"0"` so too (it lifts the limit).
    assert_eq!(
        rate["lifted"],
        json!([{"w0": {"ok": "new rate limit set successfully"}}]),
        "{rate}"
    );
    fleet.assert_nothing_left();
}

/// `celery beat` with a one-second schedule drives the fleet, and the
/// worker takes Celery's own flags (`-Q`, `-c`, `-n` with `%h`, `-l`).
#[test]
fn celery_beat_drives_the_fleet_started_with_celerys_flags() {
    if !ready("celery_beat_drives_the_fleet_started_with_celerys_flags") {
        return;
    }
    let mut fleet = Fleet::start("worker-beat", 0, &[]);
    let log = std::fs::File::create(fleet.logs.join("worker-0.log")).unwrap();
    fleet.workers.push(
        common::wfhost()
            .args(["worker", "--broker", &fleet.redis.url(), "--plugins"])
            .arg(&fleet.plugins)
            .args(["-Q", "wfhost", "-c", "2", "-n", "beat@%h", "-l", "WARNING"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    fleet.wait_for_workers(1);
    let announced = fleet.redis.keys("wfhost.worker.*");
    assert!(
        announced
            .iter()
            .any(|key| key.starts_with("wfhost.worker.beat@") && !key.contains('%')),
        "{announced:?}"
    );
    let seen = by_scenario(fleet.client(&["beat"]));
    let succeeded = seen["beat"]["succeeded"].as_u64().unwrap();
    assert!(succeeded >= 3, "beat's tasks that ran: {succeeded}");
    // `-l WARNING`: none of the worker's own news ("worker ready").
    let logged = std::fs::read_to_string(fleet.logs.join("worker-0.log")).unwrap();
    assert!(!logged.contains("INFO"), "{logged}");
    fleet.assert_nothing_left();
}

/// `--prefetch-multiplier` (Celery's prefetch): a worker with one slot busy
/// holds the next message claimed ahead, which `inspect reserved` lists
/// and `query_task` finds, and runs it when the slot frees — as Celery's
/// own worker does with the same client scenario.
#[test]
fn a_message_claimed_ahead_is_reserved_then_runs() {
    if !ready("a_message_claimed_ahead_is_reserved_then_runs") {
        return;
    }
    let mut fleet = Fleet::start("worker-reserved", 0, &[]);
    let worker = fleet.spawn_worker("r0", "worker-0.log", "1", &["--prefetch-multiplier", "2"]);
    fleet.workers.push(worker);
    fleet.wait_for_workers(1);
    let seen = by_scenario(fleet.client_with(&["reserved"], &[("SLOTS", "1"), ("WORKERS", "1")]));
    let reserved = &seen["reserved"];
    assert_eq!(reserved["reserved_on"], "r0", "{reserved}");
    assert_eq!(reserved["query_task"], "reserved", "{reserved}");
    assert_eq!(reserved["busy"], json!([1500]), "{reserved}");
    assert_eq!(reserved["waiting"], 10, "{reserved}");
    fleet.assert_nothing_left();
}

/// `--metrics ADDR`: a worker's `/metrics` (Prometheus' text) counts the
/// tasks it ran by name and state and tells its queues' depths,
/// `/health` says the broker answers, and `wfhost worker status` lists
/// the task a worker runs.
#[test]
fn a_worker_serves_metrics_and_health() {
    if !ready("a_worker_serves_metrics_and_health") {
        return;
    }
    let mut fleet = Fleet::start("worker-metrics", 0, &[]);
    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    let worker = fleet.spawn_worker("m0", "worker-0.log", "2", &["--metrics", &address]);
    fleet.workers.push(worker);
    fleet.wait_for_workers(1);
    let seen = by_scenario(fleet.client(&["send_task"]));
    assert_eq!(seen["send_task"]["value"], 5);
    let (status, text) = common::http_get(port, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    for line in [
        "wfhost_worker_tasks_total{task=\"math.add\",state=\"SUCCESS\"} 1\n",
        "wfhost_worker_task_duration_seconds_count 1\n",
        "wfhost_worker_queue_depth{queue=\"wfhost\"} 0\n",
        "wfhost_worker_active 0\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let (status, text) = common::http_get(port, "/health");
    assert!(
        status.contains(" 200 ") && text == "ok\n",
        "{status} {text}"
    );

    // `wfhost worker status` lists what each worker runs.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(wfhost::worker::FleetClient::connect(&fleet.redis.url()))
        .unwrap();
    let id = runtime
        .block_on(client.submit(&json!({"task": "testkit.sleep", "args": [3000]}), "wfhost"))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let shown = common::Run::from(
            common::wfhost()
                .args(["worker", "status", "--broker", &fleet.redis.url()])
                .output()
                .unwrap(),
        );
        if shown
            .stdout
            .contains(&format!("running testkit.sleep [{id}]"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", shown.stdout);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    runtime
        .block_on(client.wait(&id, Some(std::time::Duration::from_secs(10))))
        .unwrap()
        .expect("the sleep ends");
    fleet.assert_nothing_left();
}

#[test]
fn sigterm_finishes_what_runs_and_claims_nothing_more() {
    if !ready("sigterm_finishes_what_runs_and_claims_nothing_more") {
        return;
    }
    let mut fleet = Fleet::start("worker-sigterm", 1, &["--audit-list", AUDIT]);
    let sent = fleet.client(&["held_load"]).remove(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.redis.number(&["HLEN", "unacked"]) < 2 {
        assert!(Instant::now() < deadline, "the worker never claimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = fleet.workers[0].id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = fleet.workers[0].wait().unwrap();
    assert!(
        status.success(),
        "the worker exits 0 after SIGTERM: {status}"
    );
    // The two it held are done; the other two wait for another worker.
    let ids: Vec<&str> = sent["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    let commits = audit(&fleet);
    let done: Vec<&&str> = ids.iter().filter(|id| commits.contains_key(**id)).collect();
    assert_eq!(done.len(), 2, "committed: {commits:?}");
    assert_eq!(fleet.redis.number(&["HLEN", "unacked"]), 0);
    assert_eq!(fleet.redis.number(&["LLEN", "wfhost"]), 2);
    assert!(
        fleet.redis.keys("wfhost.worker.*").is_empty(),
        "the worker says it left"
    );
}

/// The next step of a chain is claimed in the commit of the step before,
/// by the worker that ran it, and runs there in the same slot: it is not
/// pushed for whichever worker waits (here the other, idle one would take
/// it at once). A stopping worker claims nothing so: the step after the
/// one it finishes waits on the queue for another worker.
#[test]
fn a_chains_next_step_runs_where_the_step_before_ran_unless_the_worker_stops() {
    if !ready("a_chains_next_step_runs_where_the_step_before_ran_unless_the_worker_stops") {
        return;
    }
    let mut fleet = Fleet::start("worker-next-step", 2, &["--audit-list", AUDIT]);
    fleet.wait_for_workers(2);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(wfhost::worker::FleetClient::connect(&fleet.redis.url()))
        .unwrap();
    let steps = |count: usize, ms: u64| {
        let mut steps = vec![json!({"task": "testkit.sleep", "args": [ms]})];
        steps.extend((1..count).map(|_| json!({"task": "testkit.sleep"})));
        json!({"chain": steps})
    };
    let id = runtime
        .block_on(client.submit(&steps(6, 20), "wfhost"))
        .unwrap();
    let outcome = runtime
        .block_on(client.wait(&id, Some(Duration::from_secs(30))))
        .unwrap();
    assert_eq!(
        outcome,
        Some(wfhost::worker::FleetOutcome::Succeeded(json!(20)))
    );
    let workers: Vec<String> = fleet
        .redis
        .cli(&["LRANGE", AUDIT, "0", "-1"])
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["worker"].to_string())
        .collect();
    assert_eq!(workers.len(), 6, "{workers:?}");
    assert!(
        workers.iter().all(|worker| *worker == workers[0]),
        "every step where the first ran: {workers:?}"
    );

    // One worker left, stopped while the first of three steps runs.
    common::kill(&mut fleet.workers[1]);
    fleet.redis.cli(&["DEL", AUDIT]);
    runtime
        .block_on(client.submit(&steps(3, 1000), "wfhost"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.redis.number(&["HLEN", "unacked"]) < 1 {
        assert!(Instant::now() < deadline, "the worker never claimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = fleet.workers[0].id().to_string();
    let stopped = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(stopped.unwrap().success());
    assert!(fleet.workers[0].wait().unwrap().success());
    assert_eq!(
        fleet.redis.number(&["LLEN", AUDIT]),
        1,
        "one step committed"
    );
    assert_eq!(fleet.redis.number(&["HLEN", "unacked"]), 0);
    assert_eq!(
        fleet.redis.number(&["LLEN", "wfhost"]),
        1,
        "the next step waits on its queue"
    );
}

#[test]
fn a_bad_plugins_file_or_broker_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.toml");
    let worker = |plugins: &std::path::Path, broker: &str| {
        common::Run::from(
            common::wfhost()
                .args(["worker", "--broker", broker, "--plugins"])
                .arg(plugins)
                .output()
                .unwrap(),
        )
    };
    std::fs::write(&plugins, "math = [1, 2\n").unwrap();
    let run = worker(&plugins, "redis://127.0.0.1:9/0");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("plugins.toml") && run.stderr.contains("malformed TOML"),
        "{}",
        run.stderr
    );
    std::fs::write(&plugins, "math = { path = \"math.wasm\", colour = 1 }\n").unwrap();
    let run = worker(&plugins, "redis://127.0.0.1:9/0");
    assert!(
        run.stderr.contains("plugins.toml") && run.stderr.contains("colour"),
        "{}",
        run.stderr
    );
    std::fs::write(
        &plugins,
        format!("math = {:?}\n", common::plugin_dir().join("math.wasm")),
    )
    .unwrap();
    // Port 9 (discard) on the loopback: nothing listens there.
    let run = worker(&plugins, "redis://127.0.0.1:9/0");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot start the worker on redis://127.0.0.1:9/0"),
        "{}",
        run.stderr
    );
    let run = worker(&plugins, "http://127.0.0.1:9/");
    assert!(run.stderr.contains("is not a Redis URL"), "{}", run.stderr);
}

#[test]
fn workers_outlive_a_restart_of_their_redis() {
    if !ready("workers_outlive_a_restart_of_their_redis") {
        return;
    }
    let mut fleet = Fleet::start("worker-redis-restart", 1, &[]);
    assert_eq!(
        by_scenario(fleet.client(&["send_task"]))["send_task"]["value"],
        5
    );
    fleet.redis.restart();
    // The worker reconnects by itself; the client's first tries may meet
    // a worker still waiting to reconnect, which is what `get()` waits out.
    assert_eq!(
        by_scenario(fleet.client(&["send_task"]))["send_task"]["value"],
        5
    );
    assert_eq!(
        by_scenario(fleet.client(&["chain_of_three"]))["chain_of_three"]["value"],
        80
    );
    fleet.wait_for_workers(1);
}

#[test]
fn priority_zero_comes_first_and_a_countdown_past_the_visibility_timeout_runs_once() {
    if !ready("priority_zero_comes_first_and_a_countdown_past_the_visibility_timeout_runs_once") {
        return;
    }
    // Priorities order the claims. With messages claimed ahead (the
    // prefetch), the commits of tasks run one after the other may land in
    // another order; Celery too advises a prefetch multiplier of 1 where
    // priorities matter.
    let flags = [
        "--visibility-timeout",
        "1",
        "--restore-interval",
        "0.2",
        "--audit-list",
        AUDIT,
        "--prefetch-multiplier",
        "1",
    ];
    let mut fleet = Fleet::start("worker-priority", 0, &flags);
    let sent = fleet.client(&["priorities"]).remove(0);
    let worker = fleet.spawn_worker("w0", "worker.log", "1", &flags);
    fleet.workers.push(worker);
    let ids: Vec<String> = ["high", "low"]
        .iter()
        .flat_map(|level| sent[*level].as_array().unwrap().clone())
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    fleet.client_with(&["wait_for", "countdown"], &[("IDS", &ids.join(","))]);
    let order: Vec<String> = fleet
        .redis
        .cli(&["LRANGE", AUDIT, "0", "-1"])
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|entry| ids.contains(&entry["id"].as_str().unwrap().to_string()))
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order, ids,
        "the priority 0 tasks ran before the priority 9 ones"
    );
    // The countdown (1.5 s) outlasts the visibility timeout (1 s): held in
    // the delayed set, not in a worker's claim, it runs once.
    let commits = audit(&fleet);
    let countdown: Vec<&Vec<String>> = commits
        .iter()
        .filter(|(id, _)| !ids.contains(id))
        .map(|(_, outcomes)| outcomes)
        .collect();
    assert_eq!(
        countdown,
        [&vec!["delayed".to_string(), "SUCCESS".to_string()]]
    );
    fleet.assert_nothing_left();
}

#[test]
fn python_components_serve_on_the_fleet_beside_rust_ones() {
    if !ready("python_components_serve_on_the_fleet_beside_rust_ones") {
        return;
    }
    let Some(python) = common::sdk_component("tests/fixtures/python/celery_api.py") else {
        return;
    };
    let fleet = Fleet::start_with_plugins(
        "worker-python",
        2,
        &[],
        &format!("celery_api = {python:?}\n"),
    );
    let seen = by_scenario(fleet.client(&["python_component"]));
    let python = &seen["python_component"];
    // math.add(1, 2) in Rust, then celery_api.add(3, 10) in Python.
    assert_eq!(python["chained"], 13, "{python}");
    // `self.retry` in Python: RETRY, then SUCCESS under the same id.
    assert_eq!(python["patient"], 3, "{python}");
    // `@app.task(max_retries=5)` is kept to, above the workers' default.
    assert_eq!(python["persistent"], 4, "{python}");
    fleet.assert_nothing_left();
}

/// A worker's resident memory, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib << 10
}

/// Security probe, finding 9: what a hostile writer of the broker's Redis
/// puts on a queue costs the good tasks behind it next to nothing. Thirty
/// messages that are not UTF-8 each once stalled the claim loop a second;
/// a message of hundreds of MB was read whole into the worker. Both now go
/// to the dead-letter list at once, whole, and the worker claims on.
#[test]
fn unreadable_and_oversized_messages_are_set_aside_at_once() {
    if !common::redis::available("unreadable_and_oversized_messages_are_set_aside_at_once") {
        return;
    }
    use wfhost::worker::{DEAD_LETTER, FleetClient, FleetOutcome};
    let fleet = Fleet::start("worker-hostile", 1, &["--max-message-mb", "1"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(FleetClient::connect(&fleet.redis.url()))
        .unwrap();
    let add = json!({"task": "math.add", "args": [1, 2]});
    let mut redis = redis::Client::open(fleet.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // Sends `bad` messages, then a good task; the time to its result.
    let timed = |redis: &mut redis::Connection, bad: usize| {
        let started = Instant::now();
        if bad > 0 {
            let mut pipe = redis::pipe();
            for index in 0..bad {
                pipe.lpush("wfhost", vec![0xff, 0xfe, index as u8]).ignore();
            }
            pipe.query::<()>(redis).unwrap();
        }
        let id = runtime.block_on(client.submit(&add, "wfhost")).unwrap();
        let outcome = runtime
            .block_on(client.wait(&id, Some(Duration::from_secs(30))))
            .unwrap();
        assert_eq!(outcome, Some(FleetOutcome::Succeeded(json!(3))));
        started.elapsed()
    };
    let alone = (0..5).map(|_| timed(&mut redis, 0)).min().unwrap();
    let behind = (0..3).map(|_| timed(&mut redis, 30)).min().unwrap();
    println!("a good task alone: {alone:?}; behind 30 unreadable messages: {behind:?}");
    assert!(
        behind < alone + Duration::from_millis(100),
        "30 unreadable messages cost a good task {:?} ({behind:?} against {alone:?})",
        behind.saturating_sub(alone)
    );
    assert_eq!(fleet.redis.number(&["LLEN", DEAD_LETTER]), 90);

    // 20 MiB against a cap of 1, three times: set aside, never parsed. An
    // idle worker's blocking wait claims the next message as it arrives,
    // and so receives it once; the connection that took it is then
    // dropped, and the memory is given back.
    let worker = fleet.workers[0].id();
    let before = resident_bytes(worker);
    let big = vec![b'x'; 20 << 20];
    for _ in 0..3 {
        redis::cmd("LPUSH")
            .arg("wfhost")
            .arg(&big)
            .query::<()>(&mut redis)
            .unwrap();
        timed(&mut redis, 0);
    }
    let settled = Instant::now() + Duration::from_secs(5);
    let grown = loop {
        let grown = resident_bytes(worker).saturating_sub(before);
        if grown < 8 << 20 || Instant::now() > settled {
            break grown;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        grown < 8 << 20,
        "three 20 MiB messages left the worker {grown} bytes larger"
    );
    assert_eq!(fleet.redis.number(&["LLEN", DEAD_LETTER]), 93);
    let kept: Vec<u8> = redis::cmd("LINDEX")
        .arg(DEAD_LETTER)
        .arg(0)
        .query(&mut redis)
        .unwrap();
    assert!(kept == big, "the dead letter is the message, whole");
    let log = std::fs::read_to_string(fleet.logs.join("worker-0.log")).unwrap();
    assert!(log.contains("over the size cap"), "{log}");
    assert!(log.contains("not UTF-8"), "{log}");
    fleet.assert_nothing_left();
}

/// Security probe, finding 9: a message that no worker can finish — a chord
/// member whose chord keys a hostile writer gave the wrong type — is taken
/// `--max-deliveries` times in all, then set aside on the dead-letter list,
/// instead of being run again at every visibility timeout forever.
#[test]
fn a_poison_message_is_dead_lettered_after_its_deliveries() {
    if !common::redis::available("a_poison_message_is_dead_lettered_after_its_deliveries") {
        return;
    }
    use wfhost::worker::{DEAD_LETTER, FleetClient};
    let flags = [
        "--visibility-timeout",
        "1",
        "--restore-interval",
        "0.2",
        "--max-deliveries",
        "3",
    ];
    let fleet = Fleet::start("worker-poison", 1, &flags);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(FleetClient::connect(&fleet.redis.url()))
        .unwrap();
    let chord = json!({"chord": {
        "header": [{"task": "testkit.sleep", "args": [300]}],
        "body": {"task": "math.xsum"},
    }});
    runtime.block_on(client.submit(&chord, "wfhost")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let group = loop {
        let claimed = fleet.redis.cli(&["HVALS", "unacked"]);
        if let Some(entry) = claimed.lines().find(|line| !line.is_empty()) {
            let entry: Value = serde_json::from_str(entry).unwrap();
            break entry[0]["headers"]["group"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the member was never claimed");
        std::thread::sleep(Duration::from_millis(10));
    };
    fleet.redis.cli(&[
        "SET",
        &format!("celery-taskset-meta-{group}.j"),
        "not a sorted set",
    ]);

    let deadline = Instant::now() + Duration::from_secs(60);
    while fleet.redis.number(&["LLEN", DEAD_LETTER]) == 0 {
        assert!(
            Instant::now() < deadline,
            "never dead-lettered; see {}",
            fleet.logs.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dead: Value =
        serde_json::from_str(&fleet.redis.cli(&["LINDEX", DEAD_LETTER, "0"])).unwrap();
    assert_eq!(dead["headers"]["task"], "testkit.sleep", "{dead}");
    assert_eq!(dead["headers"]["wfhost_deliveries"], 3, "{dead}");
    // Run three times, committed never; then nothing is claimed or queued.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet.redis.number(&["HLEN", "unacked"]), 0);
    assert_eq!(fleet.redis.number(&["LLEN", "wfhost"]), 0);
    assert_eq!(fleet.redis.number(&["LLEN", DEAD_LETTER]), 1);
    let log = std::fs::read_to_string(fleet.logs.join("worker-0.log")).unwrap();
    // Each delivery's commit counts the member first, and fails there.
    assert_eq!(log.matches("the commit failed").count(), 3, "{log}");
    assert!(log.contains("WRONGTYPE"), "{log}");
}

/// One task-name rule on both drivers (issue "One canvas, two drivers"): a
/// plugin's name may hold dots, and `acme.math.add` is task `add` of plugin
/// `acme.math` for `wfhost run` and for a worker alike. The worker once
/// split at the first dot, took the task for plugin `acme`'s, and sent it
/// to the default queue, where nothing ran it.
#[test]
fn a_dotted_plugin_name_means_the_same_task_on_both_drivers() {
    if !common::redis::available("a_dotted_plugin_name_means_the_same_task_on_both_drivers") {
        return;
    }
    use wfhost::worker::{FleetClient, FleetOutcome};
    let math = common::plugin_dir().join("math.wasm");
    let dotted = format!("\"acme.math\" = {:?}\n", math);
    let fleet = Fleet::start_with_plugins("worker-dotted", 1, &[], &dotted);
    let workflow = json!([
        {"task": "acme.math.add", "args": [1, 2]},
        {"task": "acme.math.mul", "args": [10]},
    ]);

    let local = common::chain_file(&json!({"plugins": {"acme.math": math}, "workflow": workflow}));
    let run = common::run_file(&local, &[]);
    assert_eq!((run.code, run.stdout.trim()), (0, "30"), "{}", run.stderr);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(FleetClient::connect(&fleet.redis.url()))
        .unwrap();
    let id = runtime
        .block_on(client.submit(&workflow, "wfhost"))
        .unwrap();
    let outcome = runtime
        .block_on(client.wait(&id, Some(Duration::from_secs(30))))
        .unwrap();
    assert_eq!(outcome, Some(FleetOutcome::Succeeded(json!(30))));
    assert_eq!(fleet.redis.number(&["LLEN", "celery"]), 0, "sent elsewhere");
}
