//! The guest SDK at compile time: a `#[task]` that `export_tasks!` leaves
//! out would never run, so it does not compile, and the error names it; a
//! plugin built for anything but wasm gets one clear error, while its
//! native unit tests run, logging to stderr.

mod common;

use std::path::Path;
use std::process::Command;

/// Builds a plugin crate whose `src/lib.rs` is `source` for wasm32-wasip2,
/// with the example plugins' lock file and profile, in their target
/// directory, so that only the crate itself compiles. Returns whether it
/// built, and what cargo said.
fn build_plugin(dir: &Path, source: &str) -> (bool, String) {
    cargo_on_plugin(dir, source, &["build", "--target", "wasm32-wasip2"], &[])
}

/// The crate [`cargo_on_plugin`] builds, unless `WFHOST_TEST_CRATE` in
/// the source's first line names another (a test that uses what it built
/// names its own, so that no other test's build replaces it).
fn crate_name(source: &str) -> &str {
    source
        .lines()
        .find_map(|line| line.strip_prefix("// WFHOST_TEST_CRATE="))
        .unwrap_or("export-check")
}

/// Runs `cargo COMMAND --release --offline … BINARY_ARGS` on a plugin
/// crate whose `src/lib.rs` is `source`, as [`build_plugin`] sets it up.
fn cargo_on_plugin(
    dir: &Path,
    source: &str,
    command: &[&str],
    binary_args: &[&str],
) -> (bool, String) {
    let repo = common::repo_root();
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wfhost-guest = {{ path = {guest:?} }}
serde = "1"

[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#,
        guest = repo.join("guest-sdk").canonicalize().unwrap(),
        name = crate_name(source),
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    std::fs::copy(repo.join("plugins/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let plugins_target = common::plugin_dir().ancestors().nth(2).unwrap();
    // Run from the crate's own directory, so that no configuration of the
    // repository's (its build target) applies.
    let output = Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(command)
        .args(["--release", "--offline"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(plugins_target)
        .args(binary_args)
        .output()
        .expect("running cargo");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_task_left_out_of_export_tasks_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = r#"
use wfhost_guest::task;

/// Listed.
#[task]
pub fn listed(x: i64) -> i64 { x }

/// Forgotten, unless listed.
#[task]
pub fn forgotten(x: i64) -> i64 { x }
"#;
    let (built, said) = build_plugin(
        dir.path(),
        &format!("{tasks}\nwfhost_guest::export_tasks!(listed, forgotten);\n"),
    );
    assert!(built, "the crate with every task listed builds: {said}");
    let (built, said) = build_plugin(
        dir.path(),
        &format!("{tasks}\nwfhost_guest::export_tasks!(listed);\n"),
    );
    assert!(!built, "a task left out compiled");
    assert!(
        said.contains("`forgotten` is a #[task] that `export_tasks!` does not list"),
        "{said}"
    );
    assert!(!said.contains("`listed` is a #[task]"), "{said}");
}

#[test]
fn a_native_build_is_one_clear_error_and_native_tests_log_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"
use wfhost_guest::task;

/// Adds, saying so.
#[task]
pub fn add(x: i64, y: i64) -> i64 {
    wfhost_guest::log::info(format!("adding {x} and {y}"));
    x + y
}

wfhost_guest::export_tasks!(add);

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(1, 2), 3);
    }
}
"#;
    let (built, said) = cargo_on_plugin(dir.path(), source, &["build"], &[]);
    assert!(!built, "a native build of a plugin built: {said}");
    assert_eq!(
        said.matches("error: a wfhost plugin builds for wasm32-wasip2")
            .count(),
        1,
        "{said}"
    );
    assert!(!said.contains("linking"), "{said}");
    let (tested, said) = cargo_on_plugin(dir.path(), source, &["test"], &["--", "--nocapture"]);
    assert!(tested && said.contains("Info: adding 1 and 2"), "{said}");
}

/// `wfhost new rust NAME` makes a plugin crate that builds (its unit tests
/// run natively too) and a chain file that runs what the build makes;
/// `wfhost new python NAME`, a module that `wfhost build-py` builds and a
/// chain file that runs it. A taken folder or a bad name is refused.
#[test]
fn new_plugins_build_and_their_chains_run() {
    let dir = tempfile::tempdir().unwrap();
    let new = |args: &[&str]| {
        common::Run::from(
            common::wfhost()
                .current_dir(dir.path())
                .arg("new")
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let made = new(&["rust", "hello"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stdout
            .contains("cargo build --release --target wasm32-wasip2"),
        "{}",
        made.stdout
    );
    let crate_dir = dir.path().join("hello");
    let repo = common::repo_root();
    std::fs::copy(
        repo.join("plugins/Cargo.lock"),
        crate_dir.join("Cargo.lock"),
    )
    .unwrap();
    // Built in the example plugins' target directory (only the crate
    // itself compiles), then put where the chain file looks for it.
    let plugins_target = common::plugin_dir().ancestors().nth(2).unwrap();
    let cargo = |args: &[&str]| {
        Command::new(env!("CARGO"))
            .current_dir(&crate_dir)
            .args(args)
            .args(["--release", "--offline", "--target-dir"])
            .arg(plugins_target)
            .output()
            .expect("running cargo")
    };
    let built = cargo(&["build", "--target", "wasm32-wasip2"]);
    common::assert_succeeded(&built);
    let release = crate_dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(
        plugins_target.join("wasm32-wasip2/release/hello.wasm"),
        release.join("hello.wasm"),
    )
    .unwrap();
    let tested = cargo(&["test"]);
    common::assert_succeeded(&tested);
    let run = |folder: &Path| {
        common::Run::from(
            common::wfhost()
                .current_dir(folder)
                .env("WFHOST_DB", dir.path().join("state.redb"))
                .args(["run", "chain.json", "--json"])
                .output()
                .unwrap(),
        )
    };
    let ran = run(&crate_dir);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.json()["result"],
        serde_json::json!({"text": "Hello, world!", "chars": 13})
    );

    let taken = new(&["rust", "hello"]);
    assert_eq!(taken.code, 2, "{}", taken.stderr);
    assert!(
        taken.stderr.contains("is there already"),
        "{}",
        taken.stderr
    );
    let badly_named = new(&["python", "Hello-World"]);
    assert_eq!(badly_named.code, 2, "{}", badly_named.stderr);
    assert!(
        badly_named.stderr.contains("cannot name a plugin"),
        "{}",
        badly_named.stderr
    );

    if !common::python_module_is_installed("componentize_py") {
        println!("skipped the Python plugin: python3 cannot import componentize_py");
        return;
    }
    let made = new(&["python", "hello_py"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let module_dir = dir.path().join("hello_py");
    let built = common::wfhost()
        .current_dir(&module_dir)
        .env("PYTHONPATH", repo.join("guest-sdk/python"))
        .args(["build-py", "hello_py.py"])
        .output()
        .unwrap();
    common::assert_succeeded(&built);
    let ran = run(&module_dir);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.json()["result"],
        serde_json::json!({"text": "Hello, world!", "chars": 13})
    );
}

/// A plugin whose types cannot be described — a parameter's own
/// `Deserialize` panics on what the SDK's probe offers it, which traps
/// `describe` — still loads and runs; its tasks' types are not known, so
/// nothing is checked against them.
#[test]
fn a_plugin_whose_types_cannot_be_described_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"// WFHOST_TEST_CRATE=describe-traps
use serde::{Deserialize, Deserializer};
use wfhost_guest::task;

/// A name its reader insists is not empty, by panicking.
pub struct Picky(String);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        assert!(!name.is_empty(), "an empty name");
        Ok(Picky(name))
    }
}

/// Greets a picky name.
#[task]
pub fn greet(name: Picky) -> String {
    format!("hello {}", name.0)
}

wfhost_guest::export_tasks!(greet);
"#;
    let (built, said) = build_plugin(dir.path(), source);
    assert!(built, "{said}");
    let wasm = common::plugin_dir().join("describe_traps.wasm");
    // A cache of its own: a listing kept from an earlier run would spare
    // the component the asking.
    let cache = tempfile::tempdir().unwrap();
    let wfhost = |args: &[&str]| {
        common::Run::from(
            common::wfhost()
                .env("WFHOST_CACHE_DIR", cache.path())
                .env("WFHOST_DB", dir.path().join("state.redb"))
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let listing = wfhost(&["inspect", "--json", wasm.to_str().unwrap()]);
    assert_eq!(listing.code, 0, "{}", listing.stderr);
    let task = &listing.json()["tasks"][0];
    assert_eq!(task["name"], "greet");
    assert_eq!(task["input_schema"], serde_json::Value::Null, "{task}");
    let chain = dir.path().join("chain.json");
    let document = serde_json::json!({
        "plugins": {"picky": wasm},
        "workflow": [{"task": "picky.greet", "args": [7]}, {"task": "picky.greet", "args": ["ada"], "immutable": true}],
    });
    std::fs::write(&chain, document.to_string()).unwrap();
    let ran = wfhost(&["run", chain.to_str().unwrap(), "--json"]);
    // Not refused before running (no types are known): the first step
    // fails when it binds the number.
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("greet() argument 'name'")
    );
}

/// `wfhost run --watch` runs a workflow, then again each time the chain
/// file or a plugin's sources change, rebuilding the plugin first; Ctrl-C
/// ends the watch.
#[test]
fn run_watch_rebuilds_a_changed_plugin_and_runs_again() {
    use std::io::BufRead;
    if !common::python_module_is_installed("componentize_py") {
        println!("skipped: python3 cannot import componentize_py");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repo_root();
    let wfhost = || {
        let mut command = common::wfhost();
        command
            .current_dir(dir.path())
            .env("PYTHONPATH", repo.join("guest-sdk/python"))
            .env("WFHOST_DB", dir.path().join("state.redb"));
        command
    };
    let made = wfhost()
        .args(["new", "python", "watched"])
        .output()
        .unwrap();
    common::assert_succeeded(&made);
    let module_dir = dir.path().join("watched");
    let built = wfhost()
        .current_dir(&module_dir)
        .args(["build-py", "watched.py"])
        .output()
        .unwrap();
    common::assert_succeeded(&built);

    let mut watching = wfhost()
        .current_dir(&module_dir)
        .args(["run", "chain.json", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    let stdout = watching.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_result = |wanted: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = printed
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {wanted} printed"));
            if line.contains(wanted) {
                return;
            }
        }
    };
    next_result("Hello, world!");
    // The module changes: rebuilt, run again.
    let module = module_dir.join("watched.py");
    let source = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, source.replace("Hello", "Howdy")).unwrap();
    next_result("Howdy, world!");
    // The chain file changes: run again.
    let chain = module_dir.join("chain.json");
    let text = std::fs::read_to_string(&chain).unwrap();
    std::fs::write(&chain, text.replace("\"world\"", "\"there\"")).unwrap();
    next_result("Howdy, there!");

    // Ctrl-C ends the watch whenever it comes, even while no run listens
    // for it: here while the changed plugin is rebuilt (`build-py` takes
    // seconds; the change is seen within half a second).
    std::fs::write(&module, source.replace("Hello", "Hi")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    unsafe { libc::kill(watching.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let status = loop {
        if let Some(status) = watching.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = watching.kill();
            panic!("Ctrl-C did not end the watch");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "Ctrl-C ends the watch: {status}");
}
