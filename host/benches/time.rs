//! Time at scale (DESIGN §15, issue "Time"): workflows asleep or waiting
//! in one `wfhost serve` — its memory, and how late each sleeper wakes
//! after its due instant — and many schedules each ticking every second —
//! the CPU of the `wfhost scheduler` that fires them.
//!
//! Run with `cargo bench -p wfhost --bench time`. Knobs:
//! `WFHOST_TIME_PARKED` (workflows asleep or waiting, half each; 100000),
//! `WFHOST_TIME_SLEEPERS` (sleepers whose waking is timed; 5000),
//! `WFHOST_TIME_SCHEDULES` (1000), `WFHOST_TIME_SECONDS` (how long the
//! scheduler is watched; 30), `WFHOST_TIME_ONLY` (`parked` or
//! `schedules`). Figures are printed, never asserted.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::plugin;
use serde_json::{Value, json};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn wfhost(db: &Path, cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wfhost"));
    command.env("WFHOST_DB", db).env("WFHOST_CACHE_DIR", cache);
    command
}

/// A field of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The CPU time process `pid` has used, user and system.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th,
    // stime the 13th (14th and 15th of the whole line).
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / hz)
}

/// A running `wfhost serve` with one tenant, `t`, whose key is `bench-key`.
struct Serve {
    child: Child,
    address: String,
}

impl Serve {
    fn start(dir: &Path, cache: &Path) -> Serve {
        let limits = "max_workflows = 10000000\nmax_running_steps = 64\n";
        let (child, address) = support::serve_math(dir, &dir.join("served.redb"), cache, limits);
        Serve { child, address }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive connection to the service.
struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(address: &str) -> Connection {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Connection { stream, reader }
    }

    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer bench-key\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).unwrap();
        let mut status = 0;
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if status == 0 {
                status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer).unwrap();
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        )
    }
}

/// Submits the workflows `make(i)` gives for `i` in `range`, over
/// `connections` connections at once.
fn submit_all(
    address: &str,
    range: std::ops::Range<usize>,
    connections: usize,
    make: impl Fn(usize) -> Value + Send + Sync,
) {
    let make = &make;
    let next = std::sync::atomic::AtomicUsize::new(range.start);
    std::thread::scope(|scope| {
        for _ in 0..connections {
            let next = &next;
            let end = range.end;
            scope.spawn(move || {
                let mut connection = Connection::open(address);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    let (status, answer) =
                        connection.call("POST", "/v1/workflows", &make(i).to_string());
                    assert_eq!(status, 202, "{answer}");
                }
            });
        }
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Workflows asleep or waiting in one serve, then sleepers timed as they
/// wake among them.
fn parked(dir: &Path, cache: &Path) {
    let parked = knob("WFHOST_TIME_PARKED", 100_000);
    let sleepers = knob("WFHOST_TIME_SLEEPERS", 5000);
    let serve = Serve::start(dir, cache);
    let mut warm = Connection::open(&serve.address);
    let (status, _) = warm.call(
        "POST",
        "/v1/workflows?wait=10s",
        &json!({"id": "warm", "workflow": [{"task": "math.add", "args": [1, 2]}]}).to_string(),
    );
    assert_eq!(status, 200);
    let idle_kib = status_kib(serve.pid(), "VmRSS");
    let started = Instant::now();
    submit_all(&serve.address, 0..parked, 8, |i| {
        let workflow = if i % 2 == 0 {
            json!([{"sleep": "1d"}])
        } else {
            json!([{"wait": "never", "timeout": "1d"}])
        };
        json!({"id": format!("parked-{i}"), "workflow": workflow})
    });
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let parked_kib = status_kib(serve.pid(), "VmRSS");
    println!(
        "{parked} workflows parked (half asleep for a day, half waiting for a signal) in {:.1} s ({:.0}/s)",
        took.as_secs_f64(),
        parked as f64 / took.as_secs_f64()
    );
    println!(
        "  serve's RSS: {:.1} MiB idle, {:.1} MiB with them parked: {:.0} bytes a workflow",
        idle_kib as f64 / 1024.0,
        parked_kib as f64 / 1024.0,
        (parked_kib.saturating_sub(idle_kib) * 1024) as f64 / parked as f64
    );

    // Sleepers due one after another over 20 s, starting 10 s after the
    // last is submitted at the latest.
    let lead = Duration::from_secs(10) + Duration::from_micros(200 * sleepers as u64);
    let first_due = common_now_ms() + lead.as_millis() as u64;
    let spread_ms = 20_000.0;
    submit_all(&serve.address, 0..sleepers, 8, |i| {
        let due = first_due as f64 + spread_ms * i as f64 / sleepers as f64;
        let seconds = ((due - common_now_ms() as f64) / 1000.0).max(0.0);
        json!({"id": format!("sleeper-{i}"), "workflow": [{"sleep": seconds}]})
    });
    std::thread::sleep(lead + Duration::from_millis(spread_ms as u64 + 3000));
    let mut connection = Connection::open(&serve.address);
    let mut late = Vec::with_capacity(sleepers);
    for i in 0..sleepers {
        let (status, report) = connection.call("GET", &format!("/v1/workflows/sleeper-{i}"), "");
        assert_eq!(status, 200, "{report}");
        let step = &report["steps"][0];
        if report["status"] != "succeeded" {
            println!("  sleeper-{i} has not woken: {}", report["status"]);
            continue;
        }
        let seconds = step["kwargs"]["seconds"].as_f64().unwrap();
        let due = step["started_at_ms"].as_u64().unwrap() + (seconds * 1000.0).ceil() as u64;
        let ended = step["ended_at_ms"].as_u64().unwrap();
        late.push(ended as f64 - due as f64);
    }
    late.sort_by(f64::total_cmp);
    let peak_kib = status_kib(serve.pid(), "VmHWM");
    println!(
        "  {} sleepers due over 20 s among them, woken after their due instant by: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (min {:.1} ms)",
        late.len(),
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(0.0),
        late.first().copied().unwrap_or(0.0),
    );
    println!("  serve's peak RSS: {:.1} MiB", peak_kib as f64 / 1024.0);
}

fn common_now_ms() -> u64 {
    wfhost::records::now_ms()
}

/// Schedules every second, made in this process on the database, fired by
/// a `wfhost scheduler` watched for a while: its CPU, and what became of
/// the ticks.
fn schedules(dir: &Path, cache: &Path, fired: bool) {
    let count = knob("WFHOST_TIME_SCHEDULES", 1000);
    let seconds = knob("WFHOST_TIME_SECONDS", 30);
    let what = if fired { "fired" } else { "handled" };
    let db = dir.join(format!("schedules-{what}.redb"));
    // Handled: each schedule's first tick starts a workflow that sleeps
    // for an hour, and every later tick is skipped behind it (a record
    // update each). Fired: each tick runs a one-step workflow.
    let (workflow, overlap) = if fired {
        (
            json!([{"task": "math.add", "args": [1, 2]}]),
            wfhost::records::Overlap::AllowAll,
        )
    } else {
        (json!([{"sleep": "1h"}]), wfhost::records::Overlap::Skip)
    };
    let chain_path = dir.join(format!("{what}.json"));
    let chain = json!({"plugins": {"math": plugin("math")}, "workflow": workflow}).to_string();
    std::fs::write(&chain_path, &chain).unwrap();
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = wfhost::store::Store::open(&db).unwrap();
            let host = wfhost::Host::new(wfhost::runtime::Runtime::new().unwrap(), store);
            for i in 0..count {
                host.add_schedule(wfhost::records::ScheduleSpec {
                    name: format!("s{i}"),
                    tenant: "default".into(),
                    cron: None,
                    tz: None,
                    every_ms: Some(1000),
                    overlap,
                    catch_up_ms: 60_000,
                    start_ms: None,
                    end_ms: None,
                    paused: false,
                    chain: chain.clone(),
                    chain_path: chain_path.display().to_string(),
                    submitted: false,
                })
                .await
                .unwrap();
            }
            host.exit();
        });
    }
    let mut scheduler = wfhost(&db, cache)
        .args(["-q", "scheduler"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = scheduler.id();
    // The first seconds start the workflows (handled: the sleepers) and
    // compile nothing (the cache is warm); the window after them is timed.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_before, wall_before) = (cpu_time(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds as u64));
    let cpu = cpu_time(pid) - cpu_before;
    let wall = wall_before.elapsed();
    let rss = status_kib(pid, "VmRSS");
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let store = wfhost::store::Store::open_to_read(&db).unwrap();
    let mut outcomes = std::collections::BTreeMap::<&str, u64>::new();
    for record in store.schedules(None).unwrap() {
        for tick in &record.ticks {
            *outcomes.entry(tick.outcome.as_str()).or_default() += tick.count;
        }
    }
    let usage = store.usage(None).unwrap();
    let workflows: u64 = usage.iter().map(|usage| usage.workflows).sum();
    let attempts: u64 = usage.iter().map(|usage| usage.attempts).sum();
    println!(
        "{count} schedules every second, {what} by `wfhost scheduler` for {:.0} s: {:.1}% of a core ({:.0} µs of CPU a tick), RSS {:.1} MiB; last ticks kept: {outcomes:?}; {workflows} workflows on record, {attempts} attempts made",
        wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        1e6 * cpu.as_secs_f64() / (count as f64 * wall.as_secs_f64()),
        rss as f64 / 1024.0,
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let only = std::env::var("WFHOST_TIME_ONLY").unwrap_or_default();
    if only.is_empty() || only == "parked" {
        parked(dir.path(), &cache);
    }
    if only.is_empty() || only == "schedules" {
        schedules(dir.path(), &cache, false);
        schedules(dir.path(), &cache, true);
    }
}
