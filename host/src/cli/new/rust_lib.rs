//! The tasks of the `@NAME@` plugin. Each `#[task]` is a plain function:
//! unit-test it with `cargo test`, run it in a chain with `wfhost run`.

use serde::{Deserialize, Serialize};
use wfhost_guest::{TaskError, task};

/// Says hello to `name`.
#[task]
pub fn greet(name: String) -> String {
    format!("Hello, {name}!")
}

/// A greeting and how long it is.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Measured {
    pub text: String,
    pub chars: u64,
}

/// Measures a text; an empty one fails the step.
#[task]
pub fn measure(text: String) -> Result<Measured, TaskError> {
    if text.is_empty() {
        return Err(TaskError::fail("nothing to measure"));
    }
    let chars = text.chars().count() as u64;
    Ok(Measured { text, chars })
}

wfhost_guest::export_tasks!(greet, measure);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_and_measures() {
        let greeting = greet("world".into());
        assert_eq!(greeting, "Hello, world!");
        assert_eq!(measure(greeting).unwrap().chars, 13);
        assert!(measure(String::new()).is_err());
    }
}
