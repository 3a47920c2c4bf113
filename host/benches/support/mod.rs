//! What the benchmarks share besides the tests' helpers: workflows begun
//! and run through the library, as an embedder would, and the median of
//! a round's samples.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Parses `document` and begins it on `host` as `identity`, an id not on
/// record: prepared and claimed, ready to execute.
pub async fn ready(
    host: &wfhost::Host,
    document: &Value,
    identity: wfhost::RunIdentity,
) -> Box<wfhost::Ready> {
    let spec = wfhost::spec::parse(&document.to_string(), Path::new("/"))
        .unwrap_or_else(|err| panic!("workflow document: {err}"));
    match host
        .begin(identity, wfhost::Intent::Start(spec))
        .await
        .unwrap()
    {
        wfhost::Begun::Ready(ready) => ready,
        _ => panic!("the workflow's id is on record already"),
    }
}

/// Executes `ready` on `host` with `options` to its end, through the
/// library, and returns its row.
pub async fn run_to_end(
    host: &wfhost::Host,
    ready: Box<wfhost::Ready>,
    options: &wfhost::RunOptions,
) -> wfhost::records::WorkflowRow {
    host.execute(*ready, options, &wfhost::Silent)
        .await
        .unwrap()
}

/// The median of `samples` (the upper one of an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
