//! The rules of the canvas that every driver follows, written once over
//! any form of a canvas that shows its [`Shape`]: wfhost's native
//! [`Canvas`](crate::Canvas), which `wfhost run` plans, and Celery's
//! [`CelerySignature`](crate::celery::CelerySignature), which `wfhost
//! worker` sends. The task-name rule is [`crate::name`], the retry policy
//! [`crate::retry`], `celery.accumulate` [`crate::accumulate()`].

use serde_json::Value;

/// What a canvas is, as the rules see it.
pub enum Shape<'a, C> {
    /// One task.
    Task,
    /// Steps one after the other.
    Chain(&'a [C]),
    /// Members in parallel.
    Group(&'a [C]),
    /// A header and the body that gets its list.
    Chord {
        /// The header's members.
        header: &'a [C],
        /// The body.
        body: &'a C,
    },
    /// One task whose result is many (Celery's chunks, a list of lists).
    Many,
}

/// A form of canvas the rules apply to.
pub trait Tree: Sized {
    /// What it is.
    fn shape(&self) -> Shape<'_, Self>;
}

/// A step of a chain as it runs: a group of one member is that member
/// (Celery's `_chain.prepare_steps` unrolls it), whose result is the
/// member's, not a list of one. Elsewhere (a chord's body, a member) a
/// group of one stays a group.
pub fn chain_step<C: Tree>(step: &C) -> &C {
    unrolled(step).unwrap_or(step)
}

/// The member a step of a chain is unrolled into, if it is a group of
/// one (see [`chain_step`]).
pub fn unrolled<C: Tree>(step: &C) -> Option<&C> {
    match step.shape() {
        Shape::Group([only]) => Some(only),
        _ => None,
    }
}

/// The members of a group or chord header as they run: a group listed
/// directly among them is flattened into them, at any depth (Celery's
/// `group._prepared`), so `group(a, group(b, c))` has three members.
pub fn flat_members<C: Tree>(members: &[C]) -> Vec<&C> {
    fn flatten<'c, C: Tree>(members: &'c [C], out: &mut Vec<&'c C>) {
        for member in members {
            match member.shape() {
                Shape::Group(inner) => flatten(inner, out),
                _ => out.push(member),
            }
        }
    }
    let mut out = Vec::with_capacity(members.len());
    flatten(members, &mut out);
    out
}

/// Whether the result of `canvas` is many results: a group, chunks, or a
/// chain or chord (its body) that ends in one of them. Where such a result goes
/// on as one value (the next step of a chain, a chord member), both
/// drivers give it as one list.
pub fn ends_in_many<C: Tree>(canvas: &C) -> bool {
    match canvas.shape() {
        Shape::Group(_) | Shape::Many => true,
        Shape::Chain(steps) => steps.last().is_some_and(ends_in_many),
        Shape::Chord { body, .. } => ends_in_many(body),
        Shape::Task => false,
    }
}

/// The arguments a task is called with: the input (the previous step's
/// result, a chord header's list, a failed task's id for an errback) in
/// front of its own, unless it is immutable or has no input.
pub fn call_arguments(input: Option<&Value>, own: &[Value], immutable: bool) -> Vec<Value> {
    let input = input.filter(|_| !immutable);
    let mut args = Vec::with_capacity(own.len() + usize::from(input.is_some()));
    args.extend(input.cloned());
    args.extend_from_slice(own);
    args
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Canvas, chord, group, sig};

    #[test]
    fn groups_flatten_and_a_group_of_one_unrolls_only_in_a_chain() {
        let nested = [
            Canvas::from(sig("m.a")),
            group([Canvas::from(sig("m.b")), group([sig("m.c"), sig("m.d")])]),
        ];
        let names: Vec<String> = flat_members(&nested)
            .iter()
            .map(|member| member.to_json()["task"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["m.a", "m.b", "m.c", "m.d"]);
        let one = group([sig("m.a")]);
        assert_eq!(chain_step(&one), &Canvas::from(sig("m.a")));
        let two = group([sig("m.a"), sig("m.b")]);
        assert_eq!(chain_step(&two), &two);
    }

    #[test]
    fn a_result_is_many_where_a_group_or_chord_ends_it() {
        assert!(ends_in_many(&(sig("m.a") | group([sig("m.b")]))));
        assert!(ends_in_many(&chord([sig("m.a")], group([sig("m.b")]))));
        assert!(!ends_in_many(&chord([sig("m.a")], sig("m.b"))));
        assert!(!ends_in_many(&(group([sig("m.b")]) | sig("m.a"))));
        assert!(!ends_in_many(&Canvas::Chain(Vec::new())));
    }

    #[test]
    fn the_input_goes_in_front_unless_the_task_is_immutable() {
        let own = [json!(2)];
        assert_eq!(
            call_arguments(Some(&json!(1)), &own, false),
            [json!(1), json!(2)]
        );
        assert_eq!(call_arguments(Some(&json!(1)), &own, true), [json!(2)]);
        assert_eq!(call_arguments(None, &own, false), [json!(2)]);
    }
}
