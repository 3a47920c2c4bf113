//! A fluent builder for canvases, after Celery's `sig`, `|`, `group` and `chord`.

use std::ops::BitOr;

use serde::Serialize;
use serde_json::Value;

use crate::{Canvas, Chord, Signature, StepOptions, accumulated};

/// A signature of `task` (`"plugin.task"`), to be given arguments.
pub fn sig(task: impl Into<String>) -> Signature {
    Signature::new(task)
}

/// Steps run one after the other.
pub fn chain<C: Into<Canvas>>(steps: impl IntoIterator<Item = C>) -> Canvas {
    Canvas::Chain(steps.into_iter().map(Into::into).collect())
}

/// Members run in parallel.
pub fn group<C: Into<Canvas>>(members: impl IntoIterator<Item = C>) -> Canvas {
    Canvas::Group(members.into_iter().map(Into::into).collect())
}

/// A group whose results, in member order, are passed to `body`.
pub fn chord<C: Into<Canvas>>(
    header: impl IntoIterator<Item = C>,
    body: impl Into<Canvas>,
) -> Canvas {
    Canvas::Chord(Chord {
        header: header.into_iter().map(Into::into).collect(),
        body: Box::new(body.into()),
    })
}

/// The immutable call of `task` with `args`.
fn call(task: &str, args: Vec<Value>) -> Canvas {
    let mut call = Signature::new(task);
    call.args = args;
    call.immutable = true;
    Canvas::Signature(call)
}

/// Converts a builder argument to JSON.
///
/// # Panics
/// When the value cannot be represented as JSON (a map with non-string keys),
/// which is a programming error in the caller.
fn to_json(value: impl Serialize) -> Value {
    match serde_json::to_value(value) {
        Ok(value) => value,
        Err(err) => panic!("canvas arguments must be representable as JSON: {err}"),
    }
}

impl Signature {
    /// Celery's `task.map(it)`: the task called with each item of `it` as
    /// its one argument, each call a step, giving the list of results. As
    /// in Celery, only the task's name is used (not its arguments or
    /// options), and the previous step's result is not passed.
    pub fn map(&self, it: impl IntoIterator<Item = Value>) -> Canvas {
        accumulated(
            it.into_iter()
                .map(|item| call(&self.task, vec![item]))
                .collect(),
        )
    }

    /// Celery's `task.starmap(it)`: as [`Signature::map`], with each item
    /// a list spread as the call's arguments.
    pub fn starmap(&self, it: impl IntoIterator<Item = Vec<Value>>) -> Canvas {
        accumulated(it.into_iter().map(|args| call(&self.task, args)).collect())
    }

    /// Celery's `task.chunks(it, n)`: `it` split into parts of `n` (at
    /// least 1), each a [`Signature::starmap`], giving the list of their
    /// lists.
    pub fn chunks(&self, it: impl IntoIterator<Item = Vec<Value>>, n: usize) -> Canvas {
        let calls: Vec<Vec<Value>> = it.into_iter().collect();
        accumulated(
            calls
                .chunks(n.max(1))
                .map(|part| self.starmap(part.to_vec()))
                .collect(),
        )
    }

    /// Sets the positional arguments: a tuple, array or `Vec` gives one
    /// argument per element; any other value is one argument.
    ///
    /// # Panics
    /// When `args` cannot be represented as JSON.
    pub fn args(mut self, args: impl Serialize) -> Self {
        self.args = match to_json(args) {
            Value::Array(items) => items,
            single => vec![single],
        };
        self
    }

    /// Adds one keyword argument.
    ///
    /// # Panics
    /// When `value` cannot be represented as JSON.
    pub fn kwarg(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        self.kwargs.insert(name.into(), to_json(value));
        self
    }

    /// Makes the signature immutable: it ignores the previous step's result
    /// (Celery's `.si()`).
    pub fn si(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// Sets the step's options.
    pub fn options(mut self, options: StepOptions) -> Self {
        self.options = options;
        self
    }

    /// The signature in wfhost's native JSON form.
    pub fn to_json(&self) -> Value {
        Canvas::Signature(self.clone()).to_json()
    }
}

/// `a | b` chains two canvases, flattening chains on either side.
impl<R: Into<Canvas>> BitOr<R> for Canvas {
    type Output = Canvas;

    fn bitor(self, rhs: R) -> Canvas {
        let mut steps = match self {
            Canvas::Chain(steps) => steps,
            other => vec![other],
        };
        match rhs.into() {
            Canvas::Chain(more) => steps.extend(more),
            other => steps.push(other),
        }
        Canvas::Chain(steps)
    }
}

/// `sig(..) | x` starts a chain.
impl<R: Into<Canvas>> BitOr<R> for Signature {
    type Output = Canvas;

    fn bitor(self, rhs: R) -> Canvas {
        Canvas::from(self) | rhs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chains_flatten_and_serialize_natively() {
        let canvas = sig("math.add").args((1, 1)) | sig("math.mul").args((3, 3)).si();
        let canvas = canvas | (sig("math.add").kwarg("y", 5) | sig("math.xsum"));
        assert_eq!(
            canvas.to_json(),
            json!({"chain": [
                {"task": "math.add", "args": [1, 1]},
                {"task": "math.mul", "args": [3, 3], "immutable": true},
                {"task": "math.add", "kwargs": {"y": 5}},
                {"task": "math.xsum"},
            ]})
        );
    }

    #[test]
    fn group_and_chord_serialize_natively() {
        let canvas = chord(
            [sig("math.add").args((1, 1)), sig("math.add").args((2, 2))],
            group([sig("math.xsum")]),
        );
        assert_eq!(
            canvas.to_json(),
            json!({"chord": {
                "header": [{"task": "math.add", "args": [1, 1]}, {"task": "math.add", "args": [2, 2]}],
                "body": {"group": [{"task": "math.xsum"}]},
            }})
        );
    }

    #[test]
    fn a_single_value_is_one_argument() {
        assert_eq!(sig("t.echo").args("hi").args, vec![json!("hi")]);
        assert_eq!(
            sig("t.echo").args(vec![1, 2]).args,
            vec![json!(1), json!(2)]
        );
    }

    #[test]
    fn task_names_split_at_the_last_dot() {
        let signature = sig("acme.images.resize");
        assert_eq!(signature.plugin_name(), Some("acme.images"));
        assert_eq!(signature.task_name(), "resize");
        assert_eq!(sig("bare").plugin_name(), None);
    }
}
