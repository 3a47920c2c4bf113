//! Locking a mutex or a read-write lock whose data is consistent between
//! statements.

use std::sync::{Mutex, MutexGuard};
#[cfg(feature = "serve")]
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, going on past a poisoned lock: every mutex of the host
/// guards data that each holder leaves consistent before it could panic,
/// so a panic elsewhere is no reason for the host to stop.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|err| err.into_inner())
}

/// Reads `lock`, past poisoning as [`lock`] does.
#[cfg(feature = "serve")]
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|err| err.into_inner())
}

/// Writes `lock`, past poisoning as [`lock`] does.
#[cfg(feature = "serve")]
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|err| err.into_inner())
}
