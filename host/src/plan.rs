//! Planning: the canvas as a flat list of steps, each with its stable id.
//!
//! A step's id is its position in the canvas: `0`, `1`, `2.0` (the first
//! step of a chain nested at position 2), and a replacement's steps extend
//! the replaced step's id (`3.0`, `3.1`). Ids never depend on run order, so
//! the same workflow always names its steps the same way.

use thiserror::Error;
use wfhost_canvas::{Canvas, Signature};

/// One signature at its place in the workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// The stable id.
    pub id: String,
    /// What to run.
    pub signature: Signature,
}

/// A canvas that the executor cannot run yet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("step {step}: {what} are not supported yet; wfhost runs chains of signatures")]
pub struct PlanError {
    /// Where the unsupported part is.
    pub step: String,
    /// What it is.
    pub what: &'static str,
}

fn child_id(prefix: Option<&str>, index: usize) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}.{index}"),
        None => index.to_string(),
    }
}

/// Flattens `canvas` into steps whose ids extend `prefix` (the workflow's
/// root when `None`). Nested chains are flattened; their steps keep ids that
/// say where they were nested.
pub fn flatten(canvas: &Canvas, prefix: Option<&str>) -> Result<Vec<PlannedStep>, PlanError> {
    let mut steps = Vec::new();
    match canvas {
        Canvas::Chain(items) => {
            for (index, item) in items.iter().enumerate() {
                push(&mut steps, item, child_id(prefix, index))?;
            }
        }
        other => push(&mut steps, other, child_id(prefix, 0))?,
    }
    Ok(steps)
}

fn push(steps: &mut Vec<PlannedStep>, canvas: &Canvas, id: String) -> Result<(), PlanError> {
    match canvas {
        Canvas::Signature(signature) => steps.push(PlannedStep {
            id,
            signature: signature.clone(),
        }),
        Canvas::Chain(items) => {
            for (index, item) in items.iter().enumerate() {
                push(steps, item, format!("{id}.{index}"))?;
            }
        }
        Canvas::Group(_) => {
            return Err(PlanError {
                step: id,
                what: "groups",
            });
        }
        Canvas::Chord(_) => {
            return Err(PlanError {
                step: id,
                what: "chords",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfhost_canvas::sig;

    fn ids(canvas: &Canvas, prefix: Option<&str>) -> Vec<String> {
        flatten(canvas, prefix)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
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
    }

    #[test]
    fn a_lone_signature_is_step_zero_and_replacements_extend_their_step() {
        assert_eq!(ids(&sig("m.a").into(), None), ["0"]);
        assert_eq!(ids(&(sig("m.a") | sig("m.b")), Some("3")), ["3.0", "3.1"]);
    }

    #[test]
    fn groups_are_refused_with_their_step() {
        let canvas = sig("m.a") | wfhost_canvas::group([sig("m.b")]);
        assert_eq!(
            flatten(&canvas, None),
            Err(PlanError {
                step: "1".into(),
                what: "groups"
            })
        );
    }
}
