//! Durable workflows: state survives SIGKILL at any moment, `resume`
//! continues without re-running finished steps, countdowns keep their due
//! time, ids are idempotent, and the database refuses damage and sharing.
//!
//! One file, over 500 lines: every test binary links the whole host
//! statically, and these tests share the kill-and-resume harness.

mod common;

use std::collections::HashMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Runs the workflow `id` of `chain` to its end, killing the host with
/// SIGKILL up to `max_kills` times after random delays (in ms) from
/// `delays`, and starting it again each time: with `run` until the workflow
/// is stored, then with `resume`. Returns how many times it was killed.
fn run_through_kills(
    chain: &ChainFile,
    id: &str,
    seed: u64,
    max_kills: usize,
    delays: std::ops::Range<u64>,
    extra: &[&str],
) -> usize {
    let path = chain.path.to_str().unwrap().to_string();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    let mut stored = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "{id} did not finish in time");
        let command = if stored {
            ["resume", id]
        } else {
            ["run", path.as_str()]
        };
        let mut child = start(chain, &[&command[..], extra].concat());
        if kills < max_kills {
            sleep(Duration::from_millis(rng.u64(delays.clone())));
            if child.try_wait().unwrap().is_none() {
                kill(&mut child);
                kills += 1;
                assert_whole(chain);
                stored = chain.command(&["status", id]).code == 0;
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert_whole(chain);
        return kills;
    }
}

/// How many events of `kind` each step has in a workflow's log.
fn event_counts(chain: &ChainFile, id: &str, kind: &str) -> HashMap<String, usize> {
    let events = chain.command(&["events", id, "--json"]).json_lines();
    let mut counts = HashMap::new();
    for event in events.as_array().unwrap() {
        if event["kind"] == kind {
            *counts
                .entry(event["step"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    counts
}

/// A chain of `steps` steps of 1 ms each, whose result is `steps`.
fn slow_chain(id: &str, steps: usize) -> ChainFile {
    let mut workflow = vec![json!({"task": "testkit.slow_add", "args": [0, 1, 1]})];
    workflow.extend((1..steps).map(|_| json!({"task": "testkit.slow_add", "args": [1, 1]})));
    chain_file(&json!({"id": id, "plugins": standard_plugins(), "workflow": workflow}))
}

/// Checks that the slow chain `id` succeeded with every step, each having
/// seen the committed result of the one before it; returns the steps.
fn assert_slow_chain_completed(chain: &ChainFile, id: &str, steps: usize) -> Vec<Value> {
    let report = chain.command(&["status", id, "--json"]).json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["result"], steps);
    let records = report["steps"].as_array().unwrap().clone();
    assert_eq!(records.len(), steps);
    for step in &records {
        let index: u64 = step["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(step["status"], "succeeded", "{step}");
        assert_eq!(
            step["result"],
            index + 1,
            "step {index} must have seen the committed result before it"
        );
    }
    records
}

#[test]
fn batched_durability_survives_sigkill_and_resume_completes_the_chain() {
    const STEPS: usize = 1000;
    let chain = slow_chain("batched", STEPS);
    let durability = ["--durability", "batched:20"];
    let kills = run_through_kills(&chain, "batched", 0xba7c, 4, 200..900, &durability);
    assert!(kills >= 2, "killed only {kills} times");
    assert_slow_chain_completed(&chain, "batched", STEPS);
}

#[test]
fn strict_durability_survives_sigkill_and_resume_completes_the_chain() {
    const STEPS: usize = 1000;
    let chain = slow_chain("strict", STEPS);
    let durability = ["--durability", "strict"];
    let kills = run_through_kills(&chain, "strict", 0x571c, 4, 200..900, &durability);
    assert!(kills >= 2, "killed only {kills} times");
    assert_slow_chain_completed(&chain, "strict", STEPS);
}

#[test]
fn batched_durability_flushes_everything_when_the_workflow_ends() {
    // A window far longer than the run: only the end's flush saves the steps.
    let chain = slow_chain("flushed", 50);
    let run = chain.command(&[
        "run",
        chain.path.to_str().unwrap(),
        "--durability",
        "batched:60000",
    ]);
    assert_eq!(run.stdout, "50\n", "{}", run.stderr);
    let report = chain.command(&["status", "flushed", "--json"]).json();
    assert_eq!(report["steps"].as_array().unwrap().len(), 50);
    let bad = run_file(&chain, &["--durability", "batched:0"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("not a number of milliseconds from 1"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_long_chain_survives_repeated_sigkill_and_resumes_exactly() {
    const STEPS: usize = 2000;
    let chain = slow_chain("crashy", STEPS);
    let kills = run_through_kills(&chain, "crashy", 0x5eed, 6, 300..1500, &[]);
    assert!(
        kills >= 3,
        "the test should kill the host mid-run, killed {kills} times"
    );

    // A step killed while it ran, or whose success was not yet on the disk
    // (the default lets a pure step's record be flushed while the next
    // runs), runs again; one whose success was durable never does.
    for step in assert_slow_chain_completed(&chain, "crashy", STEPS) {
        assert!(
            step["attempts"].as_u64().unwrap() <= 1 + kills as u64,
            "{step}"
        );
    }
    let succeeded = event_counts(&chain, "crashy", "step_succeeded");
    assert_eq!(succeeded.len(), STEPS);
    assert!(
        succeeded.values().all(|&n| n == 1),
        "a step succeeded twice: {succeeded:?}"
    );
    let resumed: usize = event_counts(&chain, "crashy", "workflow_resumed")
        .values()
        .sum();
    assert!(
        (1..=kills).contains(&resumed),
        "{resumed} resumes after {kills} kills"
    );
}

#[test]
fn a_countdown_survives_a_kill_and_runs_no_earlier_than_due() {
    let mut wait = Duration::from_millis(1000);
    for _ in 0..4 {
        let chain = chain_file(&json!({
            "id": "later",
            "plugins": standard_plugins(),
            "workflow": [{"task": "testkit.now_ms", "options": {"countdown": 2}}],
        }));
        let mut child = start(&chain, &["run", chain.path.to_str().unwrap()]);
        sleep(wait);
        kill(&mut child);
        let report = chain.command(&["status", "later", "--json"]);
        let scheduled = report.code == 0 && report.json()["steps"][0]["status"] == "scheduled";
        if !scheduled {
            // The host had not reached the countdown yet; give it longer.
            wait *= 2;
            continue;
        }
        let due = report.json()["steps"][0]["due_at_ms"].as_u64().unwrap();
        let resumed = chain.command(&["resume", "later", "--json"]);
        assert_eq!(resumed.code, 0, "{}", resumed.stderr);
        let ran_at = resumed.json()["result"].as_u64().unwrap();
        assert!(
            ran_at >= due,
            "the step ran at {ran_at}, before it was due at {due}"
        );
        return;
    }
    panic!("the host never reached the countdown before it was killed");
}

/// What the steps before a kill returned is read back exactly by the
/// steps after the resume: the store keeps numbers as they were written.
#[test]
fn numbers_stored_before_a_kill_are_exact_after_the_resume() {
    let numbers: Vec<Value> = EXACT_NUMBERS.iter().map(|text| exact(text)).collect();
    let chain = chain_file(&json!({
        "id": "exact",
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "testkit.echo", "args": [numbers]},
            {"task": "testkit.echo", "options": {"countdown": 1.5}},
        ],
    }));
    let mut child = start(&chain, &["run", chain.path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = chain.command(&["status", "exact", "--json"]);
        if report.code == 0 && report.json()["steps"][1]["status"] == "scheduled" {
            break;
        }
        assert!(Instant::now() < deadline, "step 1 was never scheduled");
        sleep(Duration::from_millis(20));
    }
    kill(&mut child);
    let resumed = chain.command(&["resume", "exact", "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_exact_numbers(&resumed.json()["result"], &resumed.stdout);
    assert_exact_numbers(&resumed.step("1")["result"], &resumed.stdout);
}

#[test]
fn the_same_id_runs_once() {
    let chain = chain_file(&json!({
        "id": "once",
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 2]}, {"task": "math.mul", "args": [10]}],
    }));
    let first = run_file(&chain, &[]);
    assert_eq!(
        (first.code, first.stdout.as_str()),
        (0, "30\n"),
        "{}",
        first.stderr
    );
    let second = run_file(&chain, &[]);
    assert_eq!((second.code, second.stdout.as_str()), (0, "30\n"));
    assert!(
        second.stderr.contains("already succeeded"),
        "{}",
        second.stderr
    );
    let succeeded = event_counts(&chain, "once", "step_succeeded");
    assert_eq!(succeeded.values().copied().collect::<Vec<_>>(), [1, 1]);
    // An id given on the command line works the same way, per tenant.
    let other = run_file(&chain, &["--tenant", "acme"]);
    assert_eq!(other.code, 0);
    assert_eq!(
        chain.command(&["status", "once", "--tenant", "acme"]).code,
        0
    );
    // A copy of the file with one number changed is another workflow: its
    // id is refused, and nothing runs or changes.
    let changed = std::fs::read_to_string(&chain.path)
        .unwrap()
        .replace("10", "11");
    std::fs::write(&chain.path, changed).unwrap();
    let refused = run_file(&chain, &[]);
    assert_eq!((refused.code, refused.stdout.as_str()), (2, ""));
    assert!(
        refused
            .stderr
            .contains("at $.workflow[1].args[0] the stored workflow has 10 where this one has 11"),
        "{}",
        refused.stderr
    );
    let succeeded = event_counts(&chain, "once", "step_succeeded");
    assert_eq!(succeeded.values().copied().collect::<Vec<_>>(), [1, 1]);
}

#[test]
fn status_and_list_show_where_workflows_stand() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 1]}, {"task": "testkit.fail", "args": ["nope"], "immutable": true}],
    }));
    assert_eq!(run_file(&chain, &["--id", "bad"]).code, 1);
    let good = chain_file(
        &json!({"plugins": standard_plugins(), "workflow": [{"task": "math.add", "args": [2, 3]}]}),
    );
    let good_run = chain.command(&["run", good.path.to_str().unwrap(), "--id", "good"]);
    assert_eq!(good_run.code, 0, "{}", good_run.stderr);

    let text = chain.command(&["status", "bad"]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout
            .contains("workflow bad (tenant default): failed"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("testkit.fail"), "{}", text.stdout);
    let report = chain.command(&["status", "bad", "--json"]).json();
    assert_eq!(report["steps"][1]["parent"], "0");
    assert_eq!(report["steps"][1]["error"]["message"], "nope");

    let failed = chain
        .command(&["list", "--status", "failed", "--json"])
        .json();
    let ids: Vec<&str> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad"]);
    let all = chain.command(&["list"]);
    assert!(
        all.stdout.contains("good") && all.stdout.contains("bad"),
        "{}",
        all.stdout
    );
    assert_eq!(chain.command(&["status", "missing"]).code, 2);
}

/// The plugin of a failed step is fixed and rebuilt in place: a plain
/// `retry` refuses the new build (the workflow is pinned to the old one);
/// `retry --plugin` re-drives it with the new build, records which, and
/// later resumes run the same build.
#[test]
fn retry_with_a_rebuilt_plugin_re_drives_a_failed_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let calc = dir.path().join("calc.wasm");
    std::fs::copy(plugin("math"), &calc).unwrap();
    let chain = chain_file(&json!({
        "plugins": {"calc": calc},
        "workflow": [
            {"task": "calc.add", "args": [1, 2]},
            {"task": "calc.add", "args": [i64::MAX]},
        ],
    }));
    let failed = run_file(&chain, &["--id", "fixme"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("overflow"), "{}", failed.stderr);
    // The fix: a build of `add` that does not overflow, in the same place.
    std::fs::copy(plugin("testkit"), &calc).unwrap();
    let refused = chain.command(&["retry", "fixme"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("sha256 mismatch") && refused.stderr.contains("--plugin calc=PATH"),
        "{}",
        refused.stderr
    );
    let unknown = chain.command(&["retry", "fixme", "--plugin", "nope=x.wasm"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("has no plugin `nope` (it has: calc)"),
        "{}",
        unknown.stderr
    );

    let calc_arg = format!("calc={}", calc.display());
    let retried = chain.command(&["retry", "fixme", "--plugin", &calc_arg]);
    assert_eq!(
        (retried.code, retried.stdout.trim()),
        (0, i64::MAX.to_string().as_str()),
        "{}",
        retried.stderr
    );
    let events = chain.command(&["events", "fixme", "--json"]).json_lines();
    let retry = events
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "workflow_retried")
        .unwrap_or_else(|| panic!("{events}"));
    let new_sha = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&calc).unwrap())
    );
    let detail = retry["detail"].as_str().unwrap();
    assert!(detail.starts_with("1; plugin calc from "), "{detail}");
    assert!(
        detail.contains(&format!("sha256 {new_sha} (was ")),
        "{detail}"
    );
    // The first step kept its record; only the failed one ran again.
    let succeeded = event_counts(&chain, "fixme", "step_succeeded");
    assert_eq!(succeeded.values().copied().collect::<Vec<_>>(), [1, 1]);
    // The same chain file under the same id is still the same workflow.
    let again = run_file(&chain, &["--id", "fixme"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn retry_re_drives_a_failed_workflow_from_its_failed_step() {
    let chain = chain_file(&json!({
        "id": "again",
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 1]},
            {"task": "testkit.flaky", "args": ["k", 1], "immutable": true, "options": {"max_retries": 0}},
            {"task": "math.add", "args": [10]},
        ],
        "on_error": {"task": "testkit.echo"},
    }));
    let failed = run_file(&chain, &[]);
    assert_eq!(failed.code, 1);
    let retried = chain.command(&["retry", "again", "--json"]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    let report = retried.json();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["result"], 12);
    assert_eq!(retried.step("1")["attempts"], 2);
    // The first step ran once, before the failure, and was not run again.
    let succeeded = event_counts(&chain, "again", "step_succeeded");
    assert_eq!(succeeded["0"], 1);
    // A succeeded workflow cannot be retried.
    assert_eq!(chain.command(&["retry", "again"]).code, 2);
}

/// Opens the database the way redb does at the next start, and says
/// whether redb had to rebuild its allocator state by walking every table:
/// what a file left by a crash with no record of that state costs.
fn reopening_repairs(db: &std::path::Path) -> bool {
    let repaired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&repaired);
    redb::Database::builder()
        .set_repair_callback(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst))
        .create(db)
        .expect("the database opens");
    repaired.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn runs_leave_the_database_complete_and_needing_no_repair() {
    // `run`, `retry` and `resume` leave the file without redb's close (see
    // `Store::exit`): what they committed must all be there, and the next
    // open must not have to repair the file.
    let chain = chain_file(&json!({
        "id": "left",
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 2]},
            {"task": "testkit.flaky", "args": ["left", 1], "immutable": true, "options": {"max_retries": 0}},
        ],
    }));
    assert_eq!(run_file(&chain, &[]).code, 1);
    assert!(!reopening_repairs(&chain.db()));
    assert_eq!(chain.command(&["retry", "left"]).code, 0);
    assert!(!reopening_repairs(&chain.db()));
    let other = chain_file(
        &json!({"plugins": standard_plugins(), "workflow": [{"task": "math.add", "args": [2, 3]}]}),
    );
    let other = chain.command(&["run", other.path.to_str().unwrap(), "--id", "other"]);
    assert_eq!(other.stdout, "5\n", "{}", other.stderr);
    assert!(!reopening_repairs(&chain.db()));
    let listed = chain.command(&["list", "--json"]).json();
    let mut stands: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap().into(),
                w["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    stands.sort();
    assert_eq!(
        stands,
        [
            ("left".into(), "succeeded".into()),
            ("other".into(), "succeeded".into())
        ]
    );
    let succeeded = event_counts(&chain, "left", "step_succeeded");
    assert_eq!((succeeded["0"], succeeded["1"]), (1, 1));
}

#[test]
fn a_damaged_database_is_refused() {
    let chain = chain_file(
        &json!({"plugins": standard_plugins(), "workflow": [{"task": "math.add", "args": [1, 1]}]}),
    );
    std::fs::write(chain.db(), vec![0xA5u8; 8192]).unwrap();
    for run in [run_file(&chain, &[]), chain.command(&["list"])] {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("damaged or is not a wfhost database"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_database_in_use_is_shared_and_a_killed_holder_leaves_its_workflow_cut_off() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "testkit.sleep", "args": [20_000]}],
    }));
    let mut holder = start(
        &chain,
        &["run", chain.path.to_str().unwrap(), "--id", "held"],
    );
    let started = Instant::now();
    let listed = loop {
        let listed = chain.command(&["list", "--json"]);
        // Only until the holder has made the database may `list` fail.
        assert!(
            listed.code == 0 || listed.stderr.contains("no state database"),
            "{}",
            listed.stderr
        );
        if listed.code == 0
            && listed
                .json()
                .as_array()
                .is_some_and(|rows| !rows.is_empty())
        {
            break listed.json();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the workflow never showed: {}",
            listed.stderr
        );
        sleep(Duration::from_millis(50));
    };
    assert_eq!(listed[0]["status"], "running", "{listed}");
    kill(&mut holder);
    // Once the holder is gone, its workflow is on record, cut off.
    let listed = chain.command(&["list", "--json"]).json();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["status"], "cut_off", "{listed}");
}

#[test]
fn resume_all_continues_every_cut_off_workflow() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 1]}, {"task": "testkit.slow_add", "args": [1, 3000]}],
    }));
    let path = chain.path.to_str().unwrap();
    for id in ["cut-1", "cut-2"] {
        let mut child = start(&chain, &["run", path, "--id", id]);
        // Long enough to store the workflow and its first step, well short
        // of the end of the second step's three seconds.
        sleep(Duration::from_millis(1500));
        kill(&mut child);
        assert_eq!(
            chain.command(&["status", id, "--json"]).json()["status"],
            "cut_off"
        );
    }
    let resumed = chain.command(&["resume", "--all"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.stdout, "3\n3\n");
    for id in ["cut-1", "cut-2"] {
        let report = chain.command(&["status", id, "--json"]).json();
        assert_eq!(
            (report["status"].as_str(), report["result"].as_i64()),
            (Some("succeeded"), Some(3))
        );
    }
    for status in ["running", "cut_off"] {
        assert_eq!(
            chain
                .command(&["list", "--status", status, "--json"])
                .json(),
            json!([])
        );
    }
}

#[test]
fn groups_resume_after_sigkill_without_re_running_finished_members() {
    // 30 groups of 4 parallel members, each feeding the next group through xsum.
    let mut workflow = vec![json!({"task": "math.add", "args": [0, 1]})];
    for _ in 0..30 {
        let member = json!({"task": "testkit.slow_add", "args": [0, 40]});
        workflow.push(json!({"group": [member, member, member, member]}));
        workflow.push(json!({"task": "math.xsum"}));
    }
    let chain =
        chain_file(&json!({"id": "fan", "plugins": standard_plugins(), "workflow": workflow}));
    let kills = run_through_kills(&chain, "fan", 0xfa11, 4, 400..1200, &[]);
    println!("killed the host {kills} times while groups ran");
    assert!(kills >= 1, "the groups finished before the first kill");
    let report = chain.command(&["status", "fan", "--json"]).json();
    // The first step gives 1; slow_add(x, 0) keeps x, so each group and its
    // xsum multiply by 4.
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["result"], 4u64.pow(30));
    let succeeded = event_counts(&chain, "fan", "step_succeeded");
    assert_eq!(succeeded.len(), 1 + 30 * 5);
    assert!(
        succeeded.values().all(|&n| n == 1),
        "a step succeeded twice: {succeeded:?}"
    );
}

#[test]
fn a_cancelled_cut_off_workflow_is_not_resumed() {
    let chain = slow_chain("cut", 2000);
    let mut child = start(&chain, &["run", chain.path.to_str().unwrap()]);
    // 2,000 steps of 1 ms take seconds: half a second in, it is mid-run.
    sleep(Duration::from_millis(500));
    kill(&mut child);
    assert_eq!(
        chain.command(&["status", "cut"]).code,
        0,
        "the run was on record"
    );

    let cancel = chain.command(&["cancel", "cut"]);
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(
        cancel.stderr.contains("workflow cut cancelled"),
        "{}",
        cancel.stderr
    );
    let resumed = chain.command(&["resume", "--all"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("no workflow was cut off"),
        "{}",
        resumed.stderr
    );
    let report = chain.command(&["status", "cut", "--json"]).json();
    assert_eq!(report["status"], "cancelled");
    assert!(report["steps"].as_array().unwrap().len() < 2000);
    let listed = chain
        .command(&["list", "--status", "cancelled", "--json"])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

/// A process killed while it makes a new database leaves no half-made file
/// behind: the next command makes it again (one kill in six once left a
/// file refused for good as "damaged").
#[test]
fn a_kill_while_a_database_is_made_leaves_none_half_made() {
    let mut rng = fastrand::Rng::with_seed(0xdb);
    let mut cut_short = 0;
    for _ in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        // `resume --all` makes the database if there is none; `list` only
        // reads one.
        let mut making = wfhost_in(dir.path());
        making.args(["resume", "--all"]);
        let mut child = spawn(making);
        sleep(Duration::from_micros(rng.u64(500..8_000)));
        if child.try_wait().unwrap().is_none() {
            cut_short += 1;
        }
        kill(&mut child);
        let made = Run::from(
            wfhost_in(dir.path())
                .args(["resume", "--all"])
                .output()
                .unwrap(),
        );
        assert_eq!(made.code, 0, "{}", made.stderr);
        let listed = Run::from(wfhost_in(dir.path()).arg("list").output().unwrap());
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["state.redb"], "only the database is left");
    }
    assert!(cut_short >= 10, "only {cut_short} of 40 kills came in time");
}

#[test]
fn an_empty_database_file_is_refused_not_taken_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.redb"), b"").unwrap();
    let listed = Run::from(wfhost_in(dir.path()).arg("list").output().unwrap());
    assert_eq!(listed.code, 2);
    assert!(
        listed.stderr.contains("the file is empty"),
        "{}",
        listed.stderr
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("state.redb"))
            .unwrap()
            .len(),
        0,
        "the file is left as it was"
    );
}

/// Bits flipped where redb keeps its pages' layouts: every command answers
/// with a result or a clear error, never a crash (redb indexing past a
/// damaged page once ended the process with exit 101 and a backtrace).
#[test]
fn a_damaged_database_is_an_error_never_a_crash() {
    let chain = slow_chain("flipped", 200);
    assert_eq!(run_file(&chain, &["--id", "flipped"]).code, 0);
    let pristine = std::fs::read(chain.db()).unwrap();
    let pages = pristine.len() / 4096;
    let mut rng = fastrand::Rng::with_seed(0xf11b);
    let (mut redb_failed, mut checked_damaged) = (0, 0);
    for _ in 0..300 {
        let mut bytes = pristine.clone();
        let at = rng.usize(0..pages) * 4096 + rng.usize(0..128);
        bytes[at] ^= 1 << rng.u8(0..8);
        std::fs::write(chain.db(), &bytes).unwrap();
        let run = chain.command(&["usage"]);
        assert!(
            matches!(run.code, 0 | 2),
            "exit {}: {}",
            run.code,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        redb_failed += usize::from(run.stderr.contains("redb failed on it"));
        // `check` reads everything: what `usage` refused, it finds.
        let before = std::fs::read(chain.db()).unwrap();
        let check = chain.command(&["check"]);
        assert!(
            matches!(check.code, 0 | 1),
            "exit {}: {}",
            check.code,
            check.stderr
        );
        assert!(!check.stderr.contains("panicked"), "{}", check.stderr);
        if run.code == 2 {
            assert_eq!(
                check.code, 1,
                "usage refused, check found nothing: {}",
                run.stderr
            );
        }
        checked_damaged += usize::from(check.code == 1);
        assert!(
            std::fs::read(chain.db()).unwrap() == before,
            "check changed the file"
        );
    }
    assert!(
        redb_failed > 0,
        "no flip reached a redb failure: the test tests nothing"
    );
    assert!(checked_damaged > 0, "check found no flip damaged");
    std::fs::write(chain.db(), &pristine).unwrap();
    assert_whole(&chain);
}

/// A step killed while it runs is on record as started (attempt 1), so
/// that the run after the crash shows as its second attempt, and the event
/// log has both starts.
#[test]
fn a_step_cut_off_while_it_ran_counts_its_attempt() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 1]},
            {"task": "testkit.slow_add", "args": [1, 1500]},
        ],
    }));
    let mut child = start(
        &chain,
        &["run", chain.path.to_str().unwrap(), "--id", "twice"],
    );
    let started = Instant::now();
    loop {
        let status = chain.command(&["status", "twice", "--json"]);
        if status.code == 0
            && step_of_if(&status.json(), "1").is_some_and(|s| s["status"] == "running")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            status.stdout
        );
        sleep(Duration::from_millis(20));
    }
    kill(&mut child);
    let resumed = chain.command(&["resume", "twice"]);
    assert_eq!(
        (resumed.code, resumed.stdout.as_str()),
        (0, "3\n"),
        "{}",
        resumed.stderr
    );
    let report = chain.command(&["status", "twice", "--json"]).json();
    let step = step_of(&report, "1");
    assert_eq!(
        (&step["status"], &step["attempts"]),
        (&json!("succeeded"), &json!(2)),
        "{step}"
    );
    let events = chain.command(&["events", "twice", "--json"]).json_lines();
    let starts: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "step_started" && event["step"] == "1")
        .map(|event| event["detail"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["attempt 1", "attempt 2"]);
}

/// The default mode flushes a pure step's record while the next step runs.
/// Killed at random instants 50 times over a 5,000-step chain, it still
/// ends with the exact result, and no step whose success was on the disk
/// ran again: each step has exactly one success in the log.
#[test]
fn the_default_mode_survives_fifty_kills_of_a_long_chain_exactly() {
    const STEPS: usize = 5000;
    let chain = counting_chain(STEPS);
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(&chain.path).unwrap()).unwrap();
    document["id"] = json!("fifty");
    std::fs::write(&chain.path, document.to_string()).unwrap();
    let kills = run_through_kills(&chain, "fifty", 0x50f1, 50, 10..150, &[]);
    assert!(
        kills >= 25,
        "the test should kill the host mid-run, killed {kills} times"
    );
    let report = chain.command(&["status", "fifty", "--json"]).json();
    assert_eq!(report["status"], "succeeded", "{}", report["error"]);
    assert_eq!(report["result"], STEPS);
    let succeeded = event_counts(&chain, "fifty", "step_succeeded");
    assert_eq!(succeeded.len(), STEPS);
    let twice: Vec<_> = succeeded.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "steps that succeeded twice: {twice:?}");
}

/// A result once printed is on the disk: killed the instant it prints,
/// `status` finds it.
#[test]
fn a_printed_result_is_always_found_after_a_kill() {
    use std::io::BufRead;
    for steps in [1, 2, 10, 100, 1000] {
        let chain = counting_chain(steps);
        let mut runner = start(
            &chain,
            &["run", chain.path.to_str().unwrap(), "--id", "printed"],
        );
        let mut line = String::new();
        std::io::BufReader::new(runner.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        kill(&mut runner);
        assert_eq!(line.trim(), steps.to_string());
        let report = chain.command(&["status", "printed", "--json"]).json();
        assert_eq!(report["status"], "succeeded", "{steps} steps: {report}");
        assert_eq!(report["result"], steps);
    }
}

/// Bits flipped on the disk inside the records themselves (a step's
/// arguments and result, the ids in their keys): `status` shows exactly
/// what was written or refuses the file as damaged, never the changed
/// records (a flipped digit was once shown as another result, exit 0).
#[test]
fn a_record_changed_on_the_disk_is_refused_never_shown() {
    let mut workflow = vec![json!({"task": "math.add", "args": [7_000_000, 1]})];
    workflow.extend((1..30).map(|_| json!({"task": "math.add", "args": [1]})));
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    assert_eq!(run_file(&chain, &["--id", "flips"]).code, 0);
    let pristine = chain.command(&["status", "flips", "--json", "--all"]);
    assert_eq!(pristine.code, 0, "{}", pristine.stderr);
    assert_eq!(pristine.json()["result"], 7_000_030);
    let pristine_bytes = std::fs::read(chain.db()).unwrap();
    let marker = b"70000";
    let places: Vec<usize> = pristine_bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, window)| window == marker)
        .map(|(at, _)| at)
        .collect();
    assert!(places.len() >= 30, "only {} places", places.len());
    let mut rng = fastrand::Rng::with_seed(0xc4c);
    let mut refused = 0;
    for &place in places.iter().step_by(places.len().div_ceil(60)) {
        let mut bytes = pristine_bytes.clone();
        let at = place + rng.usize(0..marker.len() + 2);
        bytes[at] ^= 1 << rng.u8(0..8);
        std::fs::write(chain.db(), &bytes).unwrap();
        let status = chain.command(&["status", "flips", "--json", "--all"]);
        match status.code {
            0 => assert!(
                status.stdout == pristine.stdout,
                "a flip at byte {at} was shown as a record"
            ),
            2 => {
                assert!(status.stderr.contains("damaged"), "{}", status.stderr);
                refused += 1;
                // `check` names the record: its table, key and workflow.
                let check = chain.command(&["check"]);
                assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
                assert!(
                    check.stdout.contains("(workflow default/flips)"),
                    "{}",
                    check.stdout
                );
            }
            code => panic!("exit {code}: {}", status.stderr),
        }
    }
    assert!(refused > 0, "no flip was noticed: the test tests nothing");
}

/// Runs `wfhost` with `args` over the database in `dir` as a file that
/// cannot be written: on a read-only mount of `dir` where the system
/// allows one (as root), else with `dir` and the file made read-only
/// (which binds no root). None where neither holds.
fn on_read_only_media(dir: &std::path::Path, args: &[&str]) -> Option<Run> {
    let root = Run::from(std::process::Command::new("id").arg("-u").output().unwrap());
    let base = wfhost();
    let envs: Vec<_> = base
        .get_envs()
        .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
        .collect();
    if root.stdout.trim() != "0" {
        use std::os::unix::fs::PermissionsExt;
        let set = |path: &std::path::Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(&dir.join("state.redb"), 0o444);
        set(dir, 0o555);
        let run = Run::from(wfhost_in(dir).args(args).output().unwrap());
        set(dir, 0o755);
        set(&dir.join("state.redb"), 0o644);
        return Some(run);
    }
    let mount = tempfile::tempdir().unwrap();
    let script =
        r#"mount --bind "$1" "$2" && mount -o remount,ro,bind "$2" && shift 2 && exec "$@""#;
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(dir)
        .arg(mount.path())
        .arg(base.get_program())
        .args(args)
        .envs(envs)
        .env("WFHOST_DB", mount.path().join("state.redb"));
    let run = Run::from(command.output().unwrap());
    if run.stderr.contains("unshare:") || run.stderr.contains("mount:") {
        eprintln!("skipped: no read-only mount here ({})", run.stderr.trim());
        return None;
    }
    Some(run)
}

/// A database on read-only media (or that this user may not write) is
/// read by the commands that only look: as every wfhost leaves its file as
/// a crash would, redb's repair on open must not need the file written.
/// Commands that would change it say why they cannot.
#[test]
fn a_database_on_read_only_media_is_read() {
    let chain = slow_chain("ro", 5);
    assert_eq!(run_file(&chain, &["--id", "ro"]).code, 0);
    let dir = chain.dir.path();
    for args in [
        &["status", "ro", "--json"][..],
        &["list"],
        &["events", "ro"],
        &["usage"],
    ] {
        let writable = chain.command(args);
        assert_eq!(writable.code, 0, "{}", writable.stderr);
        let Some(read_only) = on_read_only_media(dir, args) else {
            return;
        };
        assert_eq!(read_only.code, 0, "{args:?}: {}", read_only.stderr);
        assert_eq!(read_only.stdout, writable.stdout, "{args:?}");
    }
    let removal = on_read_only_media(dir, &["rm", "ro"]).unwrap();
    assert_eq!(removal.code, 2);
    assert!(
        removal.stderr.contains("Read-only file system")
            || removal.stderr.contains("Permission denied"),
        "{}",
        removal.stderr
    );
    assert_eq!(
        chain.command(&["status", "ro"]).code,
        0,
        "nothing was removed"
    );
}

/// `wfhost check` on a sound file (exit 0), on one whose journal no
/// longer agrees with itself (exit 1, each problem named by table, key and
/// workflow), and on no file (exit 2); the file is never changed.
#[test]
fn check_names_what_is_wrong_and_changes_nothing() {
    use redb::{ReadableTable, TableDefinition};
    type Key = (&'static str, &'static str, u8, u64, &'static str);
    const JOURNAL: TableDefinition<Key, &[u8]> = TableDefinition::new("journal");
    let mut workflow = vec![json!({"task": "math.add", "args": [1, 2]})];
    workflow.extend((1..6).map(|_| json!({"task": "math.add", "args": [1]})));
    workflow.push(json!({"group": [
        {"task": "math.add", "args": [1]},
        {"task": "math.add", "args": [2]},
    ]}));
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    assert_eq!(run_file(&chain, &["--id", "shape"]).code, 0);
    let failing = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 2]},
            {"task": "testkit.fail", "args": ["no"], "immutable": true},
        ],
    }));
    let failed = chain.command(&["run", failing.path.to_str().unwrap(), "--id", "failed"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    // What a check killed midway left, its copy, goes with the next.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let left = chain
        .dir
        .path()
        .join(format!(".state.redb.checking-{}-x1", gone.id()));
    std::fs::write(&left, b"a copy").unwrap();
    let clean = chain.command(&["check"]);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    assert!(!left.exists(), "the killed check's copy was left");
    let copies = std::fs::read_dir(chain.dir.path())
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().contains(".checking-")
        })
        .count();
    assert_eq!(copies, 0, "a check leaves no copy");
    assert!(clean.stdout.contains("2 workflows"), "{}", clean.stdout);
    assert!(clean.stdout.ends_with("clean\n"), "{}", clean.stdout);
    let report = chain.command(&["check", "--json"]).json();
    assert_eq!(report["pages"], json!({"state": "clean"}));
    assert_eq!(report["findings"], json!([]));

    // An event taken out, and a step record moved under another step's id.
    let db = redb::Database::create(chain.db()).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut journal = txn.open_table(JOURNAL).unwrap();
        let mut events = Vec::new();
        let mut step = None;
        for entry in journal.iter().unwrap() {
            let (key, value) = entry.unwrap();
            let (tenant, id, part, index, name) = key.value();
            if id == "shape" && part == 3 {
                events.push((tenant.to_string(), index));
            }
            if id == "shape" && part == 2 && name == "2" {
                step = Some(value.value().to_vec());
            }
        }
        let (tenant, index) = events[3].clone();
        journal
            .remove((tenant.as_str(), "shape", 3, index, ""))
            .unwrap();
        journal
            .insert(
                (tenant.as_str(), "shape", 2, 0, "9"),
                step.unwrap().as_slice(),
            )
            .unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let before = std::fs::read(chain.db()).unwrap();
    let damaged = chain.command(&["check"]);
    assert_eq!(damaged.code, 1, "{}{}", damaged.stdout, damaged.stderr);
    for problem in [
        "events 3..4 are missing",
        "fails its checksum",
        "(workflow default/shape)",
    ] {
        assert!(
            damaged.stdout.contains(problem),
            "{problem}: {}",
            damaged.stdout
        );
    }
    assert!(
        !damaged.stdout.contains("default/failed"),
        "{}",
        damaged.stdout
    );
    assert!(
        damaged.stdout.ends_with("damage found\n"),
        "{}",
        damaged.stdout
    );
    let report = chain.command(&["check", "--json"]).json();
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .all(|finding| finding["table"] == "journal" && finding["workflow"] == "default/shape"),
        "{report}"
    );
    assert_eq!(
        std::fs::read(chain.db()).unwrap(),
        before,
        "check changed the file"
    );

    // A repaired copy: what reads back whole, as it was stored.
    let out = chain.dir.path().join("repaired.redb");
    let out = out.to_str().unwrap();
    let repaired = chain.command(&["check", "--repair-copy", out]);
    assert_eq!(repaired.code, 1, "{}{}", repaired.stdout, repaired.stderr);
    assert!(
        repaired.stdout.contains(
            "repaired.redb: 1 workflows and 0 schedules copied as stored; 1 left out: default/shape"
        ),
        "{}",
        repaired.stdout
    );
    assert!(
        std::fs::read(chain.db()).unwrap() == before,
        "check changed the file"
    );
    let copy = chain.command(&["check", "--db", out]);
    assert_eq!(copy.code, 0, "{}{}", copy.stdout, copy.stderr);
    let kept = chain.command(&["status", "failed", "--json", "--all", "--db", out]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let original = chain.command(&["status", "failed", "--json", "--all"]);
    assert_eq!(kept.stdout, original.stdout, "copied as it was");
    let events = chain.command(&["events", "failed", "--json", "--db", out]);
    assert_eq!(
        events.stdout,
        chain.command(&["events", "failed", "--json"]).stdout
    );
    let left = chain.command(&["status", "shape", "--db", out]);
    assert_eq!(left.code, 2, "{}", left.stdout);
    let again = chain.command(&["check", "--repair-copy", out]);
    assert_eq!(again.code, 2, "{}", again.stdout);
    assert!(again.stderr.contains("this one exists"), "{}", again.stderr);

    let missing = chain.command(&["check", "--db", "nothing-here.redb"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no state database"),
        "{}",
        missing.stderr
    );
}
