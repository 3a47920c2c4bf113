//! `wfhost schedule add|list|show|pause|resume|trigger|rm` and `wfhost
//! scheduler` (DESIGN §15).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use wfhost::RunIdentity;
use wfhost::records::{Overlap, ScheduleRecord, ScheduleSpec, WorkflowStatus, iso8601};
use wfhost::schedule::{self, Scheduler, SystemClock};

use super::{DbArgs, Finished, TenantArg};

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Make a schedule: CHAIN.json runs at each tick, as workflow
    /// NAME@<the tick's UTC instant>.
    Add(AddArgs),
    /// The schedules, with their next tick.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        db: DbArgs,
    },
    /// A schedule: its next 5 ticks and its last runs with their outcome.
    Show(NameArgs),
    /// Stop a schedule's ticks until `resume`.
    Pause(NameArgs),
    /// Let a paused schedule tick again, from now on.
    Resume(NameArgs),
    /// Run a schedule's workflow now, outside its cadence, and wait for it.
    Trigger(NameArgs),
    /// Remove a schedule (the workflows it started stay).
    Rm(NameArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OverlapArg {
    Skip,
    BufferOne,
    AllowAll,
}

impl From<OverlapArg> for Overlap {
    fn from(arg: OverlapArg) -> Self {
        match arg {
            OverlapArg::Skip => Overlap::Skip,
            OverlapArg::BufferOne => Overlap::BufferOne,
            OverlapArg::AllowAll => Overlap::AllowAll,
        }
    }
}

#[derive(Args)]
pub struct AddArgs {
    /// The schedule's name, unique within its tenant.
    name: String,
    /// The chain file to run at each tick.
    chain: PathBuf,
    /// A cron expression: 5 fields (6 with seconds first), ranges, steps,
    /// names, `@hourly`, `@daily`…
    #[arg(long, conflicts_with = "every", required_unless_present = "every")]
    cron: Option<String>,
    /// The IANA time zone the cron expression is read in (UTC if none).
    #[arg(long, requires = "cron")]
    tz: Option<String>,
    /// An interval: `90s`, `15m`, `1h`, `7d`, or seconds.
    #[arg(long)]
    every: Option<String>,
    /// What a tick does while the previous run still runs.
    #[arg(long, value_enum, default_value = "skip")]
    overlap: OverlapArg,
    /// How old a tick missed while no process ran may be and still fire
    /// (older ones are recorded as missed).
    #[arg(long, default_value = "1m")]
    catch_up: String,
    /// No tick before this instant (ISO 8601).
    #[arg(long)]
    start: Option<String>,
    /// No tick after this instant (ISO 8601).
    #[arg(long)]
    end: Option<String>,
    /// Make it paused.
    #[arg(long)]
    paused: bool,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct NameArgs {
    /// The schedule's name.
    name: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tenant: TenantArg,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    db: DbArgs,
}

fn seconds_ms(text: &str, what: &str) -> anyhow::Result<u64> {
    Ok(schedule::duration_ms(
        &Value::String(text.to_string()),
        what,
    )?)
}

fn instant(text: Option<&str>, what: &str) -> anyhow::Result<Option<u64>> {
    Ok(text
        .map(|text| schedule::instant_ms(text, what))
        .transpose()?)
}

pub async fn schedule(command: ScheduleCommand) -> anyhow::Result<Finished> {
    match command {
        ScheduleCommand::Add(args) => add(args).await,
        ScheduleCommand::List { json, tenant, db } => {
            let host = db.host_of_existing()?;
            let records = host.store().schedules(Some(&tenant.tenant))?;
            let mut out = std::io::stdout().lock();
            if json {
                let all: Vec<Value> = records
                    .iter()
                    .map(|record| schedule::view(&host, record, false))
                    .collect();
                serde_json::to_writer_pretty(&mut out, &all)?;
                writeln!(out)?;
                return Ok(Finished::Succeeded);
            }
            if records.is_empty() {
                writeln!(out, "no schedules of tenant {}", tenant.tenant)?;
            }
            for record in &records {
                writeln!(
                    out,
                    "{:<24} {:<28} {:<8} next {}",
                    record.spec.name,
                    cadence_text(record),
                    if record.spec.paused {
                        "paused"
                    } else {
                        "active"
                    },
                    record.next_tick_ms.map_or_else(|| "-".to_string(), iso8601)
                )?;
            }
            Ok(Finished::Succeeded)
        }
        ScheduleCommand::Show(args) => {
            let host = args.db.host_of_existing()?;
            let record = host.schedule(&args.tenant.tenant, &args.name)?;
            show(&host, &record, args.json)
        }
        ScheduleCommand::Pause(args) => set_paused(args, true),
        ScheduleCommand::Resume(args) => set_paused(args, false),
        ScheduleCommand::Trigger(args) => {
            let host = args.db.host_of_existing()?;
            let record = host.schedule(&args.tenant.tenant, &args.name)?;
            let spec = schedule::chain_of(&record)?;
            let (id, _) = host.trigger_schedule(&args.tenant.tenant, &args.name)?;
            eprintln!("schedule {}: running workflow {id}", args.name);
            let row = host
                .run(spec, RunIdentity::new(&args.tenant.tenant, &id))
                .await?;
            println!(
                "{}",
                json!({"id": row.id, "status": row.status.as_str(), "result": row.result, "error": row.error})
            );
            Ok(match row.status {
                WorkflowStatus::Succeeded => Finished::Succeeded,
                _ => Finished::WorkflowFailed,
            })
        }
        ScheduleCommand::Rm(args) => {
            let host = args.db.host_of_existing()?;
            host.remove_schedule(&args.tenant.tenant, &args.name)?;
            eprintln!("schedule {} removed", args.name);
            Ok(Finished::Succeeded)
        }
    }
}

async fn add(args: AddArgs) -> anyhow::Result<Finished> {
    let chain_path = std::path::absolute(&args.chain).unwrap_or(args.chain.clone());
    let chain = std::fs::read_to_string(&chain_path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", args.chain.display()))?;
    let spec = ScheduleSpec {
        name: args.name.clone(),
        tenant: args.tenant.tenant.clone(),
        cron: args.cron,
        tz: args.tz,
        every_ms: args
            .every
            .as_deref()
            .map(|every| seconds_ms(every, "--every"))
            .transpose()?,
        overlap: args.overlap.into(),
        catch_up_ms: seconds_ms(&args.catch_up, "--catch-up")?,
        start_ms: instant(args.start.as_deref(), "--start")?,
        end_ms: instant(args.end.as_deref(), "--end")?,
        paused: args.paused,
        chain,
        chain_path: chain_path.display().to_string(),
        submitted: false,
    };
    let host = args.db.host()?;
    let record = host.add_schedule(spec).await?;
    eprintln!(
        "schedule {} ({}) made; next tick {}",
        record.spec.name,
        cadence_text(&record),
        record
            .next_tick_ms
            .map_or_else(|| "none".to_string(), iso8601)
    );
    Ok(Finished::Succeeded)
}

fn set_paused(args: NameArgs, paused: bool) -> anyhow::Result<Finished> {
    let host = args.db.host_of_existing()?;
    let record = host.pause_schedule(&args.tenant.tenant, &args.name, paused)?;
    eprintln!(
        "schedule {} {}",
        record.spec.name,
        if paused { "paused" } else { "resumed" }
    );
    Ok(Finished::Succeeded)
}

fn cadence_text(record: &ScheduleRecord) -> String {
    match (&record.spec.cron, record.spec.every_ms) {
        (Some(cron), _) => format!("cron {cron} {}", record.spec.tz.as_deref().unwrap_or("UTC")),
        (None, Some(every)) => format!("every {} s", every as f64 / 1000.0),
        _ => "-".to_string(),
    }
}

/// The next ticks, and the last ones with the outcome of their workflows.
fn show(host: &wfhost::Host, record: &ScheduleRecord, json: bool) -> anyhow::Result<Finished> {
    let view = schedule::view(host, record, true);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &view)?;
        writeln!(out)?;
        return Ok(Finished::Succeeded);
    }
    writeln!(
        out,
        "schedule {} (tenant {}): {}, overlap {}{}",
        record.spec.name,
        record.spec.tenant,
        cadence_text(record),
        record.spec.overlap.as_str(),
        if record.spec.paused { ", paused" } else { "" }
    )?;
    writeln!(out, "  runs {}", record.spec.chain_path)?;
    writeln!(out, "  next ticks:")?;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    for tick in view["next_ticks"].as_array().into_iter().flatten() {
        writeln!(out, "    {}", text(tick))?;
    }
    let ticks = view["ticks"].as_array().cloned().unwrap_or_default();
    if !ticks.is_empty() {
        writeln!(out, "  last ticks:")?;
    }
    for tick in &ticks {
        let count = tick["count"].as_u64().unwrap_or(1);
        let times = if count > 1 {
            format!(" ×{count}")
        } else {
            String::new()
        };
        writeln!(
            out,
            "    {}  {}{}  {}  {}",
            text(&tick["at"]),
            text(&tick["outcome"]),
            times,
            tick["workflow"].as_str().unwrap_or("-"),
            text(&tick["status"])
        )?;
    }
    Ok(Finished::Succeeded)
}

/// Fires the due schedules of the database until stopped.
pub async fn scheduler(args: SchedulerArgs) -> anyhow::Result<Finished> {
    let host = Arc::new(args.db.host()?);
    eprintln!(
        "wfhost scheduler: firing the schedules of {} (pid {})",
        host.store().path().display(),
        std::process::id()
    );
    let scheduler = Scheduler::new(host, Arc::new(SystemClock));
    tokio::select! {
        ran = scheduler.run() => ran?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Finished::Succeeded)
}
