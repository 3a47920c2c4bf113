//! Shared helpers of the end-to-end tests: build the plugins once, write
//! chain files into temporary directories, and run the real binary.

#![allow(dead_code)]

pub mod browser;
pub mod fleet;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use tempfile::TempDir;

/// The `wfhost` binary, which cargo builds for every test but the
/// library's (with the `cli` feature).
fn binary() -> &'static str {
    match option_env!("CARGO_BIN_EXE_wfhost") {
        Some(path) => path,
        None => panic!("no wfhost binary: it is built with the `cli` feature"),
    }
}

/// The `wfhost` binary under test, keeping compiled plugins in the target
/// directory rather than the user's cache.
pub fn wfhost() -> Command {
    let mut command = Command::new(binary());
    // The host's own log is the tests' to ask for.
    command.env_remove("RUST_LOG");
    command.env(
        "WFHOST_CACHE_DIR",
        host_target_dir().join("component-cache"),
    );
    command
}

/// The target directory the host was built in: where the test itself
/// runs from is `<target>/<profile>/deps/`.
pub fn host_target_dir() -> PathBuf {
    std::env::current_exe()
        .expect("the test's own path")
        .ancestors()
        .nth(3)
        .expect("a test runs from <target>/<profile>/deps/")
        .to_path_buf()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds every plugin for wasm32-wasip2 (once per test binary) and returns
/// the directory holding the components. They go to a target directory of
/// their own beside the host's, so the build never waits on cargo's lock
/// of the directory the tests run from.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target_dir = host_target_dir().join("plugins-wasm");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(repo_root().join("plugins/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("running cargo to build the plugins");
        assert!(status.success(), "building the plugins failed");
        target_dir.join("wasm32-wasip2/release")
    })
}

/// The component componentize-py makes of `tests/fixtures/python/NAME.py`
/// (a module written directly against the WIT world), or `None`, saying
/// the test is skipped, where componentize-py is missing (in CI, which
/// installs it, it must be there).
pub fn python_component(name: &str) -> Option<PathBuf> {
    let source = repo_root().join(format!("tests/fixtures/python/{name}.py"));
    // Through python3, so that it runs wherever pip put its script.
    let mut command = Command::new("python3");
    command
        .args([
            "-c",
            "import sys, componentize_py; sys.argv[0] = 'componentize-py'; \
             sys.exit(componentize_py.script())",
            "-d",
        ])
        .arg(repo_root().join("wit"))
        .args(["-w", "plugin", "componentize", name])
        .current_dir(source.parent().unwrap());
    build_python(&source, &[repo_root().join("wit/task.wit")], name, command)
}

/// The component `wfhost build-py` makes of the Python tasks module at
/// `source` (relative to the repository) with this checkout's Python SDK,
/// or `None` where componentize-py is missing, as for [`python_component`].
pub fn sdk_component(source: &str) -> Option<PathBuf> {
    let source = repo_root().join(source);
    let name = source.file_stem().unwrap().to_str().unwrap().to_string();
    let sdk = repo_root().join("guest-sdk/python");
    let sdk_files: Vec<PathBuf> = std::fs::read_dir(sdk.join("wfhost_task"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
        .chain([repo_root().join("wit/task.wit")])
        .collect();
    let mut command = Command::new(binary());
    command
        .arg("build-py")
        .arg(&source)
        .env("PYTHONPATH", &sdk)
        .env_remove("WFHOST_PYTHON");
    build_python(&source, &sdk_files, &name, command)
}

/// Runs `command`, which writes the component of `source` to the path
/// given after `-o` (appended here), unless a component of the same
/// `source` and `inputs` (by content, so that a fresh clone reuses what a
/// kept target directory holds) was built before; one build at a time, so
/// tests of one binary that need the same component build it once.
fn build_python(
    source: &Path,
    inputs: &[PathBuf],
    name: &str,
    mut command: Command,
) -> Option<PathBuf> {
    use sha2::{Digest, Sha256};
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut hasher = Sha256::new();
    for input in [source.to_path_buf()].iter().chain(inputs) {
        hasher.update(input.file_name().unwrap().as_encoded_bytes());
        hasher.update(std::fs::read(input).unwrap());
    }
    let key: String = hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // `<name>/<key>/<name>.wasm`: the file keeps the plugin's name.
    let builds = host_target_dir().join("python-components").join(name);
    let out_dir = builds.join(&key);
    let out = out_dir.join(format!("{name}.wasm"));
    if out.exists() {
        return Some(out);
    }
    std::fs::create_dir_all(&out_dir).unwrap();
    // Written beside, then renamed: a build cut off leaves no component.
    let partial = out_dir.join(format!("{name}.wasm.partial"));
    let built = command.arg("-o").arg(&partial).output();
    let (succeeded, stderr) = match built {
        Ok(output) => (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        Err(err) => (
            false,
            format!("No module named 'componentize_py' (python3: {err})"),
        ),
    };
    if succeeded {
        std::fs::rename(&partial, &out).unwrap();
        // The builds of older contents are not wanted again.
        for entry in std::fs::read_dir(&builds).unwrap().flatten() {
            if entry.path() != out_dir {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        return Some(out);
    }
    if stderr.contains("No module named 'componentize_py'")
        || stderr.contains("componentize-py is not installed")
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have componentize-py (.ci/run installs it with pip)"
        );
        println!("skipped: no componentize-py to build {}", source.display());
        return None;
    }
    panic!("building {} failed: {stderr}", source.display());
}

/// `examples/NAME/chain.json`, pointed at a service on `port` (in place of
/// the file's `127.0.0.1:8000`) and at the plugins these tests built.
pub fn example_chain(name: &str, port: u16) -> Value {
    let text = std::fs::read_to_string(repo_root().join(format!("examples/{name}/chain.json")))
        .unwrap()
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    let mut chain: Value = serde_json::from_str(&text).unwrap();
    for entry in chain["plugins"].as_object_mut().unwrap().values_mut() {
        let file = Path::new(entry["path"].as_str().unwrap())
            .file_stem()
            .unwrap();
        entry["path"] = json!(plugin(file.to_str().unwrap()));
    }
    chain
}

/// The component of plugin crate `name`.
pub fn plugin(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}

/// Plugin crate `name`, loaded in `runtime` under that name.
pub async fn load(runtime: &wfhost::runtime::Runtime, name: &str) -> wfhost::runtime::Plugin {
    runtime
        .load_plugin(name, &plugin(name), None)
        .await
        .unwrap_or_else(|err| panic!("loading {name}: {err}"))
}

/// An invocation of `plugin.task` as step `step` of a workflow.
pub fn invocation(
    plugin: &str,
    task: &str,
    step: usize,
    args: &Value,
) -> wfhost::runtime::Invocation {
    wfhost::runtime::Invocation {
        workflow_id: "in-process".into(),
        step_id: step.to_string(),
        attempt: 1,
        tenant: "default".into(),
        plugin: plugin.into(),
        task: task.into(),
        args: args.to_string(),
        kwargs: "{}".into(),
    }
}

/// Resident set size of this process, in KiB.
pub fn rss_kib() -> u64 {
    proc_status_kib("VmRSS")
}

/// A size field of `/proc/self/status` (`VmRSS`, `VmHWM` …), in KiB.
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// A chain file in a directory of its own, beside its own state database.
pub struct ChainFile {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl ChainFile {
    /// The state database the file's runs use.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("state.redb")
    }

    /// `wfhost` with this chain's database.
    pub fn wfhost(&self) -> Command {
        wfhost_in(self.dir.path())
    }

    /// Runs `wfhost` with `args` against this chain's database.
    pub fn command(&self, args: &[&str]) -> Run {
        Run::from(self.wfhost().args(args).output().expect("running wfhost"))
    }
}

/// Asserts that `wfhost check` finds the chain's database whole, once
/// there is one.
pub fn assert_whole(chain: &ChainFile) {
    if !chain.db().exists() {
        return;
    }
    let check = chain.command(&["check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.ends_with("clean\n"), "{}", check.stdout);
}

/// Writes `document` as `chain.json` in a fresh directory.
pub fn chain_file(document: &Value) -> ChainFile {
    chain_text(&serde_json::to_string_pretty(document).unwrap())
}

/// Writes `text` as `chain.json` in a fresh directory. With
/// `WFHOST_RECORD_CANVASES=FILE`, each document is also appended to FILE,
/// one per line: how tests/fixtures/suite_canvases.json is gathered from
/// the suite's own canvases (tests/fixtures/suite_canvases.py).
pub fn chain_text(text: &str) -> ChainFile {
    if let Some(record) = std::env::var_os("WFHOST_RECORD_CANVASES")
        && let Ok(document) = serde_json::from_str::<Value>(text)
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(record)
            .unwrap();
        // One write per line: tests that run at once append whole lines.
        file.write_all(format!("{document}\n").as_bytes()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.json");
    std::fs::write(&path, text).unwrap();
    ChainFile { dir, path }
}

/// The ETL example (`examples/etl`) as a chain file in a directory of its
/// own, with the example's data and an `out` directory beside it, its
/// plugin the one these tests built.
pub fn etl_example() -> ChainFile {
    let example = repo_root().join("examples/etl");
    let text = std::fs::read_to_string(example.join("chain.json")).unwrap();
    let mut document: Value = serde_json::from_str(&text).unwrap();
    document["plugins"]["etl"]["path"] = json!(plugin("etl"));
    let chain = chain_file(&document);
    let data = chain.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(chain.dir.path().join("out")).unwrap();
    std::fs::copy(example.join("data/sales.csv"), data.join("sales.csv")).unwrap();
    chain
}

/// Numbers no `f64` or 64-bit integer holds exactly, and decimals in the
/// forms people write them: each must come out of a workflow as written.
pub const EXACT_NUMBERS: &[&str] = &[
    "18446744073709551616",
    "-18446744073709551617",
    "123456789012345678901234567890",
    "1606938044258990275541962092341162602522202993782792835301376",
    "-1606938044258990275541962092341162602522202993782792835301376",
    "0.1",
    "1e300",
    "3.14159265358979323846264338327950288",
];

/// `text` as a JSON number, exactly as written.
pub fn exact(text: &str) -> Value {
    let number: Value = serde_json::from_str(text).unwrap();
    assert!(number.is_number(), "{text} is not a number");
    number
}

/// Checks that `found` is the list of [`EXACT_NUMBERS`], each with every
/// digit as written (an exponent is written with its sign, `1e+300`, as
/// serde_json and Python write it).
pub fn assert_exact_numbers(found: &Value, context: &str) {
    let texts: Vec<String> = found
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {found}\n{context}"))
        .iter()
        .map(Value::to_string)
        .collect();
    let written: Vec<String> = EXACT_NUMBERS
        .iter()
        .map(|text| exact(text).to_string())
        .collect();
    assert_eq!(texts, written, "{context}");
}

/// Whether `stderr` is `wfhost run` refusing a workflow for its types (an
/// argument, or a result flowing to the next step, that cannot fit) before
/// running it: what a driver that checks no types (Celery's worker, the
/// fleet) finds only when the step fails.
pub fn is_type_refusal(stderr: &str) -> bool {
    stderr.contains("cannot run:")
        && (stderr.contains("would get the result of")
            || (stderr.contains(": expected ") && stderr.contains(", got ")))
}

/// The `plugins` object naming math and testkit.
pub fn standard_plugins() -> Value {
    json!({"math": plugin("math"), "testkit": plugin("testkit")})
}

/// Fails the test, showing the command's stderr, unless `output` is that
/// of a command that succeeded.
#[track_caller]
pub fn assert_succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// stdout parsed as JSON lines (one document a line), as an array.
    pub fn json_lines(&self) -> Value {
        let lines = self.stdout.lines().map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| {
                panic!("not a JSON line ({err}): {line}\nstderr: {}", self.stderr)
            })
        });
        Value::Array(lines.collect())
    }

    /// The step of a `--json` report with this id.
    pub fn step(&self, id: &str) -> Value {
        step_of(&self.json(), id)
    }
}

/// The step with id `id` of a workflow's report (as `--json` and the API
/// give it).
pub fn step_of(report: &Value, id: &str) -> Value {
    step_of_if(report, id).unwrap_or_else(|| panic!("no step {id} in {report}"))
}

/// The step with id `id` of a report, if it has one.
pub fn step_of_if(report: &Value, id: &str) -> Option<Value> {
    report["steps"]
        .as_array()?
        .iter()
        .find(|step| step["id"] == id)
        .cloned()
}

/// `wfhost` over the state database in `dir`.
pub fn wfhost_in(dir: &Path) -> Command {
    let mut command = wfhost();
    command.env("WFHOST_DB", dir.join("state.redb"));
    command
}

/// Starts `command` with its output piped.
pub fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wfhost")
}

/// Starts `wfhost` with `args` against `chain`'s database, its output
/// piped.
pub fn start(chain: &ChainFile, args: &[&str]) -> Child {
    let mut command = chain.wfhost();
    command.args(args);
    spawn(command)
}

/// A chain of `steps` `math.add` steps that counts from 1 to `steps`.
pub fn counting_chain(steps: usize) -> ChainFile {
    let mut workflow = vec![json!({"task": "math.add", "args": [0, 1]})];
    workflow.extend(std::iter::repeat_n(
        json!({"task": "math.add", "args": [1]}),
        steps - 1,
    ));
    chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}))
}

/// Kills `child` with SIGKILL (no chance to clean up) and reaps it.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the binary with `args`.
pub fn run_args(args: &[&str]) -> Run {
    Run::from(wfhost().args(args).output().expect("running wfhost"))
}

/// Runs `wfhost run` on a chain file with extra arguments.
pub fn run_file(chain: &ChainFile, extra: &[&str]) -> Run {
    let output = chain
        .wfhost()
        .arg("run")
        .arg(&chain.path)
        .args(extra)
        .output()
        .expect("running wfhost");
    Run::from(output)
}

/// Runs `workflow` with the standard plugins and `extra` top-level keys.
pub fn run_workflow(workflow: Value, extra: &[&str]) -> Run {
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    run_file(&chain, extra)
}

/// Runs a whole chain document (which names its own plugins).
pub fn run_document(document: Value, extra: &[&str]) -> Run {
    run_file(&chain_file(&document), extra)
}

/// Whether `python3` runs here, for the tests whose local services are
/// Python scripts. In CI, which installs it, it must; elsewhere a test
/// without it says it was skipped.
pub fn python3_runs(test: &str) -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must have python3"
    );
    if !found {
        println!("skipped {test}: no python3 for its local services");
    }
    found
}

/// A small real service (a Python script that prints `listening on PORT`)
/// on 127.0.0.1, stopped by its PID when dropped.
pub struct LocalService {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl LocalService {
    /// Starts `python3 script args…` and waits for its port.
    pub fn start(script: &Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the service's first line");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("{} said {line:?}", script.display()));
        LocalService { child, port }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The body of a GET of `path`, read with a plain TCP client.
    pub fn get(&self, path: &str) -> String {
        http_get(self.port, path).1
    }
}

impl Drop for LocalService {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Whether Celery 5.7.0 can be imported by `python3` here. In CI, which
/// installs it, it must be.
pub fn celery_is_installed() -> bool {
    python_can(
        "import celery, sys; sys.exit(celery.__version__ != '5.7.0')",
        "Celery 5.7.0",
    )
}

/// Whether `python3 -c code` succeeds; in CI, which installs the Python
/// packages the tests use (`.ci/run`), it must (`what` says what is missing).
fn python_can(code: &str, what: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", code])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must have {what} for python3 (.ci/run installs it with pip)"
    );
    found
}

/// The status line and the body of a GET of `path` from 127.0.0.1:`port`,
/// with a plain TCP client.
pub fn http_get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {response}"));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// A child process, killed when dropped.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

/// Whether `python3` can import `module` (in CI it must).
pub fn python_module_is_installed(module: &str) -> bool {
    python_can(&format!("import {module}"), &format!("the module {module}"))
}

/// A port free on 127.0.0.1 now (the OS's pick).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Celery signature as `json.dumps` writes one: `task` called with
/// `args`, with `options`, immutable (`.si()`) or not (`.s()`).
pub fn celery_signature(task: &str, args: Value, options: Value, immutable: bool) -> Value {
    json!({"task": task, "args": args, "kwargs": {}, "options": options,
           "subtask_type": null, "immutable": immutable})
}

/// A Celery chord of `header` (a list of signatures) and `body`, as
/// `json.dumps` writes one.
pub fn celery_chord(header: Value, body: Value) -> Value {
    json!({"task": "celery.chord", "args": [], "options": {}, "subtask_type": "chord",
           "immutable": false, "kwargs": {"kwargs": {}, "header": header, "body": body}})
}

/// `count` random canvases that the real Celery library makes with `seed`
/// (tests/fixtures/celery/differential.py), each with what Celery computes
/// for it: `{"workflow", "expected" | "fails", "callbacks"}`.
pub fn random_celery_canvases(count: usize, seed: &str) -> Vec<Value> {
    let made = Command::new("python3")
        .arg(repo_root().join("tests/fixtures/celery/differential.py"))
        .args([&count.to_string(), seed])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8_lossy(&made.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
