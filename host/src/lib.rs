//! wfhost: Celery's canvas — chains, groups, chords, retries, error
//! callbacks — where every task is a WebAssembly component run in its own
//! metered sandbox.
//!
//! The modules follow a workflow's path through the host:
//! - [`spec`] reads a `chain.json` into a [`spec::WorkflowSpec`];
//! - [`plan`] gives every step of the canvas its stable id;
//! - [`runtime`] loads plugin components and runs one attempt of a step in a
//!   fresh, limited store;
//! - [`executor`] drives the workflow: feeds results forward, retries,
//!   expands replacements, stops at a failure;
//! - [`store`] keeps workflows, steps and their event log in redb, so a run
//!   survives a crash and resumes;
//! - [`report`] is what a run produced, step by step;
//! - [`service`] is `wfhost serve`: many tenants' workflows over HTTP.

pub mod executor;
pub mod failure;
mod lock;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod service;
pub mod spec;
pub mod store;

pub use wfhost_canvas as canvas;
