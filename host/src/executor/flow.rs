//! The results that flow between a workflow's steps, checked against the
//! types the next step takes: each step's result is what its task's schema
//! says it returns, a group's the list of its members' results, a chord's
//! body gets its header's list, and a sleep passes its input on. Where the
//! result can never fit the parameter it lands in, the workflow is refused
//! before anything runs; where either type is unknown, nothing is said.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use wfhost_canvas::{ACCUMULATE, Pause, Signature};

use super::PluginSet;
use super::binding::input_parameter;
use super::validate::StepProblem;
use crate::plan::Node;
use crate::runtime::TaskInfo;
use crate::typing::{never_fits, schema_text};

/// A result on its way to the next step: its schema, and where it comes
/// from, in words.
#[derive(Clone)]
pub(super) struct Produced {
    schema: Arc<Value>,
    from: String,
    /// Whether `schema` is a task's own (alive as long as its plugin), so
    /// that what is known of it may be kept by its address.
    a_tasks: bool,
}

impl Produced {
    fn unknown() -> Self {
        Produced {
            schema: Arc::new(json!({})),
            from: String::new(),
            a_tasks: false,
        }
    }
}

/// The check of one workflow's flow (or a replacement's), element by
/// element, and the problems it found.
pub(super) struct FlowCheck<'p> {
    plugins: &'p PluginSet,
    /// Whether a task's result can never fit a task's parameter, by the
    /// two schemas' addresses: a chain of one task asks once.
    known: HashMap<(usize, usize), bool>,
    /// What was found, in the order met.
    pub problems: Vec<StepProblem>,
}

impl<'p> FlowCheck<'p> {
    /// A check of workflows over `plugins`.
    pub fn new(plugins: &'p PluginSet) -> Self {
        FlowCheck {
            plugins,
            known: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// Checks `nodes` (an element of a workflow's plan, or a replacement)
    /// given `input`, what the element before gives (none for the first);
    /// returns the element's own result, for the next.
    pub fn element(&mut self, nodes: &[Node], input: Option<Produced>) -> Option<Produced> {
        self.walk(nodes, input)
    }

    fn walk(&mut self, nodes: &[Node], input: Option<Produced>) -> Option<Produced> {
        let mut input = input;
        for node in nodes {
            input = Some(match node {
                Node::Step(step) => {
                    let signature = &step.signature;
                    let task = (Pause::of(signature).is_none() && signature.task != ACCUMULATE)
                        .then(|| self.plugins.resolve(signature).ok().map(|(_, task)| task))
                        .flatten();
                    if let (Some(input), Some(task)) = (&input, task) {
                        self.check(|| step.id.to_string(), signature, task, input);
                    }
                    let output = match (Pause::of(signature), &input) {
                        // A sleep passes its input on, from where it came.
                        (Some(Ok(Pause::Sleep { .. })), Some(input)) => input.clone(),
                        _ => match task.and_then(|task| task.schema.as_ref()) {
                            Some(schema) => Produced {
                                schema: schema.returns.clone(),
                                from: format!("step {} (`{}`)", step.id, signature.task),
                                a_tasks: true,
                            },
                            None => Produced::unknown(),
                        },
                    };
                    for (index, link) in signature.options.link.iter().enumerate() {
                        if let Ok((_, task)) = self.plugins.resolve(link) {
                            self.check(|| step.id.link(index).to_string(), link, task, &output);
                        }
                    }
                    output
                }
                Node::Group { id, members } => {
                    let results = self.members_results(members, input.as_ref());
                    list(results, format!("group {id}"))
                }
                Node::Chord { id, header, body } => {
                    let results = self.members_results(header, input.as_ref());
                    let header = list(results, format!("the header of chord {id}"));
                    self.walk(body, Some(header))
                        .unwrap_or_else(Produced::unknown)
                }
            });
        }
        input
    }

    fn members_results(&mut self, members: &[Vec<Node>], input: Option<&Produced>) -> Vec<Value> {
        members
            .iter()
            .map(|member| {
                self.walk(member, input.cloned())
                    .map_or_else(|| json!({}), |produced| produced.schema.as_ref().clone())
            })
            .collect()
    }

    /// The problem, if any, of `signature` (of `task`, step `id`) getting
    /// `input` in front of its arguments.
    fn check(
        &mut self,
        id: impl FnOnce() -> String,
        signature: &Signature,
        task: &TaskInfo,
        input: &Produced,
    ) {
        if input.from.is_empty() {
            return;
        }
        let Some((param, accepted)) = input_parameter(task, signature) else {
            return;
        };
        let never = match input.a_tasks {
            true => *self
                .known
                .entry((
                    Arc::as_ptr(&input.schema) as usize,
                    accepted as *const Value as usize,
                ))
                .or_insert_with(|| never_fits(&input.schema, accepted)),
            false => never_fits(&input.schema, accepted),
        };
        if never {
            self.problems.push(StepProblem {
                step: id(),
                task: signature.task.clone(),
                message: format!(
                    "{}() argument '{}' ({}) would get the result of {}: {}, where it takes {}",
                    task.name,
                    param.name,
                    param.type_name,
                    input.from,
                    schema_text(&input.schema),
                    schema_text(accepted),
                ),
            });
        }
    }
}

/// The list of members' results: as many as there are members.
fn list(results: Vec<Value>, from: String) -> Produced {
    let count = results.len();
    Produced {
        schema: Arc::new(json!({
            "type": "array", "prefixItems": results, "minItems": count, "maxItems": count,
        })),
        from,
        a_tasks: false,
    }
}
