//! Issues that need not stop the reading of a document (an option wfhost
//! does not know): deferred while the document is read, then reported
//! together, so that a file with several gets all of them at once.

use std::cell::RefCell;

use crate::json::SpecIssue;

thread_local! {
    /// The issues deferred by the reading under way on this thread, if one
    /// is collecting them.
    static DEFERRED: RefCell<Option<Vec<SpecIssue>>> = const { RefCell::new(None) };
}

/// Runs `read`, collecting the issues deferred in it: they are reported
/// together, before the issue that stopped it, if any.
pub(super) fn collecting<T>(read: impl FnOnce() -> Result<T, SpecIssue>) -> Result<T, SpecIssue> {
    let outer = DEFERRED.with(|deferred| deferred.borrow_mut().replace(Vec::new()));
    let result = read();
    let mut issues = DEFERRED
        .with(|deferred| std::mem::replace(&mut *deferred.borrow_mut(), outer))
        .unwrap_or_default();
    match result {
        Ok(value) if issues.is_empty() => Ok(value),
        result => {
            if let Err(stopped) = result {
                issues.push(stopped);
            }
            // Not empty: an issue was deferred, or one stopped the reading.
            let mut first = issues.remove(0);
            first.more = issues;
            Err(first)
        }
    }
}

/// The issues one reading keeps at most: a huge file full of unknown
/// options is not held twice in memory.
const MAX_DEFERRED: usize = 10_000;

/// Defers `issue` when a reading is collecting issues; else it is the
/// error.
pub(super) fn defer(issue: SpecIssue) -> Result<(), SpecIssue> {
    DEFERRED.with(|deferred| match deferred.borrow_mut().as_mut() {
        Some(issues) => {
            if issues.len() < MAX_DEFERRED {
                issues.push(issue);
            }
            Ok(())
        }
        None => Err(issue),
    })
}
