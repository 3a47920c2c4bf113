//! Schedules over the API (DESIGN §15): each tenant's own, within its
//! policy's `max_schedules` and `min_schedule_interval`; and the service
//! as a scheduler's launcher, so that `serve` and `ui` fire the database's
//! schedules and run their workflows as their tenants' workflows.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::tenants::Tenant;
use super::{ErrorKind, Service, ServiceError, tenant_spec};
use crate::executor::RunIdentity;
use crate::lifecycle::{Host, Intent};
use crate::records::{Overlap, ScheduleRecord, ScheduleSpec, WorkflowRow, now_ms};
use crate::schedule::{self, DEFAULT_CATCH_UP_MS, Launcher, ScheduleError};
use crate::spec::WorkflowSpec;

/// A schedule as `POST /v1/schedules` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSchedule {
    name: String,
    cron: Option<String>,
    tz: Option<String>,
    every: Option<Value>,
    #[serde(default)]
    overlap: Option<String>,
    catch_up: Option<Value>,
    start: Option<String>,
    end: Option<String>,
    #[serde(default)]
    paused: bool,
    /// The chain document, as `POST /v1/workflows` takes it.
    chain: Value,
}

impl From<ScheduleError> for ServiceError {
    fn from(err: ScheduleError) -> Self {
        let kind = match &err {
            ScheduleError::NotFound { .. } => ErrorKind::NotFound,
            ScheduleError::Exists { .. } => ErrorKind::Conflict,
            ScheduleError::Store(err) => super::error::store_error_kind(err),
            _ => ErrorKind::InvalidInput,
        };
        ServiceError::new(kind, err.to_string())
    }
}

fn milliseconds(value: &Value, what: &str) -> Result<u64, ServiceError> {
    Ok(schedule::duration_ms(value, &format!("`{what}`"))?)
}

fn instant(text: Option<&str>, what: &str) -> Result<Option<u64>, ServiceError> {
    let what = format!("`{what}`");
    Ok(text
        .map(|text| schedule::instant_ms(text, &what))
        .transpose()?)
}

fn overlap(text: Option<&str>) -> Result<Overlap, ServiceError> {
    let Some(text) = text else {
        return Ok(Overlap::default());
    };
    Overlap::ALL
        .into_iter()
        .find(|overlap| overlap.as_str() == text)
        .ok_or_else(|| {
            ServiceError::invalid(format!(
                "`overlap`: `{text}` is none of skip, buffer-one, allow-all"
            ))
        })
}

impl Service {
    /// Makes a schedule of `tenant` from `body` (a `NewSchedule`'s JSON):
    /// its chain read and checked under the tenant's policy, its cadence
    /// no faster than the policy allows, its count within the policy's.
    pub async fn add_schedule(&self, tenant: &Tenant, body: &str) -> Result<Value, ServiceError> {
        let new: NewSchedule = serde_json::from_str(body)
            .map_err(|err| ServiceError::invalid(format!("not a schedule: {err}")))?;
        let spec = ScheduleSpec {
            name: new.name,
            tenant: tenant.name.clone(),
            cron: new.cron,
            tz: new.tz,
            every_ms: new
                .every
                .as_ref()
                .map(|every| milliseconds(every, "every"))
                .transpose()?,
            overlap: overlap(new.overlap.as_deref())?,
            catch_up_ms: match &new.catch_up {
                Some(window) => milliseconds(window, "catch_up")?,
                None => DEFAULT_CATCH_UP_MS,
            },
            start_ms: instant(new.start.as_deref(), "start")?,
            end_ms: instant(new.end.as_deref(), "end")?,
            paused: new.paused,
            chain: new.chain.to_string(),
            chain_path: String::new(),
            submitted: true,
        };
        let now = now_ms();
        let (record, cadence) = schedule::new_record(spec, now)?;
        if let Some(gap) = cadence.shortest_gap_ms(now)
            && gap < tenant.min_schedule_interval_ms
        {
            return Err(ServiceError::invalid(format!(
                "its ticks come {} s apart, and tenant {} may schedule at most every {} s (min_schedule_interval)",
                gap as f64 / 1000.0,
                tenant.name,
                tenant.min_schedule_interval_ms as f64 / 1000.0
            )));
        }
        let workflow = tenant_spec(tenant, &record.spec.chain)?;
        let count = self.host.store().schedules(Some(&tenant.name))?.len();
        if count >= tenant.max_schedules {
            return Err(ServiceError::new(
                ErrorKind::TooManySchedules,
                format!(
                    "tenant {} has {count} schedules, its most (max_schedules)",
                    tenant.name
                ),
            ));
        }
        let record = self
            .host
            .put_schedule(record, workflow, &tenant.ceilings)
            .await?;
        Ok(schedule::view(&self.host, &record, true))
    }

    /// `tenant`'s schedules, each with its next ticks.
    pub fn schedules(&self, tenant: &Tenant) -> Result<Vec<Value>, ServiceError> {
        let records = self.host.store().schedules(Some(&tenant.name))?;
        Ok(records
            .iter()
            .map(|record| schedule::view(&self.host, record, false))
            .collect())
    }

    /// `tenant`'s schedule `name`: its next ticks and its last ones with
    /// the outcome of their workflows.
    pub fn schedule(&self, tenant: &Tenant, name: &str) -> Result<Value, ServiceError> {
        let record = self.host.schedule(&tenant.name, name)?;
        Ok(schedule::view(&self.host, &record, true))
    }

    /// Removes `tenant`'s schedule `name`.
    pub fn remove_schedule(&self, tenant: &Tenant, name: &str) -> Result<Value, ServiceError> {
        let record = self.host.remove_schedule(&tenant.name, name)?;
        Ok(schedule::view(&self.host, &record, false))
    }

    /// Pauses `tenant`'s schedule `name`, or lets it tick again.
    pub fn pause_schedule(
        &self,
        tenant: &Tenant,
        name: &str,
        paused: bool,
    ) -> Result<Value, ServiceError> {
        let record = self.host.pause_schedule(&tenant.name, name, paused)?;
        Ok(schedule::view(&self.host, &record, true))
    }

    /// Starts a run of `tenant`'s schedule `name` now; returns its row.
    pub async fn trigger_schedule(
        self: &Arc<Self>,
        tenant: &Tenant,
        name: &str,
    ) -> Result<WorkflowRow, ServiceError> {
        let record = self.host.schedule(&tenant.name, name)?;
        let workflow = self.schedule_workflow(tenant, &record)?;
        let (id, _) = self.host.trigger_schedule(&tenant.name, name)?;
        let identity = RunIdentity::new(&tenant.name, &id);
        let (row, _) = self
            .begin(tenant, identity, Intent::Start(workflow), true)
            .await?;
        Ok(row)
    }

    /// The workflow a tick of `tenant`'s schedule `record` runs.
    fn schedule_workflow(
        &self,
        tenant: &Tenant,
        record: &ScheduleRecord,
    ) -> Result<WorkflowSpec, ServiceError> {
        if record.spec.submitted {
            tenant_spec(tenant, &record.spec.chain)
        } else {
            Ok(schedule::chain_of(record)?)
        }
    }
}

impl Launcher for Service {
    fn host(&self) -> &Host {
        &self.host
    }

    fn fires(&self, record: &ScheduleRecord) -> bool {
        self.tenants().knows(&record.spec.tenant)
    }

    fn serves(&self, tenant: &str) -> bool {
        self.tenants().knows(tenant)
    }

    fn workflow(&self, record: &ScheduleRecord) -> Option<Result<WorkflowSpec, ScheduleError>> {
        let tenant = self.tenants().resolve(&record.spec.tenant)?;
        Some(
            self.schedule_workflow(&tenant, record)
                .map_err(|err| ScheduleError::Invalid(err.message)),
        )
    }

    fn launch(
        self: Arc<Self>,
        spec: Option<WorkflowSpec>,
        identity: RunIdentity,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move {
            let tenant = self
                .tenants()
                .resolve(&identity.tenant)
                .ok_or_else(|| format!("no tenant `{}` in the policy", identity.tenant))?;
            let intent = Intent::start_or_resume(spec);
            match self.begin(&tenant, identity, intent, true).await {
                Ok(_) => Ok(()),
                Err(err) if err.kind == ErrorKind::Conflict => Ok(()),
                Err(err) => Err(err.message),
            }
        })
    }
}
