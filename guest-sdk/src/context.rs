//! The invocation context a task may ask for with a `&Context` parameter.

use crate::bindings::wfhost::task::types;

/// Where an invocation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The workflow's id.
    pub chain_id: String,
    /// The step's stable id: its position in the canvas (`0`, `2.1`, `3.body`).
    pub step_id: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The tenant the workflow belongs to.
    pub tenant: String,
}

impl From<types::Context> for Context {
    fn from(ctx: types::Context) -> Self {
        Context {
            chain_id: ctx.chain_id,
            step_id: ctx.step_id,
            attempt: ctx.attempt,
            tenant: ctx.tenant,
        }
    }
}
