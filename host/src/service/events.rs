//! A workflow's events as server-sent events (`GET
//! /v1/workflows/{id}/events?follow=1`): those on record, then each new
//! one as it is recorded, until the workflow no longer runs; then an
//! `end` event with its status, and the stream closes.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;

use super::{Service, Tenant, WATCH_POLL};
use crate::records::{Event, WorkflowRow, WorkflowStatus};

/// Where a stream stands: what to send next, from where to read.
struct Following {
    service: Arc<Service>,
    tenant: Tenant,
    id: String,
    row: WorkflowRow,
    pending: std::vec::IntoIter<Event>,
    next: u64,
    ended: bool,
}

fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event("event")
        .data(serde_json::to_string(event).unwrap_or_default())
}

/// The stream of `events` (read after `row`), then of new ones.
pub fn stream(
    service: Arc<Service>,
    tenant: Tenant,
    id: String,
    row: WorkflowRow,
    events: Vec<Event>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let next = events.last().map_or(0, |event| event.seq + 1);
    let start = Following {
        service,
        tenant,
        id,
        row,
        pending: events.into_iter(),
        next,
        ended: false,
    };
    let events = futures::stream::unfold(start, |mut state| async move {
        loop {
            if let Some(event) = state.pending.next() {
                return Some((Ok(sse(&event)), state));
            }
            if state.ended {
                return None;
            }
            if state.row.status != WorkflowStatus::Running {
                state.ended = true;
                let end = SseEvent::default()
                    .event("end")
                    .data(format!("{{\"status\":\"{}\"}}", state.row.status.as_str()));
                return Some((Ok(end), state));
            }
            tokio::time::sleep(WATCH_POLL).await;
            match state
                .service
                .events_from(&state.tenant, &state.id, state.next)
            {
                Ok((row, events)) => {
                    state.next = events.last().map_or(state.next, |event| event.seq + 1);
                    state.row = row;
                    state.pending = events.into_iter();
                }
                // The workflow was removed, or the store failed: nothing
                // more can be told.
                Err(_) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
