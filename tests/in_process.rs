//! The host as a library under a long mix of hostile and good steps: every
//! good result stays right, every hostile one is classified, and memory
//! does not grow with the number of failures.

mod common;

use std::time::Duration;

use common::{invocation, plugin, rss_kib};
use serde_json::{Value, json};
use wfhost::failure::FailureKind;
use wfhost::runtime::{AttemptResult, Limits, Runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mixed_steps_keep_results_right_and_memory_bounded() {
    let runtime = Runtime::new().unwrap();
    let math = runtime
        .load_plugin("math", &plugin("math"), None)
        .await
        .unwrap();
    let testkit = runtime
        .load_plugin("testkit", &plugin("testkit"), None)
        .await
        .unwrap();
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
