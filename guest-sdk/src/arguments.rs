//! Binds a call's JSON arguments to a task's parameters the way Python binds
//! a call: positional arguments first, then keyword arguments by name.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::TaskError;
use crate::task::ParamInfo;

/// The arguments of one call, being bound to parameters.
#[derive(Debug)]
pub struct Arguments {
    task: &'static str,
    params: &'static [ParamInfo],
    /// One slot per parameter; `None` once taken or when not given.
    slots: Vec<Option<Value>>,
}

impl Arguments {
    /// Parses the call's `args` (a JSON array) and `kwargs` (a JSON object)
    /// and assigns each to its parameter.
    ///
    /// Too many positionals, an unknown keyword, or a parameter given both
    /// ways is an error naming the task and the parameter.
    pub fn bind(
        task: &'static str,
        params: &'static [ParamInfo],
        args: &str,
        kwargs: &str,
    ) -> Result<Self, TaskError> {
        let positional: Vec<Value> = parse(task, "positional arguments", args)?;
        let keywords: Map<String, Value> = parse(task, "keyword arguments", kwargs)?;
        if positional.len() > params.len() {
            return Err(TaskError::fail(format!(
                "{task}() takes {} positional argument{} but {} were given",
                params.len(),
                if params.len() == 1 { "" } else { "s" },
                positional.len()
            )));
        }
        let mut slots: Vec<Option<Value>> = positional.into_iter().map(Some).collect();
        slots.resize(params.len(), None);
        for (name, value) in keywords {
            let Some(index) = params.iter().position(|p| p.name == name) else {
                return Err(TaskError::fail(format!(
                    "{task}() got an unexpected keyword argument '{name}'"
                )));
            };
            if slots[index].is_some() {
                return Err(TaskError::fail(format!(
                    "{task}() got multiple values for argument '{name}'"
                )));
            }
            slots[index] = Some(value);
        }
        Ok(Arguments {
            task,
            params,
            slots,
        })
    }

    /// The argument of parameter `index`, which must be given.
    pub fn required<T: DeserializeOwned>(&mut self, index: usize) -> Result<T, TaskError> {
        match self.slots[index].take() {
            Some(value) => self.convert(index, value),
            None => Err(TaskError::fail(format!(
                "{}() missing required argument '{}'",
                self.task, self.params[index].name
            ))),
        }
    }

    /// The argument of `Option` parameter `index`: `None` when left out or `null`.
    pub fn optional<T: DeserializeOwned>(&mut self, index: usize) -> Result<Option<T>, TaskError> {
        match self.slots[index].take() {
            Some(value) => self.convert(index, value),
            None => Ok(None),
        }
    }

    fn convert<T: DeserializeOwned>(&self, index: usize, value: Value) -> Result<T, TaskError> {
        serde_json::from_value(value).map_err(|err| {
            TaskError::fail(format!(
                "{}() argument '{}' ({}): {err}",
                self.task, self.params[index].name, self.params[index].type_name
            ))
        })
    }
}

fn parse<T: DeserializeOwned>(task: &str, what: &str, json: &str) -> Result<T, TaskError> {
    serde_json::from_str(json)
        .map_err(|err| TaskError::fail(format!("{task}(): the host sent malformed {what}: {err}")))
}
