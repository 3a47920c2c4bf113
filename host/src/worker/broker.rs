//! The worker's Redis: one multiplexed connection for the atomic scripts
//! and reads, and one of its own for blocking waits (a blocked command
//! would stall every other on a shared connection).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, Script};
use serde_json::Value;

use super::WorkerError;
use super::canvas::{ChordPart, Op};
use super::meta::{State, group_key};
use super::scripts;

/// How long a script or read may take before the connection is thought
/// dead: generous, as a commit of a large chord's header is one script.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages from this size on are kept out of Lua: pushed by a plain
/// command in the commit's `MULTI`, claimed by plain commands
/// (`claim.rs`).
pub(super) const STAGE_FROM_BYTES: usize = 16 << 10;

/// How much longer than the visibility timeout a claim begun by plain
/// commands may stay unfinished before its message is put back
/// (`claim.rs`): longer than a wait that claims may block.
const CLAIMING_SLACK_SECONDS: f64 = 10.0;

/// The member key of the delayed set (`wfhost.delayed`).
pub const DELAYED: &str = "wfhost.delayed";

/// The dead-letter list: messages no worker will take again — too large,
/// unreadable, or delivered as often as `max_deliveries` allows — each
/// kept whole for a person to look at (`LRANGE wfhost.dead 0 -1`).
pub const DEAD_LETTER: &str = "wfhost.dead";

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

/// The connections of one worker.
#[derive(Clone)]
pub struct Broker {
    client: Client,
    /// The multiplexed connection of scripts and reads.
    pub(super) conn: ConnectionManager,
    /// Made on the first blocking wait: only a consuming worker needs it.
    /// (A connection that received a large message is dropped after it,
    /// so that its read buffer, grown to the message's size, goes too.)
    waiter: std::sync::Arc<std::sync::Mutex<Option<(ConnectionManager, i64)>>>,
    pub(super) scripts: std::sync::Arc<Scripts>,
    /// The list whose last claimed message was large, claimed next
    /// without Lua (`claim.rs`).
    pub(super) large_from: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// The scripts, each loaded on first use (`EVALSHA`, then `SCRIPT LOAD`).
pub(super) struct Scripts {
    pub(super) claim: Script,
    pub(super) dead_letter: Script,
    renew: Script,
    commit: Script,
    chord_part: Script,
    promote: Script,
    restore: Script,
    restore_claiming: Script,
}

/// Connections that reconnect by themselves: a worker outlives a restart
/// of its Redis (what was claimed then comes back after the visibility
/// timeout).
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_max_delay(Duration::from_secs(2))
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

pub(super) fn redis_error(what: &'static str) -> impl Fn(redis::RedisError) -> WorkerError {
    move |source| WorkerError::Redis { what, source }
}

impl Broker {
    /// Connects to the Redis at `url`.
    pub async fn connect(url: &str) -> Result<Broker, WorkerError> {
        let client = Client::open(url).map_err(|source| WorkerError::Url {
            url: url.to_string(),
            source,
        })?;
        // One plain connection first, so that a broker that is not there
        // is told at once rather than after the reconnecting backoff.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(redis_error("connect"))?;
        let conn = client
            .get_connection_manager_with_config(manager_config())
            .await
            .map_err(redis_error("connect"))?;
        let scripts = std::sync::Arc::new(Scripts {
            claim: Script::new(scripts::CLAIM),
            renew: Script::new(scripts::RENEW),
            commit: Script::new(scripts::COMMIT),
            chord_part: Script::new(scripts::CHORD_PART),
            promote: Script::new(scripts::PROMOTE),
            restore: Script::new(scripts::RESTORE),
            restore_claiming: Script::new(scripts::RESTORE_CLAIMING),
            dead_letter: Script::new(scripts::DEAD_LETTER),
        });
        Ok(Broker {
            client,
            conn,
            waiter: std::sync::Arc::default(),
            large_from: std::sync::Arc::default(),
            scripts,
        })
    }

    /// A connection of its own, reconnecting by itself: for traffic that
    /// must not queue behind (or ahead of) the scripts of the tasks, such
    /// as events.
    pub async fn own_connection(&self) -> Result<ConnectionManager, WorkerError> {
        self.client
            .get_connection_manager_with_config(manager_config())
            .await
            .map_err(redis_error("connect"))
    }

    /// The database number of the broker's URL (kombu's fanout channels
    /// are named after it).
    pub fn db(&self) -> i64 {
        self.client.get_connection_info().redis_settings().db()
    }

    /// A subscription to `channel` (a result's key), on a connection of
    /// its own.
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub, WorkerError> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(redis_error("subscribe to a result"))?;
        pubsub
            .subscribe(channel)
            .await
            .map_err(redis_error("subscribe to a result"))?;
        Ok(pubsub)
    }

    /// Declares the queues as kombu does, so its tooling sees them.
    pub async fn declare(&self, queues: &[String]) -> Result<(), WorkerError> {
        let mut pipe = redis::pipe();
        for queue in queues {
            let binding = format!("{queue}\x06\x16\x06\x16{queue}");
            pipe.sadd(format!("_kombu.binding.{queue}"), &binding)
                .ignore();
            pipe.sadd(format!("_kombu.binding_permanent.{queue}"), &binding)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error("declare the queues"))
    }

    /// The connection of blocking waits, made on first use.
    pub(super) async fn waiter(&self) -> Result<ConnectionManager, WorkerError> {
        if let Some((waiter, _)) = crate::lock::lock(&self.waiter).clone() {
            return Ok(waiter);
        }
        let mut made = self
            .client
            .get_connection_manager_with_config(manager_config().set_response_timeout(None))
            .await
            .map_err(redis_error("connect"))?;
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut made)
            .await
            .map_err(redis_error("connect"))?;
        *crate::lock::lock(&self.waiter) = Some((made.clone(), id));
        Ok(made)
    }

    /// Drops the connection of blocking waits after it received a large
    /// message: its read buffer, grown to the message's size, goes with it.
    pub(super) fn drop_waiter(&self) {
        *crate::lock::lock(&self.waiter) = None;
    }

    /// Ends a wait under way at once, as if it timed out (`CLIENT
    /// UNBLOCK`): what it would have claimed stays in its queue. When this
    /// returns, the wait has ended or ends without claiming.
    pub(super) async fn interrupt_wait(&self) -> Result<(), WorkerError> {
        let Some((_, id)) = crate::lock::lock(&self.waiter).clone() else {
            return Ok(());
        };
        redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(redis_error("end a wait"))
    }

    /// Renews the lease of the claim `tag`; false once it is lost.
    pub async fn renew(&self, tag: &str) -> Result<bool, WorkerError> {
        let renewed: i64 = self
            .scripts
            .renew
            .arg(tag)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("renew a lease"))?;
        Ok(renewed == 1)
    }

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

    /// The stored meta of a task, if any.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, WorkerError> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("read a result"))
    }

    /// Moves due delayed messages to their lists; how many moved.
    pub async fn promote(&self, limit: u64) -> Result<u64, WorkerError> {
        let mut invocation = self.scripts.promote.prepare_invoke();
        invocation.key(DELAYED).arg(limit);
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("move due messages"))
    }

    /// Puts back claims older than `visibility` (dead consumers'), each
    /// delivered at most `max_deliveries` times in all; how many went back
    /// and how many to the dead-letter list.
    pub async fn restore(
        &self,
        visibility: Duration,
        limit: u64,
        max_deliveries: u32,
    ) -> Result<(u64, u64), WorkerError> {
        // Claims begun without Lua whose worker died before their
        // `unacked` entry was written go back first (`claim.rs`).
        // A wait that claims is noted before it waits (at most a few
        // seconds), so a claim noted longer ago than the visibility timeout
        // and then some is one whose worker died.
        let half_claimed: u64 = self
            .scripts
            .restore_claiming
            .arg(visibility.as_secs_f64() + CLAIMING_SLACK_SECONDS)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("restore lost messages"))?;
        let mut invocation = self.scripts.restore.prepare_invoke();
        invocation
            .key(DEAD_LETTER)
            .arg(visibility.as_secs_f64())
            .arg(limit)
            .arg(super::routing::PRIORITY_SEP)
            .arg(max_deliveries);
        let (restored, dead): (u64, u64) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("restore lost messages"))?;
        Ok((restored + half_claimed, dead))
    }

    /// Says this worker is alive for `ttl`, with what it does.
    pub async fn beat(&self, name: &str, info: &str, ttl: Duration) -> Result<(), WorkerError> {
        redis::cmd("SET")
            .arg(format!("wfhost.worker.{name}"))
            .arg(info)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error("announce the worker"))
    }

    /// Says this worker stopped.
    pub async fn leave(&self, name: &str) -> Result<(), WorkerError> {
        redis::cmd("DEL")
            .arg(format!("wfhost.worker.{name}"))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error("announce the worker's end"))
    }
}
