//! Tasks that misbehave on purpose, to test the host and its sandbox.
//!
//! Each is what a buggy or hostile plugin might do: loop, allocate, recurse,
//! panic, probe the file system, network and environment, or flood output.

use serde_json::Value;
use wfhost_guest::{Context, Outcome, TaskError, sig, task};

/// Returns its argument unchanged.
#[task]
pub fn echo(value: Value) -> Value {
    value
}

/// Adds without overflowing: what a fixed build of `math.add` might be,
/// for tests that re-drive a failed workflow with a new build.
#[task]
pub fn add(x: i64, y: i64) -> i64 {
    x.saturating_add(y)
}

/// Adds 128-bit integers, failing on overflow: a task that asks for
/// numbers wider than JSON's usual 64 bits.
#[task]
pub fn add_wide(x: i128, y: i128) -> Result<i128, TaskError> {
    x.checked_add(y)
        .ok_or_else(|| TaskError::fail(format!("{x} + {y} does not fit an i128")))
}

/// Fails permanently with the given message.
#[task]
pub fn fail(message: String) -> Result<Value, TaskError> {
    Err(TaskError::fail(message))
}

/// Asks to be retried while the attempt number is at most `failures`, then
/// returns the attempt number.
#[task]
pub fn flaky(ctx: &Context, key: String, failures: u32) -> Result<u32, TaskError> {
    if ctx.attempt <= failures {
        return Err(TaskError::retry(format!(
            "{key}: attempt {} of {failures} failing",
            ctx.attempt
        ))
        .countdown(0.01));
    }
    Ok(ctx.attempt)
}

/// As `flaky`, with a retry limit of its own above the default of three.
#[task(max_retries = 5)]
pub fn stubborn(ctx: &Context, failures: u32) -> Result<u32, TaskError> {
    if ctx.attempt <= failures {
        return Err(TaskError::retry(format!("attempt {} failing", ctx.attempt)).countdown(0.01));
    }
    Ok(ctx.attempt)
}

/// Loops forever.
#[task]
pub fn spin() {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Spends CPU: `rounds` steps of a xorshift generator; returns the last value.
#[task]
pub fn burn(rounds: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Allocates and touches `mb` MiB, then returns how many bytes it holds.
#[task]
pub fn hog(mb: u64) -> usize {
    let size = (mb as usize).saturating_mul(1 << 20);
    let mut block = vec![0u8; size];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&block).len()
}

/// Recurses `depth` levels deep and returns the depth reached.
#[task]
pub fn recurse(depth: u64) -> u64 {
    fn descend(depth: u64) -> u64 {
        if depth == 0 {
            return 0;
        }
        // The array keeps each frame large and black_box keeps the
        // recursion from being turned into a loop.
        let frame = std::hint::black_box([depth; 16]);
        1 + descend(depth - 1) + frame[15] - depth
    }
    descend(depth)
}

/// Reads a file and returns its contents.
#[task]
pub fn read_file(path: String) -> Result<String, TaskError> {
    Ok(std::fs::read_to_string(path)?)
}

/// Opens a TCP connection and reports whom it reached.
#[task]
pub fn connect(addr: String) -> Result<String, TaskError> {
    let stream = std::net::TcpStream::connect(addr)?;
    Ok(format!("connected to {}", stream.peer_addr()?))
}

/// Returns an environment variable, or null when it is not visible.
#[task]
pub fn env(name: String) -> Option<String> {
    std::env::var(name).ok()
}

/// GETs `url`: its status and body text.
#[task]
pub fn http_get(url: String) -> Result<Value, TaskError> {
    let response = wfhost_guest::http::get(url).send()?;
    Ok(serde_json::json!({"status": response.status, "body": response.text()}))
}

/// POSTs `body` (JSON) to `url`, with the step's idempotency key: its
/// status and body text.
#[task]
pub fn http_post(url: String, body: Value) -> Result<Value, TaskError> {
    let response = wfhost_guest::http::post(url).json(&body)?.send()?;
    Ok(serde_json::json!({"status": response.status, "body": response.text()}))
}

/// Writes `text` to the file at `path`, creating or replacing it; returns
/// the bytes written.
#[task]
pub fn write_file(path: String, text: String) -> Result<usize, TaskError> {
    std::fs::write(path, &text)?;
    Ok(text.len())
}

/// Makes the symlink `link` pointing at `target`: what a guest tries when
/// it would lead a later grant out of its directory.
#[task]
pub fn symlink(target: String, link: String) -> Result<String, TaskError> {
    make_symlink(&target, &link)?;
    Ok(link)
}

/// wasi-libc's `symlink`: std's own on WASI is not stable yet.
#[cfg(target_os = "wasi")]
fn make_symlink(target: &str, link: &str) -> std::io::Result<()> {
    use std::ffi::{CString, c_char, c_int};
    unsafe extern "C" {
        fn symlink(target: *const c_char, link: *const c_char) -> c_int;
    }
    let (target, link) = (CString::new(target)?, CString::new(link)?);
    // SAFETY: both are NUL-terminated strings that outlive the call.
    match unsafe { symlink(target.as_ptr(), link.as_ptr()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "wasi"))]
fn make_symlink(target: &str, link: &str) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Lists the names in the directory at `path`, sorted.
#[task]
pub fn list_dir(path: String) -> Result<Vec<String>, TaskError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Returns the config value or secret granted as `name`; fails naming the
/// grant when there is none.
#[task]
pub fn config(name: String) -> Result<String, TaskError> {
    wfhost_guest::config::require(&name)
}

/// Shows the value granted as `name` everywhere a step can: stdout,
/// stderr, a log line, its result and, when `fail` is set, its error.
#[task]
pub fn leak(name: String, fail: bool) -> Result<String, TaskError> {
    let value = wfhost_guest::config::require(&name)?;
    println!("stdout: {value}");
    eprintln!("stderr: {value}");
    wfhost_guest::log::info(format!("log: {value}"));
    if fail {
        return Err(TaskError::fail(format!("error: {value}")));
    }
    Ok(format!("result: {value}"))
}

/// Returns a string of `bytes` bytes.
#[task]
pub fn big_output(bytes: usize) -> String {
    "x".repeat(bytes)
}

/// Panics with the given message.
#[task]
pub fn panic(message: String) -> Value {
    panic!("{message}")
}

/// Sleeps for `ms` milliseconds and returns `ms`.
#[task]
pub fn sleep(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// Adds two integers after sleeping `ms` milliseconds.
#[task]
pub fn slow_add(x: i64, y: i64, ms: u64) -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    x + y
}

/// The wall-clock time, in milliseconds since the Unix epoch.
#[task]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Writes `text` to stdout and to stderr, `times` times (once by default),
/// and returns the number of bytes written to each.
#[task]
pub fn print(text: String, times: Option<u64>) -> u64 {
    use std::io::Write;
    let times = times.unwrap_or(1);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    for _ in 0..times {
        // A capped or closed stream must not kill the task: ignore errors.
        let _ = stdout.write_all(text.as_bytes());
        let _ = stderr.write_all(text.as_bytes());
    }
    let _ = stdout.flush();
    let _ = stderr.flush();
    text.len() as u64 * times
}

/// Replaces itself: with `math.mul(x, 2)` when x > 10, else `math.add(x, 1)`.
#[task]
pub fn route(x: i64) -> Outcome {
    if x > 10 {
        Outcome::replace(sig("math.mul").args((x, 2)))
    } else {
        Outcome::replace(sig("math.add").args((x, 1)))
    }
}

/// Replaces itself with a group that echoes each of `values`.
#[task]
pub fn fan_out(values: Vec<Value>) -> Outcome {
    Outcome::replace(wfhost_guest::group(
        values
            .into_iter()
            .map(|value| sig("testkit.echo").args((value,)).si()),
    ))
}

/// Replaces itself with a chord that adds nothing to each of `values` and
/// sums them: its result is their sum.
#[task]
pub fn fan_in(values: Vec<i64>) -> Outcome {
    Outcome::replace(wfhost_guest::chord(
        values
            .into_iter()
            .map(|value| sig("math.add").args((value, 0)).si()),
        sig("math.xsum"),
    ))
}

/// Replaces itself with an empty chain, which Celery refuses.
#[task]
pub fn replace_with_nothing() -> Outcome {
    Outcome::replace(wfhost_guest::Canvas::Chain(Vec::new()))
}

/// Logs a message at each level and returns it.
#[task]
pub fn log(message: String) -> String {
    wfhost_guest::log::trace(format!("trace: {message}"));
    wfhost_guest::log::debug(format!("debug: {message}"));
    wfhost_guest::log::info(format!("info: {message}"));
    wfhost_guest::log::warn(format!("warn: {message}"));
    wfhost_guest::log::error(format!("error: {message}"));
    message
}

/// What `stash` left in this instance's memory. A fresh instance starts
/// with it empty; a host that reused memory between steps would leak it.
static STASH: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Leaves `secret` in the instance's memory (static data and heap) and
/// returns what was there before.
#[task]
pub fn stash(secret: String) -> String {
    let mut stash = STASH.lock().unwrap_or_else(|err| err.into_inner());
    std::mem::replace(&mut *stash, secret)
}

wfhost_guest::export_tasks!(
    add,
    add_wide,
    symlink,
    http_get,
    http_post,
    write_file,
    list_dir,
    config,
    leak,
    fan_out,
    fan_in,
    echo,
    fail,
    flaky,
    stubborn,
    spin,
    burn,
    hog,
    recurse,
    read_file,
    connect,
    env,
    big_output,
    panic,
    sleep,
    print,
    route,
    replace_with_nothing,
    log,
    slow_add,
    now_ms,
    stash,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks that take a context or log are unit-tested natively too.
    #[test]
    fn tasks_with_a_context_or_logs_run_natively() {
        let first = Context::new("wf-1", "0");
        assert!(matches!(
            flaky(&first, "k".into(), 2),
            Err(TaskError::Retry { .. })
        ));
        assert_eq!(flaky(&first.with_attempt(3), "k".into(), 2), Ok(3));
        assert_eq!(log("hello".into()), "hello");
    }
}
