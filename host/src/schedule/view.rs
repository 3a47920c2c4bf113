//! A schedule as commands, the API and the dashboard show it: what it is,
//! its next ticks, and its last ticks with the status of the workflow each
//! started.

use serde_json::{Value, json};

use super::cadence_of;
use crate::Host;
use crate::records::{ScheduleRecord, iso8601};

/// The next ticks a view shows.
pub const SHOWN_NEXT_TICKS: usize = 5;

/// The next ticks of `record`, from its next one not yet handled; none
/// while it is paused or once it has ended.
pub fn next_ticks(record: &ScheduleRecord) -> Vec<u64> {
    let (Some(first), false) = (record.next_tick_ms, record.spec.paused) else {
        return Vec::new();
    };
    let Ok(cadence) = cadence_of(record) else {
        return Vec::new();
    };
    let mut ticks = vec![first];
    ticks.extend(
        cadence
            .upcoming(first, SHOWN_NEXT_TICKS - 1)
            .into_iter()
            .filter_map(|tick| super::ticks::within_end(record, tick)),
    );
    ticks
}

/// `record` as JSON: its spec (the chain only with `detailed`), its next
/// ticks, and — with `detailed` — its last ticks, latest first, each with
/// the status of the workflow it started.
pub fn view(host: &Host, record: &ScheduleRecord, detailed: bool) -> Value {
    let spec = &record.spec;
    let mut view = json!({
        "name": spec.name,
        "tenant": spec.tenant,
        "cron": spec.cron,
        "tz": spec.tz,
        "every_ms": spec.every_ms,
        "overlap": spec.overlap.as_str(),
        "catch_up_ms": spec.catch_up_ms,
        "start": spec.start_ms.map(iso8601),
        "end": spec.end_ms.map(iso8601),
        "paused": spec.paused,
        "created_at": iso8601(record.created_at_ms),
        "next_ticks": next_ticks(record).into_iter().map(iso8601).collect::<Vec<_>>(),
        "last_workflow": record.last_workflow,
    });
    if !spec.chain_path.is_empty() {
        view["chain_path"] = json!(spec.chain_path);
    }
    if !detailed {
        return view;
    }
    let ticks: Vec<Value> = record
        .ticks
        .iter()
        .rev()
        .map(|tick| {
            let status = tick.workflow.as_ref().and_then(|id| {
                let row = host.store().workflow(&spec.tenant, id).ok()??;
                Some(row.status.as_str())
            });
            json!({
                "at": iso8601(tick.at_ms),
                "outcome": tick.outcome.as_str(),
                "count": tick.count,
                "workflow": tick.workflow,
                "status": status,
            })
        })
        .collect();
    view["ticks"] = Value::Array(ticks);
    view["chain"] = serde_json::from_str(&spec.chain).unwrap_or(Value::Null);
    view
}
