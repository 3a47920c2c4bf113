//! What the sandbox costs: fuel of a small task, time per step with limits
//! on and off, the price of compiled-in metering on CPU-bound code, and
//! memory after thousands of failing steps.
//!
//! Run with `cargo bench -p wfhost --bench sandbox`. Figures are printed,
//! never asserted: this machine is shared and noisy.

/// What the `wfhost` binary allocates with, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{invocation, load, rss_kib};
use serde_json::json;
use wfhost::runtime::{Limits, Metering, Plugin, Runtime};

const STEPS: usize = 2000;

fn no_limits() -> Limits {
    Limits {
        fuel: None,
        memory_bytes: None,
        time_limit: None,
        ..Limits::default()
    }
}

struct Stats {
    median: Duration,
    p90: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let total: Duration = samples.iter().sum();
    Stats {
        median: samples[samples.len() / 2],
        p90: samples[samples.len() * 9 / 10],
        mean: total / samples.len() as u32,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `count` attempts of `task(args)`, one fresh store each.
async fn time_steps(
    runtime: &Runtime,
    plugin: &Plugin,
    task: &str,
    args: &serde_json::Value,
    limits: &Limits,
    count: usize,
) -> Stats {
    let mut samples = Vec::with_capacity(count);
    for step in 0..count {
        let invocation = invocation(plugin.name(), task, step, args);
        let started = Instant::now();
        let attempt = runtime.run(plugin, &invocation, limits).await;
        samples.push(started.elapsed());
        assert!(
            matches!(attempt.result, wfhost::runtime::AttemptResult::Value(_)),
            "{task}: {:?}",
            attempt.result
        );
    }
    stats(samples)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let metered = Runtime::new().unwrap();
    let unmetered = Runtime::with_metering(Metering::Off).unwrap();
    let math = load(&metered, "math").await;
    let math_unmetered = load(&unmetered, "math").await;
    let testkit = load(&metered, "testkit").await;
    let testkit_unmetered = load(&unmetered, "testkit").await;
    let limits_on = Limits {
        fuel: Some(100_000_000),
        memory_bytes: Some(64 << 20),
        time_limit: Some(Duration::from_secs(10)),
        ..Limits::default()
    };
    let add_args = json!([2, 2]);

    let fuel = metered
        .run(&math, &invocation("math", "add", 0, &add_args), &limits_on)
        .await
        .fuel_used;
    println!("fuel of one math.add(2, 2) attempt, instantiation included: {fuel} units");
    println!();

    // Warm up caches and allocator pools, then interleave the configurations
    // so that drift on a shared machine hits them alike.
    time_steps(&metered, &math, "add", &add_args, &limits_on, 200).await;
    time_steps(
        &unmetered,
        &math_unmetered,
        "add",
        &add_args,
        &no_limits(),
        200,
    )
    .await;
    let rounds = 5;
    let mut on = Vec::new();
    let mut off = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..rounds {
        on.push(
            time_steps(
                &metered,
                &math,
                "add",
                &add_args,
                &limits_on,
                STEPS / rounds,
            )
            .await,
        );
        off.push(
            time_steps(
                &metered,
                &math,
                "add",
                &add_args,
                &no_limits(),
                STEPS / rounds,
            )
            .await,
        );
        bare.push(
            time_steps(
                &unmetered,
                &math_unmetered,
                "add",
                &add_args,
                &no_limits(),
                STEPS / rounds,
            )
            .await,
        );
    }
    let summarize = |runs: &[Stats]| {
        let median = runs.iter().map(|s| s.median).sum::<Duration>() / runs.len() as u32;
        let p90 = runs.iter().map(|s| s.p90).sum::<Duration>() / runs.len() as u32;
        let mean = runs.iter().map(|s| s.mean).sum::<Duration>() / runs.len() as u32;
        (median, p90, mean)
    };
    let (on_med, on_p90, on_mean) = summarize(&on);
    let (off_med, off_p90, off_mean) = summarize(&off);
    let (bare_med, bare_p90, bare_mean) = summarize(&bare);
    println!("one math.add step (fresh store, instantiate, call, classify), {STEPS} steps each:");
    println!(
        "  {:<44} {:>9} {:>9} {:>9}",
        "", "median µs", "p90 µs", "mean µs"
    );
    for (name, med, p90, mean) in [
        ("limits on (fuel, 64 MiB, 10 s)", on_med, on_p90, on_mean),
        (
            "limits off, metering compiled in",
            off_med,
            off_p90,
            off_mean,
        ),
        (
            "metering compiled out (not a safe mode)",
            bare_med,
            bare_p90,
            bare_mean,
        ),
    ] {
        println!(
            "  {name:<44} {:>9.1} {:>9.1} {:>9.1}",
            micros(med),
            micros(p90),
            micros(mean)
        );
    }
    println!(
        "  limits on / metering compiled out: {:.2}x (median)",
        on_med.as_secs_f64() / bare_med.as_secs_f64()
    );
    println!();

    let burn = json!([20_000_000]);
    let burn_on = time_steps(&metered, &testkit, "burn", &burn, &no_limits(), 10).await;
    let burn_off = time_steps(
        &unmetered,
        &testkit_unmetered,
        "burn",
        &burn,
        &no_limits(),
        10,
    )
    .await;
    println!("CPU-bound step, testkit.burn(2e7), 10 runs each:");
    println!(
        "  metered:   median {:.1} ms",
        micros(burn_on.median) / 1000.0
    );
    println!(
        "  unmetered: median {:.1} ms",
        micros(burn_off.median) / 1000.0
    );
    println!(
        "  cost of fuel and epoch checks: {:.2}x",
        burn_on.median.as_secs_f64() / burn_off.median.as_secs_f64()
    );
    println!();

    let hostile_limits = Limits {
        fuel: Some(5_000_000),
        memory_bytes: Some(16 << 20),
        time_limit: Some(Duration::from_millis(100)),
        ..Limits::default()
    };
    let before = rss_kib();
    let hostile = [
        ("spin", json!([])),
        ("hog", json!([64])),
        ("recurse", json!([10_000_000])),
        ("panic", json!(["x"])),
    ];
    let started = Instant::now();
    for step in 0..STEPS {
        let (task, args) = &hostile[step % hostile.len()];
        let attempt = metered
            .run(
                &testkit,
                &invocation("testkit", task, step, args),
                &hostile_limits,
            )
            .await;
        assert!(matches!(
            attempt.result,
            wfhost::runtime::AttemptResult::Failed(_)
        ));
    }
    println!(
        "{STEPS} failing hostile steps (spin, hog, recurse, panic) in {:.2} s: RSS {before} KiB before, {} KiB after",
        started.elapsed().as_secs_f64(),
        rss_kib()
    );
}
