//! The rest of a chain as Celery's messages carry it: a JSON list of the
//! later steps, last first, which every message of a chain holds (so a
//! 1,000-step chain's first message carries 999 signatures). A worker
//! only ever reads the next step of it; the rest passes on as text, each
//! step delimited by the one pass that reads the message's body and copied
//! once, never parsed into values or written out again step by step.

use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A chain's later steps, last first, as JSON text.
#[derive(Clone, Default, PartialEq)]
pub struct RawChain {
    /// `[step, step, …]`, or empty for no steps.
    text: String,
    /// Where each step is in `text`.
    steps: Vec<Range<usize>>,
}

impl RawChain {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Each step's JSON, last first.
    pub fn steps(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.steps.iter().map(|range| &self.text[range.clone()])
    }

    /// The next step (stored last) and the steps after it.
    pub fn split_next(&self) -> Option<(&str, RawChain)> {
        let (next, rest) = self.steps.split_last()?;
        let text = match rest.last() {
            Some(last) => format!("{}]", &self.text[..last.end]),
            None => String::new(),
        };
        Some((
            &self.text[next.clone()],
            RawChain {
                text,
                steps: rest.to_vec(),
            },
        ))
    }

    /// Adds `step` (JSON) at the end: it runs before every step here.
    pub fn push(&mut self, step: &str) {
        let start = if self.text.is_empty() {
            self.text.push('[');
            1
        } else {
            self.text.pop();
            self.text.push_str(", ");
            self.text.len()
        };
        self.text.push_str(step);
        self.steps.push(start..self.text.len());
        self.text.push(']');
    }

    /// The JSON of the list (`[]` for none).
    pub fn json(&self) -> &str {
        if self.text.is_empty() {
            "[]"
        } else {
            &self.text
        }
    }
}

impl fmt::Debug for RawChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawChain({} steps)", self.steps.len())
    }
}

/// Read from a message's body in the parser's one pass over it: each step
/// is borrowed from the body as the parser meets it and copied once into
/// the list's own text.
impl<'de> Deserialize<'de> for RawChain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(StepsVisitor)
    }
}

struct StepsVisitor;

impl<'de> Visitor<'de> for StepsVisitor {
    type Value = RawChain;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of signatures")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawChain, A::Error> {
        let mut steps: Vec<&'de str> = Vec::new();
        while let Some(step) = seq.next_element::<&'de RawValue>()? {
            steps.push(step.get());
        }
        let mut chain = RawChain::default();
        let bytes: usize = steps.iter().map(|step| step.len() + 2).sum();
        chain.text.reserve_exact(bytes + 2);
        chain.steps.reserve_exact(steps.len());
        for step in steps {
            chain.push(step);
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_read_splits_off_its_next_step_and_grows_at_its_end() {
        let chain: RawChain = serde_json::from_str(
            r#" [ {"task": "c"} , {"task": "b", "args": ["]"]},{"task": "a"}]"#,
        )
        .unwrap();
        assert_eq!(chain.steps().count(), 3);
        let (next, rest) = chain.split_next().unwrap();
        assert_eq!(next, r#"{"task": "a"}"#);
        assert_eq!(
            rest.json(),
            r#"[{"task": "c"}, {"task": "b", "args": ["]"]}]"#
        );
        let steps: Vec<&str> = rest.steps().collect();
        assert_eq!(
            steps,
            [r#"{"task": "c"}"#, r#"{"task": "b", "args": ["]"]}"#]
        );
        let mut grown = rest.clone();
        grown.push(r#"{"task": "z"}"#);
        let again: RawChain = serde_json::from_str(grown.json()).unwrap();
        assert_eq!(
            again.steps().collect::<Vec<_>>(),
            grown.steps().collect::<Vec<_>>()
        );
        let (_, last) = rest.split_next().unwrap().1.split_next().unwrap();
        assert!(last.is_empty());
        assert_eq!(last.json(), "[]");
        let none: RawChain = serde_json::from_str("[]").unwrap();
        assert!(none.is_empty() && none.split_next().is_none());
        let mut built = RawChain::default();
        built.push("{}");
        built.push("[1]");
        assert_eq!(built.json(), "[{}, [1]]");
        assert!(serde_json::from_str::<RawChain>("{}").is_err());
    }
}
