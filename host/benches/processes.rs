//! What sharing one database between processes costs: a whole one-step
//! `wfhost run` on a database no other process has open, on one another
//! process holds (running a workflow that sleeps), and on one another
//! process is busy committing to (a long chain, a commit per step);
//! `wfhost status` and `wfhost list` of a workflow while it runs; and a
//! one-step workflow handed to a running `wfhost serve` over HTTP (submit
//! and wait for its result in one request) beside Celery's warm worker on
//! a one-step chain, in the same run.
//!
//! Run with `cargo bench -p wfhost --bench processes`. Figures are printed,
//! never asserted: this machine is shared and noisy. Rounds interleave the
//! three databases, so a slow spell of the machine touches them alike.

/// What the `wfhost` binary allocates with, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{chain_file, plugin, standard_plugins};
use serde_json::json;
use support::median;

const ROUNDS: usize = 21;

/// `wfhost` over the database at `db`, with plugins compiled into `cache`.
fn wfhost(db: &Path, cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wfhost"));
    command.env("WFHOST_DB", db).env("WFHOST_CACHE_DIR", cache);
    command
}

/// Runs `command` to its end, which must be a success; how long it took
/// and what it printed.
fn timed(mut command: Command) -> (Duration, String) {
    let started = Instant::now();
    let output = command.output().unwrap();
    let took = started.elapsed();
    assert!(output.status.success(), "{output:?}");
    (took, String::from_utf8_lossy(&output.stdout).into_owned())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// A process that holds the database at `db` with workflow `id` of
/// `document` running, once its first step is on record.
fn holder(
    db: &Path,
    cache: &Path,
    document: &serde_json::Value,
    id: &str,
    durability: &str,
) -> (Child, PathBuf) {
    let chain = chain_file(document);
    let mut command = wfhost(db, cache);
    command
        .args(["run", "--id", id, "--durability", durability])
        .arg(&chain.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().unwrap();
    let started = Instant::now();
    loop {
        let mut status = wfhost(db, cache);
        status.args(["status", id, "--json"]);
        let output = status.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if report["steps"]
            .as_array()
            .is_some_and(|steps| !steps.is_empty())
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{output:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The chain file must outlive the process that reads it.
    let path = chain.path.clone();
    std::mem::forget(chain);
    (child, path)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("components");
    let one_step = chain_file(&json!({
        "plugins": {"math": plugin("math")},
        "workflow": [{"task": "math.add", "args": [1, 2]}],
    }));
    let (free, held, busy) = (
        dir.path().join("free.redb"),
        dir.path().join("held.redb"),
        dir.path().join("busy.redb"),
    );
    let run_one = |db: &Path| {
        let mut command = wfhost(db, &cache);
        command.arg("run").arg(&one_step.path);
        timed(command).0
    };
    // Compiles the plugins into the cache and makes the databases.
    for db in [&free, &held, &busy] {
        run_one(db);
    }
    let sleeper = json!({"plugins": standard_plugins(), "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"task": "testkit.sleep", "args": [600_000], "immutable": true},
    ]});
    let mut chain = vec![json!({"task": "math.add", "args": [0, 1]})];
    chain.extend((1..400_000).map(|_| json!({"task": "math.add", "args": [1]})));
    let long = json!({"plugins": standard_plugins(), "workflow": chain});
    let (mut sleeping, _) = holder(&held, &cache, &sleeper, "sleeper", "grouped");
    // Each step flushed before the next, as the row says: in the default
    // mode the chain would rather take a core from every row of the table.
    let (mut committing, _) = holder(&busy, &cache, &long, "long", "strict");

    let (mut on_free, mut on_held, mut on_busy) = (Vec::new(), Vec::new(), Vec::new());
    let (mut status, mut list, mut steps_shown) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        on_free.push(run_one(&free));
        on_held.push(run_one(&held));
        on_busy.push(run_one(&busy));
        let mut command = wfhost(&busy, &cache);
        command.args(["status", "long"]);
        let (took, printed) = timed(command);
        status.push(took);
        steps_shown.push(printed.lines().count().saturating_sub(4));
        let mut command = wfhost(&busy, &cache);
        command.arg("list");
        list.push(timed(command).0);
    }
    for child in [&mut sleeping, &mut committing] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let free_ms = ms(median(on_free));
    println!("processes on one database (whole processes, median of {ROUNDS}, interleaved):");
    let row = |what: &str, took: f64, note: String| println!("  {what:<62} {took:>7.2} ms{note}");
    row(
        "one-step `wfhost run`, database free",
        free_ms,
        String::new(),
    );
    for (what, samples) in [
        (
            "one-step `wfhost run`, held by a process running a workflow",
            on_held,
        ),
        (
            "one-step `wfhost run`, beside a process committing each step",
            on_busy,
        ),
    ] {
        let took = ms(median(samples));
        row(
            what,
            took,
            format!("   {:.2}x free (goal ≤ 2x)", took / free_ms),
        );
    }
    steps_shown.sort_unstable();
    let shown = format!(
        "`wfhost status` of the running chain ({}–{} steps shown)",
        steps_shown[0],
        steps_shown[steps_shown.len() - 1]
    );
    row(&shown, ms(median(status)), String::new());
    row("`wfhost list` beside it", ms(median(list)), String::new());
    handoff(dir.path(), &cache);
}

/// Rounds of the hand-off to a running service.
const HANDOFFS: usize = 201;

/// A one-step workflow handed to a running `wfhost serve` (POST with
/// `?wait`, one keep-alive connection), against Celery's warm worker.
fn handoff(dir: &Path, cache: &Path) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (mut server, address) = support::serve_math(dir, &dir.join("served.redb"), cache, "");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut samples = Vec::new();
    for round in 0..HANDOFFS {
        let body =
            json!({"id": format!("h{round}"), "workflow": [{"task": "math.add", "args": [1, 2]}]})
                .to_string();
        // In one write, as HTTP clients send a small request: written piece
        // by piece (`write!` on the socket) over a no-delay connection, its
        // four segments each woke the service, which read and parsed it in
        // parts.
        let request = format!(
            "POST /v1/workflows?wait=10s HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer bench-key\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).unwrap();
        let took = started.elapsed();
        let report: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(report["result"], 3, "{report}");
        // The first loads the plugin.
        if round > 0 {
            samples.push(took);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    samples.sort();
    let p90 = samples[samples.len() * 9 / 10];
    let served = median(samples);
    println!(
        "a one-step workflow handed to a running process (median of {}, same run):",
        HANDOFFS - 1
    );
    println!(
        "  {:<62} {:>7.3} ms   p90 {:.3} ms   (goal ≤ 1 ms)",
        "`wfhost serve`: POST ?wait=10s, result in the answer",
        ms(served),
        ms(p90)
    );
    match support::celery("chain", 1, 51) {
        Ok(celery) => println!(
            "  {:<62} {:>7.3} ms   Celery / wfhost: {:.1}x",
            "Celery 5.7 warm prefork worker: chain(add.s(0, 1)).apply_async().get()",
            ms(celery),
            celery.as_secs_f64() / served.as_secs_f64()
        ),
        Err(why) => println!("  Celery: not measured ({why})"),
    }
}
