//! The one rule for a name a user gives the host — a workflow id, a tenant,
//! a plugin: not empty, at most [`MAX_NAME_BYTES`] bytes, and printable.
//!
//! Names are keys of every record and words of every log line: an
//! unbounded one grows the state file by its length at every record that
//! keys on it, and one holding a newline or an escape forges log lines.

use thiserror::Error;

/// The longest name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a name is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("is {bytes} bytes long; at most {MAX_NAME_BYTES} are allowed")]
    TooLong {
        /// Its length in bytes.
        bytes: usize,
    },
    /// The name holds a control character (a newline, an escape, …).
    #[error("holds the control character {character:?} at byte {at}; names are printable")]
    Control {
        /// The character.
        character: char,
        /// Its byte offset.
        at: usize,
    },
}

/// Checks `name` against the rule.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { bytes: name.len() });
    }
    match name.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, character)) => Err(NameError::Control { character, at }),
        None => Ok(()),
    }
}

/// [`check`] as a command-line argument's parser: the name, or the reason.
pub fn parse(name: &str) -> Result<String, NameError> {
    check(name).map(|()| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_short_printable_and_not_empty() {
        assert_eq!(check("order-7@2026-12-07T00:00:00Z"), Ok(()));
        assert_eq!(check("déjà vu ✓"), Ok(()));
        assert_eq!(check(&"x".repeat(MAX_NAME_BYTES)), Ok(()));
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(
            check(&"é".repeat(128)),
            Err(NameError::TooLong { bytes: 256 })
        );
        assert_eq!(
            check("a\nforged line"),
            Err(NameError::Control {
                character: '\n',
                at: 1
            })
        );
        let escaped = check("x\u{1b}[31m").unwrap_err().to_string();
        assert!(
            escaped.contains("\\u{1b}") && escaped.contains("byte 1"),
            "{escaped}"
        );
    }
}
