//! The command line's conventions, end to end: exit statuses of `resume`,
//! `retry` and `cancel` for a workflow in each state, a reader that closes
//! the pipe, commands that only read never making a database, flags only
//! where they apply, hints at the tenant an id belongs to, shell
//! completions, and on a terminal (a pseudo-terminal here) the progress
//! bar's rate and time left, and what Ctrl-C says.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;

/// One workflow of each state that stays put, in one database: `ok`
/// succeeded, `bad` failed, `stopped` cancelled (cut off, then cancelled).
fn workflows_of_each_state() -> ChainFile {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 2]}],
    }));
    assert_eq!(run_file(&chain, &["--id", "ok"]).code, 0);
    let failing = chain.dir.path().join("failing.json");
    let document = json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "testkit.fail", "args": ["no"]}],
    });
    std::fs::write(&failing, document.to_string()).unwrap();
    let failed = Run::from(
        chain
            .wfhost()
            .args(["run", "--id", "bad"])
            .arg(&failing)
            .output()
            .unwrap(),
    );
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let sleeping = chain.dir.path().join("sleeping.json");
    let document = json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "testkit.sleep", "args": [60_000]}],
    });
    std::fs::write(&sleeping, document.to_string()).unwrap();
    let mut runner = start(
        &chain,
        &["run", "--id", "stopped", sleeping.to_str().unwrap()],
    );
    let started = std::time::Instant::now();
    while chain.command(&["status", "stopped"]).code != 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kill(&mut runner);
    assert_eq!(chain.command(&["cancel", "stopped"]).code, 0);
    chain
}

/// The table of docs/cli.md: what each command does with a workflow in
/// each state, by its exit status and what it says.
#[test]
fn resume_retry_and_cancel_exit_as_documented_in_each_state() {
    let chain = workflows_of_each_state();
    let table = [
        // (command, id, exit status, words on stderr)
        ("resume", "ok", 0, "is not cut off: it succeeded"),
        ("resume", "bad", 1, "is not cut off: it failed"),
        ("resume", "stopped", 1, "is not cut off: it was cancelled"),
        (
            "retry",
            "ok",
            2,
            "succeeded; only a failed workflow can be retried",
        ),
        (
            "retry",
            "stopped",
            2,
            "was cancelled; only a failed workflow",
        ),
        (
            "cancel",
            "ok",
            2,
            "already succeeded: there is nothing to cancel",
        ),
        (
            "cancel",
            "bad",
            2,
            "already failed: there is nothing to cancel",
        ),
        ("cancel", "stopped", 0, "already cancelled"),
        (
            "resume",
            "none",
            2,
            "no workflow `none` of tenant `default`",
        ),
        ("retry", "none", 2, "no workflow `none`"),
        ("cancel", "none", 2, "no workflow `none`"),
    ];
    for (command, id, code, words) in table {
        let run = chain.command(&[command, id]);
        assert_eq!(run.code, code, "{command} {id}: {}", run.stderr);
        assert!(run.stderr.contains(words), "{command} {id}: {}", run.stderr);
    }
}

#[test]
fn a_reader_that_stops_reading_ends_the_command_quietly() {
    let chain = counting_chain(2_000);
    assert_eq!(run_file(&chain, &["--id", "long"]).code, 0);
    for args in [
        &["status", "long", "--all"][..],
        &["status", "long", "--json"],
        &["events", "long"],
    ] {
        let mut child = chain
            .wfhost()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The pipe closes here, long before the output's end.
        let output = child.wait_with_output().unwrap();
        assert!(!first.is_empty());
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{args:?}");
    }
}

#[test]
fn commands_that_only_read_never_make_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["status", "x"][..],
        &["events", "x"],
        &["list"],
        &["usage"],
        &["cancel", "x"],
    ] {
        let run = Run::from(wfhost_in(dir.path()).args(args).output().unwrap());
        assert_eq!(run.code, 2, "{args:?}");
        assert!(
            run.stderr.contains("no state database at"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn flags_are_offered_only_where_they_apply() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["list", "--durability", "batched"][..],
        &["status", "x", "--concurrency", "2"],
    ] {
        let run = Run::from(wfhost_in(dir.path()).args(args).output().unwrap());
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.contains("unexpected argument"), "{}", run.stderr);
    }
}

#[test]
fn an_id_of_another_tenant_is_pointed_at() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 2]}],
    }));
    assert_eq!(
        run_file(&chain, &["--id", "theirs", "--tenant", "acme"]).code,
        0
    );
    for command in ["status", "events", "resume", "cancel"] {
        let run = chain.command(&[command, "theirs"]);
        assert_eq!(run.code, 2, "{command}");
        assert!(
            run.stderr.contains("tenant `acme` has one (--tenant acme)"),
            "{command}: {}",
            run.stderr
        );
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, words) in [
        ("bash", "complete -F _wfhost"),
        ("zsh", "#compdef wfhost"),
        ("fish", "complete -c wfhost"),
    ] {
        let run = run_args(&["completions", shell]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains(words), "{shell}");
        for command in ["run", "status", "events", "cancel"] {
            assert!(run.stdout.contains(command), "{shell}: {command}");
        }
    }
}

/// Runs `wfhost` with `args` over `chain`'s database with its stderr on a
/// pseudo-terminal, as on a user's terminal, sending it SIGINT (Ctrl-C)
/// after `interrupt_after` if given; returns what the terminal showed and
/// the exit status.
fn on_a_terminal(
    chain: &ChainFile,
    args: &[&str],
    interrupt_after: Option<Duration>,
) -> (String, Option<i32>) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the pointers are to live locals; openpty writes the two
    // descriptors, which are owned from here on.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened, and nothing else owns them.
    let (mut master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut command = chain.wfhost();
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    let mut child = command.spawn().unwrap();
    // The terminal's other end stays open only in the child.
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buffer = [0u8; 4096];
        // Reading fails (EIO) once the child has exited and closed it.
        while let Ok(n @ 1..) = master.read(&mut buffer) {
            shown.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    if let Some(after) = interrupt_after {
        std::thread::sleep(after);
        // SAFETY: signalling a child this test started and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    }
    let status = child.wait().unwrap();
    (reader.join().unwrap(), status.code())
}

#[test]
fn the_progress_bar_shows_the_rate_and_the_time_left() {
    let chain = counting_chain(3_000);
    let path = chain.path.to_str().unwrap();
    let (shown, code) = on_a_terminal(&chain, &["run", path, "--id", "bar"], None);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("/3,000 steps, "), "{shown}");
    assert!(shown.contains("/s, ") && shown.contains(" left"), "{shown}");
}

#[test]
fn ctrl_c_says_which_workflow_was_cut_off_and_how_to_resume_it() {
    let slow = |x: i64| json!({"task": "testkit.slow_add", "args": [x, 100]});
    let mut workflow = vec![json!({"task": "testkit.slow_add", "args": [0, 1, 100]})];
    workflow.extend((0..39).map(|_| slow(1)));
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    let path = chain.path.to_str().unwrap();
    let args = ["run", path, "--id", "int", "--tenant", "acme"];
    let (shown, code) = on_a_terminal(&chain, &args, Some(Duration::from_millis(1500)));
    assert_eq!(code, Some(130), "{shown}");
    assert!(
        shown.contains(
            "interrupted: workflow int is cut off; `wfhost resume int --tenant acme` continues it"
        ),
        "{shown}"
    );
    let resumed = chain.command(&["resume", "int", "--tenant", "acme"]);
    assert_eq!(
        (resumed.code, resumed.stdout.as_str()),
        (0, "40\n"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn call_runs_one_task_ad_hoc_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let math = plugin("math");
    let math = math.to_str().unwrap();
    let call = |args: &[&str]| Run::from(wfhost_in(dir.path()).args(args).output().unwrap());
    let added = call(&["call", math, "add", "2", "3", "--id", "sum"]);
    assert_eq!(
        (added.code, added.stdout.as_str()),
        (0, "5\n"),
        "{}",
        added.stderr
    );
    let keywords = call(&["call", math, "add", "x=44", "y=-2"]);
    assert_eq!(keywords.stdout, "42\n", "{}", keywords.stderr);
    let testkit = plugin("testkit");
    let echoed = call(&[
        "call",
        testkit.to_str().unwrap(),
        "echo",
        r#"{"a": [1, "b"]}"#,
    ]);
    assert_eq!(echoed.stdout, "{\"a\":[1,\"b\"]}\n", "{}", echoed.stderr);
    // It is a workflow on record like any other.
    let report = call(&["status", "sum", "--json"]).json();
    assert_eq!(
        (&report["status"], &report["result"]),
        (&json!("succeeded"), &json!(5))
    );
    assert_eq!(step_of(&report, "0")["task"], "math.add");
    for (args, code, words) in [
        (
            &["call", math, "add", "2", "two"][..],
            2,
            "argument 2: `two` is not JSON",
        ),
        (
            &["call", math, "nope"],
            2,
            "plugin `math` has no task `nope` (it has: add, mul, xsum)",
        ),
        (
            &["call", math, "add", "1"],
            2,
            "add() would miss required argument 'y'",
        ),
        (
            &["call", math, "add", "9223372036854775807", "1"],
            1,
            "overflow",
        ),
    ] {
        let run = call(args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(words), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_chain_file_on_stdin_runs_with_plugins_relative_to_the_working_directory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin("math"), dir.path().join("m.wasm")).unwrap();
    let chain = json!({"plugins": {"m": "m.wasm"},
                       "workflow": [{"task": "m.add", "args": [40, 2]}]});
    let run_stdin = |text: &str| {
        let mut child = wfhost_in(dir.path())
            .current_dir(dir.path())
            .args(["run", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        drop(stdin);
        Run::from(child.wait_with_output().unwrap())
    };
    let run = run_stdin(&chain.to_string());
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "42\n"),
        "{}",
        run.stderr
    );
    let bad = run_stdin("{\"plugins\": ");
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("<stdin>"), "{}", bad.stderr);
}

#[test]
fn the_host_logs_what_it_does_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let math = plugin("math");
    let call = |log: Option<&str>, flags: &[&str]| {
        let mut command = wfhost_in(dir.path());
        command.env_remove("RUST_LOG").args(flags);
        command.args(["call", math.to_str().unwrap(), "add", "1", "2"]);
        if let Some(directives) = log {
            command.env("RUST_LOG", directives);
        }
        Run::from(command.output().unwrap())
    };
    let quiet = call(None, &[]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (0, "3\n", "")
    );
    let debug = call(Some("debug"), &[]);
    for words in [
        "DEBUG wfhost::store: opened the state database",
        "INFO wfhost::lifecycle: workflow started",
        "DEBUG wfhost::executor::attempt: attempt ended",
        "task=math.add attempt=1 outcome=\"value\"",
        "INFO wfhost::lifecycle: workflow ended",
    ] {
        assert!(debug.stderr.contains(words), "{words}: {}", debug.stderr);
    }
    let verbose = call(None, &["-v"]);
    assert!(
        verbose.stderr.contains("workflow ended"),
        "{}",
        verbose.stderr
    );
    assert!(!verbose.stderr.contains("DEBUG"), "{}", verbose.stderr);
    let only_store = call(Some("wfhost::store=debug"), &[]);
    assert!(only_store.stderr.contains("opened the state database"));
    assert!(
        !only_store.stderr.contains("workflow ended"),
        "{}",
        only_store.stderr
    );
    let wrong = call(Some("wfhost=[x"), &[]);
    assert_eq!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("warning: RUST_LOG ignored"),
        "{}",
        wrong.stderr
    );
}

/// Every subcommand's help states each default once: a default written in
/// a flag's text beside the one clap prints was shown twice.
#[test]
fn every_help_states_each_default_once() {
    let help = Run::from(wfhost().arg("--help").output().unwrap());
    let commands: Vec<String> = help
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .filter(|command| command != "help")
        .collect();
    assert!(commands.len() > 10, "{}", help.stdout);
    for command in commands {
        let shown = Run::from(wfhost().args([&command, "--help"]).output().unwrap());
        assert_eq!(shown.code, 0, "{command}: {}", shown.stderr);
        for line in shown.stdout.lines() {
            assert!(
                line.matches("[default:").count() <= 1,
                "`wfhost {command} --help` says a default twice: {line}"
            );
        }
    }
}

/// `status` tells one story of a workflow's steps (issue "rough edges"):
/// a cut-off workflow's step is cut off, not running, and after a cancel
/// it is interrupted, with what was never reached "not run"; a stopped
/// chain counts its skipped steps apart from those done.
#[test]
fn status_tells_where_the_steps_stand_in_each_state_of_the_workflow() {
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 1]},
            {"task": "testkit.sleep", "args": [60_000], "immutable": true},
            {"task": "math.add", "args": [1]},
            {"task": "math.add", "args": [1]},
        ],
    }));
    let mut runner = start(
        &chain,
        &["run", chain.path.to_str().unwrap(), "--id", "cut"],
    );
    let started = std::time::Instant::now();
    while !chain
        .command(&["status", "cut"])
        .stdout
        .contains("1 running")
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kill(&mut runner);
    let status = chain.command(&["status", "cut"]).stdout;
    for words in [
        "workflow cut (tenant default): cut_off",
        "  1 of 4 steps done, 1 cut off, 2 pending",
        "  cut off while running: step 1 (testkit.sleep), attempt 1 since",
    ] {
        assert!(status.contains(words), "{words}:\n{status}");
    }
    assert_eq!(chain.command(&["cancel", "cut"]).code, 0);
    let status = chain.command(&["status", "cut"]).stdout;
    for words in [
        "  1 of 4 steps done, 1 interrupted, 2 not run",
        "  interrupted while running: step 1 (testkit.sleep)",
    ] {
        assert!(status.contains(words), "{words}:\n{status}");
    }

    let failing = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [
            {"task": "math.add", "args": [1, 1]},
            {"task": "testkit.fail", "args": ["no"], "immutable": true},
            {"task": "math.add", "args": [1]},
            {"task": "math.add", "args": [1]},
        ],
    }));
    assert_eq!(run_file(&failing, &["--id", "stops"]).code, 1);
    let status = failing.command(&["status", "stops"]).stdout;
    assert!(
        status.contains("  2 of 4 steps done, 1 failed, 2 skipped"),
        "{status}"
    );
}

/// The text `status` of a long workflow reads its tally and latest records
/// only, and says what `status --all`, which reads every record, says: the
/// same account, the same failed step, and the same last steps.
#[test]
fn status_of_a_long_workflow_says_what_reading_every_record_says() {
    let mut workflow = vec![json!({"task": "math.add", "args": [0, 1]})];
    workflow.extend(std::iter::repeat_n(
        json!({"task": "math.add", "args": [1]}),
        250,
    ));
    workflow.push(json!({"task": "testkit.fail", "args": ["no"], "immutable": true}));
    workflow.extend(std::iter::repeat_n(
        json!({"task": "math.add", "args": [1]}),
        20,
    ));
    let chain = chain_file(&json!({"plugins": standard_plugins(), "workflow": workflow}));
    assert_eq!(run_file(&chain, &["--id", "long"]).code, 1);
    let brief = chain.command(&["status", "long"]);
    let all = chain.command(&["status", "long", "--all"]);
    assert_eq!(
        (brief.code, all.code),
        (0, 0),
        "{}{}",
        brief.stderr,
        all.stderr
    );
    let (brief, all) = (brief.stdout, all.stdout);
    let (head, rows) = brief.split_once("  STEP ").unwrap();
    let (all_head, all_rows) = all.split_once("  STEP ").unwrap();
    assert_eq!(head, all_head);
    assert!(
        head.contains("  252 of 272 steps done, 1 failed, 20 skipped\n"),
        "{head}"
    );
    let shown: Vec<&str> = rows.lines().skip(2).collect();
    let every: Vec<&str> = all_rows.lines().skip(1).collect();
    assert_eq!(shown.len(), 40, "{brief}");
    assert_eq!(shown, every[every.len() - 40..]);
    assert!(
        rows.contains("… 232 earlier steps (`--all` shows every step)"),
        "{rows}"
    );
    assert_whole(&chain);
}
