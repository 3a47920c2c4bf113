//! `wfhost worker` serving an unmodified Python Celery 5.7 client from a
//! real `redis-server`: three worker processes take the client's chains,
//! groups and chords, and `AsyncResult.get()` returns values and raises
//! errors as it does with Celery's own worker.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use serde_json::{Value, json};

/// A fleet: a private Redis and wfhost workers on the `wfhost` queue.
struct Fleet {
    redis: RedisServer,
    workers: Vec<Child>,
    plugins: PathBuf,
    logs: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fleet {
    fn start(name: &str, workers: usize, extra: &[&str]) -> Fleet {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins.toml");
        let plugin_dir = common::plugin_dir();
        std::fs::write(
            &plugins,
            format!(
                "math = {:?}\ntestkit = {:?}\n",
                plugin_dir.join("math.wasm"),
                plugin_dir.join("testkit.wasm")
            ),
        )
        .unwrap();
        let logs = common::host_target_dir().join("test-artifacts").join(name);
        std::fs::create_dir_all(&logs).unwrap();
        let mut fleet = Fleet {
            redis,
            workers: Vec::new(),
            plugins,
            logs,
            _dir: dir,
        };
        for _ in 0..workers {
            fleet.add_worker(extra);
        }
        fleet.wait_for_workers(workers);
        fleet
    }

    fn add_worker(&mut self, extra: &[&str]) {
        let index = self.workers.len();
        let log = std::fs::File::create(self.logs.join(format!("worker-{index}.log"))).unwrap();
        let child = common::wfhost()
            .args(["worker", "--broker", &self.redis.url(), "--plugins"])
            .arg(&self.plugins)
            .args(["--concurrency", "2", "--name", &format!("w{index}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting wfhost worker");
        self.workers.push(child);
    }

    /// Waits until `count` workers announced themselves.
    fn wait_for_workers(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.redis.keys("wfhost.worker.*").len() < count {
            assert!(
                Instant::now() < deadline,
                "the workers did not start; see {}",
                self.logs.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the Celery client's scenarios; one JSON object each.
    fn client(&self, scenarios: &[&str]) -> Vec<Value> {
        let output = Command::new("python3")
            .arg(common::repo_root().join("tests/fixtures/celery_fleet/client.py"))
            .args(scenarios)
            .env("BROKER", self.redis.url())
            .stderr(Stdio::inherit())
            .output()
            .expect("running the Celery client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the Celery client failed ({}); it printed:\n{stdout}\nworker logs: {}",
            output.status,
            self.logs.display()
        );
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Asserts that nothing is left claimed, queued or counted.
    fn assert_nothing_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let unacked = self.redis.number(&["HLEN", "unacked"]);
            let queued =
                self.redis.number(&["LLEN", "wfhost"]) + self.redis.number(&["LLEN", "celery"]);
            let chord_keys: Vec<String> = self
                .redis
                .keys("celery-taskset-meta-*")
                .into_iter()
                .filter(|key| !key.ends_with(".c"))
                .collect();
            if unacked == 0 && queued == 0 && chord_keys.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "left behind: {unacked} unacked, {queued} queued, chord keys {chord_keys:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            common::kill(worker);
        }
    }
}

fn ready(test: &str) -> bool {
    common::redis::available(test) && common::python3_runs(test) && common::celery_is_installed()
}

fn by_scenario(results: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    results
        .into_iter()
        .map(|result| (result["scenario"].as_str().unwrap().to_string(), result))
        .collect()
}

#[test]
fn a_celery_client_runs_its_canvas_on_wfhost_workers() {
    if !ready("a_celery_client_runs_its_canvas_on_wfhost_workers") {
        return;
    }
    let fleet = Fleet::start("worker-canvas", 3, &[]);
    let seen = by_scenario(fleet.client(&[
        "send_task",
        "chain_of_three",
        "group_of_ten",
        "chord_sum",
        "chord_of_hundred",
        "failing_step",
        "failing_chord_member",
        "link_and_link_error",
        "retry",
        "expires",
        "countdown",
        "not_registered",
    ]));

    assert_eq!(seen["send_task"]["value"], 5);
    let chain = &seen["chain_of_three"];
    assert_eq!(chain["value"], 80, "{chain}");
    assert_eq!(chain["parents"], json!([8, 4]), "{chain}");
    assert_eq!(chain["parent_state"], "SUCCESS");
    let doubled: Vec<i64> = (0..10).map(|i| i * 2).collect();
    assert_eq!(seen["group_of_ten"]["value"], json!(doubled));
    assert_eq!(
        seen["chord_sum"]["value"],
        (0..20).map(|i| i * 2).sum::<i64>()
    );
    let hundred: Vec<i64> = (0..100).map(|i| i + 1).collect();
    assert_eq!(
        seen["chord_of_hundred"]["value"],
        json!(hundred),
        "results in member order"
    );

    let failing = &seen["failing_step"];
    assert_eq!(failing["seen"]["type"], "TaskFailed", "{failing}");
    assert_eq!(failing["seen"]["message"], "boom", "{failing}");
    assert_eq!(failing["failed_state"], "FAILURE");
    assert_eq!(
        failing["last_state"], "FAILURE",
        "the failure reaches the chain's end"
    );

    let member = &seen["failing_chord_member"];
    assert_eq!(
        member["seen"]["type"], "TaskFailed",
        "the member's error is raised first: {member}"
    );
    assert_eq!(member["body_state"], "FAILURE");
    assert_eq!(member["body_error"]["type"], "ChordError", "{member}");
    assert_eq!(member["body_raised"]["type"], "ChordError", "{member}");
    let chord_message = member["body_error"]["message"].as_str().unwrap();
    assert!(
        chord_message.ends_with("raised TaskFailed('member')"),
        "{chord_message}"
    );

    let linked = &seen["link_and_link_error"];
    assert_eq!(
        (linked["first"].clone(), linked["linked"].clone()),
        (json!(2), json!(7)),
        "{linked}"
    );
    assert_eq!(linked["seen"]["type"], "TaskFailed");
    assert_eq!(
        linked["errback_saw"], linked["failed_id"],
        "the errback gets the failed task's id"
    );

    let retry = &seen["retry"];
    assert_eq!(
        retry["value"], 3,
        "two retries, then the third attempt: {retry}"
    );
    assert!(
        retry["states"]
            .as_array()
            .unwrap()
            .contains(&json!("RETRY")),
        "{retry}"
    );
    assert_eq!(retry["id_kept"], true);

    let expired = &seen["expires"];
    assert_eq!(expired["seen"]["type"], "TaskRevokedError", "{expired}");
    assert_eq!(expired["state"], "REVOKED");

    let countdown = &seen["countdown"];
    assert_eq!(countdown["value"], 3);
    assert!(countdown["waited"].as_f64().unwrap() >= 1.4, "{countdown}");

    let unknown = &seen["not_registered"]["seen"];
    assert_eq!(unknown["type"], "NotRegistered", "{unknown}");
    assert_eq!(unknown["message"], "'testkit.no_such_task'");

    fleet.assert_nothing_left();
}

/// A real `celery worker` for the Python tasks, on the `celery` queue.
struct PythonWorker(Child);

impl PythonWorker {
    fn start(fleet: &Fleet, extra_env: &[(&str, &str)]) -> PythonWorker {
        let log = std::fs::File::create(fleet.logs.join("celery-worker.log")).unwrap();
        let child = Command::new("python3")
            .args(["-m", "celery", "-A", "pytasks", "worker", "-Q", "celery", "-P", "solo"])
            .args(["--without-gossip", "--without-mingle", "--without-heartbeat"])
            .args(["--loglevel", "INFO"])
            .current_dir(common::repo_root().join("tests/fixtures/celery_fleet"))
            .env("BROKER", fleet.redis.url())
            .envs(extra_env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting celery worker");
        PythonWorker(child)
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        common::kill(&mut self.0);
    }
}

#[test]
fn a_chain_crosses_python_celery_and_wfhost_workers() {
    if !ready("a_chain_crosses_python_celery_and_wfhost_workers") {
        return;
    }
    let fleet = Fleet::start("worker-mixed", 2, &[]);
    let _python = PythonWorker::start(&fleet, &[]);
    let seen = by_scenario(fleet.client(&["mixed_chain", "python_errback"]));
    // double(2) on Python, add(4, 3) on wfhost, double(7) on Python.
    assert_eq!(seen["mixed_chain"]["value"], 14, "{}", seen["mixed_chain"]);
    let errback = &seen["python_errback"];
    assert_eq!(
        errback["errback"],
        format!("errback saw {}", errback["failed_id"].as_str().unwrap()),
        "a Python errback of a wasm task runs on the Python worker: {errback}"
    );
    fleet.assert_nothing_left();
}
