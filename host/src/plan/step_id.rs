//! The grammar of step ids, in one place: an element's index at the root,
//! `.N` for a position inside a chain, group or replacement, `.body` for a
//! chord's body, `.link.N` and `.link_error.N` for a step's callbacks, and
//! `on_error` for the workflow's error handler. `resume` matches stored
//! steps by these ids, so they never depend on run order.

use std::fmt;
use std::ops::Deref;

/// A step's stable id: its position in the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepId(String);

const ON_ERROR: &str = "on_error";

impl StepId {
    /// Element `index` of the workflow's top-level chain.
    pub fn element(index: usize) -> Self {
        StepId(index.to_string())
    }

    /// The workflow's `on_error` handler.
    pub fn on_error() -> Self {
        StepId(ON_ERROR.to_string())
    }

    /// An id as it was stored or given; it is not checked.
    pub fn from_stored(id: impl Into<String>) -> Self {
        StepId(id.into())
    }

    /// Position `index` inside this node: a chain's step, a group's member,
    /// a replacement's step.
    pub fn child(&self, index: usize) -> Self {
        StepId(format!("{}.{index}", self.0))
    }

    /// The body of the chord with this id.
    pub fn body(&self) -> Self {
        StepId(format!("{}.body", self.0))
    }

    /// This step's `index`th `link` callback.
    pub fn link(&self, index: usize) -> Self {
        StepId(format!("{}.link.{index}", self.0))
    }

    /// This step's `index`th `link_error` callback.
    pub fn link_error(&self, index: usize) -> Self {
        StepId(format!("{}.link_error.{index}", self.0))
    }

    /// Whether `other` is this node or lies inside it.
    pub fn holds(&self, other: &str) -> bool {
        other
            .strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }

    /// How deep the id is nested: 0 for a top-level element.
    pub fn depth(&self) -> usize {
        depth(&self.0)
    }

    /// Whether this is a callback that runs when step `failed` fails: one of
    /// its `link_error` callbacks, or the workflow's `on_error`.
    pub fn is_errback_of(&self, failed: Option<&str>) -> bool {
        self.0 == ON_ERROR
            || failed.is_some_and(|failed| {
                self.0
                    .strip_prefix(failed)
                    .is_some_and(|rest| rest.starts_with(".link_error."))
            })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How deep the step id `id` is nested: 0 for a top-level element.
pub fn depth(id: &str) -> usize {
    id.matches('.').count()
}

impl Deref for StepId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StepId> for String {
    fn from(id: StepId) -> String {
        id.0
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spell_their_position() {
        let group = StepId::element(2);
        assert_eq!(group.child(1), "2.1");
        assert_eq!(group.child(1).child(0).depth(), 2);
        assert_eq!(StepId::element(3).body(), "3.body");
        assert_eq!(group.link(0), "2.link.0");
        assert_eq!(group.link_error(1), "2.link_error.1");
        assert_eq!(StepId::on_error(), "on_error");
        assert_eq!(StepId::element(7).depth(), 0);
    }

    #[test]
    fn errbacks_of_a_failure_are_its_link_errors_and_on_error() {
        let failed = Some("2.1");
        assert!(
            StepId::from_stored("2.1")
                .link_error(0)
                .is_errback_of(failed)
        );
        assert!(StepId::on_error().is_errback_of(failed));
        assert!(StepId::on_error().is_errback_of(None));
        assert!(!StepId::from_stored("2.1").link(0).is_errback_of(failed));
        assert!(
            !StepId::from_stored("2.10")
                .link_error(0)
                .is_errback_of(failed)
        );
        assert!(!StepId::from_stored("2.1").is_errback_of(failed));
    }
}
