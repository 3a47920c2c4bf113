//! A task's end on Redis: its commit — results, the messages it sends
//! and its acknowledgement, one script fenced by its claim
//! (`scripts::COMMIT`), a large message kept out of Lua — and the counting
//! of a chord's members before it (`scripts::CHORD_PART`).

use serde_json::Value;

use super::WorkerError;
use super::broker::{Broker, DELAYED, STAGE_FROM_BYTES, redis_error};
use super::canvas::{ChordPart, Op};
use super::meta::{State, group_key};
use super::scripts;

/// How long a chord's body claim lasts before another member's
/// redelivery may take it (Celery 5.7's `max(5, 2 × join timeout)`).
const CHORD_CLAIM_SECONDS: u64 = 6;

/// How long a done chord's marker stays (Celery 5.7's
/// `max(2 × claim, 300)`).
const CHORD_DONE_SECONDS: u64 = 300;

/// The outcome of counting a chord member.
#[derive(Debug, PartialEq)]
pub enum PartCounted {
    /// Counted (or counted before); the chord is not complete, or another
    /// worker sends its body.
    Counted,
    /// The chord is complete and this worker holds the claim to send its
    /// body under `token`.
    Claimed { token: String },
    /// The chord ended already.
    Done,
}

/// The commit script's arguments for `ops` (see `scripts::COMMIT`): a
/// large message is only named, by its place among the large pushes, each
/// at its position in `positions`.
fn commit_args(
    script: &mut redis::Cmd,
    tag: Option<&str>,
    expires: u64,
    positions: &[usize],
    ops: &[Op],
) {
    script
        .arg(tag.unwrap_or(""))
        .arg(expires)
        .arg(positions.len())
        .arg(positions);
    let mut staged = 0;
    for op in ops {
        match op {
            Op::Meta { key, text } => script.arg("M").arg(key).arg(text),
            Op::Push { message, .. } if message.len() >= STAGE_FROM_BYTES => {
                staged += 1;
                script.arg("P").arg(staged)
            }
            Op::Push { key, message } => script.arg("L").arg(key).arg(message),
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
    /// Commits `ops` and acknowledges the claim `tag` at once; false when
    /// the claim was lost and nothing was done.
    pub async fn commit(
        &self,
        tag: Option<&str>,
        expires: u64,
        ops: &[Op],
    ) -> Result<bool, WorkerError> {
        // A large message is pushed by a plain `LPUSH` before the script,
        // in one `MULTI` (see `scripts::COMMIT`).
        let large: Vec<(&str, &str)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Push { key, message } if message.len() >= STAGE_FROM_BYTES => {
                    Some((key.as_str(), message.as_str()))
                }
                _ => None,
            })
            .collect();
        let committed: i64 = if large.is_empty() {
            let mut script = redis::cmd("EVALSHA");
            script.arg(self.scripts.commit.get_hash()).arg(0);
            commit_args(&mut script, tag, expires, &[], ops);
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
            commit_args(&mut script, tag, expires, &positions, ops);
            let (committed,): (i64,) = transaction
                .add_command(script)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(redis_error("commit a step"))?;
            committed
        };
        Ok(committed == 1)
    }

    /// Counts a chord member's result (Celery 5.7's chord script).
    pub async fn count_part(
        &self,
        part: &ChordPart,
        expires: u64,
    ) -> Result<PartCounted, WorkerError> {
        let index = part
            .index
            .map_or_else(|| "+inf".to_string(), |i| i.to_string());
        let token = format!("{}:{index}", part.task_id);
        let encoded =
            serde_json::json!([1, part.task_id, part.state.as_str(), part.result]).to_string();
        let mut invocation = self.scripts.chord_part.prepare_invoke();
        for suffix in [".j", ".t", ".s", ".d", "", ".c"] {
            invocation.key(group_key(&part.group, suffix));
        }
        invocation
            .arg(&part.task_id)
            .arg(encoded)
            .arg(index)
            .arg(expires)
            .arg(expires)
            .arg(CHORD_CLAIM_SECONDS)
            .arg(&token);
        let (ready, _, _, claimed): (i64, Option<i64>, Option<i64>, i64) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("count a chord member"))?;
        Ok(match (ready, claimed) {
            (-1, _) => PartCounted::Done,
            (_, 1) => PartCounted::Claimed { token },
            _ => PartCounted::Counted,
        })
    }

    /// The results of a complete chord's members, in member order.
    pub async fn chord_results(
        &self,
        group: &str,
    ) -> Result<Vec<(String, State, Value)>, WorkerError> {
        let entries: Vec<String> = redis::cmd("ZRANGE")
            .arg(group_key(group, ".j"))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("read a chord's results"))?;
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let parsed: Value = serde_json::from_str(&entry).unwrap_or(Value::Null);
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
            results.push((id, state, parsed.get(3).cloned().unwrap_or(Value::Null)));
        }
        Ok(results)
    }
}
