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
//! - [`report`] is what a run produced, step by step.

pub mod executor;
pub mod failure;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod spec;

pub use wfhost_canvas as canvas;
