//! The results that flow between a workflow's steps, checked against the
//! types the next step takes: each step's result is what its task's schema
//! says it returns, a group's the list of its members' results, a chord's
//! body gets its header's list, and a sleep passes its input on. Where the
//! result can never fit the parameter it lands in, the workflow is refused
//! before anything runs; where either type is unknown, nothing is said.

use std::sync::Arc;

use serde_json::{Value, json};
use wfhost_canvas::{ACCUMULATE, Pause, Signature};

use super::PluginSet;
use super::binding::input_parameter;
use super::validate::StepProblem;
use crate::plan::Node;
use crate::typing::{never_fits, schema_text};

/// A result on its way to the next step: its schema, and where it comes
/// from, in words.
#[derive(Clone)]
pub(super) struct Produced {
    schema: Arc<Value>,
    from: String,
}

impl Produced {
    fn unknown() -> Self {
        Produced {
            schema: Arc::new(json!({})),
            from: String::new(),
        }
    }
}

/// The steps of `nodes` (an element of a workflow's plan, or a
/// replacement) whose input can never fit the parameter it fills, and
/// `link` callbacks whose step's result can never fit theirs, added to
/// `problems`. `input` is what the element before gives (none for the
/// first); the element's own result is returned, for the next.
pub(super) fn flow_problems(
    plugins: &PluginSet,
    nodes: &[Node],
    input: Option<Produced>,
    problems: &mut Vec<StepProblem>,
) -> Option<Produced> {
    walk(plugins, nodes, input, problems)
}

fn walk(
    plugins: &PluginSet,
    nodes: &[Node],
    input: Option<Produced>,
    problems: &mut Vec<StepProblem>,
) -> Option<Produced> {
    let mut input = input;
    for node in nodes {
        input = Some(match node {
            Node::Step(step) => {
                if let Some(input) = &input {
                    check(
                        plugins,
                        &step.id.to_string(),
                        &step.signature,
                        input,
                        problems,
                    );
                }
                let output = match (Pause::of(&step.signature), &input) {
                    // A sleep passes its input on, from where it came.
                    (Some(Ok(Pause::Sleep { .. })), Some(input)) => input.clone(),
                    _ => Produced {
                        schema: step_output(plugins, &step.signature),
                        from: format!("step {} (`{}`)", step.id, step.signature.task),
                    },
                };
                for (index, link) in step.signature.options.link.iter().enumerate() {
                    check(
                        plugins,
                        &step.id.link(index).to_string(),
                        link,
                        &output,
                        problems,
                    );
                }
                output
            }
            Node::Group { id, members } => {
                let results = members_results(plugins, members, input.as_ref(), problems);
                list(results, format!("group {id}"))
            }
            Node::Chord { id, header, body } => {
                let results = members_results(plugins, header, input.as_ref(), problems);
                let header = list(results, format!("the header of chord {id}"));
                walk(plugins, body, Some(header), problems).unwrap_or_else(Produced::unknown)
            }
        });
    }
    input
}

fn members_results(
    plugins: &PluginSet,
    members: &[Vec<Node>],
    input: Option<&Produced>,
    problems: &mut Vec<StepProblem>,
) -> Vec<Value> {
    members
        .iter()
        .map(|member| {
            walk(plugins, member, input.cloned(), problems)
                .map_or_else(|| json!({}), |produced| produced.schema.as_ref().clone())
        })
        .collect()
}

/// The list of members' results: as many as there are members.
fn list(results: Vec<Value>, from: String) -> Produced {
    let count = results.len();
    Produced {
        schema: Arc::new(json!({
            "type": "array", "prefixItems": results, "minItems": count, "maxItems": count,
        })),
        from,
    }
}

/// What a step gives the next: what its task returns; unknown for the
/// host's own steps (a signal's payload, Celery's accumulate).
fn step_output(plugins: &PluginSet, signature: &Signature) -> Arc<Value> {
    if Pause::of(signature).is_none()
        && signature.task != ACCUMULATE
        && let Ok((_, task)) = plugins.resolve(signature)
        && let Some(schema) = &task.schema
    {
        return schema.returns.clone();
    }
    Arc::new(json!({}))
}

/// The problem, if any, of `signature` (step `id`) getting `input` in
/// front of its arguments.
fn check(
    plugins: &PluginSet,
    id: &str,
    signature: &Signature,
    input: &Produced,
    problems: &mut Vec<StepProblem>,
) {
    if input.from.is_empty() || Pause::of(signature).is_some() {
        return;
    }
    let Ok((_, task)) = plugins.resolve(signature) else {
        return;
    };
    let Some((param, accepted)) = input_parameter(task, signature) else {
        return;
    };
    if never_fits(&input.schema, accepted) {
        problems.push(StepProblem {
            step: id.to_string(),
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
