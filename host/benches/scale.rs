//! Throughput and scale, side by side with the floors of this machine and
//! Celery on its own worker, measured in the same run (with Celery 5.7 and
//! redis-server installed; else its column says so): chains of 1,000 and 5,000
//! steps, 100 ten-step chains at once, a 1,000-member chord, the peak RSS of
//! a 100,000-step chain against a 1,000-step one, cold and cached plugin
//! loads, a whole `wfhost run` process, and what the records' checksums
//! cost a step.
//!
//! Every workflow runs durably, against a redb file in a temporary
//! directory on the same disk as the fsync floor.
//!
//! Run with `cargo bench -p wfhost --bench scale`. Figures are printed,
//! never asserted: this machine is shared and noisy.

/// What the `wfhost` binary allocates with, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{chain_file, plugin, proc_status_kib, standard_plugins};
use serde_json::{Value, json};
use support::{median, ready, run_to_end};
use wfhost::executor::{FairScheduler, cores};
use wfhost::records::WorkflowStatus;
use wfhost::runtime::{ComponentCache, Runtime};
use wfhost::store::{Durability, Store};
use wfhost::{Begun, Host, Intent, Ready, RunIdentity, RunOptions, spec};

/// Set in a child process of this benchmark: the length of the chain whose
/// peak RSS it reports.
const RSS_CHILD: &str = "WFHOST_BENCH_RSS_CHAIN";
/// The component cache the child loads its plugins from.
const RSS_CACHE: &str = "WFHOST_BENCH_RSS_CACHE";

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Ok(length) = std::env::var(RSS_CHILD) {
        let length = length.parse().expect("a chain length");
        let cache = std::env::var_os(RSS_CACHE).expect("a cache directory");
        let elapsed = tokio.block_on(rss_child(length, Path::new(&cache)));
        println!("{} {}", elapsed.as_secs_f64(), proc_status_kib("VmHWM"));
        return;
    }
    // `cargo bench --bench scale -- NAME` runs the sections whose name
    // contains NAME; cargo's own flags start with `--`.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .unwrap_or_default();
    tokio.block_on(bench(&filter));
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// `math.add(0, 1) | math.add(1) | …`: `length` steps whose result is `length`.
fn add_chain(length: usize) -> Value {
    let mut steps = vec![json!({"task": "math.add", "args": [0, 1]})];
    steps.extend((1..length).map(|_| json!({"task": "math.add", "args": [1]})));
    Value::Array(steps)
}

fn document(workflow: Value) -> Value {
    json!({"plugins": standard_plugins(), "workflow": workflow})
}

/// `document` as workflow `id` of tenant `bench`, ready to run on `host`.
async fn ready_bench(host: &Host, document: &Value, id: &str) -> Box<Ready> {
    ready(host, document, RunIdentity::new("bench", id)).await
}

/// Prepares `document` as workflow `id` on `host` and runs it to its end,
/// checking that its result is `expected`; returns the run's time alone.
async fn time_new_run(host: &Host, document: &Value, id: &str, expected: &Value) -> Duration {
    let ready = ready_bench(host, document, id).await;
    let started = Instant::now();
    run(host, ready, expected).await;
    started.elapsed()
}

/// Runs `ready` to its end and checks its result.
async fn run(host: &Host, ready: Box<Ready>, expected: &Value) {
    let row = run_to_end(host, ready, &RunOptions::new()).await;
    assert_eq!(row.status, WorkflowStatus::Succeeded, "{:?}", row.error);
    assert_eq!(row.result.as_ref(), Some(expected));
}

/// In a child process: reads, plans and runs a chain of `length` steps
/// durably, as `wfhost run` does with a chain file; returns the time of the
/// run alone. Plugins come from a warm cache, so the peak is the
/// workflow's, not the compiler's. Prints the peak RSS once the workflow
/// is prepared to stderr.
async fn rss_child(length: usize, cache: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new()
        .unwrap()
        .with_component_cache(ComponentCache::new(cache));
    let host = Host::new(runtime, file_store(dir.path(), Durability::default()));
    // Written piece by piece, so that neither a JSON tree nor the file's
    // text is in this process's peak: only what wfhost holds is.
    let file = dir.path().join("chain.json");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    write!(
        out,
        r#"{{"plugins": {{"math": {:?}}}, "workflow": [{{"task": "math.add", "args": [0, 1]}}"#,
        plugin("math")
    )
    .unwrap();
    for _ in 1..length {
        out.write_all(br#", {"task": "math.add", "args": [1]}"#)
            .unwrap();
    }
    out.write_all(b"]}").unwrap();
    out.into_inner().unwrap().sync_all().unwrap();
    let spec = spec::load(&file).unwrap();
    let identity = RunIdentity::new("bench", "rss");
    let Begun::Ready(ready) = host.begin(identity, Intent::Start(spec)).await.unwrap() else {
        panic!("a fresh database has no workflow `rss`");
    };
    eprintln!("{}", proc_status_kib("VmHWM"));
    let started = Instant::now();
    run(&host, ready, &json!(length)).await;
    started.elapsed()
}

/// Peak RSS (KiB) of a chain of `length` steps run in a process of its
/// own: once prepared, and at the end.
struct ChildRun {
    took: Duration,
    prepared_rss: u64,
    peak_rss: u64,
}

fn chain_in_child(length: usize, cache: &Path) -> ChildRun {
    let output = Command::new(std::env::current_exe().unwrap())
        .env(RSS_CHILD, length.to_string())
        .env(RSS_CACHE, cache)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut fields = text.split_whitespace();
    let seconds: f64 = fields.next().unwrap().parse().unwrap();
    let peak_rss = fields.next().unwrap().parse().unwrap();
    // The last line: cargo may have said something before it.
    let stderr = String::from_utf8(output.stderr).unwrap();
    let prepared_rss = stderr.lines().last().unwrap().trim().parse().unwrap();
    ChildRun {
        took: Duration::from_secs_f64(seconds),
        prepared_rss,
        peak_rss,
    }
}

/// Median time of writing 4 KiB and `fdatasync` in `dir`.
fn fsync_floor(dir: &Path) -> Duration {
    let mut file = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let page = [7u8; 4096];
    let samples = (0..200)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&page).unwrap();
            file.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    median(samples)
}

/// Median time of a redb commit of one small record, default durability.
fn redb_commit_floor(db: redb::Database) -> Duration {
    const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("probe");
    let record = [7u8; 300];
    let samples = (0..200u64)
        .map(|key| {
            let started = Instant::now();
            let txn = db.begin_write().unwrap();
            txn.open_table(TABLE)
                .unwrap()
                .insert(key, record.as_slice())
                .unwrap();
            txn.commit().unwrap();
            started.elapsed()
        })
        .collect();
    median(samples)
}

/// The same chain as native Rust calls: the floor of any host.
fn native_floor(length: usize) -> Duration {
    let started = Instant::now();
    let mut value: i64 = 0;
    for _ in 0..length {
        value = black_box(value).checked_add(black_box(1)).unwrap();
    }
    assert_eq!(value, length as i64);
    started.elapsed() / length as u32
}

/// Plugin loads: compiled, loaded compiled from the cache by a runtime of
/// its own (what each `wfhost run` process pays), and loaded again by a
/// runtime that has it already (what each workflow of `wfhost serve` pays).
struct PluginLoads {
    cold: Duration,
    cached: Duration,
    again: Duration,
}

async fn plugin_loads(dir: &Path) -> PluginLoads {
    let new_runtime = || {
        Runtime::new()
            .unwrap()
            .with_component_cache(ComponentCache::new(dir.join("components")))
    };
    let load = |runtime: Runtime| async move {
        let started = Instant::now();
        runtime
            .load_plugin("math", &plugin("math"), None)
            .await
            .unwrap();
        started.elapsed()
    };
    let cold = load(new_runtime()).await;
    let mut cached = Vec::new();
    for _ in 0..20 {
        cached.push(load(new_runtime()).await);
    }
    let runtime = new_runtime();
    load(runtime.clone()).await;
    let mut again = Vec::new();
    for _ in 0..20 {
        again.push(load(runtime.clone()).await);
    }
    PluginLoads {
        cold,
        cached: median(cached),
        again: median(again),
    }
}

/// Median wall time of `wfhost run` of a one-step chain, as a whole process,
/// with its plugins already in the component cache.
fn whole_process(dir: &Path) -> Duration {
    // A one-step chain names the one plugin it uses.
    let chain = chain_file(&json!({
        "plugins": {"math": plugin("math")},
        "workflow": add_chain(1),
    }));
    let cache = dir.join("process-components");
    let run = || {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_wfhost"))
            .env("WFHOST_DB", dir.join("process.redb"))
            .env("WFHOST_CACHE_DIR", &cache)
            .arg("run")
            .arg(&chain.path)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        assert!(output.status.success(), "{output:?}");
        elapsed
    };
    run();
    median((0..20).map(|_| run()).collect())
}

/// Celery's own times for the scenarios' canvases, measured in this run
/// (`support::celery`: its worker on a private Redis), or why not.
struct CeleryTimes {
    /// A chain of 1,000 steps.
    chain: Result<Duration, String>,
    /// 100 ten-step chains at once.
    chains: Result<Duration, String>,
    /// A 1,000-member chord and its body.
    chord: Result<Duration, String>,
    /// DBOS Transact as shipped on the same 1,000-step chain.
    dbos_chain: Result<Duration, String>,
}

impl CeleryTimes {
    fn measure() -> Self {
        println!(
            "Celery 5.7 on its own worker (prefork, 2 processes, Redis), median of 3, this run:"
        );
        let times = CeleryTimes {
            chain: support::celery("chain", 1_000, 3),
            chains: support::celery("chains", 1_000, 3),
            chord: support::celery("chord", 1_001, 3),
            dbos_chain: support::dbos_chain(3),
        };
        for (name, time) in [
            ("1000-step chain", &times.chain),
            ("100 ten-step chains", &times.chains),
            ("1,000-member chord", &times.chord),
            ("1000-step chain, DBOS 3.4 as shipped", &times.dbos_chain),
        ] {
            match time {
                Ok(time) => println!("  {name:<38} {:>9.1} ms", ms(*time)),
                Err(why) => println!("  {name:<38} not measured: {why}"),
            }
        }
        times
    }
}

/// Prints one scenario: its time, per step, and the ratio to Celery's
/// time for the same steps (scaled by steps from `celery`, measured on
/// `celery_steps` steps).
fn scenario(
    name: &str,
    steps: usize,
    took: Duration,
    celery: &Result<Duration, String>,
    celery_steps: usize,
    target: Duration,
) {
    let versus = match celery {
        Ok(celery) => {
            let scaled = celery.as_secs_f64() * steps as f64 / celery_steps as f64;
            format!(
                "Celery {scaled:>7.2} s: {:>6.0}x",
                scaled / took.as_secs_f64()
            )
        }
        Err(_) => "Celery not measured".to_string(),
    };
    println!(
        "  {name:<38} {:>9.1} ms {:>8.1} µs/step {:>9.0} steps/s   {versus}   target ≤ {:.0} ms: {}",
        ms(took),
        us(took) / steps as f64,
        steps as f64 / took.as_secs_f64(),
        ms(target),
        if took <= target { "met" } else { "MISSED" },
    );
}

async fn bench(filter: &str) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new()
        .unwrap()
        .with_component_cache(ComponentCache::new(dir.path().join("components")));
    let wanted = |section: &str| section.contains(filter);
    println!("instance allocation: {:?}", runtime.allocation());
    if wanted("floors") {
        floors(dir.path());
    }
    if wanted("load") {
        loads(dir.path()).await;
    }
    let celery = (wanted("chains") || wanted("concurrent")).then(CeleryTimes::measure);
    if let Some(celery) = celery.as_ref().filter(|_| wanted("chains")) {
        chains(&runtime, dir.path(), celery).await;
    }
    if wanted("executor") {
        executor(&runtime).await;
    }
    if let Some(celery) = celery.as_ref().filter(|_| wanted("concurrent")) {
        concurrent(&runtime, dir.path(), celery).await;
    }
    if wanted("flat") {
        flat(dir.path());
    }
    if wanted("chord") {
        chord_rounds(&runtime, dir.path()).await;
    }
    if wanted("checksums") {
        checksums(runtime.clone(), dir.path()).await;
    }
    if wanted("fair") {
        fair(&runtime).await;
    }
}

/// Runs `ready` with `options` on a task of its own, as `wfhost serve`
/// does; returns how long it took.
async fn timed_run(host: &Arc<Host>, ready: Box<Ready>, options: &RunOptions) -> Duration {
    let (host, options) = (Arc::clone(host), options.clone());
    tokio::spawn(async move {
        let started = Instant::now();
        run_to_end(&host, ready, &options).await;
        started.elapsed()
    })
    .await
    .unwrap()
}

/// Tenant b's short chain alone, and while tenant a floods the machine,
/// with attempts taking turns at one slot per core as `wfhost serve` runs
/// them.
async fn fair(runtime: &Runtime) {
    const FLOOD: usize = 1000;
    println!("fair shares (tenant b's two-step chain, one slot per core shared by turns):");
    let scheduler = FairScheduler::new(cores());
    let pool = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()
        .unwrap();
    let options = RunOptions::new()
        .concurrency(FLOOD)
        .fair_share(Arc::clone(&scheduler))
        .attempt_pool(pool.handle().clone());
    let host = Arc::new(Host::new(runtime.clone(), Store::in_memory().unwrap()));
    let quick = document(add_chain(2));
    let quick_run = |id: String| {
        let (host, quick, options) = (&host, &quick, &options);
        async move {
            let ready = ready(host, quick, RunIdentity::new("b", id)).await;
            timed_run(host, ready, options).await
        }
    };
    let alone: Vec<Duration> = {
        let mut samples = Vec::new();
        for i in 0..20 {
            samples.push(quick_run(format!("alone-{i}")).await);
        }
        samples
    };
    let spins: Vec<Value> = (0..FLOOD)
        .map(|_| json!({"task": "testkit.spin"}))
        .collect();
    let flood_doc = json!({
        "plugins": standard_plugins(),
        "defaults": {"fuel": 50_000_000},
        "workflow": [{"group": spins}],
    });
    let flood = ready(&host, &flood_doc, RunIdentity::new("a", "flood")).await;
    let flooding = timed_run(&host, flood, &options);
    let quick_runs = async {
        // Measure only once the flood is under way: some of its attempts
        // have finished.
        while host.store().steps("a", "flood").unwrap().len() < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut samples = Vec::new();
        for i in 0..20 {
            samples.push(quick_run(format!("flooded-{i}")).await);
        }
        samples
    };
    let (flood_took, under_flood) = tokio::join!(flooding, quick_runs);
    pool.shutdown_background();
    let (alone, under_flood) = (median(alone), median(under_flood));
    println!(
        "  alone:                                {:>8.2} ms (median of 20)",
        ms(alone)
    );
    println!(
        "  while a runs {FLOOD} spinning attempts: {:>8.2} ms (median of 20; {:.1}x), a's flood took {:.0} ms",
        ms(under_flood),
        under_flood.as_secs_f64() / alone.as_secs_f64(),
        ms(flood_took)
    );
}

fn floors(dir: &Path) {
    println!("floors of this machine:");
    println!(
        "  native Rust add, per call:           {:>8.3} µs",
        us(native_floor(1_000_000))
    );
    println!(
        "  write 4 KiB + fdatasync:             {:>8.1} µs",
        us(fsync_floor(dir))
    );
    println!(
        "  redb commit of one record:           {:>8.1} µs",
        us(redb_commit_floor(
            redb::Database::create(dir.join("commit-probe.redb")).unwrap()
        ))
    );
    let mut shared = redb::Database::builder();
    shared.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
    println!(
        "  the same, multi-writer (as wfhost):  {:>8.1} µs",
        us(redb_commit_floor(
            shared.create(dir.join("shared-probe.redb")).unwrap()
        ))
    );
    let in_memory = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .unwrap();
    println!(
        "  the same, in memory (no disk):       {:>8.1} µs",
        us(redb_commit_floor(in_memory))
    );
}

async fn loads(dir: &Path) {
    let starts: Vec<Duration> = (0..10)
        .map(|_| {
            let started = Instant::now();
            drop(Runtime::new().unwrap());
            started.elapsed()
        })
        .collect();
    println!(
        "runtime start (engine, instance pool, linker), median of 10: {:.2} ms",
        ms(median(starts))
    );
    let loads = plugin_loads(dir).await;
    println!("plugin load (math, tasks listed):");
    println!(
        "  cold (compile):                      {:>8.2} ms",
        ms(loads.cold)
    );
    println!(
        "  cached (median of 20):               {:>8.2} ms   target ≤ 2 ms",
        ms(loads.cached)
    );
    println!(
        "  again, same runtime (median of 20):  {:>8.2} ms",
        ms(loads.again)
    );
    println!(
        "whole `wfhost run` process, one step, median of 20: {:.2} ms   target ≤ 5 ms",
        ms(whole_process(dir))
    );
}

/// The durability settings every scenario runs under, side by side.
const DURABILITIES: [(&str, Durability); 3] = [
    ("grouped", Durability::Grouped),
    ("strict", Durability::Strict),
    (
        "batched:50",
        Durability::Batched {
            window: Duration::from_millis(50),
        },
    ),
];

/// A fresh store in `dir`, committing with `durability`.
fn file_store(dir: &Path, durability: Durability) -> Store {
    Store::open_with(&dir.join("state.redb"), durability).unwrap()
}

/// The executor and sandbox per step, without a disk: 1,000-step chains on
/// an in-memory store, 20 of them (the section to profile), beside the
/// floor: 1,000 attempts of the same step alone, each a fresh store, a
/// pooled instance and one call, with the same limits.
async fn executor(runtime: &Runtime) {
    let host = Host::new(runtime.clone(), Store::in_memory().unwrap());
    let chain = document(add_chain(1_000));
    let math = common::load(runtime, "math").await;
    let limits = wfhost::runtime::Limits::default();
    let (mut chains, mut floors) = (Vec::new(), Vec::new());
    for round in 0..20 {
        let id = format!("chain-{round}");
        chains.push(time_new_run(&host, &chain, &id, &json!(1_000)).await);
        let started = Instant::now();
        for step in 0..1_000 {
            let call = common::invocation("math", "add", step, &json!([step, 1]));
            black_box(runtime.run(&math, &call, &limits).await);
        }
        floors.push(started.elapsed());
    }
    let (chain, floor) = (median(chains), median(floors));
    println!("executor, median of 20 rounds, chain and floor interleaved:");
    println!(
        "  1000-step chain, in-memory store:   {:>6.1} ms, {:>5.1} µs/step",
        ms(chain),
        us(chain) / 1e3
    );
    println!(
        "  1000 attempts alone (the floor):    {:>6.1} ms, {:>5.1} µs/step",
        ms(floor),
        us(floor) / 1e3
    );
    println!(
        "  the executor's share: {:.1} µs/step; chain / floor {:.2}x",
        (us(chain) - us(floor)) / 1e3,
        chain.as_secs_f64() / floor.as_secs_f64()
    );
}

/// Rounds of each scenario of `chains` and `concurrent`, of which the
/// median is shown: a single run on this machine is off by a third at times.
const ROUNDS: usize = 5;

/// The median time of [`ROUNDS`] runs of `document` on `host`, each a new
/// workflow, with `expected` as their result.
async fn median_run(host: &Host, document: &Value, expected: &Value) -> Duration {
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let id = format!("round-{round}");
        times.push(time_new_run(host, document, &id, expected).await);
    }
    median(times)
}

async fn chains(runtime: &Runtime, dir: &Path, celery: &CeleryTimes) {
    println!(
        "chains (a redb file with the durability named; default concurrency; median of {ROUNDS}):"
    );
    let host = Host::new(runtime.clone(), Store::in_memory().unwrap());
    let took = median_run(&host, &document(add_chain(1_000)), &json!(1_000)).await;
    println!(
        "  1000-step chain, in-memory store {:>19.1} ms {:>8.1} µs/step (the executor and sandbox alone)",
        ms(took),
        us(took) / 1e3
    );
    for length in [1_000, 5_000] {
        let chain = document(add_chain(length));
        // Celery's 5,000-step chain is its 1,000-step one's rate scaled:
        // its worker takes minutes on the longer one.
        let target = if length == 1_000 {
            Duration::from_millis(200)
        } else {
            Duration::from_secs_f64(length as f64 / 4.0 / 100.0)
        };
        for (name, durability) in DURABILITIES {
            let store = file_store(&dir.join(format!("chain-{length}-{name}")), durability);
            let host = Host::new(runtime.clone(), store);
            let took = median_run(&host, &chain, &json!(length)).await;
            scenario(
                &format!("{length}-step chain, {name}"),
                length,
                took,
                &celery.chain,
                1_000,
                target,
            );
            if let (1_000, Ok(dbos)) = (length, &celery.dbos_chain) {
                println!(
                    "  {:<38} DBOS as shipped {:>7.2} s: {:>6.0}x",
                    "",
                    dbos.as_secs_f64(),
                    dbos.as_secs_f64() / took.as_secs_f64()
                );
            }
        }
    }
}

/// What the records' checksums add per step (issue 15): every record is
/// sealed with a CRC-32 when written and checked when read. In one run:
/// 1,000-step durable chains in the default mode and `status`'s read of
/// one, beside the time to checksum the bytes of that workflow's records
/// once on the way in and once on the way out, per step: the work the
/// checksums added to both.
async fn checksums(runtime: Runtime, dir: &Path) {
    let store = file_store(&dir.join("checksums"), Durability::default());
    let host = Host::new(runtime, store);
    let chain = document(add_chain(1_000));
    let (mut runs, mut reads, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..10 {
        let id = format!("sums-{round}");
        runs.push(time_new_run(&host, &chain, &id, &json!(1_000)).await);
        let started = Instant::now();
        let report = host.store().report("bench", &id).unwrap().unwrap();
        let events = host.store().events("bench", &id).unwrap();
        reads.push(started.elapsed());
        // The records as stored: each step, each event, the row.
        let records: Vec<Vec<u8>> = report
            .steps
            .iter()
            .map(|step| serde_json::to_vec(step).unwrap())
            .chain(
                events
                    .iter()
                    .map(|event| serde_json::to_vec(event).unwrap()),
            )
            .chain([serde_json::to_vec(&report.row).unwrap()])
            .collect();
        let started = Instant::now();
        for _ in 0..2 {
            for record in &records {
                black_box(crc32fast::hash(black_box(record)));
            }
        }
        sums.push(started.elapsed());
    }
    let bytes = {
        let report = host.store().report("bench", "sums-0").unwrap().unwrap();
        let steps: usize = report
            .steps
            .iter()
            .map(|s| serde_json::to_vec(s).unwrap().len())
            .sum();
        steps / report.steps.len()
    };
    let (run, read, sum) = (median(runs), median(reads), median(sums));
    println!("checksums of records, median of 10 rounds:");
    println!(
        "  1000-step chain, default mode:      {:>6.1} ms, {:>5.1} µs/step",
        ms(run),
        us(run) / 1e3
    );
    println!(
        "  its report and events read back:    {:>6.1} ms, {:>5.1} µs/step",
        ms(read),
        us(read) / 1e3
    );
    println!(
        "  CRC-32 of its records in and out:   {:>6.3} ms, {:>5.2} µs/step \
         ({:.2}% of a step; a step record is ~{bytes} bytes)",
        ms(sum),
        us(sum) / 1e3,
        100.0 * sum.as_secs_f64() / run.as_secs_f64()
    );
}

async fn concurrent(runtime: &Runtime, dir: &Path, celery: &CeleryTimes) {
    println!(
        "concurrent steps (a redb file with the durability named; default concurrency; median of {ROUNDS}):"
    );
    // Each workflow on a task of its own, as a service would run them.
    let ten = document(add_chain(10));
    for (name, durability) in DURABILITIES {
        let store = file_store(&dir.join(format!("hundred-{name}")), durability);
        let host = Arc::new(Host::new(runtime.clone(), store));
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let mut readies = Vec::new();
            for i in 0..100 {
                readies.push(ready_bench(&host, &ten, &format!("chain-{round}-{i}")).await);
            }
            let started = Instant::now();
            let runs = readies.into_iter().map(|ready| {
                let host = Arc::clone(&host);
                tokio::spawn(async move { run(&host, ready, &json!(10)).await })
            });
            for finished in futures::future::join_all(runs).await {
                finished.unwrap();
            }
            times.push(started.elapsed());
        }
        scenario(
            &format!("100 ten-step chains, {name}"),
            1_000,
            median(times),
            &celery.chains,
            1_000,
            Duration::from_millis(50),
        );
    }

    let chord = document(thousand_member_chord());
    for (name, durability) in DURABILITIES {
        let store = file_store(&dir.join(format!("chord-{name}")), durability);
        let host = Host::new(runtime.clone(), store);
        let took = median_run(&host, &chord, &json!(500_500)).await;
        scenario(
            &format!("1,000-member chord, {name}"),
            1_001,
            took,
            &celery.chord,
            1_001,
            Duration::from_millis(100),
        );
    }
}

/// The 1,000-member chord of `concurrent`, 10 rounds each on an in-memory
/// store and on a redb file in the default mode, interleaved: where a
/// chord's time goes, without Celery's minutes around it.
async fn chord_rounds(runtime: &Runtime, dir: &Path) {
    let chord = document(thousand_member_chord());
    let memory = Host::new(runtime.clone(), Store::in_memory().unwrap());
    let file = Host::new(
        runtime.clone(),
        file_store(&dir.join("chord-rounds"), Durability::default()),
    );
    let (mut in_memory, mut on_file) = (Vec::new(), Vec::new());
    for round in 0..10 {
        for (host, times) in [(&memory, &mut in_memory), (&file, &mut on_file)] {
            let id = format!("chord-{round}");
            times.push(time_new_run(host, &chord, &id, &json!(500_500)).await);
        }
    }
    println!("1,000-member chord, median of 10 rounds, interleaved:");
    for (name, times) in [
        ("in-memory store", in_memory),
        ("redb file, default mode", on_file),
    ] {
        let took = median(times);
        println!(
            "  {name:<24} {:>6.1} ms, {:>5.1} µs/step",
            ms(took),
            us(took) / 1001.0
        );
    }
}

/// A chord of 1,000 `math.add` members whose body sums their results.
fn thousand_member_chord() -> Value {
    let header: Vec<Value> = (0..1000)
        .map(|i| json!({"task": "math.add", "args": [i, 1]}))
        .collect();
    json!({"chord": {"header": header, "body": {"task": "math.xsum"}}})
}

fn flat(dir: &Path) {
    println!("flat: chains read from a file in a process of their own (run time; peak RSS):");
    let cache = dir.join("components");
    // Fills the cache, so neither measured run compiles.
    chain_in_child(1, &cache);
    let small = chain_in_child(1_000, &cache);
    let large = chain_in_child(100_000, &cache);
    for (steps, child) in [(1_000, &small), (100_000, &large)] {
        println!(
            "  {steps:>7} steps: {:>9.1} ms {:>7.1} µs/step   peak RSS {:>7} KiB once prepared, {:>7} KiB in all",
            ms(child.took),
            us(child.took) / steps as f64,
            child.prepared_rss,
            child.peak_rss
        );
    }
    println!(
        "  100,000 against 1,000 steps: peak RSS {:.2}x (target ≤ 1.5x); growth during the run alone {} KiB",
        large.peak_rss as f64 / small.peak_rss as f64,
        large.peak_rss.saturating_sub(large.prepared_rss)
    );
}
