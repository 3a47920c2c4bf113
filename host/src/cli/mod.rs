//! Command-line parsing and dispatch, and the mapping of outcomes to exit
//! statuses: 0 succeeded, 1 the workflow failed, 2 the input was wrong.

mod inspect;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sandboxed workflows of WebAssembly tasks: Celery's chains, run as components.
#[derive(Parser)]
#[command(name = "wfhost", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workflow of a chain file and print its result as one JSON line.
    Run(run::RunArgs),
    /// List the tasks a plugin component exports, with parameters and docs.
    Inspect {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How a command ended, when it did not fail on its input.
pub enum Finished {
    Succeeded,
    WorkflowFailed,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Inspect { plugin, json } => inspect::inspect(&plugin, json).await,
        }
    });
    match outcome {
        Ok(Finished::Succeeded) => ExitCode::SUCCESS,
        Ok(Finished::WorkflowFailed) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
