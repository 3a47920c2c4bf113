//! What grants cost: one small step with no grants and with grants it does
//! not use (directories, config, secrets, HTTP origins), interleaved in one
//! run; and the media example's pipeline — download, decode, resize and
//! upload, all for real — in images per second at concurrency 1 and 2.
//!
//! Run with `cargo bench -p wfhost --bench grants` (python3 must be on the
//! PATH for the media service). Figures are printed, never asserted.

/// What the `wfhost` binary allocates with, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{LocalService, invocation, load, repo_root};
use serde_json::{Value, json};
use support::median;
use wfhost::grants::{
    Access, ClockGrant, DirGrant, DirsGrant, Grants, HttpGrant, Origin, SecretSource,
};
use wfhost::runtime::{AttemptResult, CancelToken, Limits, Plugin, Runtime};

const ROUNDS: usize = 5;
const STEPS_PER_ROUND: usize = 400;
const IMAGES: usize = 16;

async fn time_steps(runtime: &Runtime, math: &Plugin, access: &Arc<Access>) -> Duration {
    let limits = Limits::default();
    let args = json!([2, 2]);
    let mut samples = Vec::with_capacity(STEPS_PER_ROUND);
    for step in 0..STEPS_PER_ROUND {
        let call = invocation("math", "add", step, &args);
        let started = Instant::now();
        let attempt = runtime
            .run_with(math, &call, &limits, Arc::clone(access), CancelToken::new())
            .await;
        samples.push(started.elapsed());
        assert!(
            matches!(attempt.result, AttemptResult::Value(_)),
            "{:?}",
            attempt.result
        );
    }
    median(samples)
}

fn granted_everything(dir: &std::path::Path) -> Arc<Access> {
    // SAFETY: set before any other thread of this process reads the
    // environment (the runtime's threads only read their own stores).
    unsafe { std::env::set_var("WFHOST_BENCH_SECRET", "bench-secret-value") };
    let grants = Grants {
        http: HttpGrant {
            allow: vec![Origin::parse("http://127.0.0.1:9").unwrap()],
            ..HttpGrant::default()
        },
        dirs: DirsGrant {
            paths: BTreeMap::from([(
                "/data".to_string(),
                DirGrant {
                    path: dir.to_path_buf(),
                    write: true,
                },
            )]),
            max_bytes_written: None,
        },
        config: BTreeMap::from([("bucket".to_string(), "images".to_string())]),
        secrets: BTreeMap::from([(
            "key".to_string(),
            SecretSource::Env("WFHOST_BENCH_SECRET".into()),
        )]),
        clock: ClockGrant::default(),
    };
    grants.access("math").unwrap()
}

async fn step_cost() {
    let runtime = Runtime::new().unwrap();
    let math = load(&runtime, "math").await;
    let dir = tempfile::tempdir().unwrap();
    let none = Access::none();
    let everything = granted_everything(dir.path());
    // Warm up, then interleave so that drift hits both alike.
    time_steps(&runtime, &math, &none).await;
    time_steps(&runtime, &math, &everything).await;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        without.push(time_steps(&runtime, &math, &none).await);
        with.push(time_steps(&runtime, &math, &everything).await);
    }
    let (without, with) = (median(without), median(with));
    println!(
        "one math.add step, median of {ROUNDS} rounds of {STEPS_PER_ROUND} (fresh store each):"
    );
    println!(
        "  no grants:                              {:>8.1} µs",
        without.as_secs_f64() * 1e6
    );
    println!(
        "  a dir, config, a secret, an origin:     {:>8.1} µs ({:.2}x)",
        with.as_secs_f64() * 1e6,
        with.as_secs_f64() / without.as_secs_f64()
    );
    println!();
}

/// The media chain of `examples/media`, pointed at `service`.
fn media_chain(service: &LocalService, dir: &std::path::Path) -> std::path::PathBuf {
    let chain = common::example_chain("media", service.port);
    let path = dir.join("chain.json");
    std::fs::write(&path, chain.to_string()).unwrap();
    path
}

fn media_pipeline() {
    let service = LocalService::start(
        &repo_root().join("examples/media/images.py"),
        &["--images", &IMAGES.to_string()],
    );
    let dir = tempfile::tempdir().unwrap();
    let chain = media_chain(&service, dir.path());
    let run = |concurrency: usize, round: usize| {
        let started = Instant::now();
        let output = common::wfhost()
            .arg("run")
            .arg("--db")
            .arg(dir.path().join(format!("state-{concurrency}-{round}.redb")))
            .args(["--concurrency", &concurrency.to_string()])
            .arg(&chain)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let totals: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(totals["images"], IMAGES);
        elapsed
    };
    run(2, 0);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        one.push(run(1, round));
        two.push(run(2, round));
    }
    println!(
        "media pipeline (examples/media): {IMAGES} images of 60k–790k pixels, each downloaded, \
         decoded, resized to 128 px and uploaded as PNG; whole `wfhost run`, median of {ROUNDS}:"
    );
    for (concurrency, samples) in [(1, one), (2, two)] {
        let seconds = median(samples).as_secs_f64();
        println!(
            "  concurrency {concurrency}: {seconds:>6.3} s, {:>6.1} images/s",
            IMAGES as f64 / seconds
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(step_cost());
    media_pipeline();
}
