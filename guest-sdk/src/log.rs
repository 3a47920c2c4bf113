//! Structured logging to the host, recorded against the running step.

use crate::bindings::wfhost::task::host::{self, Level};

fn emit(level: Level, message: &str) {
    host::log(level, message);
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    emit(Level::Debug, message.as_ref());
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    emit(Level::Info, message.as_ref());
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    emit(Level::Warn, message.as_ref());
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    emit(Level::Error, message.as_ref());
}
