//! `wfhost serve` end to end, on 127.0.0.1: tenants authenticate with
//! their own keys, never reach each other's workflows, use only their own
//! plugins within their own ceilings, and a killed service resumes its
//! workflows when it starts again.
//!
//! One file, over 500 lines: every test binary links the whole host
//! statically, and the service's tests share a server harness; splitting
//! them would add a link to every CI run for no new coverage.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wfhost::service::key_hash;

const KEY_A: &str = "key-of-tenant-a";
const KEY_B: &str = "key-of-tenant-b";
const KEY_C: &str = "key-of-tenant-c";
const ADMIN_KEY: &str = "key-of-the-operator";

fn file_sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// A policy: tenant `a` may use math and testkit, with up to 1,000
/// attempts of a workflow at once; tenant `b` only math, with at most 10^7
/// fuel per attempt; tenant `c` only testkit, with 10^7 fuel per workflow.
fn write_policy(dir: &Path) -> PathBuf {
    let entry = |name: &str| {
        let path = plugin(name);
        format!(
            "{name} = {{ path = {:?}, sha256 = \"{}\" }}\n",
            path.display().to_string(),
            file_sha256(&path)
        )
    };
    let policy = format!(
        "[admin]\nkey_sha256 = \"{}\"\n[tenants.a]\nkey_sha256 = \"{}\"\nmax_running_steps = 1000\n[tenants.a.plugins]\n{}{}\
         [tenants.b]\nkey_sha256 = \"{}\"\nmax_fuel = 10000000\nmax_schedules = 1\nmin_schedule_interval = 60\n[tenants.b.plugins]\n{}\
         [tenants.c]\nkey_sha256 = \"{}\"\nmax_workflow_fuel = 10000000\n[tenants.c.plugins]\n{}",
        key_hash(ADMIN_KEY),
        key_hash(KEY_A),
        entry("math"),
        entry("testkit"),
        key_hash(KEY_B),
        entry("math"),
        key_hash(KEY_C),
        entry("testkit"),
    );
    let file = dir.join("tenants.toml");
    std::fs::write(&file, policy).unwrap();
    file
}

/// A running `wfhost serve`, killed when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
    /// Every line it wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path, policy: &Path) -> Server {
        Self::start_with(dir, policy, &[], None)
    }

    /// A service started with `extra` arguments and, if given, at most
    /// `files` open file descriptors.
    fn start_with(dir: &Path, policy: &Path, extra: &[&str], files: Option<u64>) -> Server {
        let mut command = wfhost_in(dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--tenants"])
            .arg(policy)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(files) = files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            // SAFETY: setrlimit is async-signal-safe, and nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        {
            use std::os::unix::process::CommandExt;
            // A file-size limit (the full disk of a test) makes a write
            // fail with EFBIG instead of killing the service.
            // SAFETY: signal is async-signal-safe, and nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (found, address) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                if let Some(rest) = line.strip_prefix("wfhost serve: listening on http://") {
                    let addr = rest.split(';').next().unwrap_or_default().to_string();
                    let _ = found.send(addr);
                } else {
                    // Shown with a failing test's output.
                    eprintln!("service: {line}");
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .expect("the service says where it listens")
            .parse()
            .unwrap();
        Server {
            child,
            address,
            log,
        }
    }

    /// Whether a line of its log contains every one of `words`.
    /// Whether a line of the log holds every one of `words`, within a few
    /// seconds: a request's line is written once its answer is sent, and
    /// the log is read on a thread of its own.
    fn logged(&self, words: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|line| words.iter().all(|word| line.contains(word)));
            if found || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request; returns the status and the JSON body.
    fn request(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let (status, _, body) = self.raw_request(method, path, key, body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// One request; returns the status, the head and the body as sent
    /// (chunked bodies with their chunk sizes).
    fn raw_request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let auth = key.map_or(String::new(), |key| {
            format!("Authorization: Bearer {key}\r\n")
        });
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    /// The samples of `/metrics` for `key`: `name{labels}` to value.
    fn metrics(&self, key: &str) -> std::collections::BTreeMap<String, f64> {
        let (status, head, body) = self.raw_request("GET", "/metrics", Some(key), "");
        assert_eq!(status, 200, "{body}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        body.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (sample, value) = line.rsplit_once(' ').unwrap();
                (sample.to_string(), value.parse().unwrap())
            })
            .collect()
    }

    fn submit(&self, key: &str, workflow: &Value) -> (u16, Value) {
        self.request("POST", "/v1/workflows", Some(key), &workflow.to_string())
    }

    fn get(&self, key: &str, path: &str) -> (u16, Value) {
        self.request("GET", path, Some(key), "")
    }

    /// Polls workflow `id` until it is no longer running.
    fn wait(&self, key: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, report) = self.get(key, &format!("/v1/workflows/{id}"));
            assert_eq!(status, 200, "{report}");
            if report["status"] != "running" {
                return report;
            }
            assert!(Instant::now() < deadline, "{id} did not finish: {report}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls workflow `id` until at least `steps` of its steps are on
    /// record; returns how many are.
    fn wait_for_steps(&self, key: &str, id: &str, steps: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, report) = self.get(key, &format!("/v1/workflows/{id}"));
            let recorded = report["steps"].as_array().map_or(0, Vec::len);
            if recorded >= steps {
                return recorded;
            }
            assert!(
                Instant::now() < deadline,
                "{id} makes no progress: {report}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the process to end; returns whether it
    /// ended well.
    fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap().success()
    }

    fn kill(mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Runs tenant b's two-step chain to its end; how long it took.
fn quick_chain_of_b(server: &Server) -> Duration {
    let started = Instant::now();
    let (status, _) = server.submit(KEY_B, &json!({"id": "quick", "workflow": add_chain()}));
    assert_eq!(status, 202);
    let quick = server.wait(KEY_B, "quick");
    assert_eq!(quick["result"], 8);
    started.elapsed()
}

fn add_chain() -> Value {
    json!([
        {"task": "math.add", "args": [2, 2]},
        {"task": "math.add", "args": [4]},
    ])
}

#[test]
fn tenants_need_their_key_and_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let workflow = json!({"id": "order-1", "workflow": add_chain()});

    for key in [None, Some("not-a-key")] {
        let (status, body) = server.request("POST", "/v1/workflows", key, &workflow.to_string());
        assert_eq!(
            (status, &body["error"]["kind"]),
            (401, &json!("unauthorized"))
        );
        assert_eq!(server.request("GET", "/v1/workflows", key, "").0, 401);
    }

    let (status, row) = server.submit(KEY_A, &workflow);
    assert_eq!(status, 202, "{row}");
    assert_eq!(
        (row["id"].as_str(), row["tenant"].as_str()),
        (Some("order-1"), Some("a"))
    );
    let report = server.wait(KEY_A, "order-1");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["result"], 8);
    assert_eq!(report["steps"].as_array().unwrap().len(), 2);
    // The same id again is the same workflow, not a second run.
    let (status, again) = server.submit(KEY_A, &workflow);
    assert_eq!((status, &again["status"]), (200, &json!("succeeded")));

    // Tenant b cannot tell a's workflow from one that does not exist.
    let (status, theirs) = server.get(KEY_B, "/v1/workflows/order-1");
    let (missing_status, missing) = server.get(KEY_B, "/v1/workflows/no-such-id");
    assert_eq!((status, missing_status), (404, 404));
    assert_eq!(theirs["error"]["kind"], missing["error"]["kind"]);
    assert_eq!(theirs["error"]["message"], "no workflow `order-1`");
    let (_, listed) = server.get(KEY_B, "/v1/workflows");
    assert_eq!(listed, json!([]));
    let (_, listed) = server.get(KEY_A, "/v1/workflows?status=succeeded");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // b's own workflow with the same id is b's, apart from a's.
    let (status, row) = server.submit(KEY_B, &workflow);
    assert_eq!((status, row["tenant"].as_str()), (202, Some("b")));
    assert_eq!(server.wait(KEY_B, "order-1")["result"], 8);
}

#[test]
fn plugins_and_limits_outside_the_policy_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let refused = |key: &str, workflow: Value, needle: &str| {
        let (status, body) = server.submit(key, &workflow);
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["kind"], "invalid_input");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "expected {needle:?} in {message}");
    };
    // b may not use testkit, even naming a file of its own.
    refused(
        KEY_B,
        json!({"plugins": {"testkit": "/tmp/anything.wasm"}, "workflow": [{"task": "testkit.echo", "args": [1]}]}),
        "plugin `testkit` is not one tenant `b` may use",
    );
    // Nor ask for more fuel than its ceiling, nor for none.
    refused(
        KEY_B,
        json!({"workflow": [{"task": "math.add", "args": [1, 2], "options": {"fuel": 20000000}}]}),
        "fuel",
    );
    refused(
        KEY_B,
        json!({"defaults": {"fuel": null}, "workflow": [{"task": "math.add", "args": [1, 2]}]}),
        "fuel",
    );
    refused(
        KEY_B,
        json!({"tenant": "a", "workflow": add_chain()}),
        "tenant `a`",
    );
    refused(
        KEY_A,
        json!({"workflow": [{"task": "math.nope"}]}),
        "no task `nope`",
    );
    let (status, body) = server.request("POST", "/v1/workflows", Some(KEY_A), "{not json");
    assert_eq!(
        (status, &body["error"]["kind"]),
        (400, &json!("invalid_input"))
    );
    // Within its policy, b's workflow runs.
    let (status, _) = server.submit(KEY_B, &json!({"id": "fine", "workflow": add_chain()}));
    assert_eq!(status, 202);
    assert_eq!(server.wait(KEY_B, "fine")["result"], 8);
}

/// Grants come from the tenant policy (DESIGN §10): a submission gets them
/// whole when it names none, may narrow them, and is refused (400, naming
/// the grant) when it asks for more; its directories lie under the
/// tenant's root.
#[test]
fn a_tenants_grants_come_from_its_policy_and_a_submission_may_only_narrow_them() {
    if !common::python3_runs(
        "a_tenants_grants_come_from_its_policy_and_a_submission_may_only_narrow_them",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let web = LocalService::start(&repo_root().join("tests/fixtures/http/server.py"), &[]);
    let testkit = plugin("testkit");
    std::fs::create_dir_all(dir.path().join("d-root/out")).unwrap();
    let policy = format!(
        "[tenants.d]\nkey_sha256 = \"{}\"\nroot = \"d-root\"\n\
         [tenants.d.plugins.testkit]\npath = {:?}\nsha256 = \"{}\"\n\
         grants = {{ http = [\"{}\"], dirs = {{ \"/out\" = {{ path = \"out\", write = true }} }} }}\n",
        key_hash(KEY_A),
        testkit.display().to_string(),
        file_sha256(&testkit),
        web.url(""),
    );
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, policy).unwrap();
    let server = Server::start(dir.path(), &file);
    let hello = json!({"task": "testkit.http_get", "args": [web.url("/hello")]});
    let write = json!({"task": "testkit.write_file", "args": ["/out/d.txt", "by d"]});

    let (status, body) = server.submit(
        KEY_A,
        &json!({"id": "whole", "workflow": {"group": [hello, write]}}),
    );
    assert_eq!(status, 202, "{body}");
    let report = server.wait(KEY_A, "whole");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["result"][0]["body"], "hello");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("d-root/out/d.txt")).unwrap(),
        "by d"
    );

    let other_port = web.port.checked_add(1).unwrap_or(web.port - 1);
    for (grants, needle) in [
        (
            json!({"http": [format!("http://127.0.0.1:{other_port}")]}),
            "grants: reaches past tenant `d`'s policy: http",
        ),
        (json!({"dirs": {"/out": "../elsewhere"}}), "dirs./out"),
        (json!({"dirs": {"/etc": "out"}}), "dirs./etc is not among"),
        (json!({"secrets": {"k": {"env": "HOME"}}}), "secrets.k"),
    ] {
        let asked = json!({"plugins": {"testkit": {"grants": grants}}, "workflow": [hello]});
        let (status, body) = server.submit(KEY_A, &asked);
        assert_eq!(status, 400, "{grants}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{grants}: expected {needle:?} in {message}"
        );
        assert!(message.contains("$.plugins.testkit.grants"), "{message}");
    }

    // Narrowed to the directory alone, the same task is denied HTTP.
    let narrowed = json!({
        "id": "narrowed",
        "plugins": {"testkit": {"grants": {"dirs": {"/out": {"path": "out", "write": true}}}}},
        "workflow": [hello],
    });
    let (status, body) = server.submit(KEY_A, &narrowed);
    assert_eq!(status, 202, "{body}");
    let report = server.wait(KEY_A, "narrowed");
    assert_eq!(report["status"], "failed", "{report}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("has no http grant"), "{message}");
}

/// A symlink cannot lead a tenant's directory grant out of its root
/// (security probe, finding 1): not one placed in the tree before, not one
/// a task tries to make, and not one swapped into a granted path while a
/// workflow runs.
#[test]
fn a_symlink_cannot_lead_a_tenants_grant_out_of_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let testkit = plugin("testkit");
    let root = dir.path().join("d-root");
    std::fs::create_dir_all(root.join("out/sub")).unwrap();
    std::fs::create_dir_all(root.join("out/inside")).unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    std::fs::write(dir.path().join("elsewhere/key.txt"), "not the tenant's").unwrap();
    // Placed before: one absolute, one relative, one that stays inside.
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("out/placed")).unwrap();
    std::os::unix::fs::symlink("../..", root.join("out/up")).unwrap();
    std::os::unix::fs::symlink("inside", root.join("out/alias")).unwrap();
    let policy = format!(
        "[tenants.d]\nkey_sha256 = \"{}\"\nroot = \"d-root\"\n\
         [tenants.d.plugins.testkit]\npath = {:?}\nsha256 = \"{}\"\n\
         grants = {{ dirs = {{ \"/out\" = {{ path = \"out\", write = true }} }} }}\n",
        key_hash(KEY_A),
        testkit.display().to_string(),
        file_sha256(&testkit),
    );
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, policy).unwrap();
    let server = Server::start(dir.path(), &file);
    let granting = |path: &str| json!({"dirs": {"/out": {"path": path, "write": true}}});
    let list = json!({"task": "testkit.list_dir", "args": ["/out"]});

    for path in ["out/placed", "out/up", "out/placed/.", "out/up/elsewhere"] {
        let asked = json!({"plugins": {"testkit": {"grants": granting(path)}}, "workflow": [list]});
        let (status, body) = server.submit(KEY_A, &asked);
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("dirs./out") && message.contains("through a symlink"),
            "{path}: {message}"
        );
    }
    // A symlink that stays inside grants the directory it leads to.
    std::fs::write(root.join("out/inside/note.txt"), "in").unwrap();
    let aliased = json!({
        "id": "aliased",
        "plugins": {"testkit": {"grants": granting("out/alias")}},
        "workflow": [list],
    });
    assert_eq!(server.submit(KEY_A, &aliased).0, 202);
    let report = server.wait(KEY_A, "aliased");
    assert_eq!(report["result"], json!(["note.txt"]), "{report}");

    // Made by a task: refused, so the next submission has nothing to use.
    let (status, body) = server.submit(
        KEY_A,
        &json!({"id": "maker", "workflow": [
            {"task": "testkit.symlink", "args": ["../../..", "/out/esc"]}
        ]}),
    );
    assert_eq!(status, 202, "{body}");
    let report = server.wait(KEY_A, "maker");
    assert_eq!(report["status"], "failed", "{report}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("grants.dirs"), "{message}");
    assert!(std::fs::symlink_metadata(root.join("out/esc")).is_err());

    // Swapped in after the check, while the workflow runs: the next
    // attempt's open refuses the symlink instead of following it.
    let swapped = json!({
        "id": "swapped",
        "plugins": {"testkit": {"grants": granting("out/sub")}},
        "workflow": [
            {"task": "testkit.sleep", "args": [1500]},
            {"task": "testkit.list_dir", "args": ["/out"], "immutable": true},
        ],
    });
    let (status, body) = server.submit(KEY_A, &swapped);
    assert_eq!(status, 202, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(root.join("out/sub"), root.join("out/sub-moved")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("out/sub")).unwrap();
    let report = server.wait(KEY_A, "swapped");
    assert_eq!(report["status"], "failed", "{report}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("dirs./out") && message.contains("is a symlink"),
        "{message}"
    );
}

/// A tenant's records may take at most `max_stored_bytes` of the state
/// file (security probe, finding 4): past it, its submissions are refused
/// with 507 until a purge frees room; another tenant is not held back.
#[test]
fn a_tenant_past_its_storage_quota_is_refused_until_room_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let math = plugin("math");
    let policy = format!(
        "[tenants.small]\nkey_sha256 = \"{}\"\nmax_stored_bytes = 1000\n\
         [tenants.small.plugins]\nmath = {{ path = {:?}, sha256 = \"{}\" }}\n\
         [tenants.other]\nkey_sha256 = \"{}\"\n\
         [tenants.other.plugins]\nmath = {{ path = {:?}, sha256 = \"{}\" }}\n",
        key_hash(KEY_A),
        math.display().to_string(),
        file_sha256(&math),
        key_hash(KEY_B),
        math.display().to_string(),
        file_sha256(&math),
    );
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, policy).unwrap();
    let server = Server::start(dir.path(), &file);
    let add = |id: &str| json!({"id": id, "workflow": [{"task": "math.add", "args": [1, 2]}]});
    assert_eq!(server.submit(KEY_A, &add("first")).0, 202);
    assert_eq!(server.wait(KEY_A, "first")["result"], 3);
    // Its count stands for a second.
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = server.submit(KEY_A, &add("second"));
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["kind"], "storage_full", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_stored_bytes 1000"), "{message}");
    assert_eq!(server.submit(KEY_B, &add("elsewhere")).0, 202);

    let purged = wfhost_in(dir.path())
        .args(["rm", "first", "--tenant", "small"])
        .output()
        .unwrap();
    assert!(purged.status.success(), "{purged:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.submit(KEY_A, &add("third")).0, 202);
}

/// The state file is its owner's alone, and a lock over it that is no
/// wfhost lease is the service's trouble, said by `/ready` and to each
/// submission with 503 naming the lock, not a 409 that blames the client
/// (security probe, finding 3).
#[test]
fn the_state_file_is_private_and_a_foreign_lock_is_named_by_ready() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "state.redb is {mode:o}");
    assert_eq!(server.request("GET", "/ready", None, "").0, 200);

    // Any reader of the file may lock all of it, as another user could
    // when the file was world-readable.
    let reader = std::fs::File::open(&state).unwrap();
    let mut whole: libc::flock = unsafe { std::mem::zeroed() };
    whole.l_type = libc::F_RDLCK as libc::c_short;
    whole.l_whence = libc::SEEK_SET as libc::c_short;
    let locked = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&reader),
            libc::F_OFD_SETLK,
            &mut whole as *mut libc::flock,
        )
    };
    assert_eq!(locked, 0, "{}", std::io::Error::last_os_error());
    let (status, body) = server.request("GET", "/ready", None, "");
    assert_eq!(status, 503, "{body}");
    let said = body["error"]["message"].as_str().unwrap();
    assert!(said.contains("no wfhost lease"), "{said}");
    let workflow = json!({"id": "blocked", "workflow": [{"task": "math.add", "args": [1, 2]}]});
    let (status, body) = server.submit(KEY_A, &workflow);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");

    drop(reader);
    assert_eq!(server.request("GET", "/ready", None, "").0, 200);
    assert_eq!(server.submit(KEY_A, &workflow).0, 202);
    assert_eq!(server.wait(KEY_A, "blocked")["result"], 3);
}

/// Sets the soft limit on the size of files `pid` may write (its hard
/// limit stays), as a disk that is full, or has room again.
fn limit_file_size(pid: u32, bytes: u64) {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads and writes only the two structs passed.
    unsafe {
        assert_eq!(
            libc::prlimit(
                pid as i32,
                libc::RLIMIT_FSIZE,
                std::ptr::null(),
                &mut current
            ),
            0
        );
        let wanted = libc::rlimit {
            rlim_cur: bytes.min(current.rlim_max),
            rlim_max: current.rlim_max,
        };
        assert_eq!(
            libc::prlimit(
                pid as i32,
                libc::RLIMIT_FSIZE,
                &wanted,
                std::ptr::null_mut()
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// A full disk fails what needs room; once there is room again, new
/// workflows run without a restart (issue 15, point 6). The disk is the
/// service's file-size limit, lowered and raised from outside.
#[test]
fn once_a_full_disk_has_room_again_new_workflows_run_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let (status, _) = server.submit(KEY_A, &json!({"id": "first", "workflow": add_chain()}));
    assert_eq!(status, 202);
    assert_eq!(server.wait(KEY_A, "first")["result"], 8);

    let size = std::fs::metadata(dir.path().join("state.redb"))
        .unwrap()
        .len();
    limit_file_size(server.child.id(), size);
    let mut failed = 0;
    for n in 0..40 {
        let big = json!({"id": format!("big-{n}"), "workflow": [
            {"task": "testkit.big_output", "args": [1_000_000]}
        ]});
        let (status, body) = server.submit(KEY_A, &big);
        if status != 202 {
            assert_eq!(status, 500, "{body}");
            failed += 1;
            break;
        }
        // While the disk is full, even reading the workflow back may fail.
        let path = format!("/v1/workflows/big-{n}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (status, report) = loop {
            let (status, report) = server.get(KEY_A, &path);
            if status != 200 || report["status"] != "running" {
                break (status, report);
            }
            assert!(Instant::now() < deadline, "big-{n} did not end");
            std::thread::sleep(Duration::from_millis(20));
        };
        if status != 200 || report["status"] != "succeeded" {
            failed += 1;
            break;
        }
    }
    assert!(failed > 0, "the limit never made a write fail");

    limit_file_size(server.child.id(), u64::MAX);
    let (status, body) = server.submit(KEY_A, &json!({"id": "after", "workflow": add_chain()}));
    assert_eq!(status, 202, "{body}");
    let report = server.wait(KEY_A, "after");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["result"], 8);
}

/// Numbers of any size and decimals submitted through the API come back
/// exactly — in the result, in each step's record, and from the store
/// when another process reads them.
#[test]
fn the_api_keeps_numbers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let numbers: Vec<Value> = EXACT_NUMBERS.iter().map(|text| exact(text)).collect();
    let workflow = json!({"id": "exact", "workflow": [
        {"task": "testkit.echo", "args": [numbers]},
        {"task": "testkit.echo"},
    ]});
    let (status, answer) = server.submit(KEY_A, &workflow);
    assert_eq!(status, 202, "{answer}");
    let report = server.wait(KEY_A, "exact");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_exact_numbers(&report["result"], &report.to_string());
    assert_exact_numbers(&step_of(&report, "0")["result"], &report.to_string());
    server.kill();

    let server = Server::start(dir.path(), &policy);
    let (status, report) = server.get(KEY_A, "/v1/workflows/exact");
    assert_eq!(status, 200, "{report}");
    assert_exact_numbers(&report["result"], &report.to_string());
}

/// A submission whose arguments or flowing results cannot fit the tasks'
/// types is refused (400) with every problem, as `validate` lists them,
/// and nothing is recorded.
#[test]
fn a_submission_whose_types_cannot_fit_is_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let workflow = json!({"id": "typed", "workflow": [
        {"task": "math.add", "args": ["two", 2]},
        {"task": "testkit.log", "args": ["hi"], "immutable": true},
        {"task": "math.mul", "args": [3]},
    ]});
    let (status, body) = server.submit(KEY_A, &workflow);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["kind"], "invalid_input");
    let message = body["error"]["message"].as_str().unwrap();
    for expected in [
        "step 0 (`math.add`): add() argument 'x' (i64) at args[0]: expected an integer",
        "step 2 (`math.mul`): mul() argument 'x' (i64) would get the result of step 1 \
         (`testkit.log`): a string, where it takes an integer",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert_eq!(server.get(KEY_A, "/v1/workflows/typed").0, 404);
}

/// `wfhost tenant` edits the policy file and a running `serve` takes it on
/// SIGHUP without failing a request: 1,000 requests from four clients
/// while the file is read again ten times all succeed; a tenant added gets
/// in with its new key, a re-keyed one only with its new key, a removed
/// one not at all; a file that does not read is refused, logged, and the
/// policy in use stays.
#[test]
fn serve_reads_its_policy_again_on_sighup_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let policy_arg = policy.to_str().unwrap();
    let tenant = |args: &[&str]| {
        let output = wfhost()
            .args(["tenant"])
            .args(args)
            .args(["--tenants", policy_arg])
            .output()
            .unwrap();
        common::assert_succeeded(&output);
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let hangup = |times: usize| {
        let before = server.log.lock().unwrap().len();
        unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.log.lock().unwrap()[before..]
            .iter()
            .filter(|line| line.contains("the tenant policy was"))
            .count()
            < times
        {
            assert!(
                Instant::now() < deadline,
                "serve did not read its policy again"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let whoami = |key: &str| server.get(key, "/v1/whoami");

    // Under load: four clients, each asking at least 250 times and on
    // until the tenth reading is done.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (sent, failed, read) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicBool::new(false),
    );
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut mine = 0;
                while mine < 250 || !read.load(Ordering::Relaxed) {
                    if whoami(KEY_A) != (200, json!({"tenant": "a"})) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    mine += 1;
                }
                sent.fetch_add(mine, Ordering::Relaxed);
            });
        }
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(10));
            hangup(1);
        }
        read.store(true, Ordering::Relaxed);
    });
    assert!(sent.into_inner() >= 1000);
    assert_eq!(
        failed.into_inner(),
        0,
        "requests failed while the policy was read again"
    );

    let newcomer = tenant(&[
        "add",
        "newcomer",
        "--plugin",
        &format!("math={}", plugin("math").display()),
    ]);
    assert_eq!(
        whoami(&newcomer).0,
        401,
        "not before serve reads the file again"
    );
    hangup(1);
    assert_eq!(whoami(&newcomer), (200, json!({"tenant": "newcomer"})));
    let (status, _) = server.submit(
        &newcomer,
        &json!({"id": "n", "workflow": [{"task": "math.add", "args": [1, 2]}]}),
    );
    assert_eq!(status, 202);
    assert_eq!(server.wait(&newcomer, "n")["result"], 3);

    let rekeyed = tenant(&["key", "newcomer"]);
    hangup(1);
    assert_eq!(whoami(&newcomer).0, 401, "the old key no longer works");
    assert_eq!(whoami(&rekeyed), (200, json!({"tenant": "newcomer"})));
    let listed = tenant(&["list", "--json"]);
    assert!(listed.contains("\"newcomer\""), "{listed}");

    // A file that does not read: refused, logged, the policy stays.
    let sound = std::fs::read(&policy).unwrap();
    std::fs::write(&policy, "[tenants.broken\n").unwrap();
    hangup(1);
    assert!(server.logged(&["the tenant policy was not read again"]));
    assert_eq!(whoami(&rekeyed), (200, json!({"tenant": "newcomer"})));
    std::fs::write(&policy, sound).unwrap();

    tenant(&["rm", "newcomer"]);
    hangup(1);
    assert_eq!(whoami(&rekeyed).0, 401);
    assert_eq!(whoami(KEY_A), (200, json!({"tenant": "a"})));
}

#[test]
fn a_killed_or_stopped_service_resumes_its_workflows_when_it_starts_again() {
    const STEPS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let mut steps = vec![json!({"task": "testkit.slow_add", "args": [0, 1, 10]})];
    steps.extend((1..STEPS).map(|_| json!({"task": "testkit.slow_add", "args": [1, 10]})));
    let (status, _) = server.submit(KEY_A, &json!({"id": "long", "workflow": steps}));
    assert_eq!(status, 202);
    // Kill it mid-run, once some steps are on record.
    let done = server.wait_for_steps(KEY_A, "long", 20);
    assert!(done < STEPS, "the chain finished before the kill");
    server.kill();

    // Stopped politely this time, mid-run again.
    let server = Server::start(dir.path(), &policy);
    let done = server.wait_for_steps(KEY_A, "long", 40);
    assert!(done < STEPS, "the chain finished before the stop");
    assert!(server.terminate(), "SIGTERM is a clean stop");

    let server = Server::start(dir.path(), &policy);
    let report = server.wait(KEY_A, "long");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["result"], STEPS);
    let records = report["steps"].as_array().unwrap();
    assert_eq!(records.len(), STEPS);
    for step in records {
        let index: u64 = step["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(step["result"], index + 1, "{step}");
    }
}

#[test]
fn a_flooding_tenant_does_not_stall_another() {
    const FLOOD: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    // A thousand attempts at once, each spinning until its fuel runs out:
    // the flood lasts hundreds of times as long as b's two-step chain, so
    // that b's chain ends within it even on a loaded machine.
    let spins: Vec<Value> = (0..FLOOD)
        .map(|_| json!({"task": "testkit.spin"}))
        .collect();
    let flood =
        json!({"id": "flood", "defaults": {"fuel": 200000000}, "workflow": [{"group": spins}]});
    let (status, _) = server.submit(KEY_A, &flood);
    assert_eq!(status, 202);
    server.wait_for_steps(KEY_A, "flood", 20);

    let took = quick_chain_of_b(&server);
    let (_, flood) = server.get(KEY_A, "/v1/workflows/flood");
    let spun = flood["steps"].as_array().unwrap().len();
    assert_eq!(
        flood["status"], "running",
        "b's two steps waited for a's flood to end ({took:?}, {spun} of a's steps on record)"
    );
    // Each of b's steps waits for a turn, which comes when one of a's
    // running attempts ends: few of a's steps may end while b's chain runs,
    // however many of a's attempts are waiting (BENCHMARKS.md, "fair", says
    // how many did, and how many with the turns taken in the wrong place).
    assert!(server.terminate());
    let store = wfhost::store::Store::open(&dir.path().join("state.redb")).unwrap();
    let quick = store.events("b", "quick").unwrap();
    let during = quick.first().unwrap().at_ms..=quick.last().unwrap().at_ms;
    let a_ended = store
        .events("a", "flood")
        .unwrap()
        .iter()
        .filter(|event| event.step.is_some() && during.contains(&event.at_ms))
        .count();
    assert!(
        a_ended <= 12,
        "{a_ended} of a's steps ended during b's two-step chain ({took:?})"
    );
}

#[test]
fn sleeping_steps_do_not_hold_the_cpu_slots() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    // More sleeping steps than there are slots (one per core, at most a
    // few here): each waits in a host call, on no CPU.
    let sleeps: Vec<Value> = (0..8)
        .map(|_| json!({"task": "testkit.sleep", "args": [4000]}))
        .collect();
    let sleepers = json!({"id": "sleepers", "workflow": [{"group": sleeps}]});
    let (status, _) = server.submit(KEY_A, &sleepers);
    assert_eq!(status, 202);
    server.wait_for_steps(KEY_A, "sleepers", 8);
    let took = quick_chain_of_b(&server);
    let (_, sleepers) = server.get(KEY_A, "/v1/workflows/sleepers");
    assert_eq!(
        sleepers["status"], "running",
        "b's two steps waited for a's sleeps to end ({took:?})"
    );
    let sleepers = server.wait(KEY_A, "sleepers");
    // All eight slept at once, and their durations are their own.
    for step in sleepers["steps"].as_array().unwrap() {
        let ms = step["duration_ms"].as_f64().unwrap();
        assert!((4000.0..6000.0).contains(&ms), "{step}");
    }
}

#[test]
fn usage_sums_match_the_step_records() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    // Retries, a group and a failure: attempts, fuel and time of each kind.
    let workflows = [
        json!({"id": "retried", "workflow": [
            {"task": "testkit.flaky", "args": ["k", 2], "options": {"max_retries": 3}},
            {"task": "math.add", "args": [1]},
        ]}),
        json!({"id": "grouped", "workflow": [
            {"group": [{"task": "math.add", "args": [1, 2]}, {"task": "math.add", "args": [3, 4]}]},
            {"task": "math.xsum"},
        ]}),
        json!({"id": "failed", "workflow": [
            {"task": "testkit.fail", "args": ["no"]},
            {"task": "math.add", "args": [1, 2], "immutable": true},
        ]}),
    ];
    let (mut steps, mut attempts, mut fuel, mut duration_ms) = (0, 0, 0, 0.0);
    for workflow in &workflows {
        let (status, body) = server.submit(KEY_A, workflow);
        assert_eq!(status, 202, "{body}");
        let report = server.wait(KEY_A, workflow["id"].as_str().unwrap());
        for step in report["steps"].as_array().unwrap() {
            let tries = step["attempts"].as_u64().unwrap();
            if tries > 0 {
                steps += 1;
                attempts += tries;
                fuel += step["fuel_used"].as_u64().unwrap();
                duration_ms += step["duration_ms"].as_f64().unwrap();
            }
        }
    }
    assert_eq!(
        (steps, attempts),
        (6, 8),
        "2+1, 2+1, 1 steps; flaky ran 3 times"
    );
    let (status, usage) = server.get(KEY_A, "/v1/usage");
    assert_eq!(status, 200);
    assert_eq!(usage["tenant"], "a");
    assert_eq!(usage["workflows"], 3);
    assert_eq!(usage["steps"], steps);
    assert_eq!(usage["attempts"], attempts);
    assert_eq!(usage["fuel"], fuel);
    assert!((usage["duration_ms"].as_f64().unwrap() - duration_ms).abs() < 1e-6);
    // b has used nothing, and sees none of a's use.
    let (_, theirs) = server.get(KEY_B, "/v1/usage");
    assert_eq!(
        (theirs["tenant"].as_str(), theirs["steps"].as_u64()),
        (Some("b"), Some(0))
    );

    // /metrics counts the same steps, attempts and fuel as they end.
    let metrics = server.metrics(KEY_A);
    let sum = |prefix: &str| -> f64 {
        metrics
            .iter()
            .filter(|(sample, _)| sample.starts_with(prefix))
            .map(|(_, value)| value)
            .sum()
    };
    assert_eq!(
        sum("wfhost_steps_total{tenant=\"a\""),
        steps as f64,
        "{metrics:?}"
    );
    assert_eq!(sum("wfhost_attempts_total{tenant=\"a\""), attempts as f64);
    assert_eq!(metrics["wfhost_fuel_used_total{tenant=\"a\"}"], fuel as f64);
    assert_eq!(
        metrics["wfhost_steps_total{tenant=\"a\",status=\"failed\",kind=\"fail\"}"],
        1.0
    );
    assert_eq!(
        metrics["wfhost_attempts_total{tenant=\"a\",outcome=\"retried\"}"],
        2.0
    );
    assert_eq!(
        metrics["wfhost_step_duration_seconds_count{tenant=\"a\"}"],
        steps as f64
    );
    assert_eq!(
        metrics["wfhost_workflows{tenant=\"a\",status=\"succeeded\"}"],
        2.0
    );
    assert_eq!(
        metrics["wfhost_workflows{tenant=\"a\",status=\"failed\"}"],
        1.0
    );
    let commits = metrics["wfhost_commit_latency_seconds_count"];
    assert!(commits >= 1.0, "{metrics:?}");
    assert_eq!(
        metrics["wfhost_commit_latency_seconds_bucket{le=\"+Inf\"}"],
        commits
    );
    // A tenant sees only its own series; the operator's key sees all.
    assert!(
        server
            .metrics(KEY_B)
            .keys()
            .all(|sample| !sample.contains("tenant=\"a\""))
    );
    assert_eq!(
        server.metrics(ADMIN_KEY)["wfhost_fuel_used_total{tenant=\"a\"}"],
        fuel as f64
    );
    assert_eq!(server.request("GET", "/metrics", None, "").0, 401);

    // The operator checks the file the service writes; a tenant may not.
    let (status, check) = server.get(ADMIN_KEY, "/v1/check");
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["clean"], true, "{check}");
    assert_eq!(check["findings"], json!([]), "{check}");
    assert!(check["journal_entries"].as_u64().unwrap() > 0, "{check}");
    let (status, refused) = server.get(KEY_A, "/v1/check");
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["kind"], "forbidden", "{refused}");

    // The CLI reads the same sums once the service has let go of the file.
    server.kill();
    let cli = wfhost_in(dir.path())
        .args(["usage", "--tenant", "a", "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let sums: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(sums, json!([usage]));
}

#[test]
fn cancel_interrupts_the_running_step_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let workflow = json!({"id": "stoppable", "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"task": "testkit.sleep", "args": [60000], "immutable": true},
        {"task": "math.add", "args": [1]},
        {"task": "math.add", "args": [1]},
    ]});
    assert_eq!(server.submit(KEY_A, &workflow).0, 202);
    // Wait for the first step, so the sleep is under way.
    server.wait_for_steps(KEY_A, "stoppable", 1);
    std::thread::sleep(Duration::from_millis(100));
    // Another tenant cannot cancel it, nor learn it exists.
    let (status, _) = server.request("POST", "/v1/workflows/stoppable/cancel", Some(KEY_B), "");
    assert_eq!(status, 404);
    let (status, row) = server.request("POST", "/v1/workflows/stoppable/cancel", Some(KEY_A), "");
    assert_eq!(status, 202, "{row}");

    let report = server.wait(KEY_A, "stoppable");
    assert_eq!(report["status"], "cancelled", "{report}");
    let step = |id: &str| step_of(&report, id);
    assert_eq!(step("0")["status"], "succeeded");
    let sleeper = step("1");
    assert_eq!(sleeper["error"]["kind"], "cancelled", "{sleeper}");
    assert!(
        sleeper["duration_ms"].as_f64().unwrap() < 30_000.0,
        "the sleep was interrupted, not waited out: {sleeper}"
    );
    for id in ["2", "3"] {
        assert_eq!(step(id)["status"], "skipped");
        assert_eq!(step(id)["attempts"], 0);
    }
    // Cancelling again changes nothing.
    let (status, row) = server.request("POST", "/v1/workflows/stoppable/cancel", Some(KEY_A), "");
    assert_eq!((status, &row["status"]), (200, &json!("cancelled")));
}

/// The service and the command line on one database at once: a CLI `run`
/// while the service runs a workflow, `list` and `status` of the service's
/// workflow, and a CLI `cancel` that stops it inside the service.
#[test]
fn serve_and_the_command_line_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let workflow = json!({"id": "served", "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"task": "testkit.sleep", "args": [60000], "immutable": true},
        {"task": "math.add", "args": [1]},
    ]});
    assert_eq!(server.submit(KEY_A, &workflow).0, 202);
    server.wait_for_steps(KEY_A, "served", 1);

    let chain = dir.path().join("chain.json");
    let local = json!({"plugins": {"math": plugin("math")},
                       "workflow": [{"task": "math.add", "args": [2, 3]}]});
    std::fs::write(&chain, local.to_string()).unwrap();
    let run = Run::from(
        wfhost_in(dir.path())
            .arg("run")
            .arg(&chain)
            .output()
            .unwrap(),
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "5\n"),
        "{}",
        run.stderr
    );

    let cli = |args: &[&str]| Run::from(wfhost_in(dir.path()).args(args).output().unwrap());
    let listed = cli(&["list", "--tenant", "a", "--json"]).json();
    assert_eq!(
        (&listed[0]["id"], &listed[0]["status"]),
        (&json!("served"), &json!("running")),
        "{listed}"
    );
    let status = cli(&["status", "served", "--tenant", "a", "--json"]).json();
    assert_eq!(step_of(&status, "0")["result"], 2, "{status}");

    let asked = Instant::now();
    let cancel = cli(&["cancel", "served", "--tenant", "a"]);
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(cancel.stderr.contains("cancelled"), "{}", cancel.stderr);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let report = server.wait(KEY_A, "served");
    assert_eq!(report["status"], "cancelled", "{report}");
    assert_eq!(step_of(&report, "2")["status"], "skipped", "{report}");
    // The service goes on serving.
    assert_eq!(
        server
            .submit(
                KEY_B,
                &json!({"id": "after", "workflow": [
        {"task": "math.add", "args": [1, 2]}]})
            )
            .0,
        202
    );
    assert_eq!(server.wait(KEY_B, "after")["result"], 3);
    // It logged each request and each workflow's start and end.
    for words in [
        &[
            "INFO",
            "request",
            "method=POST",
            "path=/v1/workflows ",
            "tenant=b ",
            "status=202",
        ][..],
        &[
            "request",
            "method=GET",
            "path=/v1/workflows/after ",
            "status=200",
            "latency_ms=",
        ],
        &["workflow started", "tenant=a", "id=served"],
        &[
            "workflow ended",
            "tenant=a",
            "id=served",
            "status=\"cancelled\"",
        ],
        &["cancel requested by another process", "id=served"],
        &[
            "workflow ended",
            "tenant=b",
            "id=after",
            "status=\"succeeded\"",
        ],
    ] {
        assert!(
            server.logged(words),
            "{words:?} in {:?}",
            server.log.lock().unwrap()
        );
    }
}

#[test]
fn a_failed_workflow_is_retried_from_its_failed_step() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    // Fails on its first two attempts with no retries allowed; a retry
    // goes on from that step with its attempt numbers.
    let workflow = json!({"id": "flaky", "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"task": "testkit.flaky", "args": ["k", 1], "immutable": true, "options": {"max_retries": 0}},
        {"task": "math.add", "args": [10]},
    ]});
    assert_eq!(server.submit(KEY_A, &workflow).0, 202);
    assert_eq!(server.wait(KEY_A, "flaky")["status"], "failed");
    // Not someone else's to retry; and resuming a finished one does nothing.
    assert_eq!(
        server
            .request("POST", "/v1/workflows/flaky/retry", Some(KEY_B), "")
            .0,
        404
    );
    let (status, row) = server.request("POST", "/v1/workflows/flaky/resume", Some(KEY_A), "");
    assert_eq!((status, &row["status"]), (200, &json!("failed")));

    let (status, row) = server.request("POST", "/v1/workflows/flaky/retry", Some(KEY_A), "");
    assert_eq!(status, 202, "{row}");
    let report = server.wait(KEY_A, "flaky");
    assert_eq!(report["status"], "succeeded", "{report}");
    // flaky returns its attempt number, 2, and the last step adds 10.
    assert_eq!(report["result"], 12);
    // A succeeded workflow cannot be retried.
    let (status, body) = server.request("POST", "/v1/workflows/flaky/retry", Some(KEY_A), "");
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only a failed workflow")
    );
}

#[test]
fn a_workflow_stops_when_its_tenants_fuel_budget_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    // Each step burns about 2.3 million units; the budget is 10 million.
    let burns: Vec<Value> = (0..10)
        .map(|_| json!({"task": "testkit.burn", "args": [100000], "immutable": true}))
        .collect();
    let (status, _) = server.submit(KEY_C, &json!({"id": "hungry", "workflow": burns}));
    assert_eq!(status, 202);
    let report = server.wait(KEY_C, "hungry");
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(report["error"]["kind"], "fuel_exhausted");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("fuel budget of 10000000"), "{message}");
    let steps = report["steps"].as_array().unwrap();
    let spent: u64 = steps
        .iter()
        .map(|step| step["fuel_used"].as_u64().unwrap())
        .sum();
    assert!(spent <= 10_000_000, "spent {spent}");
    let succeeded = steps
        .iter()
        .filter(|step| step["status"] == "succeeded")
        .count();
    assert!((1..10).contains(&succeeded), "{succeeded} steps succeeded");
}

#[test]
fn sigterm_lets_the_running_step_finish_and_starts_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let workflow = json!({"id": "graceful", "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"task": "testkit.sleep", "args": [1000], "immutable": true},
        {"task": "math.add", "args": [1, 1], "immutable": true},
    ]});
    assert_eq!(server.submit(KEY_A, &workflow).0, 202);
    server.wait_for_steps(KEY_A, "graceful", 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.terminate(), "SIGTERM is a clean stop");

    // The service let go of the database: read it as it left it.
    let status = wfhost_in(dir.path())
        .args(["status", "graceful", "--tenant", "a", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["status"], "cut_off", "cut off, to resume: {report}");
    let steps = report["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps
        .iter()
        .map(|step| step["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["0", "1"],
        "the sleep finished, the next step never started"
    );
    assert_eq!(steps[1]["status"], "succeeded");
    assert_eq!(steps[1]["result"], 1000);

    let server = Server::start(dir.path(), &policy);
    let report = server.wait(KEY_A, "graceful");
    assert_eq!(
        (report["status"].as_str(), report["result"].as_i64()),
        (Some("succeeded"), Some(2))
    );
}

#[test]
fn a_tenants_running_steps_are_capped_across_its_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    // Tenant c may run one attempt at a time; two workflows of two
    // parallel 300 ms members each cannot take less than 4 × 300 ms.
    let member = json!({"task": "testkit.slow_add", "args": [1, 1, 300]});
    let started = Instant::now();
    for id in ["left", "right"] {
        let workflow = json!({"id": id, "workflow": [{"group": [member, member]}]});
        assert_eq!(server.submit(KEY_C, &workflow).0, 202);
    }
    for id in ["left", "right"] {
        assert_eq!(server.wait(KEY_C, id)["result"], json!([2, 2]));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1150),
        "ran side by side: {took:?}"
    );
}

/// On SIGTERM no attempt starts that was still waiting for its slot: once
/// queued steps counted as under way, and the stop ran them all.
#[test]
fn sigterm_starts_none_of_the_steps_waiting_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    // Tenant c runs one attempt at a time: one sleeps, seven wait.
    for i in 0..8 {
        let workflow = json!({"id": format!("queued-{i}"), "workflow": [
            {"task": "testkit.sleep", "args": [500]},
        ]});
        assert_eq!(server.submit(KEY_C, &workflow).0, 202);
    }
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    assert!(server.terminate(), "SIGTERM is a clean stop");
    let took = stopping.elapsed();
    let listed = wfhost_in(dir.path())
        .args(["list", "--tenant", "c", "--json"])
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 8, "{rows:?}");
    let finished = rows
        .iter()
        .filter(|row| row["status"] == "succeeded")
        .count();
    assert!(
        finished <= 2,
        "{finished} of the queued steps ran during the stop"
    );
    assert!(
        rows.iter()
            .all(|row| ["succeeded", "cut_off"].contains(&row["status"].as_str().unwrap())),
        "{rows:?}"
    );
    assert!(took < Duration::from_secs(3), "the stop took {took:?}");
}

/// Every error is the documented JSON, those of the HTTP layer too, and a
/// submission that repeats a key is refused as the CLI refuses it.
#[test]
fn every_error_is_json_and_repeated_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let kind = |answer: &(u16, Value)| {
        (
            answer.0,
            answer.1["error"]["kind"]
                .as_str()
                .unwrap_or("no JSON error")
                .to_string(),
        )
    };
    let unknown = server.request("GET", "/v1/nothing", Some(KEY_A), "");
    assert_eq!(kind(&unknown), (404, "no_route".into()), "{unknown:?}");
    let method = server.request("DELETE", "/v1/workflows", Some(KEY_A), "");
    assert_eq!(
        kind(&method),
        (405, "method_not_allowed".into()),
        "{method:?}"
    );
    let query = server.request("GET", "/v1/workflows?status=lost", Some(KEY_A), "");
    assert_eq!(kind(&query), (400, "invalid_input".into()), "{query:?}");

    // Twice `workflow`: the API once took the last silently.
    let repeated = r#"{"workflow": [{"task": "math.add", "args": [1, 1]}],
                       "workflow": [{"task": "math.add", "args": [2, 2]}]}"#;
    let answer = server.request("POST", "/v1/workflows", Some(KEY_A), repeated);
    assert_eq!(kind(&answer), (400, "invalid_input".into()), "{answer:?}");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the key `workflow` appears twice"),
        "{answer:?}"
    );

    // Ids are bounded and printable (security probe, findings 4 and 5):
    // a long one grew the file by its length at every record, and one
    // holding a newline or an escape forged lines of the service's log.
    let long_id = "x".repeat(wfhost::names::MAX_NAME_BYTES + 1);
    let forged = "ok\n2026-12-07T00:00:00Z  INFO wfhost: forged \u{1b}[2J";
    for (id, needle) in [
        (long_id.as_str(), "bytes long"),
        (forged, "control character"),
    ] {
        let workflow = json!({"id": id, "workflow": [{"task": "math.add", "args": [1, 1]}]});
        let answer = server.submit(KEY_A, &workflow);
        assert_eq!(kind(&answer), (400, "invalid_input".into()), "{answer:?}");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("$.id") && message.contains(needle),
            "{message}"
        );
    }
    assert!(!server.logged(&["forged"]), "a refused id reached the log");
    let named = wfhost_in(dir.path())
        .args(["run", "-", "--id", forged])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(named.status.code(), Some(2));
    let said = String::from_utf8_lossy(&named.stderr);
    assert!(
        said.contains("--id") && said.contains("control character"),
        "{said}"
    );

    // A body that is not UTF-8, and one declared larger than the service
    // reads, sent by hand.
    let raw = |head: String, body: &[u8]| {
        let mut stream = TcpStream::connect(server.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (
            status,
            serde_json::from_str::<Value>(body).unwrap_or(Value::Null),
        )
    };
    let request = |length: usize| {
        format!(
            "POST /v1/workflows HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {KEY_A}\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
    };
    let not_utf8 = raw(request(2), &[0xff, 0xfe]);
    assert_eq!(
        kind(&not_utf8),
        (400, "invalid_input".into()),
        "{not_utf8:?}"
    );
    let too_large = raw(request(200 << 20), b"");
    assert_eq!(kind(&too_large), (413, "too_large".into()), "{too_large:?}");
}

/// Connections that send nothing, or half a request, are closed after the
/// header timeout: with its file descriptors all held by them, the service
/// once stopped answering anyone until they went away by themselves.
#[test]
fn idle_and_half_sent_connections_time_out_and_free_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start_with(dir.path(), &policy, &["--header-timeout", "1"], Some(64));
    let mut hogs = Vec::new();
    for i in 0..100 {
        let Ok(mut stream) = TcpStream::connect(server.address) else {
            continue;
        };
        if i % 2 == 0 {
            let _ = stream.write_all(b"GET /v1/usage HTTP/1.1\r\nHost: te");
        }
        hogs.push(stream);
    }
    let started = Instant::now();
    loop {
        let answered = std::panic::catch_unwind(|| server.get(KEY_A, "/v1/usage"));
        if let Ok((200, usage)) = answered {
            assert_eq!(usage["tenant"], "a");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the service never answered while idle connections held it"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each idle connection was closed by the service: reading it ends
    // rather than waiting.
    for stream in &mut hogs {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        let ended = stream.read_to_end(&mut rest);
        assert!(
            !ended.as_ref().is_err_and(|err| matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
            "a connection stayed open: {ended:?}"
        );
    }
}

/// A submission whose wait ends before its workflow: the answer says it
/// runs, and by then its start is on the disk, as a 202's would be, even
/// where the committer lets records wait seconds (`batched:5000`): killed
/// at once, the service leaves it for `resume`. (A submission that waits
/// lets its start go to the disk with its end.)
#[test]
fn a_submission_that_stops_waiting_is_on_the_disk_when_answered() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start_with(dir.path(), &policy, &["--durability", "batched:5000"], None);
    let workflow = json!({"id": "outwaited", "workflow": [
        {"task": "testkit.sleep", "args": [3000]},
        {"task": "math.add", "args": [1, 2], "immutable": true},
    ]});
    let path = "/v1/workflows?wait=50ms";
    let (status, report) = server.request("POST", path, Some(KEY_A), &workflow.to_string());
    assert_eq!(
        (status, report["status"].as_str()),
        (200, Some("running")),
        "{report}"
    );
    server.kill();
    let status = wfhost_in(dir.path())
        .args(["status", "outwaited", "--tenant", "a", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|_| {
        panic!("{}", String::from_utf8_lossy(&status.stderr));
    });
    assert_eq!(report["status"], "cut_off", "{report}");
}

/// What a page needs of the API: health without a key, pages of the
/// list, a report that waits for the end, and events as server-sent
/// events until the workflow ends.
#[test]
fn health_pages_waits_and_event_streams() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    assert_eq!(
        server.request("GET", "/health", None, ""),
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        server.request("GET", "/ready", None, ""),
        (200, json!({"status": "ready"}))
    );

    for n in 0..5 {
        let (status, body) = server.submit(
            KEY_A,
            &json!({"id": format!("w{n}"), "workflow": add_chain()}),
        );
        assert_eq!(status, 202, "{body}");
        server.wait(KEY_A, &format!("w{n}"));
    }
    let ids = |path: &str| -> Vec<String> {
        let (status, rows) = server.get(KEY_A, path);
        assert_eq!(status, 200, "{rows}");
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| row["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("/v1/workflows?limit=2"), ["w0", "w1"]);
    assert_eq!(ids("/v1/workflows?after=w1&limit=2"), ["w2", "w3"]);
    assert_eq!(ids("/v1/workflows?after=w3"), ["w4"]);
    assert!(ids("/v1/workflows?after=w4&limit=2").is_empty());
    assert_eq!(server.get(KEY_A, "/v1/workflows?limit=0").0, 400);
    assert_eq!(ids("/v1/workflows?q=w3"), ["w3"]);
    assert_eq!(ids("/v1/workflows?q=math.add&limit=2"), ["w0", "w1"]);
    assert!(ids("/v1/workflows?q=testkit").is_empty());
    assert_eq!(server.get(KEY_A, "/v1/workflows?after=nope").0, 404);

    // A report that waits: it comes back once the workflow ended.
    let slow = json!({"id": "slow", "workflow": [
        {"task": "testkit.sleep", "args": [300]},
        {"task": "math.add", "args": [1, 2], "immutable": true},
    ]});
    assert_eq!(server.submit(KEY_A, &slow).0, 202);
    let (status, report) = server.get(KEY_A, "/v1/workflows/slow?wait=30s");
    assert_eq!(
        (status, report["status"].as_str()),
        (200, Some("succeeded")),
        "{report}"
    );
    assert_eq!(report["result"], 3);
    assert_eq!(server.get(KEY_A, "/v1/workflows/slow?wait=soon").0, 400);
    assert_eq!(server.get(KEY_A, "/v1/workflows/slow?wait=301s").0, 400);

    // A submission that waits: the report comes back with the answer.
    let (status, report) = server.request(
        "POST",
        "/v1/workflows?wait=30s",
        Some(KEY_A),
        &json!({"id": "waited", "workflow": [{"task": "testkit.slow_add", "args": [1, 2, 200]}]})
            .to_string(),
    );
    assert_eq!(
        (status, report["status"].as_str()),
        (200, Some("succeeded")),
        "{report}"
    );
    assert_eq!(report["result"], 3);
    assert_eq!(
        server
            .request("POST", "/v1/workflows?wait=x", Some(KEY_A), "{}")
            .0,
        400
    );

    // Events as a stream: every event in order, then `end`, then the close.
    let streamed = json!({"id": "streamed", "workflow": [
        {"task": "testkit.sleep", "args": [200]},
        {"task": "math.add", "args": [1, 2], "immutable": true},
    ]});
    assert_eq!(server.submit(KEY_A, &streamed).0, 202);
    let (status, head, body) = server.raw_request(
        "GET",
        "/v1/workflows/streamed/events?follow=1",
        Some(KEY_A),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("text/event-stream"), "{head}");
    let kinds: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.last(), Some(&"end"), "{body}");
    let events: Vec<Value> = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect();
    assert_eq!(
        events.last(),
        Some(&json!({"status": "succeeded"})),
        "{body}"
    );
    let logged = &events[..events.len() - 1];
    let seqs: Vec<u64> = logged
        .iter()
        .map(|event| event["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{body}");
    let (_, on_record) = server.get(KEY_A, "/v1/workflows/streamed/events");
    assert_eq!(
        on_record,
        json!(logged),
        "the stream told every event on record"
    );
    // Another tenant's stream is as unknown as its workflow.
    assert_eq!(
        server
            .get(KEY_B, "/v1/workflows/streamed/events?follow=1")
            .0,
        404
    );
}

/// Where the dashboard tests keep their screenshots.
fn artifact(name: &str) -> PathBuf {
    host_target_dir().join("test-artifacts").join(name)
}

/// Opens the dashboard of `server` and logs in with `key`.
fn dashboard_login(browser: &browser::Browser, server: &Server, key: &str) {
    browser.open(&format!("http://{}/", server.address));
    let field = browser.wait_for("#key", Duration::from_secs(20));
    browser.type_into(&field, key);
    browser.click_on("#login button[type=submit]", Duration::from_secs(5));
    browser.wait_for("#workflows", Duration::from_secs(20));
}

/// The ids the dashboard's list shows now.
fn listed(browser: &browser::Browser) -> Value {
    browser.run("return [...document.querySelectorAll('#workflows tr')].map(r => r.dataset.id)")
}

/// Opens workflow `id` in the dashboard and selects its step `step`.
fn open_step(browser: &browser::Browser, id: &str, step: &str) {
    browser.run(&format!("location.hash = '#/w/{id}'"));
    browser.click_on(
        &format!("#graph .node[data-step='{step}']"),
        Duration::from_secs(20),
    );
    browser.wait_for("#step-detail h2", Duration::from_secs(10));
}

const MARKUP: &str = "<img src=x onerror=window.pwned=1><script>window.pwned=2</script>";

#[test]
fn the_dashboard_shows_each_tenant_its_workflows_as_text() {
    if !browser::available("the_dashboard_shows_each_tenant_its_workflows_as_text") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let workflows = [
        json!({"id": "plain", "workflow": add_chain()}),
        json!({"id": "markup", "workflow": [{"task": "testkit.echo", "args": [MARKUP]}]}),
        json!({"id": "panics", "workflow": [{"task": "testkit.panic", "args": [MARKUP]}]}),
    ];
    for workflow in &workflows {
        assert_eq!(server.submit(KEY_A, workflow).0, 202);
        server.wait(KEY_A, workflow["id"].as_str().unwrap());
    }
    assert_eq!(
        server
            .submit(
                KEY_B,
                &json!({"id": "theirs", "workflow": [{"task": "math.add", "args": [1, 2]}]})
            )
            .0,
        202
    );
    server.wait(KEY_B, "theirs");

    let browser = browser::Browser::start();
    dashboard_login(&browser, &server, KEY_A);
    assert_eq!(listed(&browser), json!(["plain", "markup", "panics"]));
    browser.screenshot(&artifact("dashboard-list.png"));
    // Search by id or by a step's task.
    let search = browser.wait_for("#search", Duration::from_secs(5));
    browser.type_into(&search, "testkit.pan\n");
    browser.wait_until(
        "const rows = [...document.querySelectorAll('#workflows tr')]; \
         return rows.length === 1 && rows[0].dataset.id === 'panics'",
        Duration::from_secs(10),
    );
    // The usage page: the tenant's sums and workflows per hour.
    browser.run("location.hash = '#/usage'");
    browser.wait_for("#usage-chart rect.bar", Duration::from_secs(10));
    let usage = browser.text(&browser.wait_for("#usage", Duration::from_secs(5)));
    assert!(usage.contains("workflows\n3"), "{usage}");
    // A bar per hour with its count, and axes with their labels: the three
    // workflows started within this hour.
    let chart = browser.run(
        "const c = document.querySelector('#usage-chart'); return { \
           bars: [...c.querySelectorAll('rect.bar')].map(b => Number(b.dataset.count)), \
           axes: c.querySelectorAll('line.axis').length, \
           labels: [...c.querySelectorAll('text.label')].map(t => t.textContent) }",
    );
    // A day of hours, the three in the last (or the two last, should the
    // hour have turned while they started).
    let bars: Vec<u64> = chart["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(bars.len(), 24, "{chart}");
    assert_eq!(bars[22] + bars[23], 3, "{chart}");
    assert_eq!(chart["axes"], 2, "{chart}");
    let labels = chart["labels"].as_array().unwrap();
    let most = bars.iter().max().unwrap().to_string();
    assert!(
        labels.contains(&json!(most)) && labels.contains(&json!("0")),
        "{chart}"
    );
    assert!(
        labels
            .iter()
            .any(|label| label.as_str().unwrap().ends_with('h')),
        "{chart}"
    );
    browser.screenshot(&artifact("dashboard-usage.png"));

    // A task's output holding markup is shown as text and never runs.
    open_step(&browser, "markup", "0");
    let result = browser.text(&browser.wait_for("#step-result", Duration::from_secs(5)));
    assert!(result.contains(MARKUP), "{result}");
    // A failed step's error and stderr, as text too.
    open_step(&browser, "panics", "0");
    let error = browser.text(&browser.wait_for("#step-error", Duration::from_secs(5)));
    assert!(
        error.starts_with("fail: panicked at") && error.contains(MARKUP),
        "{error}"
    );
    let stderr = browser.text(&browser.wait_for("#step-stderr", Duration::from_secs(5)));
    assert!(stderr.contains(MARKUP), "{stderr}");
    browser.screenshot(&artifact("dashboard-failed-step.png"));
    assert_eq!(
        browser.run("return window.pwned === undefined"),
        json!(true)
    );
    assert_eq!(
        browser.run("return document.scripts.length"),
        json!(1),
        "only the page's own script"
    );

    // Numbers a double cannot hold show with every digit.
    let numbers: Vec<Value> = EXACT_NUMBERS.iter().map(|text| exact(text)).collect();
    let echo = json!({"id": "exact", "workflow": [{"task": "testkit.echo", "args": [numbers]}]});
    assert_eq!(server.submit(KEY_A, &echo).0, 202);
    server.wait(KEY_A, "exact");
    open_step(&browser, "exact", "0");
    let result = browser.text(&browser.wait_for("#step-result", Duration::from_secs(5)));
    for text in EXACT_NUMBERS {
        let written = exact(text).to_string();
        assert!(result.contains(&written), "{written} in {result}");
    }

    // Another tenant sees only its own, and not a's by its id either.
    browser.click_on("#logout", Duration::from_secs(5));
    dashboard_login(&browser, &server, KEY_B);
    assert_eq!(listed(&browser), json!(["theirs"]));
    browser.run("location.hash = '#/w/plain'");
    let refused = browser.wait_until(
        "const s = document.querySelector('#workflow-status'); return s && s.textContent",
        Duration::from_secs(10),
    );
    assert_eq!(refused, json!("no workflow `plain`"));

    // The operator's key sees every tenant's workflows, each by its tenant.
    browser.click_on("#logout", Duration::from_secs(5));
    dashboard_login(&browser, &server, ADMIN_KEY);
    let rows = browser.run(
        "return [...document.querySelectorAll('#workflows tr')].map(r => `${r.dataset.tenant}/${r.dataset.id}`)",
    );
    assert_eq!(
        rows,
        json!(["a/plain", "a/markup", "a/panics", "b/theirs", "a/exact"])
    );
    browser.click_on("#workflows tr[data-id='theirs'] a", Duration::from_secs(5));
    let status = browser.wait_until(
        "const s = document.querySelector('#workflow-status'); return s && s.textContent",
        Duration::from_secs(10),
    );
    assert!(
        status.as_str().unwrap().starts_with("succeeded"),
        "{status}"
    );
    // Over the API: the operator names the tenant, a tenant cannot.
    assert_eq!(
        server.get(ADMIN_KEY, "/v1/workflows/theirs?tenant=b").0,
        200
    );
    assert_eq!(server.get(ADMIN_KEY, "/v1/workflows/theirs").0, 400);
    assert_eq!(server.get(KEY_A, "/v1/workflows/theirs?tenant=b").0, 404);
    assert_eq!(
        server.get(ADMIN_KEY, "/v1/whoami"),
        (200, json!({"admin": true}))
    );
    assert_eq!(
        server.get(KEY_B, "/v1/whoami"),
        (200, json!({"tenant": "b"}))
    );

    // A wrong key is refused at the door.
    browser.click_on("#logout", Duration::from_secs(5));
    browser.type_into(
        &browser.wait_for("#key", Duration::from_secs(5)),
        "not-a-key",
    );
    browser.click_on("#login button[type=submit]", Duration::from_secs(5));
    let said = browser.wait_until(
        "return document.querySelector('#login-error').textContent",
        Duration::from_secs(10),
    );
    assert_eq!(said, json!("Your key was refused."));
}

#[test]
fn the_dashboard_draws_a_chord_that_turns_green_live_cancels_and_retries() {
    if !browser::available("the_dashboard_draws_a_chord_that_turns_green_live_cancels_and_retries")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let server = Server::start(dir.path(), &policy);
    let browser = browser::Browser::start();
    dashboard_login(&browser, &server, KEY_A);

    let chord = json!({"id": "chord", "workflow": [
        {"task": "math.add", "args": [1, 2]},
        {"chord": {"header": [
            {"task": "testkit.sleep", "args": [1500], "immutable": true},
            {"task": "testkit.sleep", "args": [1200], "immutable": true},
            {"task": "testkit.sleep", "args": [900], "immutable": true},
        ], "body": {"task": "math.xsum"}}},
    ]});
    assert_eq!(server.submit(KEY_A, &chord).0, 202);
    browser.run("location.hash = '#/w/chord'");
    browser.wait_for("#graph .node", Duration::from_secs(20));
    let first = browser.run("return document.querySelector('#workflow-status').textContent");
    assert!(first.as_str().unwrap().starts_with("running"), "{first}");
    // Without a reload, every step turns green as the events arrive.
    browser.wait_until(
        "const nodes = [...document.querySelectorAll('#graph .node')]; \
         return nodes.length >= 6 && nodes.every(n => n.dataset.status === 'succeeded')",
        Duration::from_secs(60),
    );
    let status = browser.wait_until(
        "const s = document.querySelector('#workflow-status').textContent; return s.includes('result 3600') && s",
        Duration::from_secs(10),
    );
    assert!(
        status.as_str().unwrap().starts_with("succeeded"),
        "{status}"
    );
    // The body sits after the header, which fans out in one column.
    let columns = browser.run(
        "const x = id => document.querySelector(`#graph .node[data-step='${id}']`).transform.baseVal[0].matrix.e; \
         return [x('0'), x('1.0'), x('1.1'), x('1.2'), x('1.body')]",
    );
    let x: Vec<f64> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(
        x[0] < x[1] && x[1] == x[2] && x[2] == x[3] && x[3] < x[4],
        "{x:?}"
    );
    browser.screenshot(&artifact("dashboard-chord.png"));

    // Cancel from the page.
    let long = json!({"id": "long", "workflow": [
        {"task": "testkit.sleep", "args": [60000]},
        {"task": "math.add", "args": [1, 2], "immutable": true},
    ]});
    assert_eq!(server.submit(KEY_A, &long).0, 202);
    browser.run("location.hash = '#/w/long'");
    browser.wait_for(
        "#graph .node[data-status='running']",
        Duration::from_secs(20),
    );
    // A running workflow may be cancelled, not retried or resumed.
    let buttons = browser.wait_until(
        "const b = ['#cancel', '#retry', '#resume'].map(b => document.querySelector(b).disabled); \
         return !b[0] && b",
        Duration::from_secs(10),
    );
    assert_eq!(buttons, json!([false, true, true]));
    browser.click_on("#cancel", Duration::from_secs(5));
    browser.wait_until(
        "return document.querySelector('#workflow-status').textContent.startsWith('cancelled')",
        Duration::from_secs(30),
    );
    assert_eq!(server.wait(KEY_A, "long")["status"], "cancelled");

    // Retry from the page: a failed workflow goes on from its failed step.
    let flaky = json!({"id": "flaky", "workflow": [
        {"task": "testkit.flaky", "args": ["k", 1], "options": {"max_retries": 0}},
        {"task": "math.add", "args": [10]},
    ]});
    let (status, answer) = server.submit(KEY_A, &flaky);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(server.wait(KEY_A, "flaky")["status"], "failed");
    browser.run("location.hash = '#/w/flaky'");
    // This page's, not the one before (whose cancelled step is failed too):
    // a failed workflow may be retried.
    browser.wait_until(
        "return document.querySelector('#view h1').textContent === 'flaky' \
           && document.querySelector(\"#graph .node[data-status='failed']\") !== null \
           && !document.querySelector('#retry').disabled",
        Duration::from_secs(20),
    );
    browser.click_on("#retry", Duration::from_secs(5));
    browser.wait_until(
        "return document.querySelector('#workflow-status').textContent.includes('result 12')",
        Duration::from_secs(30),
    );
    // A workflow that succeeded allows none of the three.
    let buttons = browser.run(
        "return ['#cancel', '#retry', '#resume'].map(b => document.querySelector(b).disabled)",
    );
    assert_eq!(buttons, json!([true, true, true]));
}

/// `wfhost ui` shows a local database's workflows, every tenant's, with a
/// key handed over in the address it prints.
#[test]
fn wfhost_ui_shows_a_local_database() {
    if !browser::available("wfhost_ui_shows_a_local_database") {
        return;
    }
    let chain = chain_file(&json!({
        "id": "local-1",
        "tenant": "x",
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [2, 3]}, {"task": "testkit.echo"}],
    }));
    let run = run_file(&chain, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut ui = chain
        .wfhost()
        .args(["ui", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(ui.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/#key="),
        "{url}"
    );

    let browser = browser::Browser::start();
    browser.open(url);
    browser.wait_for("#workflows tr", Duration::from_secs(20));
    let rows = browser.run(
        "return [...document.querySelectorAll('#workflows tr')].map(r => `${r.dataset.tenant}/${r.dataset.id}`)",
    );
    assert_eq!(rows, json!(["x/local-1"]));
    assert_eq!(
        browser.run("return location.hash"),
        json!("#/"),
        "the key left the address"
    );
    browser.click_on("#workflows tr a", Duration::from_secs(5));
    browser.click_on("#graph .node[data-step='1']", Duration::from_secs(20));
    let result = browser.text(&browser.wait_for("#step-result", Duration::from_secs(5)));
    assert_eq!(result, "5");
    let _ = ui.kill();
    let _ = ui.wait();
}

/// A signal over the API (DESIGN §15): 202 once it is on the disk, and the
/// waiting workflow goes on with its payload; a signal sent before its wait
/// is reached is kept for it; another tenant's workflow is as unknown as
/// one that does not exist (404); an ended workflow is refused with 409, a
/// payload that is not JSON with 400.
#[test]
fn a_signal_over_the_api_reaches_only_the_callers_running_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let approval = json!({"id": "order-7", "workflow": [
        {"task": "math.add", "args": [2, 2]},
        {"wait": "paid", "timeout": "60s"},
        {"task": "math.add", "args": [1]},
    ]});
    assert_eq!(server.submit(KEY_A, &approval).0, 202);
    // b has no such workflow, whatever a has.
    let path = "/v1/workflows/order-7/signals/paid";
    let (status, body) = server.request("POST", path, Some(KEY_B), "41");
    assert_eq!((status, &body["error"]["kind"]), (404, &json!("not_found")));
    let (status, body) = server.request("POST", path, Some(KEY_A), "{not json");
    assert_eq!(status, 400, "{body}");
    let (status, row) = server.request("POST", path, Some(KEY_A), "41");
    assert_eq!(
        (status, row["status"].as_str()),
        (202, Some("running")),
        "{row}"
    );
    let report = server.wait(KEY_A, "order-7");
    assert_eq!(report["result"], 42, "{report}");
    assert_eq!(step_of(&report, "1")["result"], 41);
    let (status, body) = server.request("POST", path, Some(KEY_A), "1");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("succeeded"),
        "{body}"
    );

    // Sent while the workflow sleeps, before its wait: kept, then taken.
    let early = json!({"id": "order-8", "workflow": [
        {"sleep": "2s"},
        {"wait": "paid"},
    ]});
    assert_eq!(server.submit(KEY_A, &early).0, 202);
    let path = "/v1/workflows/order-8/signals/paid";
    let (status, _) = server.request("POST", path, Some(KEY_A), r#"{"amount": 5}"#);
    assert_eq!(status, 202);
    let report = server.wait(KEY_A, "order-8");
    assert_eq!(report["result"], json!({"amount": 5}), "{report}");
    let (_, events) = server.get(KEY_A, "/v1/workflows/order-8/events");
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["kind"].as_str())
        .filter(|kind| kind.starts_with("signal") || kind.starts_with("step_waiting"))
        .collect();
    assert_eq!(kinds, ["signal_received", "step_waiting", "signal_taken"]);
}

/// Schedules over the API (DESIGN §15): a tenant's schedule fires in the
/// service, each tick a workflow `NAME@<instant>` of that tenant; another
/// tenant neither sees nor steers it; pause, trigger and removal answer as
/// documented; a tenant's policy bounds how many it has and how often they
/// tick.
#[test]
fn schedules_over_the_api_fire_in_the_service_within_the_tenants_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let schedule = json!({"name": "often", "every": "1s", "chain": {"workflow": add_chain()}});
    let (status, made) =
        server.request("POST", "/v1/schedules", Some(KEY_A), &schedule.to_string());
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["next_ticks"].as_array().unwrap().len(), 5, "{made}");
    let (status, again) =
        server.request("POST", "/v1/schedules", Some(KEY_A), &schedule.to_string());
    assert_eq!((status, &again["error"]["kind"]), (409, &json!("conflict")));

    // b sees none of a's, and cannot steer it.
    assert_eq!(server.get(KEY_B, "/v1/schedules"), (200, json!([])));
    assert_eq!(server.get(KEY_B, "/v1/schedules/often").0, 404);
    let (status, _) = server.request("POST", "/v1/schedules/often/pause", Some(KEY_B), "");
    assert_eq!(status, 404);

    // It fires in the service: workflows often@… of tenant a, each ending.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let (_, shown) = server.get(KEY_A, "/v1/schedules/often");
        let done = shown["ticks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|tick| tick["status"] == "succeeded")
            .count();
        if done >= 2 {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let ran = shown["ticks"][0]["workflow"].as_str().unwrap().to_string();
    assert!(ran.starts_with("often@2"), "{shown}");
    let (status, row) = server.get(KEY_A, &format!("/v1/workflows/{ran}"));
    assert_eq!((status, &row["result"]), (200, &json!(8)), "{row}");
    assert_eq!(server.get(KEY_B, &format!("/v1/workflows/{ran}")).0, 404);

    let (status, paused) = server.request("POST", "/v1/schedules/often/pause", Some(KEY_A), "");
    assert_eq!((status, &paused["paused"]), (200, &json!(true)), "{paused}");
    assert_eq!(paused["next_ticks"], json!([]));
    let (status, triggered) =
        server.request("POST", "/v1/schedules/often/trigger", Some(KEY_A), "");
    assert_eq!(status, 202, "{triggered}");
    let id = triggered["id"].as_str().unwrap();
    assert_eq!(server.wait(KEY_A, id)["result"], 8);
    let (_, shown) = server.get(KEY_A, "/v1/schedules/often");
    assert_eq!(shown["ticks"][0]["outcome"], "triggered", "{shown}");
    let (status, _) = server.request("POST", "/v1/schedules/often/snooze", Some(KEY_A), "");
    assert_eq!(status, 404);
    assert_eq!(
        server
            .request("DELETE", "/v1/schedules/often", Some(KEY_A), "")
            .0,
        200
    );
    assert_eq!(server.get(KEY_A, "/v1/schedules/often").0, 404);

    // b's policy: at most one schedule, ticking at most once a minute.
    let fast = json!({"name": "fast", "every": 30, "chain": {"workflow": add_chain()}});
    let (status, refused) = server.request("POST", "/v1/schedules", Some(KEY_B), &fast.to_string());
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("min_schedule_interval"),
        "{refused}"
    );
    // A plugin outside b's policy is refused as for a submission.
    let foreign = json!({"name": "x", "cron": "0 * * * *",
        "chain": {"workflow": [{"task": "testkit.echo", "args": [1]}]}});
    assert_eq!(
        server
            .request("POST", "/v1/schedules", Some(KEY_A), &foreign.to_string())
            .0,
        201
    );
    assert_eq!(
        server
            .request("POST", "/v1/schedules", Some(KEY_B), &foreign.to_string())
            .0,
        400
    );
    let hourly =
        |name: &str| json!({"name": name, "cron": "0 * * * *", "chain": {"workflow": add_chain()}});
    let (status, made) = server.request(
        "POST",
        "/v1/schedules",
        Some(KEY_B),
        &hourly("one").to_string(),
    );
    assert_eq!(status, 201, "{made}");
    let (status, refused) = server.request(
        "POST",
        "/v1/schedules",
        Some(KEY_B),
        &hourly("two").to_string(),
    );
    assert_eq!(
        (status, &refused["error"]["kind"]),
        (429, &json!("too_many_schedules"))
    );
}

/// The dashboard's Schedules page (DESIGN §15): a schedule's next ticks
/// and last runs with their outcome, Pause and Resume enabled as its state
/// allows, Run now; and a workflow waiting for a signal says so in its
/// step's detail.
#[test]
fn the_dashboard_shows_schedules_and_what_a_step_waits_for() {
    if !browser::available("the_dashboard_shows_schedules_and_what_a_step_waits_for") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let schedule = json!({"name": "nightly", "every": "1s", "chain": {"workflow": add_chain()}});
    let (status, _) = server.request("POST", "/v1/schedules", Some(KEY_A), &schedule.to_string());
    assert_eq!(status, 201);
    let browser = browser::Browser::start();
    // The login page shows no navigation; a key handed over in the
    // address logs in whatever its characters (this one is not hex).
    browser.open(&format!("http://{}/", server.address));
    browser.wait_for("#key", Duration::from_secs(20));
    let nav = browser.run("return getComputedStyle(document.querySelector('#nav')).display");
    assert_eq!(nav, "none");
    // A page load, not a change of the fragment alone.
    browser.open("about:blank");
    browser.open(&format!("http://{}/#key={KEY_A}", server.address));
    browser.wait_for("#workflows", Duration::from_secs(20));
    let nav = browser.run("return getComputedStyle(document.querySelector('#nav')).display");
    assert_eq!(nav, "flex");
    std::thread::sleep(Duration::from_millis(2500));
    browser.run("location.hash = '#/schedules'");
    let row = "#schedules tr[data-name='nightly']";
    browser.wait_for(row, Duration::from_secs(20));
    let shown = browser.run(&format!(
        "const row = document.querySelector(\"{row}\"); return {{ \
           next: row.querySelectorAll('.next-ticks li').length, \
           runs: [...row.querySelectorAll('.runs li')].map(li => li.textContent), \
           pause: row.querySelector('button.pause').disabled, \
           resume: row.querySelector('button.resume').disabled }}"
    ));
    assert_eq!(shown["next"], 5, "{shown}");
    let runs = shown["runs"].as_array().unwrap();
    assert!(!runs.is_empty(), "{shown}");
    assert!(
        runs.iter()
            .any(|run| run.as_str().unwrap().contains("started nightly@")),
        "{shown}"
    );
    assert_eq!(
        (shown["pause"].as_bool(), shown["resume"].as_bool()),
        (Some(false), Some(true))
    );

    browser.click_on(&format!("{row} button.pause"), Duration::from_secs(5));
    let paused = browser.wait_until(
        &format!(
            "const row = document.querySelector(\"{row}\"); \
             return row && row.querySelector('button.pause').disabled && row.textContent"
        ),
        Duration::from_secs(10),
    );
    let paused = paused.as_str().unwrap();
    assert!(paused.contains("paused"), "{paused}");
    let (_, record) = server.get(KEY_A, "/v1/schedules/nightly");
    assert_eq!(record["paused"], true);
    browser.click_on(&format!("{row} button.trigger"), Duration::from_secs(5));
    browser.wait_until(
        &format!(
            "const row = document.querySelector(\"{row}\"); \
             return row && row.querySelector('.runs li').textContent.includes('triggered')"
        ),
        Duration::from_secs(10),
    );
    browser.screenshot(&artifact("dashboard-schedules.png"));

    let waiting = json!({"id": "approval", "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"wait": "approved", "timeout": "1h"},
    ]});
    assert_eq!(server.submit(KEY_A, &waiting).0, 202);
    open_step(&browser, "approval", "1");
    let detail = browser.wait_until(
        "const d = document.querySelector('#step-detail').textContent; \
         return d.includes('waiting for signal approved since') && d",
        Duration::from_secs(20),
    );
    assert!(detail.as_str().unwrap().contains("timeout"), "{detail}");
    let path = "/v1/workflows/approval/signals/approved";
    assert_eq!(server.request("POST", path, Some(KEY_A), "true").0, 202);
    assert_eq!(server.wait(KEY_A, "approval")["result"], true);
}

/// A workflow that sleeps or waits in `serve` parks (DESIGN §15): its run
/// ends, holding no lease, task or memory, and it stays `running` on
/// record — not cut off — though no process runs it; killed with its
/// service, it is woken at its due instant by any other waker (here a
/// `wfhost scheduler`), never before it, and a signal wakes a parked wait.
#[test]
fn a_parked_workflow_holds_nothing_and_any_waker_wakes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &write_policy(dir.path()));
    let nap = json!({"id": "nap", "workflow": [
        {"task": "math.add", "args": [1, 1]},
        {"sleep": "4s"},
        {"task": "math.add", "args": [1]},
    ]});
    let gate =
        json!({"id": "gate", "workflow": [{"wait": "go"}, {"task": "math.add", "args": [1]}]});
    assert_eq!(server.submit(KEY_A, &nap).0, 202);
    assert_eq!(server.submit(KEY_A, &gate).0, 202);
    let parked = |id: &str| {
        let (_, events) = server.get(KEY_A, &format!("/v1/workflows/{id}/events"));
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["kind"] == "workflow_parked")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(parked("nap") && parked("gate")) {
        assert!(Instant::now() < deadline, "never parked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.child.kill();
    let _ = server.child.wait();

    // No process runs them, and they are not cut off: they are parked.
    for id in ["nap", "gate"] {
        let run = Run::from(
            wfhost_in(dir.path())
                .args(["status", id, "--tenant", "a", "--json"])
                .output()
                .unwrap(),
        );
        assert_eq!(run.json()["status"], "running", "{id}: {}", run.stdout);
    }
    let scheduler = ChildGuard(spawn({
        let mut command = wfhost_in(dir.path());
        command.arg("scheduler");
        command
    }));
    let report = |id: &str| {
        let run = Run::from(
            wfhost_in(dir.path())
                .args(["status", id, "--tenant", "a", "--json"])
                .output()
                .unwrap(),
        );
        run.json()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let done = report("nap");
        if done["status"] != "running" {
            break done;
        }
        assert!(Instant::now() < deadline, "{done}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["result"], 3, "{done}");
    let asleep = step_of(&done, "1");
    let due = asleep["started_at_ms"].as_u64().unwrap() + 4000;
    let woke = asleep["ended_at_ms"].as_u64().unwrap();
    assert!(woke >= due && woke < due + 1500, "woke {woke}, due {due}");

    let sent = Run::from(
        wfhost_in(dir.path())
            .args(["signal", "gate", "go", "41", "--tenant", "a"])
            .output()
            .unwrap(),
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = report("gate");
        if done["status"] == "succeeded" {
            assert_eq!(done["result"], 42, "{done}");
            break;
        }
        assert!(Instant::now() < deadline, "{done}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(scheduler);
}

/// A step's countdown in `serve` parks its workflow as a sleep does, and it
/// runs at its due instant, not before.
#[test]
fn a_countdown_in_serve_parks_until_the_step_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let later = json!({"id": "later", "workflow": [
        {"task": "math.add", "args": [1, 2], "options": {"countdown": 2}},
    ]});
    assert_eq!(server.submit(KEY_A, &later).0, 202);
    let report = server.wait(KEY_A, "later");
    assert_eq!(report["result"], 3, "{report}");
    let (_, events) = server.get(KEY_A, "/v1/workflows/later/events");
    let events = events.as_array().unwrap();
    let parked = events
        .iter()
        .find(|event| event["kind"] == "workflow_parked")
        .unwrap_or_else(|| panic!("never parked: {events:?}"));
    assert!(
        parked["detail"]
            .as_str()
            .unwrap()
            .starts_with("step 0 due "),
        "{parked}"
    );
    let scheduled = events
        .iter()
        .find(|event| event["kind"] == "step_scheduled")
        .unwrap();
    let ran = events
        .iter()
        .find(|event| event["kind"] == "step_started")
        .unwrap();
    let waited = ran["at_ms"].as_u64().unwrap() - scheduled["at_ms"].as_u64().unwrap();
    assert!(
        (2000..3500).contains(&waited),
        "ran {waited} ms after its countdown began"
    );
}

/// A long chain's graph in the dashboard keeps the step under way in
/// sight as it moves on, fits in its card at a click, and zooms.
#[test]
fn the_dashboards_graph_follows_fits_and_zooms_a_long_chain() {
    if !browser::available("the_dashboards_graph_follows_fits_and_zooms_a_long_chain") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &write_policy(dir.path()));
    let mut workflow = vec![json!({"task": "math.add", "args": [0, 1]})];
    workflow.extend(std::iter::repeat_n(
        json!({"task": "math.add", "args": [1]}),
        29,
    ));
    workflow.push(json!({"task": "testkit.sleep", "args": [30_000], "immutable": true}));
    workflow.extend(std::iter::repeat_n(
        json!({"task": "math.add", "args": [1]}),
        10,
    ));
    assert_eq!(
        server
            .submit(KEY_A, &json!({"id": "long-chain", "workflow": workflow}))
            .0,
        202
    );
    let browser = browser::Browser::start();
    dashboard_login(&browser, &server, KEY_A);
    browser.run("location.hash = '#/w/long-chain'");
    browser.wait_for(
        "#graph .node[data-step='30'][data-status='running']",
        Duration::from_secs(30),
    );
    // Followed: the running step, 30 columns in, is within the card.
    let seen = browser.wait_until(
        "const card = document.querySelector('#graph-card').getBoundingClientRect(); \
         const node = document.querySelector(\"#graph .node[data-step='30']\").getBoundingClientRect(); \
         return node.left >= card.left && node.right <= card.right && \
           document.querySelector('#graph-card').scrollLeft",
        Duration::from_secs(10),
    );
    assert!(seen.as_f64().unwrap() > 0.0, "{seen}");
    // Fit: the whole graph within the card's width, every node in sight.
    browser.click_on("#fit", Duration::from_secs(5));
    let fitted = browser.wait_until(
        "const card = document.querySelector('#graph-card'); \
         const graph = document.querySelector('#graph').getBoundingClientRect(); \
         return graph.width <= card.clientWidth && card.scrollWidth <= card.clientWidth && graph.width",
        Duration::from_secs(10),
    );
    let fitted = fitted.as_f64().unwrap();
    // Zoom in from there: larger again.
    browser.click_on("#zoom-in", Duration::from_secs(5));
    let zoomed = browser.wait_until(
        "const w = document.querySelector('#graph').getBoundingClientRect().width; return w > 0 && w",
        Duration::from_secs(10),
    );
    assert!(
        zoomed.as_f64().unwrap() > fitted,
        "{zoomed} after fitting to {fitted}"
    );
    browser.screenshot(&artifact("dashboard-long-chain.png"));
    let (status, _) = server.request("POST", "/v1/workflows/long-chain/cancel", Some(KEY_A), "");
    assert_eq!(status, 202);
}
