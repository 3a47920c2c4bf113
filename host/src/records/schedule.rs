//! A schedule: a workflow started at each tick of a cadence (DESIGN §15),
//! with what its ticks came to.

use serde::{Deserialize, Serialize};

/// What a tick does while the schedule's previous run still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// The tick is recorded as skipped.
    #[default]
    Skip,
    /// The tick waits for the previous run to end; one at most waits, the
    /// ticks after it are skipped.
    BufferOne,
    /// The tick starts its run beside the previous one.
    AllowAll,
}

impl Overlap {
    /// Every policy.
    pub const ALL: [Overlap; 3] = [Overlap::Skip, Overlap::BufferOne, Overlap::AllowAll];

    /// The policy's name as commands take it (`buffer-one`).
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::BufferOne => "buffer-one",
            Overlap::AllowAll => "allow-all",
        }
    }
}

/// What became of one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TickOutcome {
    /// Its workflow started.
    Started,
    /// Its workflow started on request (`schedule trigger`), not at a tick.
    Triggered,
    /// The previous run still ran (overlap `skip`, or `buffer-one` with
    /// one tick already waiting).
    Skipped,
    /// It waits for the previous run to end (overlap `buffer-one`).
    Buffered,
    /// No process ran at its time, and it is older than the catch-up
    /// window.
    Missed,
    /// Its workflow could not start: the schedule's chain no longer loads
    /// (a plugin file gone, say); the log says why.
    Failed,
}

impl TickOutcome {
    /// The outcome's name as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            TickOutcome::Started => "started",
            TickOutcome::Triggered => "triggered",
            TickOutcome::Skipped => "skipped",
            TickOutcome::Buffered => "buffered",
            TickOutcome::Missed => "missed",
            TickOutcome::Failed => "failed",
        }
    }
}

/// One tick and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// Its instant, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What became of it.
    pub outcome: TickOutcome,
    /// The workflow it started, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// How many ticks this one stands for: missed ticks in a row are
    /// recorded once.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(count: &u64) -> bool {
    *count == 1
}

/// What a schedule is made of: everything but what its ticks come to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Its name, unique within its tenant; its workflows' ids are
    /// `NAME@<tick's UTC instant>`.
    pub name: String,
    /// The tenant its workflows run for.
    pub tenant: String,
    /// A cron expression (5 fields, or 6 with seconds first), if it runs
    /// by the calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA time zone its cron is read in (UTC if none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The interval, in milliseconds, if it runs every so often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// What a tick does while the previous run runs.
    #[serde(default)]
    pub overlap: Overlap,
    /// How old a tick missed while no process ran may be and still fire.
    pub catch_up_ms: u64,
    /// No tick before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// No tick after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    /// Whether its ticks are passed over for now.
    #[serde(default)]
    pub paused: bool,
    /// The chain file it runs, as it was when the schedule was made.
    pub chain: String,
    /// Where the chain file was, which its plugin paths are relative to;
    /// empty for a chain submitted through `serve`'s API.
    pub chain_path: String,
    /// Whether the chain was submitted through `serve`'s API: it names
    /// its tenant's plugins, and only a process with the tenant's policy
    /// reads it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub submitted: bool,
}

/// A schedule as the store keeps it: what it is, and what its ticks came
/// to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// What it is.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Its next tick not yet handled; none once it has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick_ms: Option<u64>,
    /// The tick waiting for the previous run to end (`buffer-one`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffered_ms: Option<u64>,
    /// Workflows its ticks claimed that may not have started yet: any
    /// process on the database starts them (their ids make that once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starting: Vec<String>,
    /// The workflow it started last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_workflow: Option<String>,
    /// Its latest ticks, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticks: Vec<Tick>,
}
