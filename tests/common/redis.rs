//! A private `redis-server` for a test: on 127.0.0.1, on a free port, with
//! every write fsynced (`appendfsync always`), in a temporary directory,
//! stopped by its PID when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running `redis-server`.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    persistence: Vec<String>,
    dir: TempDir,
}

/// Whether `redis-server` and `redis-cli` run here. In CI, which installs
/// them, they must; elsewhere a test without them says it was skipped.
pub fn available(test: &str) -> bool {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    let found = runs("redis-server") && runs("redis-cli");
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must have redis-server and redis-cli (.ci/run installs them)"
    );
    if !found {
        println!("skipped {test}: no redis-server here");
    }
    found
}

impl RedisServer {
    /// Starts one and waits until it answers.
    pub fn start() -> RedisServer {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// Starts one that keeps nothing on disk, as the Celery peer's
    /// benchmark runs its Redis (for figures beside it).
    pub fn start_volatile() -> RedisServer {
        Self::start_with(&["--appendonly", "no"])
    }

    fn start_with(persistence: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let persistence: Vec<String> = persistence.iter().map(|s| s.to_string()).collect();
        let child = spawn(port, dir.path(), &persistence);
        let server = RedisServer {
            child,
            port,
            persistence,
            dir,
        };
        server.wait_until_it_answers();
        server
    }

    /// Stops it by its PID and starts it again on the same port and data
    /// directory (what it wrote to its append-only file is still there).
    pub fn restart(&mut self) {
        super::kill(&mut self.child);
        self.child = spawn(self.port, self.dir.path(), &self.persistence);
        self.wait_until_it_answers();
    }

    fn wait_until_it_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.try_cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// What `redis-cli` prints for a command.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// A number `redis-cli` prints.
    pub fn number(&self, args: &[&str]) -> u64 {
        let text = self.cli(args);
        text.parse()
            .unwrap_or_else(|_| panic!("redis-cli {args:?} said {text:?}"))
    }

    /// The keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(str::to_string)
            .filter(|line| !line.is_empty())
            .collect()
    }
}

fn spawn(port: u16, dir: &Path, persistence: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(persistence)
        .args(["--protected-mode", "yes", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting redis-server")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        super::kill(&mut self.child);
    }
}
