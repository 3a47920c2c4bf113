//! The host's own log, on stderr: `RUST_LOG` (`debug`, `wfhost=trace`,
//! `warn,wfhost::service=info`) when set, else a level from `-v` and `-q`
//! around each command's default (warnings; `serve` also logs requests
//! and workflows, at info).

use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The levels from quietest to most verbose.
const LEVELS: [LevelFilter; 6] = [
    LevelFilter::OFF,
    LevelFilter::ERROR,
    LevelFilter::WARN,
    LevelFilter::INFO,
    LevelFilter::DEBUG,
    LevelFilter::TRACE,
];

/// Starts the log: `verbose` levels past `default` (less with `quiet`),
/// for wfhost's own events; other crates' (wasmtime's) only from warnings
/// on, unless `RUST_LOG` says otherwise.
pub fn start(default: LevelFilter, verbose: u8, quiet: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => Targets::from_str(&directives)
            .unwrap_or_else(|err| {
                eprintln!("warning: RUST_LOG ignored ({err}): `{directives}`");
                for_wfhost(default)
            }),
        _ => {
            let at = LEVELS
                .iter()
                .position(|level| *level == default)
                .unwrap_or(2);
            let at = (at + usize::from(verbose)).saturating_sub(usize::from(quiet));
            for_wfhost(LEVELS[at.min(LEVELS.len() - 1)])
        }
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Only one log per process; a second start (none is made) would fail.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// `level` for wfhost's events, and warnings on for everyone else's.
fn for_wfhost(level: LevelFilter) -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN.min(level))
        .with_target("wfhost", level)
}
