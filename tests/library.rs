//! The host as an embedder uses it: workflows run in-process through
//! `wfhost::Host`, over an in-memory store and over a redb file, with real
//! plugins.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::standard_plugins;
use serde_json::{Value, json};
use wfhost::records::{FailureKind, StepStatus, WorkflowStatus};
use wfhost::runtime::Runtime;
use wfhost::spec::{self, WorkflowSpec};
use wfhost::store::Store;
use wfhost::{Begun, Host, HostError, Intent, RunIdentity};

/// A workflow of the standard plugins.
fn workflow(steps: Value) -> WorkflowSpec {
    let document = json!({"plugins": standard_plugins(), "workflow": steps});
    spec::parse(&document.to_string(), Path::new("/")).unwrap()
}

fn host(store: Store) -> Host {
    Host::new(Runtime::new().unwrap(), store)
}

/// Each test runs over both kinds of store; the directory holds the file.
fn stores(dir: &Path) -> [(&'static str, Store); 2] {
    [
        ("in memory", Store::in_memory().unwrap()),
        ("file", Store::open(&dir.join("state.redb")).unwrap()),
    ]
}

fn me(id: &str) -> RunIdentity {
    RunIdentity::new("me", id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_runs_once_and_is_reported_after() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, store) in stores(dir.path()) {
        let host = host(store);
        let chain = || {
            workflow(json!([
                {"task": "math.add", "args": [2, 2]},
                {"task": "math.add", "args": [4]},
                {"task": "math.mul", "args": [10, 10], "immutable": true},
                {"task": "math.add", "args": [-1]},
            ]))
        };
        let row = host.run(chain(), me("chain")).await.unwrap();
        assert_eq!(row.status, WorkflowStatus::Succeeded, "{kind}");
        assert_eq!(row.result, Some(json!(99)), "{kind}");
        let report = host.report(&me("chain")).unwrap();
        let results: Vec<&Value> = report
            .steps
            .iter()
            .map(|step| step.result.as_ref().unwrap())
            .collect();
        assert_eq!(results, [&json!(4), &json!(8), &json!(100), &json!(99)]);
        let events = host.events(&me("chain")).unwrap().len();
        // The same id again runs nothing: its outcome is on record.
        let again = host.begin(me("chain"), Intent::Start(chain())).await;
        assert!(matches!(again, Ok(Begun::Finished(ref row)) if row.result == Some(json!(99))));
        assert_eq!(host.run(chain(), me("chain")).await.unwrap(), row);
        assert_eq!(host.events(&me("chain")).unwrap().len(), events, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_fans_out_and_a_chord_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, store) in stores(dir.path()) {
        let host = host(store);
        let steps = json!([
            {"task": "math.add", "args": [1, 1]},
            {"group": [
                {"task": "math.add", "args": [10]},
                {"task": "math.mul", "args": [3]},
                [{"task": "math.add", "args": [1]}, {"task": "math.mul", "args": [5]}],
            ]},
            {"task": "math.xsum"},
        ]);
        let row = host.run(workflow(steps), me("chord")).await.unwrap();
        assert_eq!(row.status, WorkflowStatus::Succeeded, "{kind}");
        // [2 + 10, 2 * 3, (2 + 1) * 5], summed.
        assert_eq!(row.result, Some(json!(33)), "{kind}");
        let report = host.report(&me("chord")).unwrap();
        let group = report.steps.iter().find(|step| step.id == "1").unwrap();
        assert_eq!(group.result, Some(json!([12, 6, 15])), "{kind}");
        let sum = report.steps.iter().find(|step| step.id == "2").unwrap();
        assert_eq!(sum.args, [json!([12, 6, 15])], "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_runs_its_errback_and_a_retry_runs_it_again() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, store) in stores(dir.path()) {
        let host = host(store);
        let steps = json!([
            {"task": "math.add", "args": [1, 2]},
            {"task": "testkit.fail", "args": ["no stock"], "immutable": true,
             "options": {"link_error": {"task": "testkit.echo"}}},
            {"task": "math.add", "args": [1]},
        ]);
        let row = host.run(workflow(steps), me("failing")).await.unwrap();
        assert_eq!(row.status, WorkflowStatus::Failed, "{kind}");
        let error = row.error.as_ref().unwrap();
        assert_eq!(
            (error.step.as_str(), error.kind, error.message.as_str()),
            ("1", FailureKind::Fail, "no stock"),
            "{kind}"
        );
        let report = host.report(&me("failing")).unwrap();
        let step = |id: &str| report.steps.iter().find(|s| s.id == id).unwrap().clone();
        // The errback got the failed step's error record.
        let errback = step("1.link_error.0");
        assert_eq!(errback.status, StepStatus::Succeeded, "{kind}");
        let record = errback.result.unwrap();
        assert_eq!(record["step"], "1");
        assert_eq!(record["chain_id"], "failing");
        assert_eq!(record["error"]["message"], "no stock");
        assert_eq!(step("2").status, StepStatus::Skipped, "{kind}");

        // A retry re-drives from the failed step, which fails again; the
        // step before it is not run again.
        let retried = host.retry(me("failing")).await.unwrap();
        assert_eq!(retried.status, WorkflowStatus::Failed, "{kind}");
        let report = host.report(&me("failing")).unwrap();
        let step = |id: &str| report.steps.iter().find(|s| s.id == id).unwrap().clone();
        assert_eq!((step("0").attempts, step("1").attempts), (1, 2), "{kind}");
        let kinds: Vec<String> = host
            .events(&me("failing"))
            .unwrap()
            .into_iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|kind| *kind == "workflow_retried")
                .count(),
            1
        );

        // Only a failed workflow can be retried; an unknown one is not found.
        host.run(
            workflow(json!([{"task": "math.add", "args": [1, 1]}])),
            me("fine"),
        )
        .await
        .unwrap();
        let refused = host.retry(me("fine")).await.unwrap_err();
        assert!(
            matches!(refused, HostError::NotRetryable { .. }),
            "{refused}"
        );
        let missing = host.resume(me("nobody")).await.unwrap_err();
        assert!(matches!(missing, HostError::NotFound { .. }), "{missing}");
    }
}

/// Cuts a run off while its second step waits for its countdown, as a crash
/// would: the task running it is dropped mid-run.
async fn cut_off(host: &Arc<Host>, id: &str) {
    let steps = json!([
        {"task": "math.add", "args": [1, 2]},
        {"task": "math.add", "args": [10], "options": {"countdown": 0.3}},
        {"task": "math.mul", "args": [2]},
    ]);
    let running = {
        let host = Arc::clone(host);
        let spec = workflow(steps);
        let identity = me(id);
        tokio::spawn(async move { host.run(spec, identity).await })
    };
    loop {
        let waiting = host.store().step("me", id, "1").unwrap();
        if waiting.is_some_and(|step| step.status == StepStatus::Scheduled) {
            break;
        }
        assert!(
            !running.is_finished(),
            "the run ended before it was cut off"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    let row = host.workflow(&me(id)).unwrap();
    assert_eq!(row.status, WorkflowStatus::CutOff, "on record, cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_workflow_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let memory = Arc::new(host(Store::in_memory().unwrap()));
    let file = Arc::new(host(Store::open(&path).unwrap()));
    cut_off(&memory, "cut").await;
    cut_off(&file, "cut").await;
    // The file's workflow resumes in a host of its own, as after a restart.
    drop(Arc::into_inner(file).expect("the cut-off run let go of its host"));
    let reopened = host(Store::open(&path).unwrap());
    for (kind, host) in [("in memory", &*memory), ("file", &reopened)] {
        let row = host.resume(me("cut")).await.unwrap();
        assert_eq!(row.status, WorkflowStatus::Succeeded, "{kind}");
        assert_eq!(row.result, Some(json!(26)), "{kind}");
        let events = host.events(&me("cut")).unwrap();
        let first_step_runs = events
            .iter()
            .filter(|event| event.kind == "step_succeeded" && event.step.as_deref() == Some("0"))
            .count();
        assert_eq!(first_step_runs, 1, "{kind}: the finished step ran again");
        assert!(
            events.iter().any(|event| event.kind == "workflow_resumed"),
            "{kind}"
        );
        // Resumed and finished: resuming again only reports it.
        assert_eq!(host.resume(me("cut")).await.unwrap(), row);
    }
}

/// A workflow running in one task is not started a second time by
/// another, and cancelling it stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_workflow_runs_once_and_can_be_cancelled() {
    let host = Arc::new(host(Store::in_memory().unwrap()));
    let steps = || {
        json!([
            {"task": "math.add", "args": [1, 2]},
            {"task": "testkit.sleep", "args": [20_000], "immutable": true},
        ])
    };
    let running = {
        let host = Arc::clone(&host);
        let spec = workflow(steps());
        tokio::spawn(async move { host.run(spec, me("long")).await })
    };
    while host.store().step("me", "long", "0").unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let again = host
        .begin(me("long"), Intent::Start(workflow(steps())))
        .await
        .unwrap();
    assert!(matches!(again, Begun::Running(_)));
    let cancelled = host.cancel(&me("long")).await.unwrap();
    assert!(matches!(cancelled, wfhost::Cancellation::Requested(_)));
    let row = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("a cancelled run stops")
        .unwrap()
        .unwrap();
    assert_eq!(row.status, WorkflowStatus::Cancelled);
    assert_eq!(row.error.unwrap().step, "1");
}

/// A step's time is its own: waiting for a slot to run in is recorded
/// apart (it once counted in `duration_ms`, and in a tenant's usage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_slot_is_not_a_step_s_own_time() {
    let host = host(Store::in_memory().unwrap());
    let sleep = json!({"task": "testkit.sleep", "args": [300]});
    let ready = match host
        .begin(
            me("one-slot"),
            Intent::Start(workflow(json!([{"group": [sleep, sleep]}]))),
        )
        .await
        .unwrap()
    {
        Begun::Ready(ready) => ready,
        _ => panic!("a new id is ready to run"),
    };
    let options = wfhost::RunOptions::new().concurrency(1);
    let row = host
        .execute(*ready, &options, &wfhost::Silent)
        .await
        .unwrap();
    assert_eq!(row.status, WorkflowStatus::Succeeded);
    let report = host.report(&me("one-slot")).unwrap();
    let members: Vec<_> = report.steps.iter().filter(|s| s.parent.is_some()).collect();
    assert_eq!(members.len(), 2);
    for member in &members {
        assert!(
            (250.0..450.0).contains(&member.duration_ms),
            "{}: {} ms of its own",
            member.id,
            member.duration_ms
        );
    }
    let queued: Vec<f64> = members.iter().map(|m| m.queued_ms).collect();
    assert!(
        queued.iter().any(|&ms| ms >= 250.0) && queued.iter().any(|&ms| ms < 50.0),
        "one waited for the other's slot: {queued:?}"
    );
}
