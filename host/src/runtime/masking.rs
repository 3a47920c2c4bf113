//! What an attempt's record may say: a failure explained by what the host
//! denied, and the plugin's secrets masked wherever they would show.

use super::attempt::AttemptResult;
use crate::grants::Masker;
use crate::records::{Captured, Failure};

/// A failed or retried `result` that says what the host denied, when the
/// task's own message does not: a guest often sees only an errno.
pub(super) fn with_denial(result: AttemptResult, denial: Option<&str>) -> AttemptResult {
    let Some(denial) = denial else {
        return result;
    };
    let explain = |message: String| {
        if message.contains(denial) {
            message
        } else {
            format!("{message} (the host denied: {denial})")
        }
    };
    match result {
        AttemptResult::Failed(failure) => AttemptResult::Failed(Failure {
            message: explain(failure.message),
            ..failure
        }),
        AttemptResult::Retry {
            message,
            countdown,
            max_retries,
        } => AttemptResult::Retry {
            message: explain(message),
            countdown,
            max_retries,
        },
        other => other,
    }
}

/// `result` with the plugin's secrets masked in every text it carries.
pub(super) fn masked(masker: &Masker, result: AttemptResult) -> AttemptResult {
    if masker.is_empty() {
        return result;
    }
    match result {
        AttemptResult::Value(value) => AttemptResult::Value(masker.mask_json(value)),
        AttemptResult::Replace(canvas) => AttemptResult::Replace(masker.mask_json(canvas)),
        AttemptResult::Retry {
            message,
            countdown,
            max_retries,
        } => AttemptResult::Retry {
            message: masker.mask(&message),
            countdown,
            max_retries,
        },
        AttemptResult::Failed(failure) => AttemptResult::Failed(Failure {
            message: masker.mask(&failure.message),
            ..failure
        }),
    }
}

/// Captured output with the plugin's secrets masked, even a secret cut
/// in two by the cap.
pub(super) fn masked_output(masker: &Masker, captured: Captured) -> Captured {
    if masker.is_empty() {
        return captured;
    }
    let text = if captured.truncated_bytes > 0 {
        masker.mask_cut(&captured.text)
    } else {
        masker.mask(&captured.text)
    };
    Captured { text, ..captured }
}
