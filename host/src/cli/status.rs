//! The commands that read records: `wfhost status ID`, `wfhost list` and
//! `wfhost usage`.

use std::io::Write;

use serde_json::Value;
use wfhost::HostError;
use wfhost::records::now_ms;
use wfhost::records::{StepRecord, WorkflowStatus};
use wfhost::store::Store;

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

/// Prints a workflow's event log.
fn events(
    out: &mut impl Write,
    store: &Store,
    tenant: &str,
    id: &str,
    json: bool,
) -> anyhow::Result<()> {
    let events = store.events(tenant, id)?;
    if json {
        print_json(out, &events)?;
        return Ok(());
    }
    for event in events {
        writeln!(
            out,
            "{:>6} {:>13} {:<20} {:<10} {}",
            event.seq,
            event.at_ms,
            event.kind,
            event.step.as_deref().unwrap_or("-"),
            event.detail.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

pub fn status(
    store: &Store,
    tenant: &str,
    id: &str,
    json: bool,
    show_events: bool,
) -> anyhow::Result<Finished> {
    let Some(report) = store.report(tenant, id)? else {
        return Err(HostError::NotFound {
            tenant: tenant.to_string(),
            id: id.to_string(),
            database: store.path().to_path_buf(),
        }
        .into());
    };
    let mut out = std::io::stdout().lock();
    if show_events {
        events(&mut out, store, tenant, id, json)?;
        return Ok(Finished::Succeeded);
    }
    if json {
        return print_json(&mut out, &report);
    }
    let row = &report.row;
    writeln!(
        out,
        "workflow {} (tenant {}): {}",
        row.id,
        row.tenant,
        row.status.as_str()
    )?;
    writeln!(
        out,
        "  started {}, last change {}",
        age(row.created_at_ms),
        age(row.updated_at_ms)
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
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:<16} {:<10} {:<18} {:<10} {:>8} {:>10} {:>12}  RESULT / ERROR",
        "STEP", "PARENT", "TASK", "STATUS", "ATTEMPTS", "MS", "FUEL"
    )?;
    for step in &report.steps {
        // Indenting by depth in the canvas shows the tree: group members
        // under their group, a replacement's steps under the replaced step.
        let depth = step.depth();
        let id = format!("{}{}", "  ".repeat(depth), step.id);
        writeln!(
            out,
            "  {:<16} {:<10} {:<18} {:<10} {:>8} {:>10.1} {:>12}  {}",
            id,
            step.parent.as_deref().unwrap_or("-"),
            step.task,
            step.status.as_str(),
            step.attempts,
            step.duration_ms,
            step.fuel_used,
            outcome(step)
        )?;
    }
    Ok(Finished::Succeeded)
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
