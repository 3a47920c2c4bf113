//! Many `wfhost` processes on one database at once: runs side by side,
//! `status` and `list` while a workflow runs, `cancel` from another
//! process, and processes killed with SIGKILL while others go on.

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Waits for `child` to exit, for at most `limit`; its run's outcome.
fn finish(mut child: Child, limit: Duration) -> Run {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            kill(&mut child);
            panic!("the process did not end within {limit:?}");
        }
        sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// `status ID --json` of `chain`'s database, once the workflow is on
/// record.
fn report_once_recorded(chain: &ChainFile, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let status = chain.command(&["status", id, "--json"]);
        if status.code == 0 {
            return status.json();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "workflow {id} never showed: {}",
            status.stderr
        );
        sleep(Duration::from_millis(20));
    }
}

/// The ids and results of a report's succeeded steps.
fn succeeded_steps(report: &Value) -> BTreeMap<String, Value> {
    report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter(|step| step["status"] == "succeeded")
                .map(|step| {
                    (
                        step["id"].as_str().unwrap().to_string(),
                        step["result"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// When an event of `kind` was recorded for workflow `id`.
fn event_at(chain: &ChainFile, id: &str, kind: &str) -> u64 {
    let events = chain.command(&["events", id, "--json"]).json_lines();
    events
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == kind)
        .and_then(|event| event["at_ms"].as_u64())
        .unwrap_or_else(|| panic!("no {kind} event of {id}: {events}"))
}

#[test]
fn two_runs_of_different_workflows_on_one_database_run_side_by_side() {
    let slow = |x: i64| json!({"task": "testkit.slow_add", "args": [x, 400]});
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "testkit.slow_add", "args": [0, 1, 400]},
            slow(2),
            slow(3),
        ],
    }));
    let path = chain.path.to_str().unwrap();
    let first = start(&chain, &["run", path, "--id", "first"]);
    let second = start(
        &chain,
        &["run", path, "--id", "second", "--tenant", "other"],
    );
    for run in [first, second] {
        let run = finish(run, Duration::from_secs(60));
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "6\n"),
            "{}",
            run.stderr
        );
    }
    // Each took over a second; they overlapped rather than took turns.
    let first_ended = event_at(&chain, "first", "workflow_succeeded");
    let second_started = {
        let mut status = chain.wfhost();
        status.args(["events", "second", "--tenant", "other", "--json"]);
        let events = Run::from(status.output().unwrap()).json_lines();
        events[0]["at_ms"].as_u64().unwrap()
    };
    assert!(
        second_started < first_ended,
        "the second run waited for the first: started at {second_started}, first ended at {first_ended}"
    );
    assert_whole(&chain);
}

#[test]
fn status_and_list_show_a_running_20000_step_chain_progress() {
    const STEPS: usize = 20_000;
    let chain = counting_chain(STEPS);
    // Batched, so that the test takes seconds, not tens: the records
    // reach the database (and other processes) every 50 ms.
    let runner = start(
        &chain,
        &[
            "run",
            chain.path.to_str().unwrap(),
            "--id",
            "long",
            "--durability",
            "batched",
        ],
    );
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < 3 && started.elapsed() < Duration::from_secs(120) {
        let report = report_once_recorded(&chain, "long");
        if report["status"] != "running" {
            break;
        }
        let done = succeeded_steps(&report).len();
        if seen.last() != Some(&done) && done > 0 {
            seen.push(done);
            let text = chain.command(&["status", "long"]).stdout;
            assert!(text.contains(" of 20,000 steps done, "), "{text}");
            let listed = chain
                .command(&["list", "--status", "running", "--json"])
                .json();
            assert_eq!(listed[0]["id"], "long", "{listed}");
        }
        sleep(Duration::from_millis(100));
    }
    let run = finish(runner, Duration::from_secs(300));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), STEPS.to_string());
    assert!(
        seen.len() >= 2 && seen.iter().all(|&done| done < STEPS),
        "progress seen while it ran: {seen:?}"
    );
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "{seen:?}");
}

#[test]
fn cancel_from_another_process_interrupts_a_running_workflow_within_a_second() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 1]},
            {"task": "testkit.slow_add", "args": [0, 30_000]},
            {"task": "math.add", "args": [1]},
        ],
    }));
    let runner = start(&chain, &["run", chain.path.to_str().unwrap(), "--id", "c"]);
    // Once the first step is on record, the second is running.
    let started = Instant::now();
    while succeeded_steps(&report_once_recorded(&chain, "c")).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60));
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_millis(300));
    // The status tells where it stands, the running step included.
    let status = chain.command(&["status", "c"]);
    for expected in [
        "workflow c (tenant default): running",
        "1 of 3 steps done, 1 running, 1 pending",
        "running: step 1 (testkit.slow_add), attempt 1 since 20",
    ] {
        assert!(
            status.stdout.contains(expected),
            "{expected}:\n{}",
            status.stdout
        );
    }
    let follower = start(&chain, &["events", "c", "--follow"]);
    let asked = Instant::now();
    let cancel = chain.command(&["cancel", "c"]);
    let took = asked.elapsed();
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(cancel.stderr.contains("cancelled"), "{}", cancel.stderr);
    assert!(took < Duration::from_secs(1), "the cancel took {took:?}");
    let run = finish(runner, Duration::from_secs(5));
    assert_eq!(run.code, 1, "{}", run.stderr);
    // The follower saw the whole log as it happened, and ended with it.
    let followed = finish(follower, Duration::from_secs(5));
    let kinds: Vec<&str> = followed
        .stdout
        .lines()
        .map(|line| line.split_whitespace().nth(2).unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        [
            "workflow_started",
            "step_started",
            "step_succeeded",
            "step_started",
            "cancel_requested",
            "step_failed",
            "steps_skipped",
            "workflow_cancelled"
        ],
        "{}",
        followed.stdout
    );
    let report = chain.command(&["status", "c", "--json"]).json();
    assert_eq!(report["status"], "cancelled", "{report}");
    assert_eq!(
        step_of(&report, "1")["error"]["kind"],
        "cancelled",
        "{report}"
    );
    let last = step_of(&report, "2");
    assert_eq!(
        (&last["status"], &last["attempts"]),
        (&json!("skipped"), &json!(0))
    );
    // Asked again, it has ended.
    let again = chain.command(&["cancel", "c"]);
    assert!(
        again.stderr.contains("already cancelled"),
        "{}",
        again.stderr
    );
    assert_whole(&chain);
}

/// A runner killed with SIGKILL at random instants, again and again, while
/// another workflow runs beside it and watchers read both: the watchers
/// never fail, the other workflow never notices, and what the watchers saw
/// succeed is what the resumed workflow reports in the end.
#[test]
fn processes_killed_at_random_lose_nothing_reported_and_others_go_on() {
    const STEPS: usize = 400;
    // Steps of a millisecond each, so that the kills land mid-run.
    let mut workflow = vec![json!({"task": "testkit.slow_add", "args": [0, 1, 1]})];
    workflow.extend((1..STEPS).map(|_| json!({"task": "testkit.slow_add", "args": [1, 1]})));
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    let path = chain.path.to_str().unwrap().to_string();
    let beside = start(&chain, &["run", &path, "--id", "beside"]);
    let watching = AtomicBool::new(true);
    let seen = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = BTreeMap::new();
            let mut reads = 0;
            while watching.load(Ordering::Relaxed) {
                for id in ["killed", "beside"] {
                    let status = chain.command(&["status", id, "--json"]);
                    if status.code != 0 {
                        // Only until the first runner has made the database
                        // and recorded the workflow.
                        let not_yet = ["no workflow", "no state database"];
                        assert!(
                            not_yet.iter().any(|words| status.stderr.contains(words)),
                            "{}",
                            status.stderr
                        );
                        continue;
                    }
                    reads += 1;
                    if id == "killed" {
                        seen.extend(succeeded_steps(&status.json()));
                    }
                }
                let listed = chain.command(&["list"]);
                assert!(
                    listed.code == 0 || listed.stderr.contains("no state database"),
                    "{}",
                    listed.stderr
                );
            }
            (seen, reads)
        });
        let mut rng = fastrand::Rng::with_seed(0x9a11);
        let mut kills = 0;
        loop {
            // `run` of an id that was cut off continues it.
            let mut runner = start(&chain, &["run", &path, "--id", "killed"]);
            sleep(Duration::from_millis(rng.u64(100..600)));
            if runner.try_wait().unwrap().is_some() || kills == 6 {
                let run = finish(runner, Duration::from_secs(120));
                assert_eq!(run.code, 0, "{}", run.stderr);
                break;
            }
            kill(&mut runner);
            kills += 1;
        }
        watching.store(false, Ordering::Relaxed);
        let (seen, reads) = watcher.join().unwrap();
        println!("{kills} kills; {reads} reads by the watcher");
        assert!(kills >= 1, "the workflow ended before the first kill");
        seen
    });
    let beside = finish(beside, Duration::from_secs(120));
    assert_eq!(
        (beside.code, beside.stdout.trim()),
        (0, STEPS.to_string().as_str()),
        "{}",
        beside.stderr
    );
    let report = chain.command(&["status", "killed", "--json"]).json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["result"], STEPS);
    let end = succeeded_steps(&report);
    assert_eq!(end.len(), STEPS);
    assert!(!seen.is_empty(), "the watcher saw no step succeed");
    for (step, result) in &seen {
        assert_eq!(end.get(step), Some(result), "step {step} as reported");
    }
    assert_whole(&chain);
}

/// Runs `count` workflows of `chain`, under ids `prefix-0` … .
fn run_many(chain: &ChainFile, prefix: &str, count: usize) {
    for index in 0..count {
        let id = format!("{prefix}-{index}");
        let run = run_file(chain, &["--id", &id]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
}

/// `rm` and `purge` remove what they are asked to and nothing that runs;
/// the space they free is what later runs write to, so a database that is
/// purged as fast as it fills stops growing.
#[test]
fn purged_space_is_reused_and_running_workflows_are_never_removed() {
    let chain = counting_chain(200);
    run_many(&chain, "first", 10);
    let size = || std::fs::metadata(chain.db()).unwrap().len();
    let filled = size();

    let removed = chain.command(&["rm", "first-0"]);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(
        removed
            .stderr
            .contains("removed workflow first-0 (succeeded)")
    );
    assert_eq!(chain.command(&["status", "first-0"]).code, 2);
    assert!(
        chain
            .command(&["events", "first-0"])
            .stderr
            .contains("no workflow")
    );
    for (args, words) in [
        (&["purge", "--older-than", "1h"][..], "removed 0 workflows"),
        (&["purge", "--status", "failed"], "removed 0 workflows"),
        (&["purge", "--tenant", "nobody"], "removed 0 workflows"),
        (&["purge"], "removed 9 workflows"),
    ] {
        let purged = chain.command(args);
        assert_eq!(purged.code, 0, "{}", purged.stderr);
        assert!(purged.stderr.contains(words), "{args:?}: {}", purged.stderr);
    }
    assert_eq!(chain.command(&["list", "--json"]).json(), json!([]));

    // Kept apart, two more fills would double and triple the file.
    let mut sizes = vec![filled];
    for round in ["second", "third"] {
        run_many(&chain, round, 10);
        sizes.push(size());
        assert!(
            chain
                .command(&["purge"])
                .stderr
                .contains("removed 10 workflows")
        );
    }
    println!("database of 10 workflows, purged and filled again twice: {sizes:?} bytes");
    // Ten processes committing side by side may find part of the freed
    // space still held by another's snapshot and grow the file for a
    // while (seen: 1.76x, then 1.14x); never reused, it would be 3x.
    assert!(
        sizes.iter().all(|&bytes| bytes < 2 * filled),
        "the freed space was not reused: {sizes:?} bytes"
    );

    // A running workflow is neither removed nor purged.
    let sleeper = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "testkit.sleep", "args": [30_000]}],
    }));
    let sleeping = sleeper.path.to_str().unwrap();
    let mut runner = start(&chain, &["run", sleeping, "--id", "busy"]);
    report_once_recorded(&chain, "busy");
    let refused = chain.command(&["rm", "busy"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("workflow busy is running; cancel it first"),
        "{}",
        refused.stderr
    );
    assert!(chain.command(&["purge", "--status", "running"]).code == 2);
    kill(&mut runner);
    let purged = chain.command(&["purge", "--status", "cut_off"]);
    assert!(
        purged.stderr.contains("removed 1 workflow"),
        "{}",
        purged.stderr
    );
    assert_whole(&chain);
}

/// With a retention, a run removes the workflows that ended at least that
/// long ago, as Celery's `result_expires` does.
#[test]
fn a_retention_removes_workflows_that_ended_long_enough_ago() {
    let chain = counting_chain(3);
    assert_eq!(run_file(&chain, &["--id", "old"]).code, 0);
    sleep(Duration::from_millis(1200));
    let run = run_file(&chain, &["--id", "new", "--retention", "1s"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = chain.command(&["list", "--json"]).json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new"]);
    let bad = run_file(&chain, &["--retention", "7 days"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("expected a number and s, m, h, d or w"),
        "{}",
        bad.stderr
    );
    assert_whole(&chain);
}
