//! What a successful task returns.

use serde_json::Value;
use wfhost_canvas::Canvas;

/// A successful outcome. Most tasks return a plain value and never name this
/// type; return it to replace the step with a new canvas at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The step's result.
    Value(Value),
    /// The step is replaced by this canvas; the workflow continues after it
    /// with the canvas's result (Celery's `self.replace`).
    Replace(Box<Canvas>),
}

impl Outcome {
    /// Replaces the running step with `canvas`.
    pub fn replace(canvas: impl Into<Canvas>) -> Self {
        Outcome::Replace(Box::new(canvas.into()))
    }
}
