//! One workflow's journal, entry by entry: what each part must hold, and
//! how the parts must agree once the workflow's last entry is read.

use std::collections::HashMap;

use super::unreadable;
use crate::records::StepStatus;
use crate::store::tables::{ELEMENTS, EVENTS, EntryKey, HEADS, SIGNALS, STEPS, TALLIES};
use crate::store::tally::{Counted, Tally};

/// What one workflow's journal has shown so far.
pub(super) struct Journal {
    pub(super) workflow: String,
    /// The head's count of elements, once the head is read.
    elements: Option<u64>,
    head_seen: bool,
    /// Whether every entry so far is an element.
    pub(super) only_elements: bool,
    next_element: u64,
    next_event: u64,
    /// Each step's status, by id.
    steps: HashMap<String, StepStatus>,
    /// The last of each step's events that says how it ended.
    ended: HashMap<String, (u64, StepStatus)>,
    /// Steps named by events, with the first event naming each.
    named: HashMap<String, u64>,
    /// The records' tally, counted here.
    recounted: Tally,
    /// The tally the journal keeps, if it keeps one.
    kept: Option<Tally>,
}

impl Journal {
    pub(super) fn new(workflow: String) -> Self {
        Journal {
            workflow,
            elements: None,
            head_seen: false,
            only_elements: true,
            next_element: 0,
            next_event: 0,
            steps: HashMap::new(),
            ended: HashMap::new(),
            named: HashMap::new(),
            recounted: Tally::default(),
            kept: None,
        }
    }

    /// Reads one entry; what is wrong with it, if anything.
    pub(super) fn take(&mut self, key: &EntryKey<'_>, stored: &[u8]) -> Option<String> {
        let (_, _, part, index, name) = *key;
        self.only_elements &= part == ELEMENTS.tag();
        match part {
            _ if part == HEADS.tag() => match HEADS.decode(key, stored) {
                Ok(head) => {
                    self.head_seen = true;
                    self.elements = Some(head.elements);
                    None
                }
                Err(fault) => {
                    self.head_seen = true;
                    Some(format!("the head {}", unreadable(fault)))
                }
            },
            _ if part == ELEMENTS.tag() => {
                let expected = self.next_element;
                self.next_element = index.saturating_add(1);
                if let Err(fault) = ELEMENTS.decode(key, stored) {
                    return Some(format!("element {index} {}", unreadable(fault)));
                }
                (index != expected).then(|| format!("element {index} follows element {expected}'s place: elements {expected}..{index} are missing"))
            }
            _ if part == STEPS.tag() => match STEPS.decode(key, stored) {
                Ok(record) if record.id == name => {
                    self.recounted
                        .count(&record.id, &Counted::of(&record), None);
                    self.steps.insert(record.id, record.status);
                    None
                }
                Ok(record) => Some(format!(
                    "the step record under `{name}` is step `{}`",
                    record.id
                )),
                Err(fault) => Some(format!("step `{name}`'s record {}", unreadable(fault))),
            },
            _ if part == EVENTS.tag() => {
                let expected = self.next_event;
                self.next_event = index.saturating_add(1);
                let event = match EVENTS.decode(key, stored) {
                    Ok(event) => event,
                    Err(fault) => return Some(format!("event {index} {}", unreadable(fault))),
                };
                if let Some(step) = &event.step {
                    self.named.entry(step.clone()).or_insert(index);
                    if let Some(status) = ending(&event.kind) {
                        self.ended.insert(step.clone(), (index, status));
                    }
                }
                if event.seq != index {
                    Some(format!("event {index} says it is event {}", event.seq))
                } else if index != expected {
                    Some(format!("events {expected}..{index} are missing"))
                } else {
                    None
                }
            }
            _ if part == SIGNALS.tag() => SIGNALS
                .decode(key, stored)
                .err()
                .map(|fault| format!("signal {index} `{name}` {}", unreadable(fault))),
            _ if part == TALLIES.tag() => match TALLIES.decode(key, stored) {
                Ok(tally) => {
                    self.kept = Some(tally);
                    None
                }
                Err(fault) => Some(format!("the tally {}", unreadable(fault))),
            },
            _ => Some(format!("an entry of no known part ({part})")),
        }
    }

    /// What is wrong with the workflow's journal as a whole.
    pub(super) fn end(self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.head_seen {
            problems.push("no head: the workflow's plugins and chain are gone".to_string());
        }
        if let Some(elements) = self.elements
            && self.next_element != elements
        {
            problems.push(format!(
                "the head counts {elements} elements; the journal holds {}",
                self.next_element
            ));
        }
        if let Some(kept) = &self.kept
            && *kept != self.recounted
        {
            problems.push(format!(
                "the tally says {} records ({}); the records are {} ({})",
                kept.records(),
                words(kept),
                self.recounted.records(),
                words(&self.recounted),
            ));
        }
        let mut named: Vec<(&String, &u64)> = self.named.iter().collect();
        named.sort_by_key(|(_, index)| **index);
        for (step, index) in named {
            if !self.steps.contains_key(step) {
                problems.push(format!(
                    "event {index} names step `{step}`, which has no record"
                ));
            }
        }
        let mut ended: Vec<(&String, &(u64, StepStatus))> = self.ended.iter().collect();
        ended.sort_by_key(|(_, (index, _))| *index);
        for (step, (index, said)) in ended {
            let Some(status) = self.steps.get(step) else {
                continue;
            };
            let contradicts = *status != *said && ending_status(*status);
            if contradicts {
                problems.push(format!(
                    "step `{step}`'s record says {}; its last ending, event {index}, says {}",
                    status.as_str(),
                    said.as_str()
                ));
            }
        }
        problems
    }
}

/// The ending an event says a step came to, where it says one.
fn ending(kind: &str) -> Option<StepStatus> {
    match kind {
        "step_succeeded" => Some(StepStatus::Succeeded),
        "step_failed" => Some(StepStatus::Failed),
        "step_replaced" => Some(StepStatus::Replaced),
        _ => None,
    }
}

/// Whether `status` is one an event of [`ending`] says.
fn ending_status(status: StepStatus) -> bool {
    matches!(
        status,
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Replaced
    )
}

/// A tally in words: its counts, latest moment and latest records.
fn words(tally: &Tally) -> String {
    let counts: Vec<String> = tally
        .by_status
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    let latest = tally.latest.last().map_or("none".to_string(), |(seq, id)| {
        format!("`{id}` (seq {seq})")
    });
    format!(
        "{}; last moment {} ms; latest {latest}",
        counts.join(", "),
        tally.last_moment_ms
    )
}
