//! wfhost: Celery's canvas — chains, groups, chords, retries, error
//! callbacks — where every task is a WebAssembly component run in its own
//! metered sandbox, and every workflow is durable.
//!
//! An embedder runs a workflow in-process through a [`Host`]:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use wfhost::{Host, RunIdentity, runtime::Runtime, spec, store::Store};
//!
//! let host = Host::new(Runtime::new()?, Store::open("state.redb".as_ref())?);
//! let workflow = spec::load("chain.json".as_ref())?;
//! let row = host.run(workflow, RunIdentity::new("default", "order-7")).await?;
//! println!("{}: {:?}", row.status.as_str(), row.result);
//! # Ok(())
//! # }
//! ```
//!
//! The modules follow a workflow's path through the host:
//! - [`spec`] reads a `chain.json` into a [`spec::WorkflowSpec`];
//! - [`Host`] decides whether a workflow starts, continues, runs again or
//!   is only reported, and records each change of its row;
//! - `plan` gives every step of the canvas its stable id;
//! - [`grants`] is what a plugin may reach beyond its sandbox: HTTP
//!   origins, directories, configuration and secrets;
//! - [`runtime`] loads plugin components and runs one attempt of a step in a
//!   fresh, limited store;
//! - [`executor`] drives the workflow: feeds results forward, retries,
//!   expands replacements, stops at a failure;
//! - `durable` is the stored form of a workflow, and [`store`] keeps it,
//!   every step and the event log in redb, so a run survives a crash;
//! - [`records`] is every record kept or shown, in one JSON shape;
//! - [`service`] is `wfhost serve`: many tenants' workflows over HTTP;
//! - [`worker`] is `wfhost worker`: Celery's task messages on Redis, run
//!   by a fleet of workers.
//!
//! `docs/architecture.md` in the repository draws the same path in more
//! detail.
//!
//! Cargo features, all on by default: `serve` ([`service`], with axum),
//! `worker` ([`worker`], with the redis client), and `cli` (both, and the
//! `wfhost` binary's own crates: clap, indicatif, tracing-subscriber,
//! mimalloc). An embedder of [`Host`] alone takes
//! `default-features = false`.

#![warn(missing_docs)]

mod content;
mod durable;
pub mod executor;
pub mod grants;
mod histogram;
mod json;
#[cfg(test)]
mod layers;
mod lifecycle;
mod lock;
pub mod memory;
pub mod names;
mod plan;
#[cfg(any(feature = "serve", feature = "worker"))]
mod prometheus;
pub mod records;
pub mod runtime;
pub mod schedule;
#[cfg(feature = "serve")]
pub mod service;
mod sha256;
pub mod spec;
pub mod store;
#[doc(hidden)]
pub mod text;
pub mod typing;
mod unique;
#[cfg(feature = "worker")]
pub mod worker;

pub use content::Difference;
pub use durable::StoredWorkflowError;
pub use executor::{Observer, RunIdentity, RunOptions, Silent};
pub use lifecycle::{Begun, Cancellation, Host, HostError, Intent, Purge, Ready, new_workflow_id};
pub use wfhost_canvas as canvas;
