//! The guest SDK at compile time: a `#[task]` that `export_tasks!` leaves
//! out would never run, so it does not compile, and the error names it.

mod common;

use std::path::Path;
use std::process::Command;

/// Builds a plugin crate whose `src/lib.rs` is `source` for wasm32-wasip2,
/// with the example plugins' lock file and profile, in their target
/// directory, so that only the crate itself compiles. Returns whether it
/// built, and what cargo said.
fn build_plugin(dir: &Path, source: &str) -> (bool, String) {
    let repo = common::repo_root();
    let manifest = format!(
        r#"[package]
name = "export-check"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wfhost-guest = {{ path = {guest:?} }}

[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#,
        guest = repo.join("guest-sdk").canonicalize().unwrap()
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    std::fs::copy(repo.join("plugins/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let plugins_target = common::plugin_dir().ancestors().nth(2).unwrap();
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--offline",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(plugins_target)
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
