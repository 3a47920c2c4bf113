//! Schedules in the state database: one record per (tenant, name), each
//! change made in one write transaction that reads the record it changes,
//! so that processes handling the same tick agree on what became of it.

use redb::ReadableTable;

use super::tables::{SCHEDULES, table_if_made};
use super::{Store, StoreError};
use crate::records::ScheduleRecord;

impl Store {
    /// The schedules of `tenant` (of every tenant if none), by tenant and
    /// name.
    pub fn schedules(&self, tenant: Option<&str>) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.read(|txn| {
            let Some(table) = table_if_made(txn, SCHEDULES.table)? else {
                return Ok(Vec::new());
            };
            let entries = match tenant {
                Some(tenant) => table.range((tenant, "")..=(tenant, "\u{10FFFF}"))?,
                None => table.range::<(&str, &str)>(..)?,
            };
            entries
                .map(|entry| {
                    let (key, stored) = entry?;
                    SCHEDULES.decode(&key.value(), stored.value())
                })
                .collect()
        })
    }

    /// Schedule `name` of `tenant`, if there is one.
    pub fn schedule(&self, tenant: &str, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        self.read(|txn| {
            let Some(table) = table_if_made(txn, SCHEDULES.table)? else {
                return Ok(None);
            };
            let key = (tenant, name);
            let stored = table.get(key)?;
            stored
                .map(|stored| SCHEDULES.decode(&key, stored.value()))
                .transpose()
        })
    }

    /// Changes schedule `name` of `tenant` as `change` says, given it as
    /// it is now (none if there is none): what `change` leaves is stored
    /// (none removes it), on the disk before this returns. Returns what
    /// `change` returns.
    pub(crate) fn change_schedule<R>(
        &self,
        tenant: &str,
        name: &str,
        change: impl FnOnce(&mut Option<ScheduleRecord>) -> R,
    ) -> Result<R, StoreError> {
        let mut change = Some(change);
        let mut answers = self.change_schedules(&[(tenant, name)], |_, stored| {
            change.take().map(|change| change(stored))
        })?;
        Ok(answers.pop().flatten().expect("one schedule, changed once"))
    }

    /// Changes each schedule of `keys` (tenant, name) as `change` says, all
    /// in one transaction, on the disk before this returns: `change` is
    /// given each key's index and record as it is now (none if there is
    /// none), and what it leaves is stored (none removes it). Returns what
    /// `change` returned for each, in order.
    pub(crate) fn change_schedules<R>(
        &self,
        keys: &[(&str, &str)],
        mut change: impl FnMut(usize, &mut Option<ScheduleRecord>) -> R,
    ) -> Result<Vec<R>, StoreError> {
        super::error::guarded(&self.path, || {
            let txn = self.db.get().begin_write().map_err(|err| self.fault(err))?;
            let mut answers = Vec::with_capacity(keys.len());
            {
                let mut table = txn
                    .open_table(SCHEDULES.table)
                    .map_err(|err| self.fault(err))?;
                for (index, &key) in keys.iter().enumerate() {
                    let before = match table.get(key).map_err(|err| self.fault(err))? {
                        Some(stored) => Some(
                            SCHEDULES
                                .decode(&key, stored.value())
                                .map_err(|fault| fault.at(&self.path))?,
                        ),
                        None => None,
                    };
                    let mut after = before.clone();
                    answers.push(change(index, &mut after));
                    if after == before {
                        continue;
                    }
                    match &after {
                        Some(record) => {
                            let stored = SCHEDULES.encode(&key, record);
                            table
                                .insert(key, stored.as_slice())
                                .map_err(|err| self.fault(err))?;
                        }
                        None => {
                            table.remove(key).map_err(|err| self.fault(err))?;
                        }
                    }
                }
            }
            txn.commit().map_err(|err| self.fault(err))?;
            Ok(answers)
        })
    }
}
