//! What `GET /metrics` tells Prometheus: the steps this process ran, by
//! tenant — counted as each ends, so that the counters equal what the
//! step records say — and, read when scraped, the workflows on record by
//! status and the attempts waiting for a slot.
//!
//! Names are prefixed `wfhost_`, in Prometheus' text format 0.0.4.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::histogram::Histogram;
use crate::lock::lock;
use crate::prometheus::{header, histogram, sample};
use crate::records::{StepRecord, StepStatus};

/// One tenant's counters.
#[derive(Debug, Default, Clone)]
struct TenantCounters {
    /// Steps that ran, by final status and (for failures) kind.
    steps: BTreeMap<(&'static str, &'static str), u64>,
    /// Attempts, by outcome: a step's last attempt counts under its status,
    /// the earlier ones under `retried`.
    attempts: BTreeMap<&'static str, u64>,
    fuel: u64,
    duration: Histogram,
}

/// The counters of a running service.
#[derive(Debug, Default)]
pub struct Metrics {
    tenants: Mutex<BTreeMap<String, TenantCounters>>,
}

/// What is read from the store and the scheduler when scraped.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Workflows on record, by tenant and status.
    pub workflows: BTreeMap<(String, &'static str), u64>,
    /// Attempts waiting for a slot, by tenant.
    pub waiting: BTreeMap<String, usize>,
    /// The store's commits so far.
    pub commits: Histogram,
}

impl Metrics {
    /// Counts a step of `tenant` that ended. Nodes that group steps (a
    /// group's or chord's own record) made no attempt and are not counted.
    pub fn step_finished(&self, tenant: &str, record: &StepRecord) {
        if record.attempts == 0 {
            return;
        }
        let status = match record.status {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Replaced => "replaced",
            _ => return,
        };
        let kind = record
            .error
            .as_ref()
            .map_or("", |error| error.kind.as_str());
        let mut tenants = lock(&self.tenants);
        let counters = tenants.entry(tenant.to_string()).or_default();
        *counters.steps.entry((status, kind)).or_default() += 1;
        *counters.attempts.entry(status).or_default() += 1;
        *counters.attempts.entry("retried").or_default() += u64::from(record.attempts - 1);
        counters.fuel += record.fuel_used;
        counters.duration.observe(record.duration_ms / 1000.0);
    }

    /// The text Prometheus reads: the counters of the tenants `visible`
    /// lets through, and `gauges`.
    pub fn render(&self, gauges: &Gauges, visible: impl Fn(&str) -> bool) -> String {
        let tenants: Vec<(String, TenantCounters)> = lock(&self.tenants)
            .iter()
            .filter(|(tenant, _)| visible(tenant))
            .map(|(tenant, counters)| (tenant.clone(), counters.clone()))
            .collect();
        let mut out = String::new();
        header(
            &mut out,
            "wfhost_steps_total",
            "counter",
            "Steps that ran to an end, by status and failure kind.",
        );
        for (tenant, counters) in &tenants {
            for ((status, kind), count) in &counters.steps {
                let labels = [
                    ("tenant", tenant.as_str()),
                    ("status", status),
                    ("kind", kind),
                ];
                sample(&mut out, "wfhost_steps_total", &labels, *count as f64);
            }
        }
        header(
            &mut out,
            "wfhost_attempts_total",
            "counter",
            "Attempts of the steps that ended: the last under the step's status, earlier ones under `retried`.",
        );
        for (tenant, counters) in &tenants {
            for (outcome, count) in &counters.attempts {
                let labels = [("tenant", tenant.as_str()), ("outcome", outcome)];
                sample(&mut out, "wfhost_attempts_total", &labels, *count as f64);
            }
        }
        header(
            &mut out,
            "wfhost_fuel_used_total",
            "counter",
            "Fuel the attempts of the steps that ended used.",
        );
        for (tenant, counters) in &tenants {
            sample(
                &mut out,
                "wfhost_fuel_used_total",
                &[("tenant", tenant)],
                counters.fuel as f64,
            );
        }
        header(
            &mut out,
            "wfhost_step_duration_seconds",
            "histogram",
            "Wall-clock time of a step's attempts and retry delays.",
        );
        for (tenant, counters) in &tenants {
            let labels = [("tenant", tenant.as_str())];
            histogram(
                &mut out,
                "wfhost_step_duration_seconds",
                &labels,
                &counters.duration,
            );
        }
        header(
            &mut out,
            "wfhost_commit_latency_seconds",
            "histogram",
            "Time of each commit of records to the state database (the whole process).",
        );
        histogram(
            &mut out,
            "wfhost_commit_latency_seconds",
            &[],
            &gauges.commits,
        );
        header(
            &mut out,
            "wfhost_workflows",
            "gauge",
            "Workflows on record, by status.",
        );
        for ((tenant, status), count) in &gauges.workflows {
            if visible(tenant) {
                let labels = [("tenant", tenant.as_str()), ("status", status)];
                sample(&mut out, "wfhost_workflows", &labels, *count as f64);
            }
        }
        header(
            &mut out,
            "wfhost_queue_depth",
            "gauge",
            "Attempts waiting for a slot to run in.",
        );
        for (tenant, waiting) in &gauges.waiting {
            if visible(tenant) {
                sample(
                    &mut out,
                    "wfhost_queue_depth",
                    &[("tenant", tenant)],
                    *waiting as f64,
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_when_rendered() {
        let metrics = Metrics::default();
        let mut record: StepRecord = serde_json::from_value(serde_json::json!({
            "id": "0", "seq": 0, "parent": null, "task": "p.t", "args": [], "kwargs": {},
            "status": "succeeded", "attempts": 3, "fuel_used": 10, "duration_ms": 3.0,
        }))
        .unwrap();
        metrics.step_finished("acme", &record);
        record.duration_ms = 2000.0;
        metrics.step_finished("acme", &record);
        let text = metrics.render(&Gauges::default(), |_| true);
        assert!(
            text.contains("wfhost_step_duration_seconds_bucket{tenant=\"acme\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wfhost_step_duration_seconds_bucket{tenant=\"acme\",le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wfhost_step_duration_seconds_bucket{tenant=\"acme\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wfhost_attempts_total{tenant=\"acme\",outcome=\"retried\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("wfhost_fuel_used_total{tenant=\"acme\"} 20\n"),
            "{text}"
        );
        assert!(
            !metrics
                .render(&Gauges::default(), |_| false)
                .contains("acme")
        );
    }
}
