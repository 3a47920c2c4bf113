//! `wfhost check`: whether a state file is whole, read-only (see
//! `wfhost::store::CheckReport`). Exit 0 clean, 1 damage found, 2 the file
//! cannot be read.

use std::io::Write;

use clap::Args;
use wfhost::store::{CheckReport, PageCheck, check_file};

use super::{DbArgs, Finished};

#[derive(Args)]
pub struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write to this new file a database of the workflows that read back
    /// whole, each as it was stored (a workflow with any problem is left
    /// out, whole); the file checked is not changed.
    #[arg(long, value_name = "OUT")]
    repair_copy: Option<std::path::PathBuf>,
    #[command(flatten)]
    db: DbArgs,
}

pub fn check(args: CheckArgs) -> anyhow::Result<Finished> {
    let path = args.db.path();
    let started = std::time::Instant::now();
    let report = check_file(&path, args.repair_copy.as_deref())?;
    let took = started.elapsed();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report, took)?;
    }
    Ok(if report.is_clean() {
        Finished::Succeeded
    } else {
        Finished::WorkflowFailed
    })
}

fn print_report(
    out: &mut impl Write,
    report: &CheckReport,
    took: std::time::Duration,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} workflows, {} journal entries, {} schedules read in {:.1} s",
        report.path.display(),
        report.workflows,
        report.journal_entries,
        report.schedules,
        took.as_secs_f64()
    )?;
    match &report.pages {
        PageCheck::Clean => writeln!(out, "pages and trees: sound (redb's integrity check)")?,
        PageCheck::Repairable => writeln!(
            out,
            "pages and trees: DAMAGED, and redb could mend them (in the copy checked; \
             the records' checks below read the mended copy)"
        )?,
        PageCheck::Unrepairable(reason) => writeln!(
            out,
            "pages and trees: DAMAGED beyond redb's repair: {reason}"
        )?,
    }
    if report.findings.is_empty() {
        writeln!(
            out,
            "records: every checksum holds; the journal agrees with itself and the rows"
        )?;
    } else {
        let more = report.more_findings;
        let total = report.findings.len() as u64 + more;
        writeln!(out, "records: {total} problems")?;
        for finding in &report.findings {
            writeln!(out, "  {finding}")?;
        }
        if more > 0 {
            writeln!(out, "  … and {more} more")?;
        }
    }
    if !report.cut_off.is_empty() {
        writeln!(
            out,
            "cut off (no process runs them; `wfhost resume` continues them): {}",
            report.cut_off.join(", ")
        )?;
    }
    if let Some(copy) = &report.repaired_copy {
        writeln!(
            out,
            "repaired copy {}: {} workflows and {} schedules copied as stored; {} left out{}",
            copy.path.display(),
            copy.workflows,
            copy.schedules,
            copy.left_out.len(),
            if copy.left_out.is_empty() {
                String::new()
            } else {
                format!(": {}", copy.left_out.join(", "))
            }
        )?;
    }
    if !report.unfinished_starts.is_empty() {
        writeln!(
            out,
            "started and never on record (a process was killed while storing their chains; \
             the room is reused when the same id starts): {}",
            report.unfinished_starts.join(", ")
        )?;
    }
    writeln!(
        out,
        "{}",
        if report.is_clean() {
            "clean"
        } else {
            "damage found"
        }
    )
}
