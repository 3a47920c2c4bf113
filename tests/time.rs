//! Time in a workflow (DESIGN §15), end to end through the real binary on
//! real files: durable sleeps that keep their due instant across a kill -9
//! and a resume, and signals — sent while a wait waits, before it is
//! reached, and while no process runs the workflow — with timeouts,
//! errbacks, waits side by side in a group, and clear refusals.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The workflow's report as `status --json` gives it, once it is on record.
fn report(chain: &ChainFile, id: &str) -> Option<Value> {
    let run = chain.command(&["status", id, "--json"]);
    (run.code == 0).then(|| run.json())
}

/// Waits until step `step` of workflow `id` has status `status`.
fn until_step(chain: &ChainFile, id: &str, step: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(report) = report(chain, id)
            && step_of_if(&report, step).is_some_and(|found| found["status"] == status)
        {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "step {step} of {id} never became {status}: {:?}",
            report(chain, id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a run started in the background printed and how it ended.
fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("waiting for wfhost"))
}

fn chain_of(workflow: Value) -> ChainFile {
    chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}))
}

fn started_at(report: &Value, step: &str) -> u64 {
    step_of(report, step)["started_at_ms"].as_u64().unwrap()
}

/// A 3 s sleep whose process is killed at 1 s and resumed at 1.5 s ends at
/// its due instant, 3 s after it began — not before, and not 3 s after the
/// resume — and passes its input on.
#[test]
fn a_sleep_cut_off_by_a_kill_ends_at_its_due_instant_on_resume() {
    let chain = chain_of(json!([
        {"task": "math.add", "args": [0, 1]},
        {"sleep": "3s"},
        {"task": "math.add", "args": [1]},
    ]));
    let path = chain.path.to_str().unwrap();
    let mut child = start(&chain, &["run", path, "--id", "nap"]);
    let asleep = until_step(&chain, "nap", "1", "sleeping");
    let began = started_at(&asleep, "1");
    let due = step_of(&asleep, "1")["due_at_ms"].as_u64().unwrap();
    assert_eq!(due, began + 3000, "{asleep}");
    std::thread::sleep(Duration::from_millis(1000));
    kill(&mut child);
    std::thread::sleep(Duration::from_millis(500));
    let status = chain.command(&["status", "nap"]);
    assert!(status.stdout.contains("cut_off"), "{}", status.stdout);
    assert!(
        status.stdout.contains("asleep: step 1"),
        "{}",
        status.stdout
    );

    let resumed = chain.command(&["resume", "nap"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let done = report(&chain, "nap").unwrap();
    assert_eq!(done["result"], 2, "{done}");
    assert_eq!(
        step_of(&done, "1")["result"],
        1,
        "the sleep passes its input on"
    );
    let woke = started_at(&done, "2");
    assert!(woke >= due, "woke {} ms before its due instant", due - woke);
    assert!(
        woke < due + 1000,
        "woke {} ms after its due instant",
        woke - due
    );
    assert_whole(&chain);
}

/// A signal sent while the wait waits is its result, prepended to the next
/// step's arguments as any result; `status` says what the step waits for.
#[test]
fn a_signal_sent_while_a_wait_waits_is_its_result() {
    let chain = chain_of(json!([
        {"task": "math.add", "args": [2, 2]},
        {"wait": "approved", "timeout": "60s"},
        {"task": "math.add", "args": [1]},
    ]));
    let path = chain.path.to_str().unwrap();
    let child = start(&chain, &["run", path, "--id", "order", "--json"]);
    until_step(&chain, "order", "1", "waiting");
    let status = chain.command(&["status", "order"]);
    assert!(
        status
            .stdout
            .contains("waiting: step 1 (wfhost.wait), for signal approved since"),
        "{}",
        status.stdout
    );
    let sent = chain.command(&["signal", "order", "approved", "10"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(
        sent.stderr
            .contains("signal approved sent to workflow order")
    );
    let run = finish(child);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["result"], 11, "{}", run.stdout);
    assert_whole(&chain);
}

/// A signal sent before its wait is reached is kept for it; one sent while
/// no process runs the workflow is taken when `resume` continues it; a
/// payload read from stdin (`-`) is any JSON.
#[test]
fn a_signal_is_kept_until_its_wait_takes_it_even_with_no_process_running() {
    let chain = chain_of(json!([
        {"sleep": "2s"},
        {"wait": "first"},
        {"wait": "second"},
        {"task": "testkit.echo"},
    ]));
    let path = chain.path.to_str().unwrap();
    let mut child = start(&chain, &["run", path, "--id", "early"]);
    until_step(&chain, "early", "0", "sleeping");
    let sent = chain.command(&["signal", "early", "first", r#""yes""#]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    until_step(&chain, "early", "2", "waiting");
    kill(&mut child);

    let mut signal = chain.wfhost();
    signal.args(["signal", "early", "second", "-"]);
    signal.stdin(std::process::Stdio::piped());
    let mut sender = spawn(signal);
    {
        use std::io::Write;
        let mut stdin = sender.stdin.take().unwrap();
        stdin.write_all(br#"{"by": "ops", "ok": [1, 2]}"#).unwrap();
    }
    let sent = finish(sender);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(sent.stderr.contains("(cut_off)"), "{}", sent.stderr);

    let resumed = chain.command(&["resume", "early"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let done = report(&chain, "early").unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(step_of(&done, "1")["result"], "yes");
    assert_eq!(done["result"], json!({"by": "ops", "ok": [1, 2]}));
    let events = chain.command(&["events", "early", "--json"]).json_lines();
    let signals: Vec<(String, Option<String>)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"].as_str().unwrap().starts_with("signal"))
        .map(|event| {
            let kind = event["kind"].as_str().unwrap().to_string();
            (kind, event["step"].as_str().map(str::to_string))
        })
        .collect();
    let expected = [
        ("signal_received", None),
        ("signal_taken", Some("1")),
        ("signal_received", None),
        ("signal_taken", Some("2")),
    ];
    let expected: Vec<(String, Option<String>)> = expected
        .iter()
        .map(|(kind, step)| (kind.to_string(), step.map(str::to_string)))
        .collect();
    assert_eq!(signals, expected);
    assert_whole(&chain);
}

/// No signal by the timeout: the step fails with kind `timed_out`, and the
/// workflow's errback runs with it, as for any failed step.
#[test]
fn a_wait_that_times_out_fails_timed_out_and_its_errbacks_run() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [2, 2]},
            {"wait": "approved", "timeout": "500ms"},
            {"task": "math.add", "args": [1]},
        ],
        "on_error": {"task": "testkit.echo"},
    }));
    let started = Instant::now();
    let run = run_file(&chain, &["--id", "late", "--json"]);
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "timed_out", "{error}");
    assert_eq!(error["step"], "1");
    assert!(
        error["message"].as_str().unwrap().contains("\"approved\""),
        "{error}"
    );
    let done = report(&chain, "late").unwrap();
    assert_eq!(step_of(&done, "2")["status"], "skipped");
    let errback = step_of(&done, "on_error");
    assert_eq!(errback["status"], "succeeded", "{errback}");
    assert_eq!(errback["result"]["error"]["kind"], "timed_out");
    assert_whole(&chain);
}

/// Waits in a group wait beside the other members, which run meanwhile;
/// two waits for one name take one signal each, the oldest first.
#[test]
fn waits_in_a_group_wait_beside_the_other_members() {
    let chain = chain_of(json!([{"chord": {
        "header": [
            {"wait": "vote"},
            {"wait": "vote"},
            {"task": "math.add", "args": [1, 1]},
        ],
        "body": {"task": "testkit.echo"},
    }}]));
    let path = chain.path.to_str().unwrap();
    let child = start(&chain, &["run", path, "--id", "votes", "--json"]);
    until_step(&chain, "votes", "0.0", "waiting");
    let waiting = until_step(&chain, "votes", "0.1", "waiting");
    assert_eq!(step_of(&waiting, "0.2")["status"], "succeeded", "{waiting}");
    for vote in ["\"yes\"", "\"no\""] {
        let sent = chain.command(&["signal", "votes", "vote", vote]);
        assert_eq!(sent.code, 0, "{}", sent.stderr);
    }
    let run = finish(child);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut votes: Vec<String> = run.json()["result"].as_array().unwrap()[..2]
        .iter()
        .map(|vote| vote.as_str().unwrap().to_string())
        .collect();
    assert_eq!(run.json()["result"][2], 2);
    votes.sort();
    assert_eq!(votes, ["no", "yes"]);
    assert_whole(&chain);
}

/// A sleeping workflow cancelled from another process stops at once,
/// without waiting out its sleep.
#[test]
fn a_sleep_is_cancelled_without_waiting_it_out() {
    let chain = chain_of(json!([{"sleep": "1h"}, {"task": "math.add", "args": [1]}]));
    let path = chain.path.to_str().unwrap();
    let child = start(&chain, &["run", path, "--id", "long"]);
    until_step(&chain, "long", "0", "sleeping");
    let started = Instant::now();
    let cancelled = chain.command(&["cancel", "long"]);
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let run = finish(child);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let done = report(&chain, "long").unwrap();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(
        step_of(&done, "0")["error"]["message"],
        "cancelled while asleep"
    );
    assert_whole(&chain);
}

/// Signals to what cannot take them, and pauses written wrong, are refused
/// with exit 2 and a message that names the cause and the place.
#[test]
fn signals_and_pauses_written_wrong_are_refused_by_name() {
    let chain = chain_of(json!([{"task": "math.add", "args": [1, 1]}]));
    assert_eq!(run_file(&chain, &["--id", "done"]).code, 0);
    let cases: [(&[&str], &str); 4] = [
        (&["signal", "nobody", "go"], "no workflow `nobody`"),
        (
            &["signal", "done", "go", "1"],
            "workflow done succeeded: a signal reaches only a workflow that runs or was cut off",
        ),
        (
            &["signal", "done", "go", "{oops"],
            "payload (from the command line) is not JSON",
        ),
        (
            &["signal", "done", "a/b", "1"],
            "no control characters or `/`",
        ),
    ];
    for (args, message) in cases {
        let run = chain.command(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }

    let refused = [
        (
            json!([{"sleep": "3 days"}]),
            "$.workflow[0].sleep",
            "is not a duration",
        ),
        (
            json!([{"sleep": -1}]),
            "$.workflow[0].sleep",
            "from 0 seconds to 10 years",
        ),
        (
            json!([{"wait": ""}]),
            "$.workflow[0].wait",
            "a signal's name is empty",
        ),
        (
            json!([{"wait": "x", "until": 3}]),
            "$.workflow[0].until",
            "unknown key `until`",
        ),
        (
            json!([{"task": "wfhost.sleep", "kwargs": {"minutes": 3}}]),
            "step 0",
            "a sleep takes no keyword `minutes`",
        ),
    ];
    for (workflow, place, message) in refused {
        let run = run_workflow(workflow.clone(), &[]);
        assert_eq!(run.code, 2, "{workflow}: {}", run.stderr);
        assert!(
            run.stderr.contains(place) && run.stderr.contains(message),
            "{workflow}: {}",
            run.stderr
        );
    }
    let reserved = run_document(
        json!({"plugins": {"wfhost": plugin("math")}, "workflow": [{"task": "wfhost.add", "args": [1, 2]}]}),
        &[],
    );
    assert_eq!(reserved.code, 2);
    assert!(
        reserved.stderr.contains("$.plugins.wfhost") && reserved.stderr.contains("is wfhost's own"),
        "{}",
        reserved.stderr
    );
}

/// The workflows of tenant `default` whose id starts `NAME@`, as `list`
/// gives them.
fn scheduled_runs(chain: &ChainFile, name: &str) -> Vec<Value> {
    let list = chain.command(&["list", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let rows = list.json();
    let prefix = format!("{name}@");
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|row| row["id"].as_str().unwrap().starts_with(&prefix))
        .cloned()
        .collect()
}

fn show(chain: &ChainFile, name: &str) -> Value {
    let shown = chain.command(&["schedule", "show", name, "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    shown.json()
}

fn ticks_of<'a>(shown: &'a Value, outcome: &str) -> Vec<&'a Value> {
    shown["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|tick| tick["outcome"] == outcome)
        .collect()
}

/// A schedule every second, fired by two `wfhost scheduler` processes at
/// once, one of them killed -9 midway and started again: each tick starts
/// one workflow, `NAME@<instant>`, and every one ends.
#[test]
fn a_schedule_fires_each_tick_once_however_many_schedulers_run() {
    let chain = chain_of(json!([{"task": "math.add", "args": [2, 2]}]));
    let path = chain.path.to_str().unwrap();
    let added = chain.command(&["schedule", "add", "tick", path, "--every", "1s"]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let began = Instant::now();
    let mut first = ChildGuard(start(&chain, &["scheduler"]));
    let mut second = ChildGuard(start(&chain, &["scheduler"]));
    // Killed at a moment of its own, not at a tick.
    let kill_at = Duration::from_millis(1500 + fastrand::u64(0..1000));
    std::thread::sleep(kill_at);
    kill(&mut first.0);
    std::thread::sleep(Duration::from_millis(1200));
    first = ChildGuard(start(&chain, &["scheduler"]));
    std::thread::sleep(Duration::from_millis(2500));
    kill(&mut second.0);
    kill(&mut first.0);
    let elapsed = began.elapsed().as_secs_f64();
    // What a killed scheduler was running, a later pass resumes: run one
    // pass's worth of scheduler to see them end.
    assert_eq!(chain.command(&["schedule", "pause", "tick"]).code, 0);
    let _finisher = ChildGuard(start(&chain, &["scheduler"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let runs = scheduled_runs(&chain, "tick");
        if runs.iter().all(|row| row["status"] == "succeeded") || Instant::now() > deadline {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let shown = show(&chain, "tick");
    let started = ticks_of(&shown, "started");
    let ids: std::collections::BTreeSet<&str> =
        runs.iter().map(|row| row["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), runs.len(), "an id twice: {runs:?}");
    assert_eq!(
        runs.len(),
        started.len(),
        "each started tick is one workflow: {shown}"
    );
    // A tick each second of the run, give or take the ones at its ends.
    let expected = elapsed.floor() as usize;
    assert!(
        runs.len() + 1 >= expected && runs.len() <= expected + 1,
        "{} workflows in {elapsed:.1} s: {shown}",
        runs.len()
    );
    assert!(ticks_of(&shown, "skipped").is_empty(), "{shown}");
    for row in &runs {
        assert_eq!(row["status"], "succeeded", "{row}");
        assert_eq!(row["result"], 4, "{row}");
    }
    assert_whole(&chain);
}

/// A paused schedule starts nothing; resumed, it ticks from then on, not
/// for the ticks it passed over.
#[test]
fn a_paused_schedule_starts_nothing_until_resumed() {
    let chain = chain_of(json!([{"task": "math.add", "args": [1, 1]}]));
    let path = chain.path.to_str().unwrap();
    let added = chain.command(&["schedule", "add", "p", path, "--every", "1s", "--paused"]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let _scheduler = ChildGuard(start(&chain, &["scheduler"]));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(scheduled_runs(&chain, "p").is_empty());
    let shown = chain.command(&["schedule", "show", "p"]);
    assert!(
        shown.stdout.contains("overlap skip, paused"),
        "{}",
        shown.stdout
    );

    assert_eq!(chain.command(&["schedule", "resume", "p"]).code, 0);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(chain.command(&["schedule", "pause", "p"]).code, 0);
    let fired = scheduled_runs(&chain, "p").len();
    assert!((2..=3).contains(&fired), "{fired} after 2.5 s resumed");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        scheduled_runs(&chain, "p").len(),
        fired,
        "fired while paused"
    );
}

/// Ticks missed while no process ran fire once each within the catch-up
/// window; older ones are recorded as missed, once, with their count.
#[test]
fn missed_ticks_fire_within_the_catch_up_window_and_older_ones_are_recorded() {
    let chain = chain_of(json!([{"task": "math.add", "args": [1, 1]}]));
    let path = chain.path.to_str().unwrap();
    let added = chain.command(&[
        "schedule",
        "add",
        "c",
        path,
        "--every",
        "1s",
        "--catch-up",
        "2500ms",
        "--overlap",
        "allow-all",
    ]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    std::thread::sleep(Duration::from_millis(6200));
    let scheduler = ChildGuard(start(&chain, &["scheduler"]));
    std::thread::sleep(Duration::from_millis(300));
    drop(scheduler);
    let shown = show(&chain, "c");
    let missed = ticks_of(&shown, "missed");
    assert_eq!(missed.len(), 1, "{shown}");
    let missed = missed[0]["count"].as_u64().unwrap();
    let started = ticks_of(&shown, "started").len() as u64;
    // Seven ticks were due (0 s … 6 s); those 2.5 s old or less fire.
    assert!((3..=4).contains(&missed), "{shown}");
    assert_eq!(missed + started, 7, "{shown}");
    assert_whole(&chain);
}

/// Schedules written wrong are refused by name, with nothing made.
#[test]
fn a_schedule_written_wrong_is_refused_with_its_cause() {
    let chain = chain_of(json!([{"task": "math.add", "args": [1, 1]}]));
    let path = chain.path.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--cron", "61 * * * *"], "is not a cron expression"),
        (
            &["--cron", "0 9 * * *", "--tz", "Mars/Base"],
            "is not a time zone",
        ),
        (&["--every", "500ms"], "from 1 second to 10 years"),
        (&["--every", "soon"], "is not a duration"),
        (
            &["--every", "1s", "--start", "tomorrow"],
            "is not an ISO 8601 instant",
        ),
        (
            &["--every", "1s", "--overlap", "queue"],
            "invalid value 'queue'",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["schedule", "add", "bad", path];
        all.extend_from_slice(args);
        let run = chain.command(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    let broken = chain_of(json!([{"task": "math.nope"}]));
    let run = chain.command(&[
        "schedule",
        "add",
        "bad",
        broken.path.to_str().unwrap(),
        "--every",
        "1s",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot run") && run.stderr.contains("math.nope"),
        "{}",
        run.stderr
    );
    let listed = chain.command(&["schedule", "list", "--json"]);
    assert_eq!(listed.json(), json!([]), "{}", listed.stderr);
    assert_eq!(
        chain
            .command(&["schedule", "add", "twice", path, "--every", "1h"])
            .code,
        0
    );
    let again = chain.command(&["schedule", "add", "twice", path, "--every", "1h"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    let gone = chain.command(&["schedule", "show", "nothing"]);
    assert_eq!(gone.code, 2);
    assert!(
        gone.stderr.contains("no schedule `nothing`"),
        "{}",
        gone.stderr
    );
}

/// A cron in Europe/Paris across both changes of 2027, with the
/// scheduler's clock set by the test: 02:30, which does not exist on 28
/// March, fires once at 03:00; 02:00 and 02:30, which occur twice on 31
/// October, fire once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_in_a_time_zone_fires_once_across_daylight_saving_changes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use wfhost::records::ScheduleSpec;
    use wfhost::records::{Overlap, iso8601, parse_iso8601};
    use wfhost::schedule::{Clock, Scheduler};

    struct SetClock(AtomicU64);
    impl Clock for SetClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    let chain = chain_of(json!([{"task": "math.add", "args": [1, 1]}]));
    let store = wfhost::store::Store::open(&chain.db()).unwrap();
    let host = Arc::new(wfhost::Host::new(
        wfhost::runtime::Runtime::new().unwrap(),
        store,
    ));
    let at = |text: &str| parse_iso8601(text).unwrap();
    let cases = [
        (
            "spring",
            "30 2 * * *",
            "2027-03-27T12:00:00Z",
            "2027-03-30T12:00:00Z",
        ),
        (
            "autumn",
            "*/30 1-3 * * *",
            "2027-10-30T12:00:00Z",
            "2027-10-31T12:00:00Z",
        ),
    ];
    let clock = Arc::new(SetClock(AtomicU64::new(0)));
    let mut fired = Vec::new();
    for (name, cron, from, to) in cases {
        host.add_schedule(ScheduleSpec {
            name: name.to_string(),
            tenant: "default".to_string(),
            cron: Some(cron.to_string()),
            tz: Some("Europe/Paris".to_string()),
            every_ms: None,
            overlap: Overlap::AllowAll,
            catch_up_ms: 3_600_000,
            start_ms: Some(at(from)),
            end_ms: Some(at(to)),
            paused: false,
            chain: std::fs::read_to_string(&chain.path).unwrap(),
            chain_path: chain.path.display().to_string(),
            submitted: false,
        })
        .await
        .unwrap();
        let mut scheduler = Scheduler::new(host.clone(), clock.clone());
        let mut now = at(from);
        while now <= at(to) {
            clock.0.store(now, Ordering::SeqCst);
            scheduler.pass().await.unwrap();
            now += 10 * 60 * 1000;
        }
        let record = host.schedule("default", name).unwrap();
        fired.push(
            record
                .ticks
                .iter()
                .map(|tick| (iso8601(tick.at_ms), tick.outcome.as_str()))
                .collect::<Vec<_>>(),
        );
    }
    let started = |ticks: &[&str]| -> Vec<(String, &'static str)> {
        ticks
            .iter()
            .map(|tick| (tick.to_string(), "started"))
            .collect()
    };
    assert_eq!(
        fired[0],
        started(&[
            "2027-03-28T01:00:00.000Z", // 03:00 CEST, for 02:30, which does not exist
            "2027-03-29T00:30:00.000Z", // 02:30 CEST
            "2027-03-30T00:30:00.000Z",
        ])
    );
    assert_eq!(
        fired[1],
        started(&[
            "2027-10-30T23:00:00.000Z", // 01:00 CEST
            "2027-10-30T23:30:00.000Z", // 01:30 CEST
            "2027-10-31T00:00:00.000Z", // 02:00 CEST
            "2027-10-31T00:30:00.000Z", // 02:30 CEST; not again in CET
            "2027-10-31T02:00:00.000Z", // 03:00 CET
            "2027-10-31T02:30:00.000Z", // 03:30 CET
        ])
    );
}

/// The ETL example as a nightly schedule (README): made with a cron in
/// Europe/Paris, its next ticks are 02:00 there, and `schedule trigger`
/// runs it now, as `run` would.
#[test]
fn the_etl_example_runs_as_a_nightly_schedule() {
    // The example names its plugin by its path in the repository: the
    // chain file points it at the component these tests built.
    let chain = etl_example();
    let path = chain.path.to_str().unwrap();
    let added = chain.command(&[
        "schedule",
        "add",
        "nightly",
        path,
        "--cron",
        "0 2 * * *",
        "--tz",
        "Europe/Paris",
    ]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let shown = show(&chain, "nightly");
    for tick in shown["next_ticks"].as_array().unwrap() {
        // 02:00 in Paris is 01:00 UTC in winter, 00:00 UTC in summer.
        let tick = tick.as_str().unwrap();
        assert!(
            tick.ends_with("T01:00:00.000Z") || tick.ends_with("T00:00:00.000Z"),
            "{shown}"
        );
    }
    let triggered = chain.command(&["schedule", "trigger", "nightly"]);
    assert_eq!(triggered.code, 0, "{}", triggered.stderr);
    let answer = triggered.json();
    assert!(
        answer["id"].as_str().unwrap().starts_with("nightly@"),
        "{answer}"
    );
    assert_eq!(
        answer["result"]["EU"],
        json!({"orders": 2, "quantity": 5, "revenue": 57.5})
    );
    assert!(chain.dir.path().join("out/report.json").exists());
    assert_eq!(ticks_of(&show(&chain, "nightly"), "triggered").len(), 1);
}

/// The Python SDK's `sleep` and `wait` write steps the host runs as its
/// own: a chain made with `wfhost_task` sleeps, then times out waiting.
#[test]
fn the_python_sdk_writes_sleeps_and_waits() {
    if !python3_runs("the_python_sdk_writes_sleeps_and_waits") {
        return;
    }
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, wfhost_task as w\n\
             print(json.dumps(w.chain(w.signature('math.add', args=(2, 2)), w.sleep('300ms'),\n\
                                      w.wait('approved', timeout=0.2))))",
        )
        .env("PYTHONPATH", repo_root().join("guest-sdk/python"))
        .output()
        .unwrap();
    common::assert_succeeded(&made);
    let canvas: Value = serde_json::from_slice(&made.stdout).unwrap();
    let chain = chain_of(canvas);
    let run = run_file(&chain, &["--id", "py", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json()["error"]["kind"], "timed_out", "{}", run.stdout);
    let done = report(&chain, "py").unwrap();
    let slept = step_of(&done, "1");
    assert_eq!(
        (slept["task"].as_str(), slept["result"].as_i64()),
        (Some("wfhost.sleep"), Some(4))
    );
    let ended = slept["ended_at_ms"].as_u64().unwrap();
    assert!(
        ended >= slept["started_at_ms"].as_u64().unwrap() + 300,
        "{slept}"
    );
    assert_whole(&chain);
}

/// A tick whose workflow cannot start (its plugin file is gone) is
/// recorded as failed, and does not hold back the ticks after it as a run
/// that never ends would.
#[test]
fn a_tick_that_cannot_start_is_recorded_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("math.wasm");
    std::fs::copy(plugin("math"), &copy).unwrap();
    let chain = chain_file(&json!({
        "plugins": {"math": copy},
        "workflow": [{"task": "math.add", "args": [1, 1]}],
    }));
    let path = chain.path.to_str().unwrap();
    let added = chain.command(&["schedule", "add", "gone", path, "--every", "1s"]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    std::fs::remove_file(&copy).unwrap();
    let scheduler = ChildGuard(start(&chain, &["scheduler"]));
    std::thread::sleep(Duration::from_millis(3500));
    drop(scheduler);
    let shown = show(&chain, "gone");
    let failed = ticks_of(&shown, "failed").len();
    assert!(failed >= 2, "{shown}");
    assert!(ticks_of(&shown, "skipped").is_empty(), "{shown}");
    assert!(scheduled_runs(&chain, "gone").is_empty());
}
