//! Groups use every core: the same group of CPU-bound members run with a
//! concurrency of 1 and of the number of cores, side by side in one process.
//!
//! Run with `cargo bench -p wfhost --bench canvas`.

/// What the `wfhost` binary allocates with, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::plugin;
use serde_json::{Value, json};
use support::{ready, run_to_end};
use wfhost::executor::cores;
use wfhost::records::WorkflowStatus;
use wfhost::runtime::Runtime;
use wfhost::store::Store;
use wfhost::{Host, RunIdentity, RunOptions};

const MEMBERS: usize = 8;
const ROUNDS: u64 = 30_000_000;
const REPEATS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn run_once(host: &Host, document: &Value, id: String, concurrency: usize) -> Duration {
    let ready = ready(host, document, RunIdentity::new("bench", id)).await;
    let options = RunOptions::new().concurrency(concurrency);
    let started = Instant::now();
    let row = run_to_end(host, ready, &options).await;
    assert_eq!(row.status, WorkflowStatus::Succeeded);
    started.elapsed()
}

async fn bench() {
    let members: Vec<_> = (0..MEMBERS)
        .map(|_| json!({"task": "testkit.burn", "args": [ROUNDS]}))
        .collect();
    let document = json!({
        "plugins": {"testkit": plugin("testkit")},
        "defaults": {"fuel": null},
        "workflow": [{"group": members}],
    });
    let host = Host::new(Runtime::new().unwrap(), Store::in_memory().unwrap());
    let cores = cores();

    let mut serial = Vec::new();
    let mut parallel = Vec::new();
    for repeat in 0..REPEATS {
        serial.push(run_once(&host, &document, format!("serial-{repeat}"), 1).await);
        parallel.push(run_once(&host, &document, format!("parallel-{repeat}"), cores).await);
    }
    serial.sort();
    parallel.sort();
    let (serial, parallel) = (serial[REPEATS / 2], parallel[REPEATS / 2]);
    println!("a group of {MEMBERS} testkit.burn({ROUNDS}) members, median of {REPEATS}:");
    println!(
        "  --concurrency 1: {:>8.1} ms",
        serial.as_secs_f64() * 1000.0
    );
    println!(
        "  --concurrency {cores}: {:>8.1} ms",
        parallel.as_secs_f64() * 1000.0
    );
    println!(
        "  speed-up: {:.2}x on {cores} cores",
        serial.as_secs_f64() / parallel.as_secs_f64()
    );
}
