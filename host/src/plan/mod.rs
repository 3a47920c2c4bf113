//! Planning: the canvas as a tree of nodes, each with its stable id.
//!
//! A node's id is its position in the canvas: `0`, `1`, `2.0` (the first
//! step of a chain nested at position 2, or the first member of a group at
//! position 2), `3.body` (the body of a chord at position 3). A
//! replacement's nodes extend the replaced step's id (`4.0`, `4.1`). Ids
//! never depend on run order, so the same workflow always names its steps
//! the same way, which is what lets `resume` match stored steps.
//!
//! Chains are flattened: a chain is a list of nodes, and a chain nested in a
//! chain adds its nodes to that list. [`StepId`] owns the id grammar.

mod step_id;

pub use step_id::{StepId, depth};

use wfhost_canvas::{Canvas, Signature, rules};

/// One signature at its place in the workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// The stable id.
    pub id: StepId,
    /// What to run.
    pub signature: Signature,
}

/// A node of the plan.
// Steps are by far the most common node: boxing them to shrink the enum
// would cost an allocation per step to save space on rare groups.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// One task invocation.
    Step(PlannedStep),
    /// Members run in parallel on the same input; the result is the list of
    /// member results in member order.
    Group { id: StepId, members: Vec<Vec<Node>> },
    /// A group whose list of results feeds the body.
    Chord {
        id: StepId,
        header: Vec<Vec<Node>>,
        body: Vec<Node>,
    },
}

impl Node {
    /// The node's id.
    pub fn id(&self) -> &StepId {
        match self {
            Node::Step(step) => &step.id,
            Node::Group { id, .. } | Node::Chord { id, .. } => id,
        }
    }

    /// What the node runs: a step's task, or `group` or `chord`.
    pub fn task(&self) -> &str {
        match self {
            Node::Step(step) => &step.signature.task,
            Node::Group { .. } => "group",
            Node::Chord { .. } => "chord",
        }
    }
}

fn child_id(prefix: Option<&StepId>, index: usize) -> StepId {
    match prefix {
        Some(prefix) => prefix.child(index),
        None => StepId::element(index),
    }
}

/// Plans `canvas` as a chain whose nodes' ids extend `prefix` (the
/// workflow's root when `None`).
pub fn plan(canvas: &Canvas, prefix: Option<&StepId>) -> Vec<Node> {
    let mut nodes = Vec::new();
    match canvas {
        Canvas::Chain(items) => {
            for (index, item) in items.iter().enumerate() {
                push(&mut nodes, item, child_id(prefix, index), Place::InChain);
            }
        }
        other => push(&mut nodes, other, child_id(prefix, 0), Place::Alone),
    }
    nodes
}

/// Where a canvas is planned: as a step of a chain, or on its own (a chord's
/// body, a replacement, a group member). Celery unrolls a one-member group
/// into its member only as a step of a chain (`_chain.prepare_steps`);
/// elsewhere it stays a group, whose result is a list of one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    InChain,
    Alone,
}

/// Plans element `index` of a workflow's top-level chain: what
/// [`plan`] makes of it as part of the whole workflow.
pub fn plan_element(canvas: &Canvas, index: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    push(&mut nodes, canvas, StepId::element(index), Place::InChain);
    nodes
}

/// A group member or chord body: a chain whose nodes extend `id`, or a
/// single node that is `id` itself.
fn member(canvas: &Canvas, id: StepId) -> Vec<Node> {
    match canvas {
        Canvas::Chain(_) => plan(canvas, Some(&id)),
        other => {
            let mut nodes = Vec::new();
            push(&mut nodes, other, id, Place::Alone);
            nodes
        }
    }
}

/// The members of a group or chord header, flattened as they run
/// ([`rules::flat_members`]).
fn members(canvases: &[Canvas], id: &StepId) -> Vec<Vec<Node>> {
    rules::flat_members(canvases)
        .into_iter()
        .enumerate()
        .map(|(index, canvas)| member(canvas, id.child(index)))
        .collect()
}

fn push(nodes: &mut Vec<Node>, canvas: &Canvas, id: StepId, place: Place) {
    match canvas {
        Canvas::Signature(signature) => nodes.push(Node::Step(PlannedStep {
            id,
            signature: signature.clone(),
        })),
        Canvas::Chain(items) => {
            for (index, item) in items.iter().enumerate() {
                push(nodes, item, id.child(index), Place::InChain);
            }
        }
        // As a step of a chain, a group of one is its member
        // (`rules::chain_step`), planned under the group's place.
        Canvas::Group(_) if place == Place::InChain && rules::unrolled(canvas).is_some() => {
            if let Some(only) = rules::unrolled(canvas) {
                nodes.extend(member(only, id.child(0)));
            }
        }
        Canvas::Group(items) => nodes.push(Node::Group {
            members: members(items, &id),
            id,
        }),
        Canvas::Chord(chord) => nodes.push(Node::Chord {
            header: members(&chord.header, &id),
            body: member(&chord.body, id.body()),
            id,
        }),
    }
}

/// Every step of a plan, depth first in canvas order.
pub fn steps(nodes: &[Node]) -> Vec<&PlannedStep> {
    fn walk<'a>(nodes: &'a [Node], out: &mut Vec<&'a PlannedStep>) {
        for node in nodes {
            match node {
                Node::Step(step) => out.push(step),
                Node::Group { members, .. } => members.iter().for_each(|m| walk(m, out)),
                Node::Chord { header, body, .. } => {
                    header.iter().for_each(|m| walk(m, out));
                    walk(body, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(nodes, &mut out);
    out
}

/// Every step of a chain of nodes with whether it receives the result of
/// what ran before it: every step but a chain's first does, group members
/// get their group's input, and a chord's body gets the header's list.
pub fn steps_with_input(nodes: &[Node], first_has_input: bool) -> Vec<(&PlannedStep, bool)> {
    fn walk<'a>(nodes: &'a [Node], first_has_input: bool, out: &mut Vec<(&'a PlannedStep, bool)>) {
        let mut has_input = first_has_input;
        for node in nodes {
            match node {
                Node::Step(step) => out.push((step, has_input)),
                Node::Group { members, .. } => members.iter().for_each(|m| walk(m, has_input, out)),
                Node::Chord { header, body, .. } => {
                    header.iter().for_each(|m| walk(m, has_input, out));
                    walk(body, true, out);
                }
            }
            has_input = true;
        }
    }
    let mut out = Vec::new();
    walk(nodes, first_has_input, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfhost_canvas::{chord, group, sig};

    fn ids(canvas: &Canvas, prefix: Option<&str>) -> Vec<String> {
        let prefix = prefix.map(StepId::from_stored);
        steps(&plan(canvas, prefix.as_ref()))
            .into_iter()
            .map(|s| s.id.to_string())
            .collect()
    }

    #[test]
    fn chain_positions_are_ids() {
        let canvas = sig("m.a") | sig("m.b") | sig("m.c");
        assert_eq!(ids(&canvas, None), ["0", "1", "2"]);
    }

    #[test]
    fn nested_chains_flatten_with_nested_ids() {
        let inner = Canvas::Chain(vec![sig("m.b").into(), sig("m.c").into()]);
        let canvas = Canvas::Chain(vec![sig("m.a").into(), inner, sig("m.d").into()]);
        assert_eq!(ids(&canvas, None), ["0", "1.0", "1.1", "2"]);
        assert_eq!(plan(&canvas, None).len(), 4);
    }

    #[test]
    fn a_lone_signature_is_step_zero_and_replacements_extend_their_step() {
        assert_eq!(ids(&sig("m.a").into(), None), ["0"]);
        assert_eq!(ids(&(sig("m.a") | sig("m.b")), Some("3")), ["3.0", "3.1"]);
    }

    #[test]
    fn groups_and_chords_number_members_and_bodies() {
        let canvas = sig("m.a")
            | group([Canvas::from(sig("m.b")), sig("m.c") | sig("m.d")])
            | chord([sig("m.e"), sig("m.f")], sig("m.g"));
        assert_eq!(
            ids(&canvas, None),
            ["0", "1.0", "1.1.0", "1.1.1", "2.0", "2.1", "2.body"]
        );
        let nodes = plan(&canvas, None);
        assert!(
            matches!(&nodes[1], Node::Group { id, members } if id == "1" && members.len() == 2)
        );
        assert!(matches!(&nodes[2], Node::Chord { id, .. } if id == "2"));
    }

    #[test]
    fn inputs_flow_to_all_but_the_first_step() {
        let canvas =
            sig("m.a") | group([sig("m.b"), sig("m.c")]) | chord(Vec::<Canvas>::new(), sig("m.d"));
        let nodes = plan(&canvas, None);
        let inputs: Vec<(String, bool)> = steps_with_input(&nodes, false)
            .into_iter()
            .map(|(step, input)| (step.id.to_string(), input))
            .collect();
        let expected = [("0", false), ("1.0", true), ("1.1", true), ("2.body", true)];
        assert_eq!(inputs, expected.map(|(id, input)| (id.to_string(), input)));
        let first_member = group([sig("m.a"), sig("m.b")]);
        let nodes = plan(&first_member, None);
        let inputs = steps_with_input(&nodes, false);
        assert!(inputs.iter().all(|(_, input)| !input));
    }

    #[test]
    fn elements_plan_as_they_do_in_the_whole_chain() {
        let items: Vec<Canvas> = vec![
            sig("m.a").into(),
            sig("m.b") | sig("m.c"),
            group([sig("m.d"), sig("m.e")]),
        ];
        let whole = plan(&Canvas::Chain(items.clone()), None);
        let pieces: Vec<Node> = items
            .iter()
            .enumerate()
            .flat_map(|(index, item)| plan_element(item, index))
            .collect();
        assert_eq!(pieces, whole);
        assert_eq!(
            plan_element(&sig("m.a").into(), 0),
            plan(&sig("m.a").into(), None)
        );
    }

    #[test]
    fn a_one_member_group_is_its_member() {
        let canvas = sig("m.a") | group([sig("m.b")]);
        let nodes = plan(&canvas, None);
        assert!(matches!(&nodes[1], Node::Step(step) if step.id == "1.0"));
    }
}
