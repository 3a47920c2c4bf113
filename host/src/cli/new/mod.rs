//! `wfhost new rust NAME` and `wfhost new python NAME`: a plugin that
//! builds, and a chain file that runs it, as `cargo new` and `spin new`
//! start a project.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::Finished;

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    /// A Rust crate on the wfhost-guest SDK, built for wasm32-wasip2.
    Rust,
    /// A Python module written as for Celery, built by `wfhost build-py`.
    Python,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's language.
    language: Language,
    /// The plugin's name: its tasks are NAME.greet and NAME.measure
    /// (lowercase letters, digits and `_`, starting with a letter).
    name: String,
    /// The folder to make (default: NAME, here); it must not exist or be
    /// empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Where the Rust guest SDK is (default: the `guest-sdk` of the
    /// checkout this wfhost was built from).
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("rust_cargo.toml")),
    ("src/lib.rs", include_str!("rust_lib.rs")),
    ("chain.json", include_str!("rust_chain.json")),
    (".gitignore", "/target\n"),
];

const PYTHON: &[(&str, &str)] = &[
    ("@NAME@.py", include_str!("python_tasks.py")),
    ("chain.json", include_str!("python_chain.json")),
    (".gitignore", "*.wasm\n__pycache__/\n"),
];

pub fn new(args: NewArgs) -> anyhow::Result<Finished> {
    let name = &args.name;
    let named_well = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !named_well {
        bail!(
            "`{}` cannot name a plugin: use lowercase letters, digits and `_`, starting with a \
             letter (at most 64)",
            name.escape_debug()
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || (dir.exists() && !dir.is_dir()) {
        bail!(
            "{} is there already: name a new folder with --dir",
            dir.display()
        );
    }
    let (files, sdk) = match args.language {
        Language::Rust => (RUST, Some(rust_sdk(args.sdk.as_deref())?)),
        Language::Python => (PYTHON, None),
    };
    for (path, template) in files {
        let path = dir.join(path.replace("@NAME@", name));
        let mut text = template.replace("@NAME@", name);
        if let Some(sdk) = &sdk {
            // A TOML basic string of the path.
            text = text.replace("@SDK@", &toml_string(&sdk.display().to_string()));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let at = dir.display();
    match args.language {
        Language::Rust => println!(
            "made {at}: the {name} plugin (tasks {name}.greet and {name}.measure). Next:\n  \
             cd {at}\n  cargo build --release --target wasm32-wasip2\n  wfhost run chain.json"
        ),
        Language::Python => println!(
            "made {at}: the {name} plugin (tasks {name}.greet and {name}.measure). Next:\n  \
             cd {at}\n  wfhost build-py {name}.py\n  wfhost run chain.json\n\
             (needs the Python SDK: pip install <wfhost>/guest-sdk/python componentize-py==0.25.1)"
        ),
    }
    Ok(Finished::Succeeded)
}

/// The guest SDK a new Rust plugin depends on: `given`, or the checkout's
/// own, made absolute.
fn rust_sdk(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let sdk = given.unwrap_or(&built_from);
    let manifest = sdk.join("Cargo.toml");
    let is_sdk = std::fs::read_to_string(&manifest)
        .is_ok_and(|text| text.contains("name = \"wfhost-guest\""));
    if !is_sdk {
        bail!(
            "{} is not the wfhost guest SDK (no wfhost-guest Cargo.toml there): say where it is \
             with --sdk (the guest-sdk folder of a wfhost checkout)",
            sdk.display()
        );
    }
    std::fs::canonicalize(sdk).with_context(|| format!("cannot resolve {}", sdk.display()))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
