//! What a Python task costs: one attempt of a Python `add` (built with the
//! Python SDK) beside the Rust one, and a chain of 1,000 `add` steps in
//! Python, in Rust, and on Celery's own worker (the peer of
//! `../shared/peers/celery`, through `support/celery_chain.py`), in one run.
//!
//! Run with `cargo bench -p wfhost --bench python` (componentize-py for the
//! Python component; Celery 5.7 and redis-server for Celery's row, which is
//! left out, saying so, without them). Figures are printed, never asserted.

/// What the `wfhost` binary allocates with, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{invocation, load};
use serde_json::{Value, json};
use support::median;
use wfhost::runtime::{AttemptResult, ComponentCache, Limits, Plugin, Runtime};

const ROUNDS: usize = 5;
const ATTEMPTS_PER_ROUND: usize = 200;
const CHAIN_STEPS: usize = 1_000;
const CHAIN_ROUNDS: usize = 3;

/// The median attempt of `plugin.add(2, 2)` over one round.
async fn attempt(runtime: &Runtime, plugin: &Plugin, name: &str) -> Duration {
    let limits = Limits::default();
    let args = json!([2, 2]);
    let mut samples = Vec::with_capacity(ATTEMPTS_PER_ROUND);
    for step in 0..ATTEMPTS_PER_ROUND {
        let call = invocation(name, "add", step, &args);
        let started = Instant::now();
        let attempt = runtime.run(plugin, &call, &limits).await;
        samples.push(started.elapsed());
        assert_eq!(attempt.result, AttemptResult::Value(json!(4)));
    }
    median(samples)
}

async fn attempt_cost(python: &Path) {
    let runtime = Runtime::new()
        .unwrap()
        .with_component_cache(ComponentCache::new(
            common::host_target_dir().join("component-cache"),
        ));
    let started = Instant::now();
    let api = runtime
        .load_plugin("celery_api", python, None)
        .await
        .unwrap();
    let loaded = started.elapsed();
    let math = load(&runtime, "math").await;
    attempt(&runtime, &api, "celery_api").await;
    attempt(&runtime, &math, "math").await;
    let (mut py, mut rust) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        py.push(attempt(&runtime, &api, "celery_api").await);
        rust.push(attempt(&runtime, &math, "math").await);
    }
    let (py, rust) = (median(py), median(rust));
    println!(
        "one `add` attempt, median of {ROUNDS} rounds of {ATTEMPTS_PER_ROUND} (a fresh instance each):"
    );
    println!(
        "  Python (celery_api.add):  {:>9.3} ms",
        py.as_secs_f64() * 1e3
    );
    println!(
        "  Rust (math.add):          {:>9.3} ms   Python / Rust: {:.0}x",
        rust.as_secs_f64() * 1e3,
        py.as_secs_f64() / rust.as_secs_f64()
    );
    println!(
        "  loading the Python component (18 MB; compiled, or from the cache): {:.2} s",
        loaded.as_secs_f64()
    );
    println!();
}

/// A chain file of `CHAIN_STEPS` steps of `task`, counting to the length.
fn counting_chain(dir: &Path, name: &str, plugins: Value, task: &str) -> std::path::PathBuf {
    let mut workflow = vec![json!({"task": task, "args": [0, 1]})];
    workflow.extend(std::iter::repeat_n(
        json!({"task": task, "args": [1]}),
        CHAIN_STEPS - 1,
    ));
    let path = dir.join(format!("{name}.json"));
    let document = json!({"plugins": plugins, "workflow": workflow});
    std::fs::write(&path, document.to_string()).unwrap();
    path
}

/// The median wall time of `wfhost run` on `chain`, a fresh database each round.
fn wfhost_chain(dir: &Path, chain: &Path) -> Duration {
    let mut samples = Vec::new();
    for round in 0..=CHAIN_ROUNDS {
        let db = dir.join(format!(
            "{}-{round}.redb",
            chain.file_stem().unwrap().to_string_lossy()
        ));
        let started = Instant::now();
        let output = common::wfhost()
            .arg("run")
            .arg("--db")
            .arg(&db)
            .arg(chain)
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            CHAIN_STEPS.to_string()
        );
        // The first round compiles or loads the component and is left out.
        if round > 0 {
            samples.push(took);
        }
    }
    median(samples)
}

fn chains(python: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let py_chain = counting_chain(
        dir.path(),
        "python",
        json!({"celery_api": python}),
        "celery_api.add",
    );
    let rust_chain = counting_chain(
        dir.path(),
        "rust",
        json!({"math": common::plugin("math")}),
        "math.add",
    );
    let py = wfhost_chain(dir.path(), &py_chain);
    let rust = wfhost_chain(dir.path(), &rust_chain);
    let celery = support::celery("chain", CHAIN_STEPS, CHAIN_ROUNDS);
    println!("a chain of {CHAIN_STEPS} `add` steps, end to end, median of {CHAIN_ROUNDS} rounds:");
    let row = |name: &str, took: Duration| {
        let vs_celery = match &celery {
            Ok(celery) => format!(
                "   Celery / this: {:.1}x",
                celery.as_secs_f64() / took.as_secs_f64()
            ),
            Err(_) => String::new(),
        };
        println!(
            "  {name:<44} {:>9.1} ms {:>8.3} ms/step{vs_celery}",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3 / CHAIN_STEPS as f64
        );
    };
    row("wfhost run, Python tasks (celery_api.add)", py);
    row("wfhost run, Rust tasks (math.add)", rust);
    match &celery {
        Ok(celery) => row("Celery 5.7, prefork worker of 2, Redis", *celery),
        Err(why) => println!("  Celery: not measured ({why})"),
    }
}

fn main() {
    let Some(python) = common::sdk_component("tests/fixtures/python/celery_api.py") else {
        println!("no componentize-py: nothing to measure");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(attempt_cost(&python));
    chains(&python);
}
