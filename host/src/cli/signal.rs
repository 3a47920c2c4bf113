//! `wfhost signal ID NAME [JSON | -]`: delivers a signal to a workflow.

use std::io::Read;

use clap::Args;
use serde_json::Value;
use wfhost::RunIdentity;

use super::{Finished, TenantArg};

#[derive(Args)]
pub struct SignalArgs {
    /// The workflow's id.
    id: String,
    /// The signal's name: the `wait` it is for.
    name: String,
    /// Its payload, which the wait returns: JSON, or `-` to read it from
    /// stdin. None sends `null`.
    payload: Option<String>,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    db: super::DbArgs,
}

/// Sends the signal: once this says so, it is on the disk, and the
/// workflow's wait for it takes it whenever it gets there.
pub async fn signal(args: SignalArgs) -> anyhow::Result<Finished> {
    let payload = match args.payload.as_deref() {
        None => Value::Null,
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|err| {
                anyhow::anyhow!("cannot read the signal's payload from stdin: {err}")
            })?;
            parse_payload(&text, "stdin")?
        }
        Some(text) => parse_payload(text, "the command line")?,
    };
    let host = args.db.host_of_existing()?;
    let identity = RunIdentity::new(&args.tenant.tenant, &args.id);
    let row = host.signal(&identity, &args.name, payload).await?;
    eprintln!(
        "signal {} sent to workflow {} ({})",
        args.name,
        row.id,
        row.status.as_str()
    );
    Ok(Finished::Succeeded)
}

fn parse_payload(text: &str, from: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|err| {
        anyhow::anyhow!(
            "the signal's payload (from {from}) is not JSON: {err} (a string is written with its quotes: '\"yes\"')"
        )
    })
}
