//! A task's end on Redis: its commit — the chord members it finished
//! counted, its results, the messages it sends and its acknowledgement,
//! one script fenced by its claim (`scripts::COMMIT`), a large message
//! kept out of Lua.

use serde_json::Value;

use super::WorkerError;
use super::broker::{Broker, DEAD_LETTER, DELAYED, STAGE_FROM_BYTES, redis_error};
use super::canvas::{ChordPart, Op};
use super::meta::{State, group_key};
use super::scripts;

/// How long a chord's body claim lasts before another member's
/// redelivery may take it (Celery 5.7's `max(5, 2 × join timeout)`).
const CHORD_CLAIM_SECONDS: u64 = 6;

/// How long a done chord's marker stays (Celery 5.7's
/// `max(2 × claim, 300)`).
const CHORD_DONE_SECONDS: u64 = 300;

/// What one commit carries.
pub struct Commit<'a> {
    /// The claim it acknowledges; none for messages sent from outside a
    /// task.
    pub tag: Option<&'a str>,
    /// How long results are kept, in seconds (0: always).
    pub expires: u64,
    /// The chord members to count first.
    pub parts: &'a [ChordPart],
    /// What it does.
    pub ops: &'a [Op],
    /// Where the slot's next message is claimed from, once committed.
    pub fetch: Option<Fetch<'a>>,
}

/// A claim of the next message a commit makes for its slot.
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    /// The lists (and their queues), in the order claims take them.
    pub keys: &'a [(String, String)],
    /// The claim's tag.
    pub tag: &'a str,
    /// The size cap: a larger message goes to the dead-letter list.
    pub max_bytes: u64,
}

/// A message a commit claimed for its slot, as the claim script returns
/// it: its list, its bytes, and its size when it was moved to the
/// dead-letter list instead (then the bytes are empty).
pub type Fetched = (String, Vec<u8>, u64);

/// What a commit did.
#[derive(Debug, PartialEq)]
pub enum Committed {
    /// Everything, and the claim is acknowledged; the slot's next message
    /// when the commit claimed one.
    Done(Option<Fetched>),
    /// Nothing: the claim was lost (another worker runs the message).
    Lost,
    /// Nothing but counting the chord members: these chords are complete
    /// and this claim holds the right to send their bodies. Commit again
    /// with the bodies, guarded by the claims' tokens.
    Complete(Vec<CompleteChord>),
}

/// A chord that a commit's counting completed.
#[derive(Debug, PartialEq)]
pub struct CompleteChord {
    /// The member whose count completed it: its place among those given.
    pub part: usize,
    /// The token the body's claim is held by.
    pub token: String,
    /// The members' results, in member order.
    pub results: Vec<(String, State, Value)>,
}

/// The token of a chord member's claim of its chord's body: it names the
/// member (`id:index`), so the same member run again after its worker
/// died holds the claim it took.
pub fn claim_token(part: &ChordPart) -> String {
    format!("{}:{}", part.task_id, index_of(part))
}

/// A member's index as the chord script takes it.
fn index_of(part: &ChordPart) -> String {
    part.index
        .map_or_else(|| "+inf".to_string(), |index| index.to_string())
}

/// Whether `text` (a message, or an `unacked` entry) is written by a
/// plain command beside the script rather than given to it.
fn is_large(text: &str) -> bool {
    text.len() >= STAGE_FROM_BYTES
}

/// The commit script's arguments for `ops` (see `scripts::COMMIT`): a
/// large message is only named, by its place among the large pushes, each
/// at its position in `positions`, or among the large claims, whose tags
/// are `large_claims`.
fn commit_args(
    script: &mut redis::Cmd,
    commit: &Commit<'_>,
    (positions, large_claims): (&[usize], &[&str]),
) {
    script
        .arg(commit.tag.unwrap_or(""))
        .arg(commit.expires)
        .arg(CHORD_CLAIM_SECONDS)
        .arg(positions.len())
        .arg(positions)
        .arg(large_claims.len())
        .arg(large_claims);
    match &commit.fetch {
        Some(fetch) if !fetch.keys.is_empty() => {
            script
                .arg(fetch.keys.len())
                .arg(fetch.tag)
                .arg(fetch.max_bytes)
                .arg(DEAD_LETTER);
            for (key, queue) in fetch.keys {
                script.arg(key).arg(queue);
            }
        }
        _ => {
            script.arg(0);
        }
    }
    script.arg(commit.parts.len());
    for part in commit.parts {
        let encoded =
            serde_json::json!([1, part.task_id, part.state.as_str(), part.result]).to_string();
        script
            .arg(group_key(&part.group, ""))
            .arg(&part.task_id)
            .arg(encoded)
            .arg(index_of(part))
            .arg(claim_token(part));
    }
    let (mut staged, mut claimed) = (0, 0);
    for op in commit.ops {
        match op {
            Op::Meta { key, text } => script.arg("M").arg(key).arg(text),
            Op::Push { message, .. } if is_large(message) => {
                staged += 1;
                script.arg("P").arg(staged)
            }
            Op::Push { key, message, .. } => script.arg("L").arg(key).arg(message),
            Op::Claim { entry, .. } if is_large(entry) => {
                claimed += 1;
                script.arg("Q").arg(claimed)
            }
            Op::Claim { tag, entry } => script.arg("C").arg(tag).arg(entry),
            Op::Append { key, entry } => script.arg("R").arg(key).arg(entry),
            Op::Delay {
                due_ms,
                key,
                message,
            } => script
                .arg("Z")
                .arg(DELAYED)
                .arg(*due_ms)
                .arg(format!("{key}\n{message}")),
            Op::Set { key, value } => script.arg("S").arg(key).arg(value),
            Op::Delete { key } => script.arg("D").arg(key),
            Op::ChordDone { group } => script
                .arg("X")
                .arg(group_key(group, ".c"))
                .arg(group_key(group, ".j"))
                .arg(group_key(group, ".t"))
                .arg(group_key(group, ".s"))
                .arg(group_key(group, ".d"))
                .arg(CHORD_DONE_SECONDS),
            Op::Guard { group, token } => script
                .arg("G")
                .arg(group_key(group, ".c"))
                .arg(group_key(group, ".s"))
                .arg(token),
            Op::Unguard => script.arg("U"),
        };
    }
}

impl Broker {
    /// Counts the chord members and, unless that completes a chord,
    /// commits the operations and acknowledges the claim at once (then
    /// claims the slot's next message, when asked to).
    pub async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, WorkerError> {
        // A large message is pushed by a plain `LPUSH` (or claimed by a
        // plain `HSET`) before the script, in one `MULTI` (see
        // `scripts::COMMIT`).
        let mut large: Vec<(&str, &str)> = Vec::new();
        let mut large_claims: Vec<(&str, &str)> = Vec::new();
        for op in commit.ops {
            match op {
                Op::Push { key, message, .. } if is_large(message) => large.push((key, message)),
                Op::Claim { tag, entry } if is_large(entry) => large_claims.push((tag, entry)),
                _ => {}
            }
        }
        let reply: Vec<Vec<u8>> = if large.is_empty() && large_claims.is_empty() {
            let mut script = redis::cmd("EVALSHA");
            script.arg(self.scripts.commit.get_hash()).arg(0);
            commit_args(&mut script, commit, (&[], &[]));
            match script.query_async(&mut self.conn.clone()).await {
                Err(err)
                    if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    // Redis restarted, or its scripts were flushed.
                    self.scripts
                        .commit
                        .prepare_invoke()
                        .load_async(&mut self.conn.clone())
                        .await
                        .map_err(redis_error("load the commit script"))?;
                    script.query_async(&mut self.conn.clone()).await
                }
                other => other,
            }
            .map_err(redis_error("commit a step"))?
        } else {
            let mut transaction = redis::pipe();
            transaction.atomic();
            for (key, message) in &large {
                transaction.lpush(*key, *message).ignore();
            }
            for (tag, entry) in &large_claims {
                transaction.hset("unacked", *tag, *entry).ignore();
            }
            // Where each large message is when the script runs: after
            // the later pushes to its list, each to its left.
            let positions: Vec<usize> = (0..large.len())
                .map(|k| {
                    large[k + 1..]
                        .iter()
                        .filter(|(key, _)| *key == large[k].0)
                        .count()
                })
                .collect();
            // The script by its text, not its hash: a `NOSCRIPT` inside a
            // `MULTI` would fail the script alone and keep the pushes.
            let mut script = redis::cmd("EVAL");
            script.arg(scripts::COMMIT).arg(large.len());
            for (key, _) in &large {
                script.arg(*key);
            }
            let claim_tags: Vec<&str> = large_claims.iter().map(|(tag, _)| *tag).collect();
            commit_args(&mut script, commit, (&positions, &claim_tags));
            let (reply,): (Vec<Vec<u8>>,) = transaction
                .add_command(script)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(redis_error("commit a step"))?;
            reply
        };
        Ok(committed(reply, commit.parts))
    }
}

/// What the commit script's `reply` says (see `scripts::COMMIT`), `parts`
/// being the members it counted.
fn committed(reply: Vec<Vec<u8>>, parts: &[ChordPart]) -> Committed {
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let mut reply = reply.into_iter();
    match reply.next().as_deref() {
        Some(b"1") => {
            let fetched = match (reply.next(), reply.next(), reply.next()) {
                (Some(key), Some(raw), Some(moved)) => {
                    Some((text(key), raw, text(moved).parse().unwrap_or(0)))
                }
                _ => None,
            };
            return Committed::Done(fetched);
        }
        Some(b"2") => {}
        _ => return Committed::Lost,
    }
    let mut complete = Vec::new();
    while let Some(place) = reply.next() {
        let count: usize = reply.next().and_then(|n| text(n).parse().ok()).unwrap_or(0);
        let results = reply
            .by_ref()
            .take(count)
            .map(|entry| member_result(&text(entry)))
            .collect();
        let Some(part) = text(place)
            .parse::<usize>()
            .ok()
            .and_then(|place| place.checked_sub(1))
            .filter(|part| *part < parts.len())
        else {
            continue;
        };
        complete.push(CompleteChord {
            part,
            token: claim_token(&parts[part]),
            results,
        });
    }
    Committed::Complete(complete)
}

/// A member's result as the chord keeps it: `[1, id, state, result]`.
fn member_result(entry: &str) -> (String, State, Value) {
    let parsed: Value = serde_json::from_str(entry).unwrap_or(Value::Null);
    let id = parsed
        .get(1)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let state = match parsed.get(2).and_then(Value::as_str) {
        Some("SUCCESS") => State::Success,
        Some("REVOKED") => State::Revoked,
        Some("RETRY") => State::Retry,
        _ => State::Failure,
    };
    (id, state, parsed.get(3).cloned().unwrap_or(Value::Null))
}
