//! Grants (DESIGN §10): a plugin reaches exactly the HTTP origins,
//! directories, config values and secrets its entry grants, against a real
//! local HTTP server and real directories; every denial names the grant
//! that is missing, and a secret's value is never recorded.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{LocalService, chain_file, plugin, run_file, step_of};
use serde_json::{Value, json};

fn http_server() -> LocalService {
    LocalService::start(
        &common::repo_root().join("tests/fixtures/http/server.py"),
        &[],
    )
}

/// A testkit entry with `grants`.
fn granted(grants: Value) -> Value {
    json!({"path": plugin("testkit"), "grants": grants})
}

fn call(plugin_name: &str, task: &str, args: Value) -> Value {
    json!({"task": format!("{plugin_name}.{task}"), "args": args})
}

/// The steps of a group run side by side, each reported on its own.
fn run_group(plugins: Value, members: Vec<Value>, dir_setup: impl FnOnce(&Path)) -> Value {
    let chain = chain_file(&json!({"plugins": plugins, "workflow": {"group": members}}));
    dir_setup(chain.dir.path());
    let run = run_file(&chain, &["--json"]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    run.json()
}

fn result(report: &Value, id: &str) -> Value {
    let step = step_of(report, id);
    assert_eq!(step["status"], "succeeded", "{step}");
    step["result"].clone()
}

fn error(report: &Value, id: &str) -> String {
    let step = step_of(report, id);
    assert_eq!(step["status"], "failed", "{step}");
    step["error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn http_reaches_exactly_the_granted_origins() {
    if !common::python3_runs("http_reaches_exactly_the_granted_origins") {
        return;
    }
    let server = http_server();
    let other_port = server.port.checked_add(1).unwrap_or(server.port - 1);
    let port = server.port;
    let plugins = json!({
        "narrow": granted(json!({"http": [format!("http://127.0.0.1:{port}/hello")]})),
        "wide": granted(json!({"http": [
            format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")
        ]})),
        "named": granted(json!({"http": [format!("http://localhost:{port}")]})),
        "capped": granted(json!({"http": {
            "allow": [format!("http://127.0.0.1:{port}")],
            "max_requests": 1, "max_bytes_received": 100
        }})),
        "none": plugin("testkit"),
    });
    let redirect_out = format!("/redirect?to=http://127.0.0.1:{other_port}/hello");
    let report = run_group(
        plugins,
        vec![
            call("narrow", "http_get", json!([server.url("/hello")])),
            call("narrow", "http_get", json!([server.url("/big?bytes=3")])),
            call(
                "narrow",
                "http_get",
                json!([format!("http://127.0.0.1:{other_port}/hello")]),
            ),
            call(
                "narrow",
                "http_get",
                json!([format!("http://wfhost.invalid:{port}/hello")]),
            ),
            call(
                "named",
                "http_get",
                json!([format!("http://localhost:{port}/hello")]),
            ),
            call(
                "wide",
                "http_get",
                json!([format!("http://localhost:{port}/hello")]),
            ),
            call(
                "wide",
                "http_get",
                json!([server.url("/redirect?to=/hello")]),
            ),
            call("wide", "http_get", json!([server.url(&redirect_out)])),
            call(
                "capped",
                "http_get",
                json!([server.url("/redirect?to=/hello")]),
            ),
            call("capped", "http_get", json!([server.url("/big?bytes=1000")])),
            call("none", "http_get", json!([server.url("/hello")])),
            call("wide", "http_post", json!([server.url("/echo"), {"n": 1}])),
        ],
        |_| {},
    );
    assert_eq!(
        result(&report, "0.0"),
        json!({"status": 200, "body": "hello"})
    );
    let outside_prefix = error(&report, "0.1");
    assert!(
        outside_prefix.contains("no grant covers") && outside_prefix.contains("/hello"),
        "{outside_prefix}"
    );
    assert!(error(&report, "0.2").contains("no grant covers"));
    let unlisted_host = error(&report, "0.3");
    assert!(
        unlisted_host.contains("wfhost.invalid") && unlisted_host.contains("grants.http"),
        "{unlisted_host}"
    );
    let resolves_local = error(&report, "0.4");
    assert!(
        resolves_local.contains("resolves to 127.0.0.1")
            && resolves_local.contains("loopback")
            && resolves_local.contains("grants.http"),
        "{resolves_local}"
    );
    assert_eq!(result(&report, "0.5")["body"], "hello");
    assert_eq!(result(&report, "0.6")["body"], "hello");
    let redirected = error(&report, "0.7");
    assert!(
        redirected.contains(&format!("127.0.0.1:{other_port}")) && redirected.contains("no grant"),
        "{redirected}"
    );
    assert!(error(&report, "0.8").contains("max_requests"));
    assert!(error(&report, "0.9").contains("max_bytes_received"));
    let ungranted = error(&report, "0.10");
    assert!(ungranted.contains("has no http grant"), "{ungranted}");
    // Denials are also kept in the step's logs, whatever the task says.
    let logs = step_of(&report, "0.10")["logs"].to_string();
    assert!(logs.contains("denied: no grant covers"), "{logs}");

    let echoed: Value =
        serde_json::from_str(result(&report, "0.11")["body"].as_str().unwrap()).unwrap();
    let key = format!("{}/0.11", report["id"].as_str().unwrap());
    assert_eq!(echoed, json!({"body": "{\"n\":1}", "idempotency_key": key}));

    // Only the granted requests reached the server, and none twice.
    let seen: Vec<Value> = serde_json::from_str(&server.get("/requests")).unwrap();
    let paths: Vec<&str> = seen.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert!(!paths.contains(&"/big?bytes=3"), "{paths:?}");
    assert_eq!(
        paths.iter().filter(|p| **p == "/echo").count(),
        1,
        "{paths:?}"
    );
}

/// Security probe, findings 2 and 8: a path that a server decodes to one
/// outside a granted prefix is refused, and a grant that names a loopback
/// address opens it for its own port and path only, not for every name
/// granted elsewhere that resolves to it.
#[test]
fn encoded_paths_and_loopback_by_name_are_judged_per_request() {
    if !common::python3_runs("encoded_paths_and_loopback_by_name_are_judged_per_request") {
        return;
    }
    let server = http_server();
    let port = server.port;
    let other_port = port.checked_add(1).unwrap_or(port - 1);
    let plugins = json!({
        "prefixed": granted(json!({"http": [format!("http://127.0.0.1:{port}/ok/")]})),
        "mixed": granted(json!({"http": [
            format!("http://localhost:{port}"), format!("http://127.0.0.1:{other_port}/ok/")
        ]})),
        "paired": granted(json!({"http": [
            format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}/ok/")
        ]})),
    });
    let encoded = [
        "/ok/..%2fhello",
        "/ok/%2e%2e%2fhello",
        "/ok/..%5chello",
        "/ok/%252e%252e%252fhello",
    ];
    let mut members: Vec<Value> = encoded
        .iter()
        .map(|path| call("prefixed", "http_get", json!([server.url(path)])))
        .collect();
    members.push(call(
        "mixed",
        "http_get",
        json!([format!("http://localhost:{port}/hello")]),
    ));
    members.push(call(
        "paired",
        "http_get",
        json!([format!("http://localhost:{port}/hello")]),
    ));
    members.push(call(
        "paired",
        "http_get",
        json!([format!("http://localhost:{port}/ok/x")]),
    ));
    let report = run_group(plugins, members, |_| {});
    for (index, path) in encoded.iter().enumerate() {
        let refused = error(&report, &format!("0.{index}"));
        assert!(refused.contains("no grant covers"), "{path}: {refused}");
    }
    let by_name = |index: usize| error(&report, &format!("0.{index}"));
    for index in [4, 5] {
        let refused = by_name(index);
        assert!(
            refused.contains("resolves to 127.0.0.1") && refused.contains("grants.http"),
            "{refused}"
        );
    }
    // Where the address's own grant covers the port and path, the name may
    // reach it.
    let reached = result(&report, "0.6");
    assert_eq!(reached["status"], 404, "{reached}");
    let seen: Vec<Value> = serde_json::from_str(&server.get("/requests")).unwrap();
    let paths: Vec<&str> = seen
        .iter()
        .map(|r| r[1].as_str().unwrap())
        .filter(|path| *path != "/requests")
        .collect();
    assert_eq!(
        paths,
        ["/ok/x"],
        "only the covered request reached the server"
    );
}

#[test]
fn directories_are_confined_read_only_unless_granted_write_and_capped() {
    let plugins = json!({
        "files": granted(json!({
            "dirs": {"/in": "data/in", "/out": {"path": "data/out", "write": true}},
            "max_bytes_written": 64
        })),
        "none": plugin("testkit"),
    });
    let report = run_group(
        plugins,
        vec![
            call("files", "read_file", json!(["/in/a.txt"])),
            call("files", "write_file", json!(["/out/b.txt", "written"])),
            call("files", "write_file", json!(["/in/c.txt", "refused"])),
            call("files", "read_file", json!(["/in/../../chain.json"])),
            call("files", "read_file", json!(["/in/out_link/secret.txt"])),
            call(
                "files",
                "write_file",
                json!(["/out/big.txt", "x".repeat(100)]),
            ),
            call("none", "read_file", json!(["/in/a.txt"])),
            call("files", "read_file", json!(["/secret/x.txt"])),
            call("files", "write_file", json!(["/elsewhere.txt", "refused"])),
            call("files", "list_dir", json!(["/"])),
        ],
        |dir| {
            std::fs::create_dir_all(dir.join("data/in")).unwrap();
            std::fs::create_dir_all(dir.join("data/out")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            std::fs::write(dir.join("data/in/a.txt"), "hello").unwrap();
            std::fs::write(dir.join("outside/secret.txt"), "outside").unwrap();
            std::os::unix::fs::symlink(dir.join("outside"), dir.join("data/in/out_link")).unwrap();
        },
    );
    assert_eq!(result(&report, "0.0"), "hello");
    assert_eq!(result(&report, "0.1"), 7);
    let read_only = error(&report, "0.2");
    assert!(
        read_only.contains("read-only") && read_only.contains("grants.dirs"),
        "{read_only}"
    );
    let dotdot = error(&report, "0.3");
    assert!(dotdot.contains("leaves its granted directory"), "{dotdot}");
    let symlink = error(&report, "0.4");
    assert!(
        symlink.contains("symlink") && symlink.contains("grants.dirs"),
        "{symlink}"
    );
    let capped = error(&report, "0.5");
    assert!(capped.contains("max_bytes_written"), "{capped}");
    // A plugin without the grant sees no directory at all, and a path
    // under no grant is refused naming what the grants cover.
    let ungranted = error(&report, "0.6");
    assert!(
        ungranted.contains("no grant covers /in/a.txt: the plugin has no dirs grant (grants.dirs)"),
        "{ungranted}"
    );
    let covered = "plugin `files` may reach only /in (read-only), /out (read-write) (grants.dirs)";
    let unreached = error(&report, "0.7");
    assert!(
        unreached.contains(&format!("no grant covers /secret/x.txt: {covered}")),
        "{unreached}"
    );
    let unwritten = error(&report, "0.8");
    assert!(
        unwritten.contains(&format!("no grant covers /elsewhere.txt: {covered}")),
        "{unwritten}"
    );
    // What is at `/` outside the grants is empty.
    assert_eq!(result(&report, "0.9"), json!([]));
}

/// A task cannot make a symlink that would lead out of its directory, now
/// or after a rename (security probe, finding 1): only links that point
/// down are made, and a refusal names the grant.
#[test]
fn a_task_may_only_make_symlinks_that_point_down() {
    let chain = chain_file(&json!({
        "plugins": {"files": granted(json!({"dirs": {"/out": {"path": "out", "write": true}}}))},
        "workflow": {"group": [
            call("files", "symlink", json!(["../../..", "/out/esc"])),
            call("files", "symlink", json!(["sub/../../x", "/out/climbs"])),
            call("files", "symlink", json!(["/etc", "/out/absolute"])),
            call("files", "symlink", json!(["sub/report.txt", "/out/down"])),
        ]},
    }));
    let out = chain.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let run = run_file(&chain, &["--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    for (id, link) in [("0.0", "esc"), ("0.1", "climbs"), ("0.2", "absolute")] {
        let refused = error(&report, id);
        assert!(
            refused.contains(&format!("`{link}` ->")) && refused.contains("grants.dirs"),
            "{refused}"
        );
        assert!(
            std::fs::symlink_metadata(out.join(link)).is_err(),
            "{link} was made"
        );
    }
    assert_eq!(result(&report, "0.3"), "/out/down");
    let made = std::fs::read_link(out.join("down")).unwrap();
    assert_eq!(made, Path::new("sub/report.txt"));
}

#[test]
fn written_files_land_in_the_granted_directory() {
    let chain = chain_file(&json!({
        "plugins": {"files": granted(json!({"dirs": {"/out": {"path": "out", "write": true}}}))},
        "workflow": [call("files", "write_file", json!(["/out/report.txt", "done"]))],
    }));
    std::fs::create_dir(chain.dir.path().join("out")).unwrap();
    let run = run_file(&chain, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written = std::fs::read_to_string(chain.dir.path().join("out/report.txt")).unwrap();
    assert_eq!(written, "done");
}

#[test]
fn config_and_secrets_are_read_by_name_and_secrets_are_never_recorded() {
    const SECRET: &str = "s3cr3t-value-9f2c";
    let chain = chain_file(&json!({
        "id": "secretive",
        "plugins": {
            "app": granted(json!({
                "config": {"bucket": "images"},
                "secrets": {"api_key": {"env": "WFHOST_TEST_API_KEY"},
                            "file_key": {"file": "key.txt"}}
            })),
        },
        "workflow": {"group": [
            call("app", "config", json!(["bucket"])),
            call("app", "config", json!(["HOME"])),
            call("app", "leak", json!(["api_key", false])),
            call("app", "leak", json!(["api_key", true])),
            call("app", "leak", json!(["file_key", false])),
        ]},
    }));
    std::fs::write(chain.dir.path().join("key.txt"), format!("{SECRET}-file\n")).unwrap();
    let output = chain
        .wfhost()
        .env("WFHOST_TEST_API_KEY", SECRET)
        .args(["run", "--json"])
        .arg(&chain.path)
        .output()
        .unwrap();
    let run = common::Run::from(output);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(result(&report, "0.0"), "images");
    let ungranted = error(&report, "0.1");
    assert!(
        ungranted.contains("`HOME`") && ungranted.contains("grants.config"),
        "{ungranted}"
    );
    assert_eq!(result(&report, "0.2"), "result: ***");
    let leaked = step_of(&report, "0.2");
    assert_eq!(leaked["stdout"]["text"], "stdout: ***\n");
    assert_eq!(leaked["stderr"]["text"], "stderr: ***\n");
    assert!(leaked["logs"].to_string().contains("log: ***"));
    assert_eq!(error(&report, "0.3"), "error: ***");
    assert_eq!(result(&report, "0.4"), "result: ***");

    let events = chain.command(&["events", "secretive", "--json"]);
    let status = chain.command(&["status", "secretive", "--json"]);
    let database = std::fs::read(chain.db()).unwrap();
    for (what, text) in [
        ("the report", run.stdout.as_str()),
        ("the run's stderr", run.stderr.as_str()),
        ("the events", events.stdout.as_str()),
        ("the status", status.stdout.as_str()),
        ("the database file", &String::from_utf8_lossy(&database)),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the secret");
    }
    // Only its source is kept.
    assert!(status.stdout.contains("secretive"));
}

#[test]
fn grants_that_cannot_be_used_are_input_errors_naming_them() {
    let cases = [
        (
            json!({"secrets": {"k": {"env": "WFHOST_TEST_UNSET_VARIABLE"}}}),
            "grants.secrets.k: the environment variable `WFHOST_TEST_UNSET_VARIABLE` is not set",
        ),
        (json!({"dirs": {"/in": "missing"}}), "grants.dirs./in"),
        (
            json!({"http": ["ftp://example.com"]}),
            "$.plugins.app.grants.http[0]: the scheme `ftp` is not http or https",
        ),
        (
            json!({"http": ["http://example.com"], "files": {}}),
            "$.plugins.app.grants.files: unknown key",
        ),
        (
            json!({"dirs": {"in": "x"}}),
            "a guest path must be absolute",
        ),
        (
            json!({"config": {"a": "1"}, "secrets": {"a": {"env": "X"}}}),
            "both a config value and a secret",
        ),
        (
            json!({"clock": {"pinned": "yesterday"}}),
            "$.plugins.app.grants.clock.pinned: `yesterday` is not an RFC 3339 instant",
        ),
        (
            json!({"clock": {"pinned": "1969-07-20T20:17:40Z"}}),
            "is before 1970-01-01T00:00:00Z",
        ),
    ];
    for (grants, expected) in cases {
        let chain = chain_file(&json!({
            "plugins": {"app": granted(grants.clone())},
            "workflow": [call("app", "echo", json!([1]))],
        }));
        let run = run_file(&chain, &[]);
        assert_eq!(run.code, 2, "{grants}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{grants}: {}", run.stderr);
    }
}

#[test]
fn a_pinned_clock_is_what_every_attempt_of_its_plugin_reads() {
    let report = run_group(
        json!({
            "pinned": granted(json!({"clock": {"pinned": "2026-01-01T01:00:00.25+01:00"}})),
            "host": plugin("testkit"),
        }),
        vec![
            call("pinned", "now_ms", json!([])),
            call("pinned", "now_ms", json!([])),
            call("host", "now_ms", json!([])),
        ],
        |_| {},
    );
    let pinned_ms = 1_767_225_600_250u64;
    assert_eq!(result(&report, "0.0"), json!(pinned_ms));
    assert_eq!(result(&report, "0.1"), json!(pinned_ms));
    let host_ms = result(&report, "0.2").as_u64().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        host_ms.abs_diff(now_ms) < 600_000,
        "an unpinned plugin reads the host's clock: {host_ms} vs {now_ms}"
    );
}

/// Polls `check` every 20 ms for up to 30 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn requests_to(server: &LocalService, method: &str, path: &str) -> Vec<Value> {
    let seen: Vec<Value> = serde_json::from_str(&server.get("/requests")).unwrap();
    seen.into_iter()
        .filter(|request| request[0] == method && request[1] == path)
        .collect()
}

/// The workflow of the batched-mode tests: two pure steps, an effect (a
/// POST), and a pure step that sleeps `sleep_ms`.
fn effects_chain(server: &LocalService, id: &str, sleep_ms: u64) -> common::ChainFile {
    chain_file(&json!({
        "id": id,
        "plugins": {
            "math": plugin("math"),
            "shop": granted(json!({"http": [server.url("")]})),
            "testkit": plugin("testkit"),
        },
        "workflow": [
            {"task": "math.add", "args": [1, 2]},
            {"task": "math.add", "args": [3]},
            {"task": "shop.http_post", "args": [server.url("/echo"), {"order": 7}], "immutable": true},
            {"task": "testkit.sleep", "args": [sleep_ms], "immutable": true},
        ],
    }))
}

/// Runs `chain` in `batched` mode with a window far longer than the test
/// (without the effect rule nothing before the end would be on the disk)
/// and kills it `after` the server sees `method path`.
fn run_until_request(
    chain: &common::ChainFile,
    server: &LocalService,
    method: &str,
    path: &str,
    after: Duration,
) {
    let mut command = chain.wfhost();
    command
        .args(["run", "--durability", "batched:600000"])
        .arg(&chain.path);
    let mut run = common::spawn(command);
    wait_until(&format!("{method} {path}"), || {
        !requests_to(server, method, path).is_empty()
    });
    std::thread::sleep(after);
    common::kill(&mut run);
}

/// In `batched` mode, pure steps' records may wait in memory; an effectful
/// step's may not. Killed the instant its request reached the server, the
/// workflow has its input on the disk and the step's start recorded, and
/// `resume` repeats the cut-off request with the same idempotency key;
/// killed just after, the effect's outcome is on the disk.
#[test]
fn an_effectful_steps_input_and_outcome_are_durable_even_in_batched_mode() {
    if !common::python3_runs(
        "an_effectful_steps_input_and_outcome_are_durable_even_in_batched_mode",
    ) {
        return;
    }
    let server = http_server();
    let chain = effects_chain(&server, "effects", 200);
    run_until_request(&chain, &server, "POST", "/echo", Duration::ZERO);
    let status = chain.command(&["status", "effects", "--json"]).json();
    assert_eq!(step_of(&status, "0")["status"], "succeeded", "{status}");
    assert_eq!(step_of(&status, "1")["result"], 6, "{status}");
    let effect = step_of(&status, "2")["status"].clone();
    assert!(effect == "running" || effect == "succeeded", "{status}");
    let resumed = chain.command(&["resume", "effects"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let posts = requests_to(&server, "POST", "/echo");
    assert!((1..=2).contains(&posts.len()), "{posts:?}");
    for post in &posts {
        assert_eq!(post[2], "effects/2", "{posts:?}");
    }
    let status = chain.command(&["status", "effects", "--json"]).json();
    assert_eq!(status["status"], "succeeded", "{status}");

    // Killed just after the effect, while the pure step after it runs
    // (its records may wait in memory for 600 s), the effect's outcome is
    // on the disk.
    let server = http_server();
    let chain = effects_chain(&server, "effects-after", 5000);
    run_until_request(&chain, &server, "POST", "/echo", Duration::from_millis(500));
    let status = chain.command(&["status", "effects-after", "--json"]).json();
    assert_eq!(step_of(&status, "2")["status"], "succeeded", "{status}");
    assert_eq!(step_of(&status, "2")["result"]["status"], 200, "{status}");
}

/// `inspect` shows what a plugin could ask for, and which grant gives it.
#[test]
fn inspect_lists_the_interfaces_a_plugin_imports_with_their_grants() {
    let imports = |name: &str| {
        let run = common::run_args(&["inspect", "--json", plugin(name).to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["imports"].as_array().unwrap().clone()
    };
    let testkit = imports("testkit");
    let http = testkit
        .iter()
        .find(|import| {
            import["interface"]
                .as_str()
                .unwrap()
                .starts_with("wasi:http/outgoing-handler@")
        })
        .expect("testkit makes HTTP requests");
    assert_eq!(http["grant"], "http");
    let grant_of = |prefix: &str| {
        let import = testkit
            .iter()
            .find(|import| import["interface"].as_str().unwrap().starts_with(prefix));
        import.unwrap_or_else(|| panic!("testkit imports {prefix}"))["grant"].clone()
    };
    assert_eq!(grant_of("wasi:cli/environment@"), "config, secrets");
    assert_eq!(grant_of("wasi:clocks/wall-clock@"), "clock");
    assert_eq!(grant_of("wasi:clocks/monotonic-clock@"), Value::Null);
    // math makes none, so it does not even import wasi:http.
    let math = imports("math");
    assert!(
        math.iter().all(|import| !import["interface"]
            .as_str()
            .unwrap()
            .starts_with("wasi:http/")),
        "{math:?}"
    );
}

/// HTTPS goes through rustls with the bundled web roots: a server whose
/// certificate no root vouches for (self-signed, made here) is refused.
#[test]
fn https_verifies_the_servers_certificate() {
    if !common::python3_runs("https_verifies_the_servers_certificate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(output) if output.status.success() => {}
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CI must have openssl");
            println!("skipped: no openssl to make a certificate");
            return;
        }
    }
    let port = LocalService::start(
        &common::repo_root().join("tests/fixtures/http/server.py"),
        &["0", cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    let url = format!("https://127.0.0.1:{}/hello", port.port);
    let report = run_group(
        json!({"tls": granted(json!({"http": [format!("https://127.0.0.1:{}", port.port)]}))}),
        vec![call("tls", "http_get", json!([url]))],
        |_| {},
    );
    let refused = error(&report, "0.0");
    assert!(
        refused.contains("TLS") && refused.contains("certificate"),
        "{refused}"
    );
}
