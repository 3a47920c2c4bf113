//! JSON paths (`$.workflow.chain[1].options.fuel`) and the issues found at them.

use std::fmt;

/// The characters of a key a path shows; a longer one is cut.
const MAX_KEY_CHARS: usize = 64;

/// Where in a JSON document something is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    /// How many keys and indices lead here from the root.
    depth: usize,
}

impl JsonPath {
    /// The document's root, `$`.
    pub fn root() -> Self {
        JsonPath::default()
    }

    /// The member `key` of the object here.
    pub fn key(&self, key: &str) -> Self {
        let key = crate::text::clipped(key, MAX_KEY_CHARS);
        let simple = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_');
        if simple {
            self.down(format!("{}.{key}", self.text))
        } else {
            self.down(format!("{}[{key:?}]", self.text))
        }
    }

    /// The element `index` of the array here.
    pub fn index(&self, index: usize) -> Self {
        self.down(format!("{}[{index}]", self.text))
    }

    fn down(&self, text: String) -> Self {
        JsonPath {
            text,
            depth: self.depth + 1,
        }
    }

    /// How many keys and indices lead here from the root.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.text)
    }
}

/// The issues of one document shown at most, besides the first.
const MAX_MORE: usize = 20;

/// Something wrong at one place of a document, and what else was found
/// wrong in it before the reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecIssue {
    /// Where.
    pub at: JsonPath,
    /// What is wrong, in words.
    pub message: String,
    /// Other issues of the same document, in the order they were found
    /// (options wfhost does not know, which need not stop the reading).
    pub more: Vec<SpecIssue>,
}

impl SpecIssue {
    /// An issue at `at`.
    pub fn new(at: &JsonPath, message: impl Into<String>) -> Self {
        SpecIssue {
            at: at.clone(),
            message: message.into(),
            more: Vec::new(),
        }
    }
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.at, self.message)?;
        for issue in self.more.iter().take(MAX_MORE) {
            write!(f, "\n  and at {}: {}", issue.at, issue.message)?;
        }
        if self.more.len() > MAX_MORE {
            write!(f, "\n  and {} more", self.more.len() - MAX_MORE)?;
        }
        Ok(())
    }
}
