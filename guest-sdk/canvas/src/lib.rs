//! The wfhost canvas: signatures, chains, groups and chords, as Celery's
//! canvas defines them, with a builder that serializes to wfhost's native
//! JSON form.
//!
//! The same types are the host's model of a workflow and what a task returns
//! to replace itself, so there is one definition of what a canvas is.
//!
//! They deserialize too, from the form they serialize to: that is how the
//! host reads back what it wrote itself. JSON from anywhere else (a chain
//! file, a task's replacement) goes through the host's strict parser, which
//! names the JSON path of every mistake.
//!
//! ```
//! use wfhost_canvas::{sig, group};
//!
//! // add(2, 2) | add(4) | group(mul(10), mul(100))
//! let canvas = sig("math.add").args((2, 2))
//!     | sig("math.add").args((4,))
//!     | group([sig("math.mul").args((10,)), sig("math.mul").args((100,))]);
//! assert_eq!(
//!     canvas.to_json()["chain"][1],
//!     serde_json::json!({"task": "math.add", "args": [4]})
//! );
//! ```

#![warn(missing_docs)]

mod accumulate;
mod builder;
pub mod celery;
pub mod name;
mod options;
pub mod pause;
pub mod retry;
pub mod rules;

pub use accumulate::{
    ACCUMULATE, CHUNKS, MAP, STARMAP, accumulate, accumulate_first, accumulate_index, accumulated,
};
pub use builder::{chain, chord, group, sig};

pub use name::plugin_of;
pub use options::{Expires, Limit, RetryBackoff, StepOptions};
pub use pause::{Pause, sleep, wait};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow, or part of one.
// Signatures are by far the most common node: boxing them to shrink the
// enum would cost an allocation per step to save space on rare nodes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Canvas {
    /// Steps run one after the other, each result prepended to the next
    /// mutable signature's arguments.
    Chain(Vec<Canvas>),
    /// Members run in parallel, each receiving the same input; the result is
    /// the list of member results in member order.
    Group(Vec<Canvas>),
    /// A group whose list of results is passed to a body.
    Chord(Chord),
    /// One task invocation.
    #[serde(untagged)]
    Signature(Signature),
}

/// Read by shape, as it is written: `{"chain": [...]}`, `{"group": [...]}`,
/// `{"chord": {...}}`, or else a signature — in one pass over the text.
/// (Serde's untagged variants would buffer the signature's options, where
/// a number serde_json keeps exactly, a decimal, no longer reads as an
/// `f64`.)
impl<'de> Deserialize<'de> for Canvas {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Shape {
            chain,
            group,
            chord,
            task,
            args,
            kwargs,
            immutable,
            options,
        } = Shape::deserialize(deserializer)?;
        let signature = task.is_some()
            || args.is_some()
            || kwargs.is_some()
            || immutable.is_some()
            || options.is_some();
        match (chain, group, chord) {
            (None, None, None) => Ok(Canvas::Signature(Signature {
                task: task.ok_or_else(|| D::Error::missing_field("task"))?,
                args: args.unwrap_or_default(),
                kwargs: kwargs.unwrap_or_default(),
                immutable: immutable.unwrap_or_default(),
                options: options.unwrap_or_default(),
            })),
            (Some(chain), None, None) if !signature => Ok(Canvas::Chain(chain)),
            (None, Some(group), None) if !signature => Ok(Canvas::Group(group)),
            (None, None, Some(chord)) if !signature => Ok(Canvas::Chord(chord)),
            _ => Err(D::Error::custom(
                "a canvas is one of a chain, a group, a chord or a signature",
            )),
        }
    }
}

/// Every field any canvas may have, read at once; [`Canvas`]'s reader
/// tells which it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    chain: Option<Vec<Canvas>>,
    group: Option<Vec<Canvas>>,
    chord: Option<Chord>,
    task: Option<String>,
    args: Option<Vec<Value>>,
    kwargs: Option<Map<String, Value>>,
    immutable: Option<bool>,
    options: Option<StepOptions>,
}

/// A group followed by the step that receives its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chord {
    /// The members run in parallel.
    pub header: Vec<Canvas>,
    /// Runs with the list of member results.
    pub body: Box<Canvas>,
}

/// One task invocation: the task's name, its arguments and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// `plugin.task`: task `task` of plugin `plugin` (split at the last dot).
    pub task: String,
    /// Positional arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Value>,
    /// Keyword arguments, bound to parameters by name.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub kwargs: Map<String, Value>,
    /// An immutable signature ignores the previous step's result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
    /// Per-step options (limits, retries, callbacks).
    #[serde(default, skip_serializing_if = "StepOptions::is_empty")]
    pub options: StepOptions,
}

impl Signature {
    /// A mutable signature of `task` with no arguments and no options.
    pub fn new(task: impl Into<String>) -> Self {
        Signature {
            task: task.into(),
            args: Vec::new(),
            kwargs: Map::new(),
            immutable: false,
            options: StepOptions::default(),
        }
    }

    /// The plugin part of the task name (`math` for `math.add`), if any.
    pub fn plugin_name(&self) -> Option<&str> {
        plugin_of(&self.task)
    }

    /// The task part of the task name (`add` for `math.add`).
    pub fn task_name(&self) -> &str {
        name::task_of(&self.task)
    }

    /// Takes the options of `defaults` that this signature does not set,
    /// and so do its callbacks and errbacks.
    pub fn inherit(&mut self, defaults: &StepOptions) {
        self.options = self.options.or(defaults);
        let StepOptions {
            link, link_error, ..
        } = &mut self.options;
        for callback in link.iter_mut().chain(link_error.iter_mut()) {
            callback.inherit(defaults);
        }
    }
}

impl Canvas {
    /// Every signature of the canvas, callbacks included, takes the options
    /// of `defaults` that it does not set: what a workflow's `defaults`
    /// mean, made explicit (to send the workflow elsewhere).
    pub fn inherit(&mut self, defaults: &StepOptions) {
        match self {
            Canvas::Signature(signature) => signature.inherit(defaults),
            Canvas::Chain(items) | Canvas::Group(items) => {
                items.iter_mut().for_each(|item| item.inherit(defaults));
            }
            Canvas::Chord(chord) => {
                chord.header.iter_mut().for_each(|m| m.inherit(defaults));
                chord.body.inherit(defaults);
            }
        }
    }

    /// The canvas in wfhost's native JSON form.
    pub fn to_json(&self) -> Value {
        // Serializing plain JSON values and numbers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Runs `callback` with this canvas's result once it succeeds, as
    /// Celery's `link` does on each kind of canvas: a chain links its last
    /// step, a chord its body, a group its first member (with an immutable
    /// copy, since no one step has the group's result). An empty chain or
    /// group has nothing to link, as in Celery.
    pub fn link(&mut self, callback: Signature) {
        match self {
            Canvas::Signature(signature) => signature.options.link.push(callback),
            Canvas::Chain(items) => {
                if let Some(last) = items.last_mut() {
                    last.link(callback);
                }
            }
            Canvas::Group(members) => {
                if let Some(first) = members.first_mut() {
                    first.link(Signature {
                        immutable: true,
                        ..callback
                    });
                }
            }
            Canvas::Chord(chord) => chord.body.link(callback),
        }
    }

    /// Runs `errback` for whichever step of this canvas fails, as Celery's
    /// `link_error` (or `on_error`) does: every step of a chain and every
    /// member of a group gets it, and a chord's body (whose errback also
    /// runs when a header member fails).
    pub fn link_error(&mut self, errback: Signature) {
        match self {
            Canvas::Signature(signature) => signature.options.link_error.push(errback),
            Canvas::Chain(items) | Canvas::Group(items) => {
                for item in items {
                    item.link_error(errback.clone());
                }
            }
            Canvas::Chord(chord) => chord.body.link_error(errback),
        }
    }
}

impl rules::Tree for Canvas {
    fn shape(&self) -> rules::Shape<'_, Self> {
        match self {
            Canvas::Signature(_) => rules::Shape::Task,
            Canvas::Chain(steps) => rules::Shape::Chain(steps),
            Canvas::Group(members) => rules::Shape::Group(members),
            Canvas::Chord(chord) => rules::Shape::Chord {
                header: &chord.header,
                body: &chord.body,
            },
        }
    }
}

impl From<Signature> for Canvas {
    fn from(signature: Signature) -> Self {
        Canvas::Signature(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Celery's map, starmap and chunks: each call a step, kept a list
    /// wherever the canvas runs.
    #[test]
    fn maps_call_the_task_for_each_item_and_stay_lists() {
        use serde_json::json;
        let add = crate::sig("m.add").args((100, 100));
        let calls = |canvas: &Canvas| -> Vec<Value> {
            match canvas {
                Canvas::Chord(chord) => {
                    assert_eq!(*chord.body, Canvas::Signature(crate::accumulate_first()));
                    chord.header.iter().map(Canvas::to_json).collect()
                }
                other => panic!("{other:?}"),
            }
        };
        let mapped = add.starmap([vec![json!(1), json!(2)], vec![json!(3), json!(4)]]);
        assert_eq!(
            calls(&mapped),
            [
                json!({"task": "m.add", "args": [1, 2], "immutable": true}),
                json!({"task": "m.add", "args": [3, 4], "immutable": true})
            ]
        );
        // A header of one call is not unrolled: its list has one result.
        let one = crate::sig("m.sum").map([json!([5])]);
        assert_eq!(
            calls(&one),
            [json!({"task": "m.sum", "args": [[5]], "immutable": true})]
        );
        // A callback linked to a map gets its list, from the body.
        let mut linked = crate::sig("m.sum").map([json!([5])]);
        linked.link(crate::sig("m.done"));
        let Canvas::Chord(chord) = &linked else {
            panic!("a chord")
        };
        let Canvas::Signature(body) = &*chord.body else {
            panic!("a signature")
        };
        assert_eq!(body.options.link, [crate::sig("m.done")]);
        let chunked = add.chunks((0..3).map(|i| vec![json!(i), json!(i)]), 2);
        assert_eq!(calls(&chunked).len(), 2, "two parts: {chunked:?}");
    }

    /// Callbacks on a whole canvas land where Celery puts them.
    #[test]
    fn callbacks_on_a_whole_go_where_celery_puts_them() {
        let mut chain = crate::sig("m.a") | crate::sig("m.b");
        chain.link(crate::sig("m.done"));
        chain.link_error(crate::sig("m.oops"));
        let Canvas::Chain(items) = &chain else {
            panic!("a chain")
        };
        let options = |canvas: &Canvas| match canvas {
            Canvas::Signature(signature) => signature.options.clone(),
            _ => panic!("a signature"),
        };
        assert!(options(&items[0]).link.is_empty());
        assert_eq!(options(&items[1]).link, [crate::sig("m.done")]);
        assert!(
            items
                .iter()
                .all(|item| options(item).link_error == [crate::sig("m.oops")])
        );

        let mut group = crate::group([crate::sig("m.a"), crate::sig("m.b")]);
        group.link(crate::sig("m.done"));
        let Canvas::Group(members) = &group else {
            panic!("a group")
        };
        assert_eq!(options(&members[0]).link, [crate::sig("m.done").si()]);
        assert!(options(&members[1]).link.is_empty());

        let mut chord = crate::chord([crate::sig("m.a")], crate::sig("m.sum"));
        chord.link_error(crate::sig("m.oops"));
        let Canvas::Chord(inner) = &chord else {
            panic!("a chord")
        };
        assert_eq!(options(&inner.body).link_error, [crate::sig("m.oops")]);
        assert!(options(&inner.header[0]).link_error.is_empty());
    }

    /// What a canvas serializes to, it deserializes from, limits that are
    /// switched off and callbacks included.
    #[test]
    fn a_canvas_reads_back_what_it_wrote() {
        let mut limited = sig("m.a").args((1, "two")).kwarg("k", 3);
        limited.options.fuel = Some(Limit::Unlimited);
        limited.options.memory_mb = Some(Limit::Value(64));
        limited.options.retry_backoff = Some(RetryBackoff::Factor(0.5));
        limited.options.link = vec![sig("m.link")];
        limited.options.link_error = vec![sig("m.errback").si()];
        let canvases = [
            Canvas::from(limited.clone()),
            sig("m.a") | group([sig("m.b"), sig("m.c").si()]),
            chord([limited, sig("m.d")], sig("m.sum")),
            Canvas::Chain(Vec::new()),
            group(Vec::<Canvas>::new()),
        ];
        for canvas in canvases {
            let json = serde_json::to_string(&canvas).unwrap();
            let back: Canvas = serde_json::from_str(&json).unwrap();
            assert_eq!(back, canvas, "{json}");
        }
        // Decimals and integers beyond 64 bits, as serde_json keeps them,
        // read in options and arguments alike.
        let exact: Canvas = serde_json::from_str(
            r#"{"chain": [{"task": "m.a", "args": [18446744073709551616, 0.1],
                "options": {"countdown": 0.25, "retry_backoff": 1.5, "expires": 2.5}}]}"#,
        )
        .unwrap();
        let Canvas::Chain(steps) = &exact else {
            panic!("{exact:?}")
        };
        let Canvas::Signature(first) = &steps[0] else {
            panic!("{exact:?}")
        };
        assert_eq!(first.args[0].to_string(), "18446744073709551616");
        assert_eq!(first.args[1].to_string(), "0.1");
        assert_eq!(first.options.countdown, Some(0.25));
        assert_eq!(first.options.retry_backoff, Some(RetryBackoff::Factor(1.5)));
        assert_eq!(first.options.expires, Some(Expires::After(2.5)));
        // One shape at a time.
        for mixed in [
            r#"{"chain": [], "task": "m.a"}"#,
            r#"{"chain": [], "group": []}"#,
            r#"{"args": [1]}"#,
            r#"{"task": "m.a", "stray": 1}"#,
        ] {
            assert!(serde_json::from_str::<Canvas>(mixed).is_err(), "{mixed}");
        }
        let inherited: Signature = serde_json::from_str(r#"{"task": "m.a"}"#).unwrap();
        assert_eq!(inherited.options.fuel, None);
        let off: Signature =
            serde_json::from_str(r#"{"task": "m.a", "options": {"fuel": null}}"#).unwrap();
        assert_eq!(off.options.fuel, Some(Limit::Unlimited));
    }
}
