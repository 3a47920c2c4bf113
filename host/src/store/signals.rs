//! Signals in a workflow's journal: put when one is sent, found by the
//! wait that takes it, and rewritten as taken before the wait's step ends,
//! so that a wait cut off by a crash finds again the signal it took and no
//! other wait takes it.

use serde_json::Value;

use super::commit::{Flush, Rows, Write};
use super::tables::{JOURNAL, SIGNALS};
use super::{Store, StoreError};
use crate::records::{Signal, now_ms};

impl Store {
    /// Puts signal `name` with `payload` in the journal of workflow `id`
    /// of `tenant`, on the disk before this returns, with an event
    /// `signal_received`. Whether the workflow may take it is the caller's
    /// to check.
    pub(crate) async fn put_signal(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
        payload: Value,
    ) -> Result<(), StoreError> {
        let signal = Signal {
            seq: 0,
            name: name.to_string(),
            payload,
            sent_at_ms: now_ms(),
            taken_by: None,
            taken_at_ms: None,
        };
        let rows = Rows::Signal { seq: None, signal };
        let mut write = Write::new(tenant, id, rows).with_event(
            "signal_received",
            None,
            Some(name.to_string()),
        );
        write.flush = Flush::Always;
        self.committer.write(write).await?;
        self.signalled.notify_waiters();
        Ok(())
    }

    /// The signal the wait of step `step` takes: the one it took already
    /// (before a crash cut it off), else the oldest of `name` that no wait
    /// has taken.
    pub(crate) fn signal_for(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
        step: &str,
    ) -> Result<Option<Signal>, StoreError> {
        let mut oldest = None;
        for signal in self.signals(tenant, id)? {
            match signal.taken_by.as_deref() {
                Some(taker) if taker == step => return Ok(Some(signal)),
                None if signal.name == name && oldest.is_none() => oldest = Some(signal),
                _ => {}
            }
        }
        Ok(oldest)
    }

    /// Records, durably, that the wait of step `step` took `signal`, with an
    /// event `signal_taken`.
    pub(crate) async fn take_signal(
        &self,
        tenant: &str,
        id: &str,
        signal: &Signal,
        step: &str,
    ) -> Result<(), StoreError> {
        let taken = Signal {
            taken_by: Some(step.to_string()),
            taken_at_ms: Some(now_ms()),
            ..signal.clone()
        };
        let rows = Rows::Signal {
            seq: Some(signal.seq),
            signal: taken,
        };
        let detail = Some(signal.name.clone());
        let mut write =
            Write::new(tenant, id, rows).with_event("signal_taken", Some(step.to_string()), detail);
        write.flush = Flush::Always;
        self.committer.write(write).await
    }

    /// Every signal workflow `id` of `tenant` was sent, oldest first.
    pub fn signals(&self, tenant: &str, id: &str) -> Result<Vec<Signal>, StoreError> {
        self.read(|txn| {
            let journal = txn.open_table(JOURNAL)?;
            let range = journal.range(SIGNALS.from(tenant, id, 0))?;
            range
                .map(|entry| {
                    let (key, stored) = entry?;
                    SIGNALS.decode(&key.value(), stored.value())
                })
                .collect()
        })
    }

    /// Ready once this process puts a signal, whichever workflow's; it
    /// counts from when it is enabled or first polled.
    pub(crate) fn signal_put(&self) -> tokio::sync::futures::Notified<'_> {
        self.signalled.notified()
    }
}
