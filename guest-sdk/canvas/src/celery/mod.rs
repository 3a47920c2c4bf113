//! Celery's form of a canvas, typed: what `json.dumps()` of a Celery
//! signature gives and what Celery's task messages carry in `callbacks`,
//! `errbacks`, `chain` and `chord`, with Celery's transport options
//! (`task_id`, `group_id`, `chord`, `chain`, …) as fields.
//!
//! It is read leniently, as Celery's worker reads a message: a field that
//! is missing or of another type reads as absent, and an option wfhost does
//! not know is carried along unread, so that a message passed on to a
//! Python worker keeps it. A chain file's Celery JSON goes through the
//! host's strict reader instead, which names the JSON path of a mistake.
//!
//! [`CelerySignature::from`] a native [`Canvas`](crate::Canvas) gives what Celery's
//! client would send for it; what Celery's worker does when it sends one
//! is `wfhost worker`'s (its `send.rs`), over these types and the rules of
//! [`crate::rules`].
//!
//! One idea per file: the types and the rules they follow here,
//! [`Transport`] (Celery's options) in `transport.rs`, reading and writing
//! Celery's JSON in `json.rs`, a native canvas made Celery's in
//! `native.rs`.

mod json;
mod native;
mod transport;

pub use transport::Transport;

use serde_json::{Map, Value};

use crate::rules::{self, Shape as RuleShape};
use crate::{ACCUMULATE, CHUNKS, STARMAP, accumulate_first};

/// The task name Celery gives a serialized group.
pub const GROUP: &str = "celery.group";
/// The task name Celery gives a serialized chain.
pub const CHAIN: &str = "celery.chain";
/// The task name Celery gives a serialized chord.
pub const CHORD: &str = "celery.chord";

/// How deeply a signature may nest in another (callbacks, members, a
/// chord's body) before the rest is dropped as unreadable; serde_json
/// refuses deeper JSON anyway.
const MAX_DEPTH: usize = 128;

/// One Celery signature: a task, a chain, a group, a chord or chunks, with
/// its options.
#[derive(Debug, Clone, PartialEq)]
pub struct CelerySignature {
    /// What it is.
    pub shape: Shape,
    /// Celery's options: ids, placement, timing, callbacks.
    pub options: Transport,
    /// An immutable task ignores the result in front of its arguments.
    pub immutable: bool,
    /// Top-level keys wfhost does not read (`chord_size`), kept.
    pub extra: Map<String, Value>,
}

/// The kinds of Celery signature.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// One task: its name, arguments, and the `subtask_type` it was sent
    /// with when Celery's worker runs it as a task (`xmap`, `xstarmap`).
    Task {
        /// `plugin.task`, or one of Celery's built-in tasks.
        task: String,
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments.
        kwargs: Map<String, Value>,
        /// A subtask type that is not a canvas of its own.
        subtask_type: Option<String>,
    },
    /// Steps one after the other (`kwargs.tasks`).
    Chain(Vec<CelerySignature>),
    /// Members in parallel (`kwargs.tasks`).
    Group(Vec<CelerySignature>),
    /// A header group and the body that gets its list.
    Chord(Box<CeleryChord>),
    /// `task.chunks(it, n)`.
    Chunks(Chunks),
}

/// A chord's parts (`kwargs.header`, `kwargs.body`, `kwargs.kwargs`).
#[derive(Debug, Clone, PartialEq)]
pub struct CeleryChord {
    /// The header's members.
    pub header: Vec<CelerySignature>,
    /// The header group's own options (its `task_id` is the chord's group
    /// id).
    pub header_options: Transport,
    /// The body.
    pub body: CelerySignature,
    /// Keyword arguments for the body, as Celery's chord carries them.
    pub kwargs: Map<String, Value>,
}

/// `task.chunks(it, n)`: `task` called for every item of `it`, `n` calls
/// per `celery.starmap` task.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunks {
    /// The task: its name, or its signature.
    pub task: Value,
    /// The argument lists.
    pub it: Vec<Value>,
    /// Items per part, at least one.
    pub n: usize,
}

impl Chunks {
    /// The name of the task called.
    pub fn task_name(&self) -> &str {
        match &self.task {
            Value::String(name) => name,
            signature => signature.get("task").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The parts as Celery's `chunks.group()` makes them: a group of
    /// immutable `celery.starmap` tasks over `n` items each (the last over
    /// what is left), sent to `queue`.
    pub fn as_group(&self, queue: &str) -> Vec<CelerySignature> {
        self.it
            .chunks(self.n)
            .map(|part| {
                let mut kwargs = Map::new();
                kwargs.insert("task".into(), self.task.clone());
                kwargs.insert("it".into(), Value::Array(part.to_vec()));
                let mut starmap = CelerySignature::task(STARMAP, Vec::new(), kwargs);
                starmap.immutable = true;
                starmap.options.queue = Some(queue.to_string());
                starmap
            })
            .collect()
    }
}

impl CelerySignature {
    /// A task signature with no options.
    pub fn task(task: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Self::whole(Shape::Task {
            task: task.into(),
            args,
            kwargs,
            subtask_type: None,
        })
    }

    /// A chain, group, chord or chunks with no options.
    pub fn whole(shape: Shape) -> Self {
        CelerySignature {
            shape,
            options: Transport::default(),
            immutable: false,
            extra: Map::new(),
        }
    }

    /// The task's name (`celery.group` and the like for a whole).
    pub fn name(&self) -> &str {
        match &self.shape {
            Shape::Task { task, .. } => task,
            Shape::Chain(_) => CHAIN,
            Shape::Group(_) => GROUP,
            Shape::Chord(_) => CHORD,
            Shape::Chunks(_) => CHUNKS,
        }
    }

    /// Links `errbacks` to the signature (Celery's `link_error`), into its
    /// options, from which each kind passes them on when it is sent; a
    /// group made a chord for its one result ([`Self::one_result`]) keeps
    /// them on the group, where its members find them, as for the group it
    /// was.
    pub fn link_error(&mut self, errbacks: &[CelerySignature]) {
        if errbacks.is_empty() {
            return;
        }
        match &mut self.shape {
            Shape::Chord(chord) if chord.body.name() == ACCUMULATE => {
                chord.header_options.link_error.extend_from_slice(errbacks);
            }
            _ => self.options.link_error.extend_from_slice(errbacks),
        }
    }

    /// The members of a group, or of a chord's header (`header_options`
    /// being the header group's options): a group among them flattened
    /// into them at any depth ([`rules::flat_members`]), each with the
    /// errbacks of the groups it was in (Celery's `group.link_error`).
    pub fn flat_members(members: &[CelerySignature], options: &Transport) -> Vec<CelerySignature> {
        fn errbacks_down(members: &mut [CelerySignature], errbacks: &[CelerySignature]) {
            for member in members {
                member.link_error(errbacks);
                if let Shape::Group(inner) = &mut member.shape {
                    let own = std::mem::take(&mut member.options.link_error);
                    errbacks_down(inner, &own);
                }
            }
        }
        let mut members = members.to_vec();
        errbacks_down(&mut members, &options.link_error);
        rules::flat_members(&members).into_iter().cloned().collect()
    }

    /// The steps of a chain, each as a step of a chain is taken
    /// ([`rules::chain_step`]); none for anything else.
    pub fn chain_steps(&self) -> Vec<CelerySignature> {
        match &self.shape {
            Shape::Chain(steps) => steps.iter().map(|s| rules::chain_step(s).clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// The task whose result is the signature's: itself, a chain's last
    /// step's, a chord's body's.
    pub fn final_task_mut(&mut self) -> Option<&mut CelerySignature> {
        let mut at = self;
        for _ in 0..MAX_DEPTH {
            match &at.shape {
                Shape::Chain(steps) if steps.is_empty() => return None,
                Shape::Chain(_) | Shape::Chord(_) => {}
                _ => return Some(at),
            }
            at = match &mut at.shape {
                Shape::Chain(steps) => steps.last_mut()?,
                Shape::Chord(chord) => &mut chord.body,
                _ => return None,
            };
        }
        None
    }

    /// The signature made to give one result where its result is many
    /// ([`rules::ends_in_many`]): a group becomes a chord whose body,
    /// `celery.accumulate`, returns the members' results as one list (what
    /// Celery's `Task.replace` does with a group; `wfhost run` does the same
    /// wherever a group's list goes on as one value), chunks become their
    /// group made so (its parts sent to `queue(task, the chunks' queue
    /// option)`), and a chain or chord whose end is such a group gets it
    /// made so; anything else is itself.
    pub fn one_result(mut self, queue: &dyn Fn(&str, Option<&str>) -> String) -> Self {
        if let Shape::Chunks(chunks) = &self.shape {
            let members =
                chunks.as_group(&queue(chunks.task_name(), self.options.queue.as_deref()));
            self.shape = Shape::Group(members);
        }
        match &mut self.shape {
            Shape::Chain(steps) => {
                for step in steps.iter_mut() {
                    *step = rules::chain_step(step).clone();
                }
                if let Some(last) = steps.last_mut() {
                    *last = std::mem::replace(last, Self::whole(Shape::Chain(Vec::new())))
                        .one_result(queue);
                }
            }
            Shape::Chord(chord) => {
                let body =
                    std::mem::replace(&mut chord.body, Self::whole(Shape::Chain(Vec::new())));
                chord.body = body.one_result(queue);
            }
            _ => {}
        }
        if !matches!(self.shape, Shape::Group(_)) {
            return self;
        }
        let CelerySignature {
            shape: Shape::Group(header),
            options: header_options,
            ..
        } = self
        else {
            return self;
        };
        let accumulate = accumulate_first();
        Self::whole(Shape::Chord(Box::new(CeleryChord {
            header,
            header_options,
            body: Self::task(accumulate.task, Vec::new(), accumulate.kwargs),
            kwargs: Map::new(),
        })))
    }
}

impl rules::Tree for CelerySignature {
    fn shape(&self) -> RuleShape<'_, Self> {
        match &self.shape {
            Shape::Task { .. } => RuleShape::Task,
            Shape::Chain(steps) => RuleShape::Chain(steps),
            Shape::Group(members) => RuleShape::Group(members),
            Shape::Chord(chord) => RuleShape::Chord {
                header: &chord.header,
                body: &chord.body,
            },
            Shape::Chunks(_) => RuleShape::Many,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{group, sig};

    #[test]
    fn a_group_gives_one_result_through_accumulate_and_keeps_its_errbacks() {
        let oops = CelerySignature::task("math.oops", Vec::new(), Map::new());
        let mut members = CelerySignature::from(&group([sig("m.a"), sig("m.b")]));
        members.options.link_error = vec![oops.clone()];
        let one = members.one_result(&|_, _| String::new());
        let Shape::Chord(chord) = &one.shape else {
            panic!("a chord")
        };
        assert_eq!(chord.body.name(), ACCUMULATE);
        assert_eq!(chord.header_options.link_error, std::slice::from_ref(&oops));
        let flat = CelerySignature::flat_members(&chord.header, &chord.header_options);
        assert!(flat.iter().all(|m| m.options.link_error == [oops.clone()]));
        // Chunks become their group of starmaps, routed as asked.
        let chunks = CelerySignature::from_json(json!({"task": "celery.chunks",
            "subtask_type": "chunks",
            "kwargs": {"task": "m.add", "it": [[1, 1], [2, 2], [3, 3]], "n": 2}}))
        .unwrap();
        let one = chunks.one_result(&|task, _| format!("q-{task}"));
        let Shape::Chord(chord) = &one.shape else {
            panic!("a chord")
        };
        assert_eq!(chord.header.len(), 2);
        assert_eq!(chord.header[1].options.queue.as_deref(), Some("q-m.add"));
    }
}
