//! Locking a mutex whose data is consistent between statements.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, going on past a poisoned lock: every mutex of the host
/// guards data that each holder leaves consistent before it could panic,
/// so a panic elsewhere is no reason for the host to stop.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|err| err.into_inner())
}
