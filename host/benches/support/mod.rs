//! What the benchmarks share besides the tests' helpers: workflows begun
//! and run through the library, as an embedder would, and the median of
//! a round's samples.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Parses `document` and begins it on `host` as `identity`, an id not on
/// record: prepared and claimed, ready to execute.
pub async fn ready(
    host: &wfhost::Host,
    document: &Value,
    identity: wfhost::RunIdentity,
) -> Box<wfhost::Ready> {
    let spec = wfhost::spec::parse(&document.to_string(), Path::new("/"))
        .unwrap_or_else(|err| panic!("workflow document: {err}"));
    match host
        .begin(identity, wfhost::Intent::Start(spec))
        .await
        .unwrap()
    {
        wfhost::Begun::Ready(ready) => ready,
        _ => panic!("the workflow's id is on record already"),
    }
}

/// Executes `ready` on `host` with `options` to its end, through the
/// library, and returns its row.
pub async fn run_to_end(
    host: &wfhost::Host,
    ready: Box<wfhost::Ready>,
    options: &wfhost::RunOptions,
) -> wfhost::records::WorkflowRow {
    host.execute(*ready, options, &wfhost::Silent)
        .await
        .unwrap()
}

/// Starts `wfhost serve` on a free port of 127.0.0.1 over the database
/// `db`, compiling into `cache`, with one tenant `t` whose key is
/// `bench-key`, the math plugin, and `limits` (policy lines); returns the
/// process and the address it listens on.
pub fn serve_math(
    dir: &Path,
    db: &Path,
    cache: &Path,
    limits: &str,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let math = crate::common::plugin("math");
    let sha = {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(std::fs::read(&math).unwrap()))
    };
    let policy = dir.join("tenants.toml");
    std::fs::write(
        &policy,
        format!(
            "[tenants.t]\nkey_sha256 = \"{}\"\n{limits}[tenants.t.plugins]\nmath = {{ path = {:?}, sha256 = \"{sha}\" }}\n",
            wfhost::service::key_hash("bench-key"),
            math.display().to_string()
        ),
    )
    .unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_wfhost"))
        .env("WFHOST_DB", db)
        .env("WFHOST_CACHE_DIR", cache)
        .args(["serve", "-q", "--listen", "127.0.0.1:0", "--tenants"])
        .arg(&policy)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve said where it listens").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split(';').next().unwrap().to_string();
        }
    };
    // What it says from here on is drained, so that a full pipe never
    // blocks it.
    std::thread::spawn(move || lines.for_each(drop));
    (server, address)
}

/// The median of `samples` (the upper one of an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Celery's median time for the canvas `shape` (`chain`, `chains` or
/// `chord`) of `steps` steps on its own worker, measured now by
/// `support/celery_chain.py`, or why it could not be.
pub fn celery(shape: &str, steps: usize, rounds: usize) -> Result<Duration, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/celery_chain.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args([
            "--shape",
            shape,
            "--steps",
            &steps.to_string(),
            "--rounds",
            &rounds.to_string(),
        ])
        .output();
    median_of_report(output)
}

/// The median of the `{"seconds": [...]}` a benchmark script printed, or
/// the last line of what it said on failing.
pub fn median_of_report(output: std::io::Result<std::process::Output>) -> Result<Duration, String> {
    median_of_field(output, "seconds").map(|(median, _)| median)
}

/// The median of the list `field` of the JSON a benchmark script printed,
/// and the whole report.
pub fn median_of_field(
    output: std::io::Result<std::process::Output>,
    field: &str,
) -> Result<(Duration, Value), String> {
    let output = output.map_err(|err| format!("python3: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr.lines().last().unwrap_or("failed").to_string());
    }
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|err| err.to_string())?;
    Ok((median_in(&report, field)?, report))
}

/// The median of the list of seconds at `field` of `report`.
pub fn median_in(report: &Value, field: &str) -> Result<Duration, String> {
    let seconds = report[field].as_array().ok_or(format!("no {field}"))?;
    Ok(median(
        seconds
            .iter()
            .filter_map(Value::as_f64)
            .map(Duration::from_secs_f64)
            .collect(),
    ))
}

/// DBOS Transact 3.4 as shipped (SQLite, its default journal) on the
/// peer's scenario `a`, a chain of 1,000 `add` steps, measured now by the
/// peer's own script (`../shared/peers/dbos/bench.py --only a`): the
/// median of `rounds`, or why it could not be. DBOS lives in a virtual
/// environment made on first use beside the build (`dbos-venv`, with
/// `pip install dbos==3.4.0`).
pub fn dbos_chain(rounds: usize) -> Result<Duration, String> {
    use std::process::Command;
    let beside_build = std::env::current_exe()
        .map_err(|err| err.to_string())?
        .ancestors()
        .nth(3)
        .ok_or("no build directory")?
        .to_path_buf();
    let venv = beside_build.join("dbos-venv");
    let python = venv.join("bin/python");
    let succeeded = |command: &mut Command| {
        command
            .output()
            .map_err(|err| err.to_string())
            .and_then(|output| {
                if output.status.success() {
                    Ok(output)
                } else {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    Err(stderr.lines().last().unwrap_or("failed").to_string())
                }
            })
    };
    if !python.exists() {
        succeeded(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        succeeded(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "dbos==3.4.0",
        ]))?;
    }
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/dbos/bench.py");
    let work = tempfile::tempdir().map_err(|err| err.to_string())?;
    let output = succeeded(
        Command::new(&python)
            .arg(peer)
            .args(["--only", "a", "--dbos-modes", "default", "--no-flush-probe"])
            .args(["--rounds", &rounds.to_string()])
            .arg("--work")
            .arg(work.path()),
    )?;
    // Its rounds print `  r1 DBOS              a             1.73 s  ok  …`.
    let samples: Vec<Duration> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [round, "DBOS", "a", value, unit, "ok", ..] if round.starts_with('r') => {
                    let value: f64 = value.parse().ok()?;
                    match *unit {
                        "s" => Some(Duration::from_secs_f64(value)),
                        "ms" => Some(Duration::from_secs_f64(value / 1e3)),
                        _ => None,
                    }
                }
                _ => None,
            }
        })
        .collect();
    if samples.is_empty() {
        return Err("the DBOS script printed no round of scenario a".into());
    }
    Ok(median(samples))
}
