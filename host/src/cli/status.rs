//! The commands that read records: `wfhost status ID`, `wfhost events ID`,
//! `wfhost list` and `wfhost usage`.

use std::io::Write;

use serde_json::Value;
use wfhost::records::{StepRecord, StepStatus, WorkflowStatus, iso8601, now_ms};
use wfhost::store::{Overview, Store};
use wfhost::text::thousands;
use wfhost::{HostError, RunIdentity};

use super::Finished;

/// A value on one line, cut to `width` characters.
fn brief(value: &Value, width: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= width {
        return text;
    }
    let cut: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}…")
}

fn age(ms: u64) -> String {
    let seconds = now_ms().saturating_sub(ms) / 1000;
    match seconds {
        0..=119 => format!("{seconds} s ago"),
        120..=7199 => format!("{} min ago", seconds / 60),
        _ => format!("{} h ago", seconds / 3600),
    }
}

fn outcome(step: &StepRecord) -> String {
    match (&step.result, &step.error) {
        (_, Some(error)) => format!("{}: {}", error.kind, error.message),
        (Some(result), None) => brief(result, 60),
        (None, None) => String::new(),
    }
}

/// Prints `value` as pretty JSON: what `--json` asks of every command that
/// prints records.
fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<Finished> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(Finished::Succeeded)
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Steps a text `status` shows unless asked for all: the latest.
const SHOWN_STEPS: usize = 40;

/// Lines of a failed step's stderr and log a text `status` shows.
const SHOWN_LINES: usize = 10;

/// A time of a record: ISO 8601 and how long ago.
fn when(ms: u64) -> String {
    format!("{} ({})", iso8601(ms), age(ms))
}

/// The time of day of a record's time, in ISO 8601 (the date is in the
/// workflow's header).
fn time_of_day(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| iso8601(ms)[11..].to_string())
}

/// `text` indented as a block under a heading.
fn block(out: &mut impl Write, heading: &str, text: &str) -> std::io::Result<()> {
    writeln!(out, "    {heading}:")?;
    for line in text.lines() {
        writeln!(out, "      | {line}")?;
    }
    Ok(())
}

/// What the failed step left behind: the tail of its stderr and its log.
fn failed_step_output(out: &mut impl Write, step: &StepRecord) -> std::io::Result<()> {
    if !step.stderr.is_empty() {
        let heading = format!("stderr of its last attempt (last {SHOWN_LINES} lines)");
        block(out, &heading, &last_lines(&step.stderr.text, SHOWN_LINES))?;
    }
    if !step.logs.is_empty() {
        let lines: Vec<String> = step
            .logs
            .iter()
            .map(|record| format!("{}: {}", record.level.as_str(), record.message))
            .collect();
        let heading = format!("its log (last {SHOWN_LINES} lines)");
        block(out, &heading, &last_lines(&lines.join("\n"), SHOWN_LINES))?;
    }
    Ok(())
}

/// The steps under way or waiting, one line each: as they stand while
/// the workflow runs, where they were when it was cut off or ended.
fn underway(
    out: &mut impl Write,
    status: WorkflowStatus,
    steps: &[StepRecord],
) -> std::io::Result<()> {
    let stopped = match status {
        WorkflowStatus::Running => None,
        WorkflowStatus::CutOff => Some("cut off"),
        _ => Some("interrupted"),
    };
    for step in steps.iter().filter(|step| !step.status.is_final()) {
        let since = step.started_at_ms.map(iso8601).unwrap_or_default();
        let due = step.due_at_ms.map(iso8601).unwrap_or_default();
        let (what, at) = match step.status {
            StepStatus::Retrying => ("retrying", format!("next attempt due {due}")),
            StepStatus::Scheduled => ("scheduled", format!("due {due}")),
            StepStatus::Sleeping => ("asleep", format!("until {due}")),
            StepStatus::Waiting => {
                let signal = step.kwargs.get("signal").and_then(Value::as_str);
                let signal = signal.unwrap_or_default();
                let until = step
                    .due_at_ms
                    .map_or_else(String::new, |_| format!(", timeout {due}"));
                (
                    "waiting",
                    format!("for signal {signal} since {since}{until}"),
                )
            }
            _ => (
                "running",
                format!("attempt {} since {since}", step.attempts),
            ),
        };
        match stopped {
            Some(how) => writeln!(
                out,
                "  {how} while {what}: step {} ({}), {at}",
                step.id, step.task
            )?,
            None => writeln!(out, "  {what}: step {} ({}), {at}", step.id, step.task)?,
        }
    }
    Ok(())
}

pub fn status(
    store: &Store,
    tenant: &str,
    id: &str,
    json: bool,
    all_steps: bool,
) -> anyhow::Result<Finished> {
    let mut out = std::io::stdout().lock();
    if json || all_steps {
        let report = store
            .report(tenant, id)?
            .ok_or_else(|| not_found(store, tenant, id))?;
        if json {
            return print_json(&mut out, &report);
        }
        let overview = Overview::of(report, usize::MAX);
        return print_overview(&mut out, &overview);
    }
    // A long workflow is not read whole: its tally and latest records say
    // what the text shows.
    let overview = store
        .overview(tenant, id, SHOWN_STEPS)?
        .ok_or_else(|| not_found(store, tenant, id))?;
    print_overview(&mut out, &overview)
}

/// Prints the text `status` of `overview`: every step it holds in
/// `latest`, after a line counting those left out.
fn print_overview(out: &mut impl Write, overview: &Overview) -> anyhow::Result<Finished> {
    let row = &overview.row;
    writeln!(
        out,
        "workflow {} (tenant {}): {}",
        row.id,
        row.tenant,
        row.status.as_str()
    )?;
    let progress = &overview.progress;
    writeln!(out, "  {}", progress.summary)?;
    writeln!(
        out,
        "  started {}, last change {}",
        when(row.created_at_ms),
        when(progress.last_change_ms)
    )?;
    if let Some(result) = &row.result {
        writeln!(out, "  result: {}", brief(result, 100))?;
    }
    if let Some(error) = &row.error {
        writeln!(
            out,
            "  error: step {} ({}) after {} attempt{}: {}: {}",
            error.step,
            error.task,
            error.attempts,
            plural(error.attempts),
            error.kind,
            error.message
        )?;
        if let Some(step) = &overview.failed {
            failed_step_output(out, step)?;
        }
    }
    underway(out, row.status, &overview.unfinished)?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<16} {:<10} {:<18} {:<10} {:>8} {:<13} {:<13} {:>10} {:>12}  RESULT / ERROR",
        "STEP", "PARENT", "TASK", "STATUS", "ATTEMPTS", "STARTED", "ENDED", "MS", "FUEL"
    )?;
    let hidden = overview
        .records
        .saturating_sub(overview.latest.len() as u64);
    if hidden > 0 {
        writeln!(
            out,
            "  … {} earlier steps (`--all` shows every step)",
            thousands(hidden)
        )?;
    }
    for step in &overview.latest {
        // Indenting by depth in the canvas shows the tree: group members
        // under their group, a replacement's steps under the replaced step.
        let depth = step.depth();
        let id = format!("{}{}", "  ".repeat(depth), step.id);
        writeln!(
            out,
            "  {:<16} {:<10} {:<18} {:<10} {:>8} {:<13} {:<13} {:>10.1} {:>12}  {}",
            id,
            step.parent.as_deref().unwrap_or("-"),
            step.task,
            step.status.as_str(),
            step.attempts,
            time_of_day(step.started_at_ms),
            time_of_day(step.ended_at_ms),
            step.duration_ms,
            step.fuel_used,
            outcome(step)
        )?;
    }
    Ok(Finished::Succeeded)
}

/// The error of a workflow that is not on record.
fn not_found(store: &Store, tenant: &str, id: &str) -> anyhow::Error {
    HostError::not_found(store, &RunIdentity::new(tenant, id)).into()
}

/// How often `events --follow` looks for new events.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// `wfhost events ID`: a workflow's event log, one event a line (with
/// `json`, one JSON object a line); with `follow`, new events as they are
/// recorded, until the workflow no longer runs.
pub async fn events(
    store: &Store,
    tenant: &str,
    id: &str,
    json: bool,
    follow: bool,
) -> anyhow::Result<Finished> {
    let mut next = 0;
    loop {
        let row = store
            .workflow(tenant, id)?
            .ok_or_else(|| not_found(store, tenant, id))?;
        let events = store.events_from(tenant, id, next)?;
        let mut out = std::io::stdout().lock();
        for event in &events {
            if json {
                serde_json::to_writer(&mut out, event)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:>6} {} {:<20} {:<10} {}",
                    event.seq,
                    iso8601(event.at_ms),
                    event.kind,
                    event.step.as_deref().unwrap_or("-"),
                    event.detail.as_deref().unwrap_or("")
                )?;
            }
        }
        out.flush()?;
        next = events.last().map_or(next, |event| event.seq + 1);
        // The row was read before the events: once it no longer runs, the
        // events read after it are all there will be.
        if !follow || row.status != WorkflowStatus::Running {
            return Ok(Finished::Succeeded);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

pub fn list(
    store: &Store,
    tenant: Option<&str>,
    status: Option<WorkflowStatus>,
    json: bool,
) -> anyhow::Result<Finished> {
    let rows = store.workflows(tenant, status)?;
    let mut out = std::io::stdout().lock();
    if json {
        return print_json(&mut out, &rows);
    }
    writeln!(
        out,
        "{:<28} {:<12} {:<10} {:<12}  RESULT / ERROR",
        "ID", "TENANT", "STATUS", "CHANGED"
    )?;
    for row in &rows {
        let outcome = match (&row.result, &row.error) {
            (_, Some(error)) => format!("step {}: {}: {}", error.step, error.kind, error.message),
            (Some(result), None) => brief(result, 60),
            (None, None) => String::new(),
        };
        writeln!(
            out,
            "{:<28} {:<12} {:<10} {:<12}  {}",
            row.id,
            row.tenant,
            row.status.as_str(),
            age(row.updated_at_ms),
            outcome
        )?;
    }
    Ok(Finished::Succeeded)
}

/// `wfhost usage`: what each tenant's workflows have used.
pub fn usage(store: &Store, tenant: Option<&str>, json: bool) -> anyhow::Result<Finished> {
    let usage = store.usage(tenant)?;
    let mut out = std::io::stdout().lock();
    if json {
        return print_json(&mut out, &usage);
    }
    writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>9} {:>16} {:>12}",
        "TENANT", "WORKFLOWS", "STEPS", "ATTEMPTS", "FUEL", "TIME (s)"
    )?;
    for sums in &usage {
        writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>9} {:>16} {:>12.3}",
            sums.tenant,
            sums.workflows,
            sums.steps,
            sums.attempts,
            sums.fuel,
            sums.duration_ms / 1000.0
        )?;
    }
    Ok(Finished::Succeeded)
}

/// The last `max` lines of `text`, with a line before them saying how many
/// earlier ones there were.
fn last_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skipped = lines.len().saturating_sub(max);
    let mut shown = Vec::with_capacity(max + 1);
    if skipped > 0 {
        shown.push(format!("… {skipped} earlier lines"));
    }
    shown.extend(lines[skipped..].iter().map(|line| line.to_string()));
    shown.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tail_says_how_many_lines_came_before_it() {
        assert_eq!(super::last_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(super::last_lines("a\nb\nc", 2), "… 1 earlier lines\nb\nc");
    }
}
