//! `wfhost build-py`: builds a Python tasks module into a plugin component
//! with the Python guest SDK (`wfhost_task`), which does the work; this
//! command finds it and says what is missing when it is not there.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use clap::Args;

use super::Finished;

#[derive(Args)]
pub struct BuildPyArgs {
    /// The tasks module: a `.py` file, or a module name found from the
    /// working directory (`tasks`, `proj.tasks`).
    module: String,
    /// The component to write [default: NAME.wasm in the working directory].
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Another directory of modules the tasks import (repeatable).
    #[arg(short = 'p', long = "python-path", value_name = "DIR")]
    python_path: Vec<PathBuf>,
    /// The Python that has the SDK and componentize-py installed.
    #[arg(
        long,
        env = "WFHOST_PYTHON",
        default_value = "python3",
        value_name = "PROGRAM"
    )]
    python: PathBuf,
}

/// Runs `python -m wfhost_task build …`.
pub fn build_py(args: BuildPyArgs) -> anyhow::Result<Finished> {
    let mut command = Command::new(&args.python);
    command.args(["-m", "wfhost_task", "build", &args.module]);
    if let Some(output) = &args.output {
        command.arg("-o").arg(output);
    }
    for path in &args.python_path {
        command.arg("-p").arg(path);
    }
    let output = command
        .output()
        .with_context(|| format!("running {} (is Python installed?)", args.python.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        eprint!("{stderr}");
        return Ok(Finished::Succeeded);
    }
    if stderr.contains("No module named wfhost_task") {
        anyhow::bail!(
            "the Python guest SDK is not installed for {}: pip install ./guest-sdk/python \
             (from a wfhost checkout)",
            args.python.display()
        );
    }
    let message = stderr.trim();
    anyhow::bail!("{}", message.strip_prefix("error: ").unwrap_or(message))
}
