//! The glue between `export_tasks!` and the WIT world: listing tasks,
//! dispatching a call by name, and turning panics into failures.

use std::panic;
use std::sync::Once;

use serde::Serialize;

use crate::arguments::Arguments;
use crate::bindings::exports::wfhost::task::schemas;
use crate::bindings::exports::wfhost::task::tasks as wit;
use crate::bindings::wfhost::task::host;
use crate::bindings::wfhost::task::types;
use crate::task::{ParamInfo, Task};
use crate::{Context, Outcome, TaskError};

/// One exported task, as `export_tasks!` lists it.
pub struct TaskEntry {
    name: &'static str,
    doc: &'static str,
    params: &'static [ParamInfo],
    max_retries: Option<u32>,
    returns: &'static str,
    schema: fn() -> serde_json::Value,
    call: fn(&Context, &mut Arguments<'_>) -> Result<Outcome, TaskError>,
}

impl TaskEntry {
    /// The entry of task `T`.
    pub const fn of<T: Task>() -> Self {
        TaskEntry {
            name: T::NAME,
            doc: T::DOC,
            params: T::PARAMS,
            max_retries: T::MAX_RETRIES,
            returns: T::RETURNS,
            schema: T::schema,
            call: T::call,
        }
    }
}

/// The `list-tasks` export.
pub fn list(tasks: &[TaskEntry]) -> Vec<wit::TaskInfo> {
    tasks
        .iter()
        .map(|task| wit::TaskInfo {
            name: task.name.to_string(),
            doc: task.doc.to_string(),
            params: task
                .params
                .iter()
                .map(|p| types::Param {
                    name: p.name.to_string(),
                    type_name: p.type_name.to_string(),
                    optional: p.optional,
                })
                .collect(),
        })
        .collect()
}

/// The `describe` export: each task's types, learned from its parameters'
/// and result's own serde implementations when the host asks.
pub fn describe(tasks: &[TaskEntry]) -> Vec<schemas::TaskSchema> {
    tasks
        .iter()
        .map(|task| schemas::TaskSchema {
            name: task.name.to_string(),
            returns: task.returns.to_string(),
            schema: (task.schema)().to_string(),
        })
        .collect()
}

/// The `run` export: finds the task by name, binds its arguments and runs it.
pub fn dispatch(
    tasks: &[TaskEntry],
    name: &str,
    ctx: wit::Context,
    args: &str,
    kwargs: &str,
) -> Result<wit::Outcome, wit::TaskError> {
    install_panic_hook();
    let Some(task) = tasks.iter().find(|task| task.name == name) else {
        let known: Vec<&str> = tasks.iter().map(|task| task.name).collect();
        return Err(wit::TaskError::Fail(format!(
            "this plugin has no task '{name}' (it has: {})",
            known.join(", ")
        )));
    };
    let result = crate::context::running(Context::from(ctx), |ctx| {
        Arguments::bind(task.name, task.params, args, kwargs)
            .and_then(|mut arguments| (task.call)(ctx, &mut arguments))
    });
    match result {
        Ok(Outcome::Value(value)) => Ok(wit::Outcome::Value(value.to_string())),
        Ok(Outcome::Replace(canvas)) => Ok(wit::Outcome::Replace(canvas.to_json().to_string())),
        Err(TaskError::Retry {
            message,
            countdown,
            max_retries,
        }) => Err(wit::TaskError::Retry(types::RetryRequest {
            message,
            countdown,
            max_retries: max_retries.or(task.max_retries),
        })),
        Err(TaskError::Fail { message }) => Err(wit::TaskError::Fail(message)),
    }
}

/// Serializes a task's return value into its outcome.
pub fn value_outcome<T: Serialize>(task: &str, value: &T) -> Result<Outcome, TaskError> {
    serde_json::to_value(value)
        .map(Outcome::Value)
        .map_err(|err| TaskError::fail(format!("{task}(): the result is not JSON: {err}")))
}

/// A wasm32 panic aborts the instance (there is no unwinding), so the hook
/// tells the host the message first; the host then reports a `fail` with it
/// rather than an anonymous trap.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string());
            let report = match info.location() {
                Some(location) => format!("panicked at {location}: {message}"),
                None => format!("panicked: {message}"),
            };
            host::panicked(&report);
            default_hook(info);
        }));
    });
}

/// Exports the listed `#[task]` functions as the plugin's tasks.
///
/// Call it once per plugin crate, at the crate root:
/// `wfhost_guest::export_tasks!(add, mul);`. Every `#[task]` of the crate
/// must be listed: one left out is a compile error that names it.
#[macro_export]
macro_rules! export_tasks {
    ($($task:path),+ $(,)?) => {
        // Outside wasm a plugin is only ever built for its unit tests: a
        // native build would fail to link, on every import from the host.
        #[cfg(not(any(target_arch = "wasm32", test, doc)))]
        ::core::compile_error!(
            "a wfhost plugin builds for wasm32-wasip2: `cargo build --release --target \
             wasm32-wasip2` (natively, only `cargo test` builds it; see the guest SDK's README)"
        );

        #[doc(hidden)]
        pub struct __WfhostPlugin;

        /// The tasks `export_tasks!` lists.
        #[doc(hidden)]
        #[diagnostic::on_unimplemented(
            message = "`{Self}` is a #[task] that `export_tasks!` does not list",
            label = "add it to `wfhost_guest::export_tasks!(…)` at the crate root, or it never runs"
        )]
        pub trait __WfhostExported {}
        $(impl __WfhostExported for $task {})+

        /// Compiles only for a task `export_tasks!` lists.
        #[doc(hidden)]
        pub fn __wfhost_exported<T: __WfhostExported>() {}

        const _: () = {
            const __WFHOST_TASKS: &[$crate::__private::TaskEntry] =
                &[$($crate::__private::TaskEntry::of::<$task>()),+];

            use $crate::bindings::exports::wfhost::task::tasks as __wit;

            impl __wit::Guest for __WfhostPlugin {
                fn list_tasks() -> ::std::vec::Vec<__wit::TaskInfo> {
                    $crate::__private::list(__WFHOST_TASKS)
                }

                fn run(
                    name: ::std::string::String,
                    ctx: __wit::Context,
                    args: ::std::string::String,
                    kwargs: ::std::string::String,
                ) -> ::core::result::Result<__wit::Outcome, __wit::TaskError> {
                    $crate::__private::dispatch(__WFHOST_TASKS, &name, ctx, &args, &kwargs)
                }
            }

            use $crate::bindings::exports::wfhost::task::schemas as __schemas;

            impl __schemas::Guest for __WfhostPlugin {
                fn describe() -> ::std::vec::Vec<__schemas::TaskSchema> {
                    $crate::__private::describe(__WFHOST_TASKS)
                }
            }
        };

        $crate::bindings::__export_plugin_world!(__WfhostPlugin);
    };
}
