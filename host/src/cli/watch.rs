//! `wfhost run CHAIN.json --watch`: runs the workflow, then again each
//! time the chain file or a plugin's sources change, rebuilding the plugin
//! first — a Rust crate with cargo, a Python module with `build-py` — as
//! `spin watch` and `cargo watch` do.
//!
//! A plugin's sources are found from its component's path: a `.wasm`
//! under a crate's `target/` folder is that crate's (its `Cargo.toml` and
//! every `.rs` file outside `target/`), and `NAME.wasm` beside `NAME.py`
//! is that module's. A component whose sources are not found is watched
//! itself: rebuilt elsewhere, it is run again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::Finished;
use super::execute::{HostArgs, StartingRuntime};
use super::run::{Naming, start};
use wfhost::spec;

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(250);
/// Files watched at most (a crate with more is watched in part).
const MOST_FILES: usize = 10_000;

/// How a plugin is made again.
#[derive(Debug, Clone, PartialEq)]
enum Build {
    /// `cargo build [--release] --target wasm32-wasip2` in the crate, into
    /// its `target/`.
    Cargo { dir: PathBuf, release: bool },
    /// `wfhost build-py MODULE -o COMPONENT`.
    Python { module: PathBuf, component: PathBuf },
    /// Nothing: the component itself is watched.
    Elsewhere,
}

/// A plugin's build and the files it is made from.
#[derive(Debug)]
struct Watched {
    name: String,
    build: Build,
    sources: Vec<PathBuf>,
}

pub async fn watch(chain: &Path, host: &HostArgs, names: Naming) -> anyhow::Result<Finished> {
    // One listener for the whole watch, which keeps a Ctrl-C until it is
    // looked at: one that lands while no run listens (as a run ends, or
    // while a plugin is rebuilt) still ends the watch, where a listener
    // made for each wait would never hear it.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let mut run = 0u64;
    // Each file as it was when last looked at: a change made while a
    // build or a run went on is still a change to answer.
    let mut seen = Stamps::new();
    loop {
        run += 1;
        let loaded = spec::load(chain);
        let plugins = match &loaded {
            Ok(spec) => plugins_of(spec),
            Err(_) => Vec::new(),
        };
        let mut files: Vec<PathBuf> = vec![chain.to_path_buf()];
        for plugin in &plugins {
            files.extend(plugin.sources.iter().cloned());
        }
        let before: Stamps = stamps(&files)
            .into_iter()
            .map(|(file, now)| {
                let was = seen.get(&file).cloned().unwrap_or(now);
                (file, was)
            })
            .collect();
        match loaded {
            Ok(spec) => {
                let names = names.numbered(run, spec.id.as_deref());
                if let Err(err) = start(host, StartingRuntime::spawn(), spec, names).await {
                    eprintln!("error: {err:#}");
                }
            }
            Err(err) => eprintln!("error: {err}"),
        }
        eprintln!(
            "watching {} files of {} and its plugins (Ctrl-C to stop)",
            files.len(),
            chain.display()
        );
        // A run takes Ctrl-C for itself; while watching, it ends the watch.
        let changed = tokio::select! {
            changed = changes(&before) => changed,
            _ = interrupt.recv() => return Ok(Finished::Succeeded),
        };
        let (changed, now) = changed;
        seen = now;
        for plugin in &plugins {
            if plugin.build != Build::Elsewhere
                && changed.iter().any(|file| plugin.sources.contains(file))
                && let Err(err) = rebuild(plugin)
            {
                eprintln!("error: {err:#}");
            }
        }
    }
}

/// Each watched file's modification time and length, if it exists.
type Stamps = BTreeMap<PathBuf, Option<(SystemTime, u64)>>;

/// The files that changed from `before`, once some have (at once, if some
/// already have), with the stamps they then have.
async fn changes(before: &Stamps) -> (Vec<PathBuf>, Stamps) {
    let files: Vec<PathBuf> = before.keys().cloned().collect();
    loop {
        if stamps(&files) != *before {
            // A save is often several writes: let them land.
            tokio::time::sleep(POLL).await;
            let now = stamps(&files);
            return (changed_files(before, &now), now);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Each plugin of `spec`, with how it is built and what from.
fn plugins_of(spec: &spec::WorkflowSpec) -> Vec<Watched> {
    spec.plugins
        .iter()
        .map(|(name, plugin)| {
            let component =
                std::path::absolute(&plugin.path).unwrap_or_else(|_| plugin.path.clone());
            let build = build_of(&component);
            let mut sources = match &build {
                Build::Cargo { dir, .. } => crate_sources(dir),
                Build::Python { module, .. } => vec![module.clone()],
                Build::Elsewhere => Vec::new(),
            };
            if build == Build::Elsewhere {
                sources.push(component);
            }
            Watched {
                name: name.clone(),
                build,
                sources,
            }
        })
        .collect()
}

/// How the component at `component` is built, from where it lies.
fn build_of(component: &Path) -> Build {
    let module = component.with_extension("py");
    if module.is_file() {
        return Build::Python {
            module,
            component: component.to_path_buf(),
        };
    }
    let release = component
        .components()
        .any(|part| part.as_os_str() == "release");
    let crate_dir = component
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
        .and_then(Path::parent)
        .filter(|dir| dir.join("Cargo.toml").is_file());
    match crate_dir {
        Some(dir) => Build::Cargo {
            dir: dir.to_path_buf(),
            release,
        },
        None => Build::Elsewhere,
    }
}

/// A crate's `Cargo.toml` files and `.rs` files, outside `target/`.
fn crate_sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with('.');
            match entry.file_type() {
                Ok(kind) if kind.is_dir() && name != "target" && !hidden => pending.push(path),
                Ok(kind)
                    if kind.is_file()
                        && (name == "Cargo.toml"
                            || path.extension().is_some_and(|ext| ext == "rs")) =>
                {
                    found.push(path);
                }
                _ => {}
            }
            if found.len() >= MOST_FILES {
                return found;
            }
        }
    }
    found.sort();
    found
}

/// When each file last changed, and its length (a missing one: none).
fn stamps(files: &[PathBuf]) -> Stamps {
    files
        .iter()
        .map(|file| {
            let stamp = std::fs::metadata(file)
                .ok()
                .and_then(|meta| Some((meta.modified().ok()?, meta.len())));
            (file.clone(), stamp)
        })
        .collect()
}

fn changed_files(before: &Stamps, now: &Stamps) -> Vec<PathBuf> {
    now.iter()
        .filter(|(file, stamp)| before.get(*file) != Some(*stamp))
        .map(|(file, _)| file.clone())
        .collect()
}

/// Builds `plugin` again, saying so.
fn rebuild(plugin: &Watched) -> anyhow::Result<()> {
    let mut command = match &plugin.build {
        Build::Cargo { dir, release } => {
            let mut cargo =
                Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            // Into the `target/` the component lies under, whatever
            // CARGO_TARGET_DIR says.
            cargo
                .current_dir(dir)
                .args(["build", "--target", "wasm32-wasip2", "--target-dir"])
                .arg(dir.join("target"));
            if *release {
                cargo.arg("--release");
            }
            cargo
        }
        Build::Python { module, component } => {
            let mut build = Command::new(std::env::current_exe().context("cannot find wfhost")?);
            build.arg("build-py").arg(module).arg("-o").arg(component);
            build
        }
        Build::Elsewhere => return Ok(()),
    };
    eprintln!("rebuilding plugin {}…", plugin.name);
    let status = command
        .status()
        .with_context(|| format!("cannot rebuild plugin {}", plugin.name))?;
    anyhow::ensure!(
        status.success(),
        "rebuilding plugin {} failed ({status})",
        plugin.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_built_by_where_it_lies() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Cargo.toml"), "[package]\n").unwrap();
        std::fs::create_dir_all(root.join("src/nested")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "").unwrap();
        std::fs::write(root.join("src/nested/more.rs"), "").unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        std::fs::write(root.join("target/debug/built.rs"), "").unwrap();
        let release = root.join("target/wasm32-wasip2/release/p.wasm");
        assert_eq!(
            build_of(&release),
            Build::Cargo {
                dir: root.to_path_buf(),
                release: true
            }
        );
        assert_eq!(
            crate_sources(root),
            [
                root.join("Cargo.toml"),
                root.join("src/lib.rs"),
                root.join("src/nested/more.rs")
            ]
        );
        std::fs::write(root.join("tasks.py"), "").unwrap();
        assert_eq!(
            build_of(&root.join("tasks.wasm")),
            Build::Python {
                module: root.join("tasks.py"),
                component: root.join("tasks.wasm")
            }
        );
        assert_eq!(build_of(&root.join("other.wasm")), Build::Elsewhere);
    }
}
