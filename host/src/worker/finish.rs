//! How a handled message finishes: the commit of what its end does, and
//! what its slot runs next — the next step of its chain, claimed in that
//! commit, or the next message of the queues, claimed by it.

use std::sync::atomic::Ordering;

use super::canvas::{ChordPart, FollowUp, Op};
use super::claim::{Claimed, Taken};
use super::commit::{Commit, Committed, Fetch};
use super::outcome::Own;
use super::task::Shared;

/// Commits the follow-up with the acknowledgement, once: the chord members
/// among it counted first, and the bodies of the chords that completes
/// sent with it. The first message it sends to a queue this worker
/// consumes (the next step of a chain) is claimed for this worker in the
/// same commit rather than pushed, and returned to run next in the same
/// slot: it does not travel to Redis and back, nor wait behind the queue,
/// nor is it read back from its text (the worker knows it as it made it).
/// Otherwise the commit claims the next message of the queues for the
/// slot, as the claim loop would: one round trip for the two.
pub(super) async fn commit(
    shared: &Shared,
    tag: &str,
    (task_id, outcome): (&str, &str),
    follow: FollowUp,
    own: Option<Own>,
) -> Option<Taken> {
    let outcome = own.as_ref().map_or(outcome, |own| own.state.as_str());
    let mut ops: Vec<Op> = Vec::with_capacity(follow.ops.len() + 5);
    if let Some(key) = &shared.config.audit_list {
        let entry =
            serde_json::json!({"id": task_id, "outcome": outcome, "worker": shared.config.name});
        ops.push(Op::Append {
            key: key.clone(),
            entry: entry.to_string(),
        });
    }
    // A task that ignores its result still sends on; only its meta goes.
    let (meta, event) = own.map(|own| (own.op, own.event)).unzip();
    ops.extend(meta);
    ops.extend(follow.ops);
    // A stopping worker claims nothing more, in a commit either.
    let consumed = (!shared.stopping.is_cancelled()).then(|| shared.consumers.now());
    let keys = consumed
        .as_ref()
        .map_or(&[][..], |consumed| &consumed.keys[..]);
    let mut next = claim_next(keys, &mut ops);
    // Otherwise the commit claims the slot's next message from the queues
    // (unless a large one is expected: that is claimed without Lua, by the
    // claim loop).
    let fetch_tag = (next.is_none()
        && keys
            .first()
            .is_some_and(|(first, _)| !shared.broker.large_expected(first)))
    .then(super::outgoing::new_uuid);
    let fetch = fetch_tag.as_deref().map(|tag| Fetch {
        keys,
        tag,
        max_bytes: shared.config.max_message_bytes,
    });
    // Counting the members may complete chords: then their bodies join
    // the commit, guarded by their claims, and are committed in another
    // round (a body may be a member of an outer chord, to count in turn).
    let mut parts: Vec<ChordPart> = follow.parts;
    loop {
        let commit = Commit {
            tag: Some(tag),
            expires: shared.expires(),
            parts: &parts,
            ops: &ops,
            fetch,
        };
        let chords = match shared.broker.commit(&commit).await {
            Ok(Committed::Complete(chords)) => chords,
            Ok(Committed::Done(fetched)) => {
                shared.counters.committed.fetch_add(1, Ordering::Relaxed);
                if let Some(event) = event.flatten() {
                    shared.events.task_ended(event);
                }
                if let Some(claimed) = next.take() {
                    return Some(Taken::Message(claimed));
                }
                let (fetched, tag) = fetched.zip(fetch_tag)?;
                return match shared.broker.taken(fetched, tag).await {
                    Ok(taken) => Some(taken),
                    Err(err) => {
                        tracing::warn!(error = %err, "setting a message aside failed; it comes back after the visibility timeout");
                        None
                    }
                };
            }
            Ok(Committed::Lost) => {
                shared.counters.lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "the lease was lost before the commit: nothing committed, another worker runs it"
                );
                return None;
            }
            Err(err) => {
                // Whatever it claimed, if it was committed, comes back the
                // same way.
                tracing::warn!(error = %err, "the commit failed; the message comes back after the visibility timeout");
                return None;
            }
        };
        let mut bodies = Vec::new();
        for chord in chords {
            let part = &parts[chord.part];
            let body = shared.follow_ups().chord_complete(part, &chord.results);
            ops.push(Op::Guard {
                group: part.group.clone(),
                token: chord.token,
            });
            ops.extend(body.ops);
            ops.push(Op::ChordDone {
                group: part.group.clone(),
            });
            ops.push(Op::Unguard);
            bodies.extend(body.parts);
        }
        // Those counted are counted for good; only the bodies' remain.
        parts = bodies;
    }
}

/// Turns the first push of `ops` onto one of the lists `keys` (with their
/// queues: those this worker consumes) into a claim of it by this worker,
/// and returns the claim as it will stand once committed.
fn claim_next(keys: &[(String, String)], ops: &mut [Op]) -> Option<Claimed> {
    let (index, entry) = ops.iter().enumerate().find_map(|(index, op)| match op {
        Op::Push { key, message, .. } => keys
            .iter()
            .find(|(consumed, _)| consumed == key)
            .map(|(_, queue)| (index, super::claim::unacked_entry(message, queue))),
        _ => None,
    })?;
    let tag = super::outgoing::new_uuid();
    let claim = Op::Claim {
        tag: tag.clone(),
        entry,
    };
    match std::mem::replace(&mut ops[index], claim) {
        Op::Push { key, message, read } => Some(Claimed {
            key,
            text: message,
            tag,
            read,
        }),
        _ => None,
    }
}
