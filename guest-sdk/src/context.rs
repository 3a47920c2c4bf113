//! The invocation context a task may ask for with a `&Context` parameter.

use std::cell::RefCell;

use crate::bindings::wfhost::task::types;

thread_local! {
    /// The context of the task running now, if one is.
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Runs `run` with `ctx` as the context of the task running now; `run`
/// gets it back by reference (kept, not copied, for a call's duration).
pub(crate) fn running<T>(ctx: Context, run: impl FnOnce(&Context) -> T) -> T {
    CURRENT.with(|current| *current.borrow_mut() = Some(ctx));
    let result = CURRENT.with(|current| {
        let current = current.borrow();
        // Set just above, and only taken below.
        let ctx = current.as_ref().unwrap_or_else(|| unreachable!());
        run(ctx)
    });
    CURRENT.with(|current| current.borrow_mut().take());
    result
}

/// The idempotency key of the task running now.
pub(crate) fn current_idempotency_key() -> Option<String> {
    CURRENT.with(|current| current.borrow().as_ref().map(Context::idempotency_key))
}

/// Where an invocation runs. The host fills it in; a test builds one with
/// [`Context::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl Context {
    /// The context of attempt 1 of step `step_id` of workflow `chain_id`,
    /// for tenant `default`: what a unit test of a task passes it.
    pub fn new(chain_id: impl Into<String>, step_id: impl Into<String>) -> Self {
        Context {
            chain_id: chain_id.into(),
            step_id: step_id.into(),
            attempt: 1,
            tenant: "default".to_string(),
        }
    }

    /// The same context at attempt number `attempt` (from 1).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The step's idempotency key, `<workflow id>/<step id>`: the same on
    /// every attempt and every resume of the step, so that a service that
    /// deduplicates by it sees a retried effect once. The SDK's HTTP client
    /// sends it as `Idempotency-Key`.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.chain_id, self.step_id)
    }

    /// The same context for tenant `tenant`.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
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
