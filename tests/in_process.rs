//! The host as a library under a long mix of hostile and good steps: every
//! good result stays right, every hostile one is classified, and memory
//! does not grow with the number of failures.

mod common;

use std::time::Duration;

use common::{invocation, load, rss_kib};
use serde_json::{Value, json};
use wfhost::records::FailureKind;
use wfhost::runtime::{AttemptResult, Limits, Runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mixed_steps_keep_results_right_and_memory_bounded() {
    let runtime = Runtime::new().unwrap();
    let math = load(&runtime, "math").await;
    let testkit = load(&runtime, "testkit").await;
    let limits = Limits {
        fuel: Some(20_000_000),
        memory_bytes: Some(32 << 20),
        time_limit: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    // (task, args, expected kind) for each hostile behaviour.
    let hostile: [(&str, Value, FailureKind); 5] = [
        ("spin", json!([]), FailureKind::FuelExhausted),
        ("hog", json!([256]), FailureKind::MemoryLimit),
        ("recurse", json!([10_000_000]), FailureKind::Trap),
        ("panic", json!(["boom"]), FailureKind::Fail),
        ("sleep", json!([10_000]), FailureKind::TimeLimit),
    ];

    let mut baseline = 0;
    for step in 0..200usize {
        if step == 40 {
            // Let allocator pools and caches warm up before measuring.
            baseline = rss_kib();
        }
        if step % 2 == 0 {
            let x = step as i64;
            let attempt = runtime
                .run(
                    &math,
                    &invocation("math", "add", step, &json!([x, 1000])),
                    &limits,
                )
                .await;
            assert_eq!(
                attempt.result,
                AttemptResult::Value(json!(x + 1000)),
                "step {step}"
            );
        } else {
            let (task, args, kind) = &hostile[(step / 2) % hostile.len()];
            let attempt = runtime
                .run(&testkit, &invocation("testkit", task, step, args), &limits)
                .await;
            match attempt.result {
                AttemptResult::Failed(failure) => {
                    assert_eq!(failure.kind, *kind, "step {step} ({task}): {failure}")
                }
                other => panic!("step {step} ({task}) should fail, got {other:?}"),
            }
        }
    }
    let grown = rss_kib().saturating_sub(baseline);
    println!("RSS grew by {grown} KiB over 160 mixed steps (baseline {baseline} KiB)");
    // Each hostile step touches up to 32 MiB; a leak of even one store per
    // failure would show as hundreds of MiB.
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

/// The guest SDK binds arguments like a Python call. The host's validation
/// refuses such calls before a workflow runs; a library user calling the
/// runtime directly meets the guest's own checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_binds_arguments_like_a_python_call() {
    let runtime = Runtime::new().unwrap();
    let math = load(&runtime, "math").await;
    let cases = [
        (
            json!([1]),
            json!({"z": 3}),
            "add() got an unexpected keyword argument 'z'",
        ),
        (json!([1]), json!({}), "add() missing required argument 'y'"),
        (
            json!([1, 2, 3]),
            json!({}),
            "add() takes 2 positional arguments but 3 were given",
        ),
        (
            json!([1]),
            json!({"x": 2}),
            "add() got multiple values for argument 'x'",
        ),
        (
            json!(["one", 2]),
            json!({}),
            "add() argument 'x' (i64): invalid type",
        ),
    ];
    for (args, kwargs, expected) in cases {
        let mut call = invocation("math", "add", 0, &args);
        call.kwargs = kwargs.to_string();
        let attempt = runtime.run(&math, &call, &Limits::default()).await;
        match attempt.result {
            AttemptResult::Failed(failure) => {
                assert_eq!(failure.kind, FailureKind::Fail);
                assert!(
                    failure.message.starts_with(expected),
                    "{args} {kwargs}: {}",
                    failure.message
                );
            }
            other => panic!("{args} {kwargs}: expected a failure, got {other:?}"),
        }
    }
    let mut by_name = invocation("math", "add", 0, &json!([]));
    by_name.kwargs = json!({"y": 5, "x": 1}).to_string();
    let attempt = runtime.run(&math, &by_name, &Limits::default()).await;
    assert_eq!(attempt.result, AttemptResult::Value(json!(6)));
}
