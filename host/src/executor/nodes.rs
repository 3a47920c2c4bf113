//! Where a chain's nodes come from: a plan in memory (group members, chord
//! bodies), or the workflow's own elements, each planned only when the run
//! reaches it, so that a long workflow is never planned whole.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::error::ExecutorError;
use crate::plan::{self, Node};
use crate::spec::{Elements, JsonReader, decode_element};

/// A chain's nodes, in order, taken one at a time.
pub enum Nodes<'n> {
    /// Planned already, and walked in place.
    Planned(std::slice::Iter<'n, Node>),
    /// Planned element by element from the workflow's spool.
    Elements(ElementNodes<'n>),
}

/// The nodes of a workflow's elements, planned as they are reached.
pub struct ElementNodes<'n> {
    reader: JsonReader<'n>,
    /// The index of the next element to plan.
    next_element: usize,
    /// The nodes of the last element planned, not yet taken.
    planned: VecDeque<Node>,
}

impl<'n> Nodes<'n> {
    /// The nodes of a plan.
    pub fn planned(nodes: &'n [Node]) -> Self {
        Nodes::Planned(nodes.iter())
    }

    /// The nodes of a workflow's elements.
    pub fn elements(elements: &'n Elements) -> Self {
        Nodes::Elements(ElementNodes {
            reader: elements.json(),
            next_element: 0,
            planned: VecDeque::new(),
        })
    }

    /// The next node, if any.
    pub fn next(&mut self) -> Result<Option<Cow<'n, Node>>, ExecutorError> {
        match self {
            Nodes::Planned(nodes) => Ok(nodes.next().map(Cow::Borrowed)),
            Nodes::Elements(elements) => Ok(elements.ahead()?.pop_front().map(Cow::Owned)),
        }
    }

    /// Whether no node is left; the workflow's next element is planned to
    /// find out, and kept for `next`.
    pub fn at_end(&mut self) -> Result<bool, ExecutorError> {
        match self {
            Nodes::Planned(nodes) => Ok(nodes.as_slice().is_empty()),
            Nodes::Elements(elements) => Ok(elements.ahead()?.is_empty()),
        }
    }

    /// Up to `max` of the nodes left, taken out: what a stopped chain
    /// records as skipped, a batch at a time. Empty once none is left.
    pub fn take_batch(&mut self, max: usize) -> Result<Vec<Cow<'n, Node>>, ExecutorError> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.next()? {
                Some(node) => batch.push(node),
                None => break,
            }
        }
        Ok(batch)
    }
}

impl ElementNodes<'_> {
    /// The nodes planned and not yet taken, planning the next element
    /// first if every node so far was taken. Elements with no node (an
    /// empty chain) are passed over; empty once the elements end.
    fn ahead(&mut self) -> Result<&mut VecDeque<Node>, ExecutorError> {
        while self.planned.is_empty() {
            let Some(json) = self.reader.next() else {
                break;
            };
            let index = self.next_element;
            let canvas = decode_element(&json.map_err(ExecutorError::Spool)?, index)
                .map_err(ExecutorError::Spool)?;
            self.planned.extend(plan::plan_element(&canvas, index));
            self.next_element += 1;
        }
        Ok(&mut self.planned)
    }
}
