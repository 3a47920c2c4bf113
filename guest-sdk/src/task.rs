//! What `#[task]` implements for a function: its name, doc, parameters and
//! how to call it with bound arguments. Plumbing for the macros.

use crate::arguments::Arguments;
use crate::{Context, Outcome, TaskError};

/// One parameter of a task, as `#[task]` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamInfo {
    /// The parameter's name: what a keyword argument is called.
    pub name: &'static str,
    /// The Rust type as written in the signature.
    pub type_name: &'static str,
    /// Whether the argument may be left out (an `Option` parameter).
    pub optional: bool,
}

/// A task: what `#[task]` implements for a function. Plugin authors do not
/// implement it by hand.
pub trait Task {
    /// The task's name inside its plugin.
    const NAME: &'static str;
    /// The first paragraph of the function's doc comment.
    const DOC: &'static str;
    /// The task's parameters in positional order (the context excluded).
    const PARAMS: &'static [ParamInfo];
    /// The task's own limit of retries (`#[task(max_retries = N)]`), given
    /// with each retry it asks for that names none.
    const MAX_RETRIES: Option<u32> = None;
    /// The return type as written (`i64` for `Result<i64, TaskError>`).
    const RETURNS: &'static str = "";

    /// `{"params": [SCHEMA, ...], "returns": SCHEMA}`: each parameter's
    /// JSON Schema and the result's ([`crate::schema::schema_of`]).
    fn schema() -> serde_json::Value {
        serde_json::json!({"params": [], "returns": {}})
    }

    /// Binds the arguments and runs the function once.
    fn call(ctx: &Context, args: &mut Arguments<'_>) -> Result<Outcome, TaskError>;
}
