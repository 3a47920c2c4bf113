//! `wfhost worker` beside Celery's own worker, on the Celery peer's
//! scenarios (../shared/peers/celery/): a 1,000-step chain, 100 ten-step
//! chains at once, a 1,000-member chord, and one-step latency, each sent
//! by Celery's Python client to the same Redis on the same machine, in
//! one run — served by Celery's worker (prefork, 2 processes, as the peer
//! runs it), by 1, 2 and 4 `wfhost worker` processes, and by one with
//! Celery's task events on (`-E`).
//!
//! Run with `cargo bench -p wfhost --bench fleet`. Figures are printed,
//! never asserted: this machine is shared and noisy. Each figure is the
//! median of its rounds; each round runs every column once, in turn.
//!
//! The last row is the one-step latency again with a producer that is not
//! the bottleneck: wfhost's own (`FleetClient`, Celery's message written by
//! one script) sends `tasks.add(1, 2)` and waits for its result's
//! `PUBLISH` on a subscription opened beforehand, 50 times a round.
//!
//! `WFHOST_BASELINE=DIR` adds a column for one worker of another build in
//! the same run: `DIR/wfhost` serving `DIR/math.wasm` (a release build of
//! an earlier commit and its plugin, which may speak another WIT) — how a
//! change is shown not to slow the fleet.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::redis::RedisServer;

const ROUNDS: usize = 3;
const SCENARIOS: [(&str, &str); 5] = [
    ("chain", "chain of 1,000 add"),
    ("chains", "100 chains × 10 add"),
    ("chord", "chord of 1,000 add → xsum"),
    ("latency", "one step, submit to result"),
    ("latency_rust", "one step, Rust producer"),
];

/// One figure: a scenario's time and the client's sending time, or why
/// it failed.
type Cell = Result<(Duration, Duration), String>;

/// One-step latencies a round, with the Rust producer.
const LATENCY_SAMPLES: usize = 50;

/// One round of the one-step latency with wfhost's own producer: the
/// median of its samples, and the median time of the send alone.
fn rust_latency(broker: &str) -> Cell {
    use futures::StreamExt;
    use wfhost::worker::FleetClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    runtime.block_on(async {
        let client = FleetClient::connect(broker)
            .await
            .map_err(|err| err.to_string())?;
        let redis = redis::Client::open(broker).map_err(|err| err.to_string())?;
        let mut pubsub = redis
            .get_async_pubsub()
            .await
            .map_err(|err| err.to_string())?;
        // Results are published on their key, whichever database holds them.
        pubsub
            .psubscribe("celery-task-meta-*")
            .await
            .map_err(|err| err.to_string())?;
        let mut published = pubsub.on_message();
        let add = serde_json::json!({"task": "tasks.add", "args": [1, 2]});
        let (mut latencies, mut sends) = (Vec::new(), Vec::new());
        for _ in 0..LATENCY_SAMPLES {
            let started = std::time::Instant::now();
            let id = client
                .submit(&add, "celery")
                .await
                .map_err(|err| err.to_string())?;
            sends.push(started.elapsed());
            let channel = format!("celery-task-meta-{id}");
            loop {
                let message = tokio::time::timeout(Duration::from_secs(30), published.next())
                    .await
                    .map_err(|_| format!("no result for {id}"))?
                    .ok_or("the subscription ended")?;
                let payload: String = message.get_payload().unwrap_or_default();
                if message.get_channel_name() == channel && payload.contains("SUCCESS") {
                    break;
                }
            }
            latencies.push(started.elapsed());
        }
        Ok((support::median(latencies), support::median(sends)))
    })
}

fn peer_dir() -> std::path::PathBuf {
    common::repo_root().join("../shared/peers/celery")
}

/// Runs one round of one scenario with Celery's client: its time, and the
/// time the client took only to send.
fn scenario(broker: &str, backend: &str, name: &str) -> Cell {
    let output = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/celery_fleet.py"))
        .args(["--broker", broker, "--backend", backend, "--scenario", name])
        .args(["--rounds", "1"])
        .output();
    let (total, report) = support::median_of_field(output, "seconds")?;
    Ok((total, support::median_in(&report, "send")?))
}

fn stop(children: &mut Vec<Child>) {
    for child in children.iter_mut() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
    children.clear();
}

/// Celery's prefork worker as the peer runs it (2 processes), on the Redis
/// at `port`.
fn celery_worker(port: u16) -> Child {
    Command::new("python3")
        .args([
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "--concurrency=2",
            "--pool=prefork",
        ])
        .args([
            "-l",
            "warning",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ])
        .current_dir(peer_dir())
        .env("CELERY_BENCH_REDIS_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting Celery's worker")
}

/// The medians of one cell's rounds (total, send); the first failure if
/// none succeeded.
fn median_cell<'a>(rounds: impl Iterator<Item = &'a Cell>) -> Cell {
    let (mut totals, mut sends, mut failure) = (Vec::new(), Vec::new(), None);
    for round in rounds {
        match round {
            Ok((total, send)) => {
                totals.push(*total);
                sends.push(*send);
            }
            Err(err) => failure = failure.or(Some(err.clone())),
        }
    }
    if totals.is_empty() {
        return Err(failure.unwrap_or_else(|| "no rounds".into()));
    }
    Ok((support::median(totals), support::median(sends)))
}

/// Every scenario against whatever serves the `celery` queue now.
fn all_scenarios(broker: &str, backend: &str) -> Vec<Cell> {
    SCENARIOS
        .iter()
        .map(|(name, _)| match *name {
            "latency_rust" => rust_latency(broker),
            name => scenario(broker, backend, name),
        })
        .collect()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    if !common::redis::available("fleet bench") || !common::celery_is_installed() {
        return;
    }
    let redis = RedisServer::start_volatile();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.toml");
    // The peer's task names, `tasks.add` and `tasks.xsum`, served by math.
    std::fs::write(
        &plugins,
        format!("tasks = {:?}\n", common::plugin_dir().join("math.wasm")),
    )
    .unwrap();
    let url = |db: u8| format!("redis://127.0.0.1:{}/{db}", redis.port);

    // Each column: its name, the binary, its plugins, how many workers,
    // and their extra flags.
    type Column = (
        String,
        std::path::PathBuf,
        std::path::PathBuf,
        usize,
        &'static [&'static str],
    );
    let mut builds: Vec<Column> = Vec::new();
    if let Some(baseline) = std::env::var_os("WFHOST_BASELINE") {
        let baseline = std::path::PathBuf::from(baseline);
        let plugins = dir.path().join("baseline.toml");
        std::fs::write(
            &plugins,
            format!("tasks = {:?}\n", baseline.join("math.wasm")),
        )
        .unwrap();
        builds.push((
            "baseline ×1".into(),
            baseline.join("wfhost"),
            plugins,
            1,
            &[],
        ));
    }
    for processes in [1, 2, 4] {
        builds.push((
            format!("wfhost worker ×{processes}"),
            env!("CARGO_BIN_EXE_wfhost").into(),
            plugins.clone(),
            processes,
            &[],
        ));
    }
    // What Celery's task events cost (Flower's feed).
    builds.push((
        "wfhost worker ×1 -E".into(),
        env!("CARGO_BIN_EXE_wfhost").into(),
        plugins.clone(),
        1,
        &["-E"],
    ));
    // Rounds interleaved: each round runs every column once, so that a
    // drift of the machine during the run lands on all of them.
    let mut rounds: Vec<Vec<Vec<Cell>>> = Vec::new();
    for _ in 0..ROUNDS {
        let mut round = Vec::new();
        // Celery's worker, as the peer runs it: broker db 0, results db 1.
        let mut celery = vec![celery_worker(redis.port)];
        round.push(all_scenarios(&url(0), &url(1)));
        stop(&mut celery);
        redis.cli(&["FLUSHALL"]);
        for (_, binary, plugins, processes, flags) in &builds {
            let mut workers: Vec<Child> = (0..*processes)
                .map(|index| {
                    Command::new(binary)
                        .args([
                            "-q",
                            "worker",
                            "--broker",
                            &url(0),
                            "--queues",
                            "celery",
                            "--plugins",
                        ])
                        .arg(plugins)
                        .args(["--concurrency", "2", "--name", &format!("bench{index}")])
                        .args(*flags)
                        .env("WFHOST_CACHE_DIR", dir.path().join("cache"))
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("starting wfhost worker")
                })
                .collect();
            // Results on the broker's Redis: a step's result is committed
            // with the messages it sends.
            round.push(all_scenarios(&url(0), &url(0)));
            stop(&mut workers);
            redis.cli(&["FLUSHALL"]);
        }
        rounds.push(round);
    }
    let names = std::iter::once("Celery 5.7 prefork ×2".to_string())
        .chain(builds.iter().map(|(name, ..)| name.clone()));
    let columns: Vec<(String, Vec<Cell>)> = names
        .enumerate()
        .map(|(column, name)| {
            let cells = (0..SCENARIOS.len())
                .map(|row| median_cell(rounds.iter().map(|round| &round[column][row])))
                .collect();
            (name, cells)
        })
        .collect();

    println!(
        "\nCelery's client, one Redis, this machine; median of {ROUNDS} rounds (latency: of 50 per round)\n"
    );
    print!("{:<28}", "scenario");
    for (name, _) in &columns {
        print!("{name:>24}");
    }
    println!("{:>14}{:>22}", "best ratio", "client's sending");
    for (row, (_, label)) in SCENARIOS.iter().enumerate() {
        print!("{label:<28}");
        for (_, figures) in &columns {
            match &figures[row] {
                // Sub-millisecond latencies need their hundredths.
                Ok((total, _)) if *total < Duration::from_millis(10) => {
                    print!("{:>21.2} ms", total.as_secs_f64() * 1000.0)
                }
                Ok((total, _)) => print!("{:>21.1} ms", total.as_secs_f64() * 1000.0),
                Err(err) => print!(
                    "{:>24}",
                    format!("failed: {}", err.chars().take(12).collect::<String>())
                ),
            }
        }
        let celery = columns[0].1[row].as_ref().ok().map(|(total, _)| *total);
        let best = columns[1..]
            .iter()
            .filter(|(name, _)| name.starts_with("wfhost worker"))
            .filter_map(|(_, figures)| figures[row].as_ref().ok().map(|(total, _)| *total))
            .min();
        match (celery, best) {
            (Some(celery), Some(best)) => {
                print!("{:>13.1}×", celery.as_secs_f64() / best.as_secs_f64())
            }
            _ => print!("{:>14}", "–"),
        }
        // What the client alone spends, in the Celery run: no worker's
        // figure can be below it.
        match &columns[0].1[row] {
            Ok((_, send)) => println!("{:>19.2} ms", send.as_secs_f64() * 1000.0),
            Err(_) => println!(),
        }
    }
}
