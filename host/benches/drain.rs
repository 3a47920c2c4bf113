//! How fast a worker drains a backlog, with the client taken out: Celery's
//! own client queues a scenario while no worker consumes it, the workers
//! start and warm up (one task each kind runs first), the backlog is handed
//! to them at once (a rename of its list, by the client that waits for the
//! results once it is up: its start would otherwise take a core from the
//! workers while they drain), and the figure is the span of
//! the results' own `date_done` stamps, first to last — which Celery's
//! worker and `wfhost worker` both write, in Celery's format. Beside it:
//! the workers' CPU (user + system, their pool processes included) and
//! `redis-server`'s, per task, over the drain (from `/proc/PID/stat`).
//!
//! Scenarios: 2,000 independent `tasks.add`, one 1,000-step chain, a
//! 1,000-member chord (`tasks.xsum` its body). Drained by Celery's prefork
//! worker (2 processes, as the Celery peer runs it) and by 1 and 2
//! `wfhost worker` processes; rounds interleaved; medians. Once on a Redis
//! that keeps nothing on disk (`appendonly no`, as the peer runs it), once
//! with every write fsynced (`appendfsync always`).
//!
//! Run with `cargo bench -p wfhost --bench drain`. Figures are printed,
//! never asserted. For experiments: `WFHOST_DRAIN_ONLY=chord,chain` runs
//! those scenarios, `WFHOST_DRAIN_VOLATILE=1` only the Redis that keeps
//! nothing on disk, `WFHOST_DRAIN_ROUNDS=N` that many rounds, and
//! `WFHOST_DRAIN_WORKER_ARGS="--prefetch-multiplier 4"` adds flags to
//! every `wfhost worker`. The client's polling for the last results (one
//! `EXISTS` every 5 ms) is in Redis's CPU.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::redis::RedisServer;

const ROUNDS: usize = 3;

/// The rounds, `WFHOST_DRAIN_ROUNDS` or [`ROUNDS`].
fn rounds() -> usize {
    std::env::var("WFHOST_DRAIN_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|n| (1..=100).contains(n))
        .unwrap_or(ROUNDS)
}

/// Whether `scenario` is among those `WFHOST_DRAIN_ONLY` names (all when
/// it is not set).
fn chosen(scenario: &str) -> bool {
    std::env::var("WFHOST_DRAIN_ONLY").map_or(true, |only| {
        only.split(',').any(|name| name.trim() == scenario)
    })
}

/// Flags added to every `wfhost worker`: `WFHOST_DRAIN_WORKER_ARGS`.
fn worker_args() -> Vec<String> {
    std::env::var("WFHOST_DRAIN_WORKER_ARGS")
        .map(|args| args.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// (name, label, results in the span).
const SCENARIOS: [(&str, &str, u32); 3] = [
    ("tasks", "2,000 tasks.add", 2000),
    ("chain", "chain of 1,000 add", 1000),
    ("chord", "chord of 1,000 add → xsum", 1001),
];

/// Who drains.
#[derive(Clone, Copy)]
enum Drainer {
    /// Celery's prefork worker, 2 processes.
    Celery,
    /// This many `wfhost worker` processes, 2 slots each.
    Wfhost(usize),
}

impl Drainer {
    fn label(self) -> String {
        match self {
            Drainer::Celery => "Celery 5.7 prefork ×2".into(),
            Drainer::Wfhost(n) => format!("wfhost worker ×{n}"),
        }
    }
}

/// One drain: its span, and CPU per task of the workers and of Redis.
struct Figure {
    span: Duration,
    worker_cpu: Duration,
    redis_cpu: Duration,
}

/// The clock ticks a second of `/proc/PID/stat` counts in.
fn ticks_per_second() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output();
    output
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU ticks of `pid` and, recursively, of its children.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let own: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|field| field.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let children = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .map(cpu_ticks)
        .sum::<u64>();
    own + children
}

fn python(args: &[&str]) -> Result<String, String> {
    let output = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/celery_drain.py"))
        .args(args)
        .output()
        .map_err(|err| err.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn start(drainer: Drainer, redis: &RedisServer, plugins: &Path, cache: &Path) -> Vec<Child> {
    match drainer {
        Drainer::Celery => vec![
            Command::new("python3")
                .args(["-m", "celery", "-A", "tasks", "worker", "--concurrency=2"])
                .args(["--pool=prefork", "-l", "warning", "--without-mingle"])
                .args(["--without-gossip", "--without-heartbeat"])
                .current_dir(common::repo_root().join("../shared/peers/celery"))
                .env("CELERY_BENCH_REDIS_PORT", redis.port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting Celery's worker"),
        ],
        Drainer::Wfhost(processes) => (0..processes)
            .map(|index| {
                Command::new(env!("CARGO_BIN_EXE_wfhost"))
                    .args(["-q", "worker", "--broker", &redis.url(), "-Q", "celery"])
                    .arg("--plugins")
                    .arg(plugins)
                    .args(["-c", "2", "-n", &format!("drain{index}")])
                    .args(worker_args())
                    .env("WFHOST_CACHE_DIR", cache)
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("starting wfhost worker")
            })
            .collect(),
    }
}

fn stop(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

/// One drain of `scenario` by `drainer` on `redis`.
fn drain(
    redis: &RedisServer,
    drainer: Drainer,
    (scenario, tasks): (&str, u32),
    plugins: &Path,
    dir: &Path,
) -> Result<Figure, String> {
    redis.cli(&["FLUSHALL"]);
    let broker = format!("redis://127.0.0.1:{}/0", redis.port);
    // Celery's worker as the peer runs it keeps results in db 1; a wfhost
    // worker commits them with the messages they send, on the broker's.
    let backend = match drainer {
        Drainer::Celery => format!("redis://127.0.0.1:{}/1", redis.port),
        Drainer::Wfhost(_) => broker.clone(),
    };
    let ids = dir.join("ids.json");
    let ids = ids.to_str().unwrap();
    let urls = ["--broker", &broker, "--backend", &backend];
    python(
        &[
            &["queue"],
            &urls[..],
            &["--scenario", scenario, "--ids", ids],
        ]
        .concat(),
    )?;
    let mut workers = start(drainer, redis, plugins, &dir.join("cache"));
    let drained = (|| {
        python(&[&["warm"], &urls[..]].concat())?;
        let pids: Vec<u32> = workers.iter().map(Child::id).collect();
        let worker_before: u64 = pids.iter().map(|pid| cpu_ticks(*pid)).sum();
        let redis_before = cpu_ticks(redis.pid());
        // The client renames the backlog's list to the queue the workers
        // consume once it is up itself (see celery_drain.py's `--release`).
        let report = python(&[&["wait", "--release"], &urls[..], &["--ids", ids]].concat())?;
        let worker_after: u64 = pids.iter().map(|pid| cpu_ticks(*pid)).sum();
        let redis_after = cpu_ticks(redis.pid());
        let report: serde_json::Value =
            serde_json::from_str(report.trim()).map_err(|err| format!("{err}: {report}"))?;
        let results = report["results"].as_u64().unwrap_or(0);
        if results != u64::from(tasks) {
            return Err(format!("{results} results, not {tasks}"));
        }
        let per_task = |ticks: u64| {
            Duration::from_secs_f64(ticks as f64 / ticks_per_second() / f64::from(tasks))
        };
        Ok(Figure {
            span: Duration::from_secs_f64(report["span"].as_f64().unwrap_or(f64::NAN)),
            worker_cpu: per_task(worker_after - worker_before),
            redis_cpu: per_task(redis_after - redis_before),
        })
    })();
    stop(&mut workers);
    drained
}

fn median_of(figures: &[Figure], field: impl Fn(&Figure) -> Duration) -> Duration {
    support::median(figures.iter().map(field).collect())
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    if !common::redis::available("drain bench") || !common::celery_is_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.toml");
    // The peer's task names, `tasks.add` and `tasks.xsum`, served by math.
    std::fs::write(
        &plugins,
        format!("tasks = {:?}\n", common::plugin_dir().join("math.wasm")),
    )
    .unwrap();
    let drainers = [Drainer::Celery, Drainer::Wfhost(1), Drainer::Wfhost(2)];
    let volatile_only = std::env::var_os("WFHOST_DRAIN_VOLATILE").is_some();
    let rounds = rounds();
    for (persistence, volatile) in [("appendonly no", true), ("appendfsync always", false)] {
        if volatile_only && !volatile {
            continue;
        }
        let redis = if volatile {
            RedisServer::start_volatile()
        } else {
            RedisServer::start()
        };
        // figures[scenario][drainer]: one per round.
        let mut figures: Vec<Vec<Vec<Figure>>> = SCENARIOS
            .iter()
            .map(|_| drainers.iter().map(|_| Vec::new()).collect())
            .collect();
        let mut failures = Vec::new();
        for _ in 0..rounds {
            for (row, (scenario, _, tasks)) in SCENARIOS.iter().enumerate() {
                if !chosen(scenario) {
                    continue;
                }
                for (column, drainer) in drainers.iter().enumerate() {
                    match drain(&redis, *drainer, (scenario, *tasks), &plugins, dir.path()) {
                        Ok(figure) => figures[row][column].push(figure),
                        Err(err) => {
                            failures.push(format!("{scenario}, {}: {err}", drainer.label()))
                        }
                    }
                }
            }
        }
        println!(
            "\nDrain, Redis with {persistence}; median of {rounds} rounds: span of date_done (tasks/s), worker CPU and Redis CPU per task\n"
        );
        print!("{:<28}", "scenario");
        for drainer in &drainers {
            print!("{:>40}", drainer.label());
        }
        println!("{:>12}", "ratio");
        for (row, (scenario, label, tasks)) in SCENARIOS.iter().enumerate() {
            if !chosen(scenario) {
                continue;
            }
            print!("{label:<28}");
            let mut spans = Vec::new();
            for column in &figures[row] {
                if column.is_empty() {
                    print!("{:>40}", "failed");
                    spans.push(None);
                    continue;
                }
                let span = median_of(column, |f| f.span);
                let rate = f64::from(*tasks) / span.as_secs_f64();
                let cell = format!(
                    "{:.0} ms ({rate:.0}/s) {:.0}+{:.0} µs",
                    span.as_secs_f64() * 1000.0,
                    median_of(column, |f| f.worker_cpu).as_secs_f64() * 1e6,
                    median_of(column, |f| f.redis_cpu).as_secs_f64() * 1e6,
                );
                print!("{cell:>40}");
                spans.push(Some(span));
            }
            let best = spans[1..].iter().flatten().min();
            match (spans[0], best) {
                (Some(celery), Some(best)) => {
                    println!("{:>11.1}×", celery.as_secs_f64() / best.as_secs_f64())
                }
                _ => println!("{:>12}", "–"),
            }
        }
        for failure in failures {
            println!("failed: {failure}");
        }
    }
}
