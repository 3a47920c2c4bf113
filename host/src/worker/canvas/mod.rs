//! The canvas over the protocol: what a finished task sends on, built as
//! Celery's worker and `Signature.apply_async` build it (the next step of
//! its chain, its callbacks and errbacks, a chord's header and body), and
//! what a failure marks failed down the chain (research/celery-redis.md
//! §3, §5). Everything here only builds operations; `commit` carries them
//! out at once.
//!
//! The canvas is Celery's, typed and read leniently
//! ([`wfhost_canvas::celery`]); the rules of taking it apart are
//! `wfhost_canvas::rules`, which `wfhost run`'s plan follows too. One
//! idea per file: [`effects`] (what a commit does), [`send`]
//! (`apply_async`), [`end`] (a task's end: success, failure, a complete
//! chord) and [`replace`].

mod effects;
mod end;
mod replace;
mod send;

pub use effects::{ChordPart, FollowUp, Op};
pub use replace::celery_signature;

use super::routing::Routing;

/// What builds a finished task's follow-up messages (the next steps, callbacks,
/// chord bodies: a [`FollowUp`]): the worker's routing and identity.
pub struct FollowUps<'a> {
    /// Which queue a task goes to.
    pub routing: &'a Routing,
    /// The `origin` header: `wfhost@host:pid`.
    pub origin: &'a str,
}

/// What the tests of the canvas share: a worker's routing, its follow-up builder, and
/// the messages a follow-up pushes.
#[cfg(test)]
mod testing {
    use serde_json::Value;
    use wfhost_canvas::celery::CelerySignature;

    use super::{FollowUp, FollowUps, Op, Routing};
    use crate::worker::message::TaskMessage;

    /// Celery's JSON of a signature, read.
    pub(super) fn celery(json: Value) -> CelerySignature {
        CelerySignature::from_json(json).expect("a Celery signature")
    }

    pub(super) fn routing() -> Routing {
        Routing {
            queues: vec!["wfhost".into()],
            served: vec!["math".into()],
            default_queue: "celery".into(),
        }
    }

    pub(super) fn follow_ups(routing: &Routing) -> FollowUps<'_> {
        FollowUps {
            routing,
            origin: "test",
        }
    }

    pub(super) fn pushed(out: &FollowUp) -> Vec<TaskMessage> {
        out.ops
            .iter()
            .filter_map(|op| match op {
                Op::Push { message, .. } | Op::Delay { message, .. } => {
                    Some(TaskMessage::parse(message).unwrap())
                }
                _ => None,
            })
            .collect()
    }
}
