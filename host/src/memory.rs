//! Giving memory back to the system after a large message.
//!
//! An allocator keeps what it freed for the next allocation, which after a
//! message of hundreds of megabytes is memory a worker holds for nothing
//! until it ends. The binary, which chooses the allocator, says how to make
//! it give freed memory back; the worker asks for that after each message
//! at least [`LARGE_MESSAGE_BYTES`] long.

use std::sync::OnceLock;

/// From this size on, a message is followed by a release.
pub const LARGE_MESSAGE_BYTES: usize = 4 << 20;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets how this process gives freed memory back (once; later calls are
/// ignored).
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Gives freed memory back, if the process said how: now, and once more a
/// moment later, for what other threads free after the message (a dropped
/// connection's buffer goes with its task).
#[cfg(feature = "worker")]
pub(crate) fn release() {
    let Some(release) = RELEASE.get().copied() else {
        return;
    };
    release();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            tokio::time::sleep(SETTLE).await;
            release();
        });
    }
}

/// How long after a large message the second release comes: past the
/// allocator's delay before it gives back what was freed (mimalloc's
/// `purge_delay`, one second).
#[cfg(feature = "worker")]
const SETTLE: std::time::Duration = std::time::Duration::from_millis(1500);
