//! `wfhost run CHAIN.json`.

use std::path::{Path, PathBuf};

use clap::Args;
use wfhost::executor::{Continuation, ValidationError};
use wfhost::runtime::PluginError;
use wfhost::spec::{self, JsonPath, WorkflowSpec};
use wfhost::{Begun, HostError, Intent, RunIdentity, new_workflow_id};

use super::Finished;
use super::execute::{self, HostArgs, StartingRuntime};

#[derive(Args)]
pub struct RunArgs {
    /// The chain file describing the workflow (`-`: read it from stdin,
    /// with plugin paths relative to the working directory).
    chain: PathBuf,
    #[command(flatten)]
    names: Naming,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    fleet: super::worker::FleetRun,
    /// Run again each time the chain file or a plugin's sources change,
    /// rebuilding the plugin first (cargo for a crate whose `target/` holds
    /// it, `build-py` for `NAME.py` beside `NAME.wasm`).
    #[arg(long, conflicts_with = "broker")]
    watch: bool,
}

/// What names a workflow that starts.
#[derive(Args, Clone)]
pub struct Naming {
    /// The workflow's id (overrides the file's `id`). An id that already
    /// ran is not run again: its stored outcome is reported, or, if it was
    /// cut off, it continues.
    #[arg(long, value_parser = wfhost::names::parse)]
    id: Option<String>,
    /// The tenant the workflow runs for (overrides the file's `tenant`).
    #[arg(long, value_parser = wfhost::names::parse)]
    tenant: Option<String>,
}

pub async fn run(args: RunArgs, runtime: StartingRuntime) -> anyhow::Result<Finished> {
    if args.fleet.broker.is_some() {
        return super::worker::run_on_fleet(&args.chain, &args.fleet).await;
    }
    if args.watch {
        anyhow::ensure!(
            args.chain.as_os_str() != "-",
            "--watch needs a chain file, not standard input"
        );
        drop(runtime);
        return super::watch::watch(&args.chain, &args.host, args.names).await;
    }
    let spec = if args.chain.as_os_str() == "-" {
        spec::load_stdin()?
    } else {
        spec::load(&args.chain)?
    };
    start(&args.host, runtime, spec, args.names)
        .await
        .map_err(|err| refused(err, &args.chain))
}

impl Naming {
    /// The names of the `run`-th run of `--watch`: the id given, else the
    /// file's (`file_id`), gets `-N` from the second run on, as an id runs
    /// once; with neither, each run gets a new id.
    pub(super) fn numbered(&self, run: u64, file_id: Option<&str>) -> Naming {
        let id = self.id.as_deref().or(file_id);
        Naming {
            id: id.map(|id| match run {
                1 => id.to_string(),
                run => format!("{id}-{run}"),
            }),
            tenant: self.tenant.clone(),
        }
    }
}

/// A workflow that cannot run, named by the file it came from (the id a
/// new one was given never existed), a plugin file that cannot be read by
/// where that file names it; any other error as it is.
fn refused(err: anyhow::Error, chain: &Path) -> anyhow::Error {
    let Some(HostError::Invalid { source, .. }) = err.downcast_ref::<HostError>() else {
        return err;
    };
    let detail = match source {
        ValidationError::Plugin(PluginError::Read { name, path, cause }) => format!(
            "{}: cannot read {}: {cause}",
            JsonPath::root().key("plugins").key(name),
            path.display()
        ),
        other => other.to_string(),
    };
    let file = if chain.as_os_str() == "-" {
        "the workflow on standard input".to_string()
    } else {
        chain.display().to_string()
    };
    anyhow::anyhow!("{file} cannot run: {detail}")
}

/// Runs `spec` as the workflow `names` give (else the spec's id and
/// tenant, else a new id of tenant `default`), to its end, and prints its
/// outcome: what `run` and `call` do once they have a workflow.
pub async fn start(
    args: &HostArgs,
    runtime: StartingRuntime,
    spec: WorkflowSpec,
    names: Naming,
) -> anyhow::Result<Finished> {
    let identity = RunIdentity {
        id: names
            .id
            .or_else(|| spec.id.clone())
            .unwrap_or_else(new_workflow_id),
        tenant: names
            .tenant
            .or_else(|| spec.tenant.clone())
            .unwrap_or_else(|| "default".to_string()),
    };
    let host = args.open(runtime)?;
    let begun = host.begin(identity, Intent::Start(spec)).await?;
    if let Begun::Ready(ready) = &begun
        && *ready.continuation() == Continuation::Resume
    {
        eprintln!(
            "workflow {} was cut off; continuing it",
            ready.identity().id
        );
    }
    let finished = execute::execute(args, &host, begun, |row| {
        format!(
            "workflow {} already {}; reporting its stored outcome",
            row.id,
            row.status.as_str()
        )
    })
    .await;
    args.db.expire(&host).await;
    host.exit();
    finished
}
