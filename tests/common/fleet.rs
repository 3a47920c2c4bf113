//! A fleet for a test: a private `redis-server` and `wfhost worker`
//! processes on the `wfhost` queue serving math and testkit, with their
//! logs kept under the target directory, and the Celery client of
//! tests/fixtures/celery_fleet to drive it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::redis::RedisServer;

/// A fleet: a private Redis and wfhost workers on the `wfhost` queue.
pub struct Fleet {
    pub redis: RedisServer,
    pub workers: Vec<Child>,
    pub plugins: PathBuf,
    pub logs: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fleet {
    pub fn start(name: &str, workers: usize, extra: &[&str]) -> Fleet {
        Self::start_with_plugins(name, workers, extra, "")
    }

    /// A fleet whose plugins.toml also has `more_plugins` (TOML lines,
    /// before any table).
    pub fn start_with_plugins(
        name: &str,
        workers: usize,
        extra: &[&str],
        more_plugins: &str,
    ) -> Fleet {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins.toml");
        let plugin_dir = super::plugin_dir();
        std::fs::write(
            &plugins,
            format!(
                "{more_plugins}math = {:?}\n[testkit]\npath = {:?}\ngrants = {{ config = {{ bucket = \"images\" }} }}\n",
                plugin_dir.join("math.wasm"),
                plugin_dir.join("testkit.wasm")
            ),
        )
        .unwrap();
        let logs = super::host_target_dir().join("test-artifacts").join(name);
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

    pub fn add_worker(&mut self, extra: &[&str]) {
        let index = self.workers.len();
        let worker = self.spawn_worker(
            &format!("w{index}"),
            &format!("worker-{index}.log"),
            "2",
            extra,
        );
        self.workers.push(worker);
    }

    /// Starts a `wfhost worker` named `name` on this fleet's Redis and
    /// plugins, logging to `log` among the fleet's logs.
    pub fn spawn_worker(&self, name: &str, log: &str, concurrency: &str, extra: &[&str]) -> Child {
        let log = std::fs::File::create(self.logs.join(log)).unwrap();
        super::wfhost()
            .args(["worker", "--broker", &self.redis.url(), "--plugins"])
            .arg(&self.plugins)
            .args(["--concurrency", concurrency, "--name", name])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting wfhost worker")
    }

    /// Waits until `count` workers announced themselves.
    pub fn wait_for_workers(&self, count: usize) {
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

    /// The Celery client on this fleet's broker, to run `scenarios`.
    pub fn client_command(&self, scenarios: &[&str]) -> Command {
        let mut command = Command::new("python3");
        command
            .arg(super::repo_root().join("tests/fixtures/celery_fleet/client.py"))
            .args(scenarios)
            .env("BROKER", self.redis.url())
            .stderr(Stdio::inherit());
        command
    }

    /// Runs the Celery client's scenarios; one JSON object each.
    pub fn client(&self, scenarios: &[&str]) -> Vec<Value> {
        self.client_with(scenarios, &[])
    }

    /// Runs the Celery client's scenarios with `env` set (the ids a
    /// `wait_for` waits for); one JSON object each.
    pub fn client_with(&self, scenarios: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
        let output = self
            .client_command(scenarios)
            .envs(env.iter().copied())
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
    pub fn assert_nothing_left(&self) {
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
            super::kill(worker);
        }
    }
}
