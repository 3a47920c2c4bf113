//! What an attempt left besides its result: captured output and log lines.

use serde::{Deserialize, Serialize};

/// What a guest wrote to one stream, up to the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    /// The first bytes written, up to the cap, lossily decoded as UTF-8.
    pub text: String,
    /// How many bytes were written past the cap and dropped.
    pub truncated_bytes: u64,
}

impl Captured {
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.truncated_bytes == 0
    }
}

/// Severity of a guest log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogLevel {
    /// Finer than debug.
    Trace,
    /// For the plugin's author.
    Debug,
    /// For the operator.
    Info,
    /// Something to look at.
    Warn,
    /// Something went wrong.
    Error,
}

impl LogLevel {
    /// The level's name: `info`, `warn` …
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One log line a guest sent through the host interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Its severity.
    pub level: LogLevel,
    /// The line, clipped to the host's maximum.
    pub message: String,
}
