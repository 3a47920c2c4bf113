//! Claiming a message: taking it from its queue and recording it in
//! kombu's `unacked`/`unacked_index` under a fresh delivery tag, at once —
//! the claim is the fence of the message's commit, and a sweep puts back
//! the claims of workers that died.
//!
//! Two ways, the same result. A message is claimed by one script
//! (`scripts::CLAIM`), which finds the first non-empty list in kombu's
//! order. Redis's Lua hashes every byte of every string a script makes,
//! though, so a large message (a long chain's: each carries the rest of
//! its chain) is claimed without Lua when one is expected: when the last
//! message claimed from the first list was large, the next is moved from
//! that list by a plain `LMOVE` to a list of its own and its `unacked`
//! entry written by a plain `HSET` (`scripts::CLAIMING`, `CLAIMED`); if
//! that list is empty, the script claims as always.

use serde::Deserialize;

use super::WorkerError;
use super::broker::{Broker, DEAD_LETTER, STAGE_FROM_BYTES, redis_error};
use super::message::TaskMessage;
use super::outgoing::new_uuid;
use super::scripts;
use crate::lock::lock;

/// What a claim took.
#[derive(Debug)]
pub enum Taken {
    /// A message to handle.
    Message(Claimed),
    /// A message over the size cap, moved to the dead-letter list unread.
    TooLarge {
        /// The list it came from.
        key: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// A message that is not UTF-8, moved to the dead-letter list.
    Unreadable {
        /// The list it came from.
        key: String,
    },
}

/// A claimed message.
#[derive(Debug)]
pub struct Claimed {
    /// The list it came from.
    pub key: String,
    /// Its text, with this claim's delivery tag.
    pub text: String,
    /// This claim's delivery tag.
    pub tag: String,
    /// The message as read, when this worker made it (the next step of a
    /// chain it ran, claimed in that step's commit): not read again.
    pub read: Option<Box<TaskMessage>>,
}

/// The part of an envelope a claim reads: where kombu says the message
/// was delivered (the `unacked` entry names it).
#[derive(Deserialize)]
struct Envelope {
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct Properties {
    delivery_info: Option<DeliveryInfo>,
}

#[derive(Deserialize)]
struct DeliveryInfo {
    exchange: Option<String>,
    routing_key: Option<String>,
}

/// The envelope's `delivery_info`, found from its end: `properties`
/// comes last in the envelopes kombu and wfhost write, after a body that
/// may be most of a large message. (A key inside a JSON string has its
/// quotes escaped, so it is not found.) None when it is not there.
fn delivery_info(message: &str) -> Option<DeliveryInfo> {
    let at = message.rfind("\"delivery_info\"")?;
    let after = &message[at + "\"delivery_info\"".len()..];
    let value = after.trim_start().strip_prefix(':')?;
    serde_json::Deserializer::from_str(value)
        .into_iter::<DeliveryInfo>()
        .next()?
        .ok()
}

/// kombu's `unacked` entry of `message` taken from `queue`: `[message,
/// exchange, routing key]`, the routing key the message's own when it
/// names one.
pub(super) fn unacked_entry(message: &str, queue: &str) -> String {
    let info = delivery_info(message).or_else(|| {
        serde_json::from_str::<Envelope>(message)
            .ok()
            .and_then(|envelope| envelope.properties?.delivery_info)
    });
    let (exchange, routing_key) = match info {
        Some(info) => (info.exchange, info.routing_key),
        None => (None, None),
    };
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    format!(
        "[{message}, {}, {}]",
        quoted(exchange.as_deref().unwrap_or("")),
        quoted(routing_key.as_deref().unwrap_or(queue))
    )
}

/// A claim by plain commands of the next message of `key`: its tag, its
/// list, and the script that notes it (`scripts::CLAIMING`, in `mode`).
fn noted_claim(key: &str, mode: &str) -> (String, String, redis::Cmd) {
    let tag = new_uuid();
    let held = format!("wfhost.claimed.{tag}");
    let mut noting = redis::cmd("EVAL");
    noting
        .arg(scripts::CLAIMING)
        .arg(1)
        .arg(&held)
        .arg(&tag)
        .arg(key)
        .arg(mode);
    (tag, held, noting)
}

impl Broker {
    /// Claims the first message of `keys` (list key, queue name), if any.
    /// A message over `max_bytes`, or one that is not UTF-8, is moved to
    /// the dead-letter list instead, and said so.
    pub async fn claim(
        &self,
        keys: &[(String, String)],
        max_bytes: u64,
    ) -> Result<Option<Taken>, WorkerError> {
        let mut keys = keys;
        if let Some(((first, queue), others)) = keys.split_first()
            && self.large_expected(first)
        {
            if let Some(taken) = self.claim_without_lua(first, queue, max_bytes).await? {
                return Ok(Some(taken));
            }
            // The first list was empty just now: a message that arrives
            // there is the next claim's, without Lua, not this script's.
            keys = others;
            if keys.is_empty() {
                return Ok(None);
            }
        }
        let tag = new_uuid();
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation.arg(&tag).arg(max_bytes);
        for (key, queue) in keys {
            invocation.key(key).arg(queue);
        }
        invocation.key(DEAD_LETTER);
        let claimed: Option<(String, Vec<u8>, u64)> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("claim a message"))?;
        match claimed {
            Some(claimed) => self.taken(claimed, tag).await.map(Some),
            None => Ok(None),
        }
    }

    /// What a claim script took (see `scripts::CLAIM`) under `tag`: a
    /// message to run, or one set aside — moved to the dead-letter list
    /// for its size by the script, or here for not being UTF-8.
    pub(super) async fn taken(
        &self,
        (key, raw, moved_bytes): (String, Vec<u8>, u64),
        tag: String,
    ) -> Result<Taken, WorkerError> {
        if moved_bytes > 0 {
            return Ok(Taken::TooLarge {
                key,
                bytes: moved_bytes,
            });
        }
        self.expect_next(&key, raw.len());
        match String::from_utf8(raw) {
            Ok(text) => Ok(Taken::Message(Claimed {
                key,
                text,
                tag,
                read: None,
            })),
            Err(unreadable) => {
                let mut invocation = self.scripts.dead_letter.prepare_invoke();
                invocation
                    .key(DEAD_LETTER)
                    .arg(&tag)
                    .arg(unreadable.into_bytes());
                invocation
                    .invoke_async::<i64>(&mut self.conn.clone())
                    .await
                    .map_err(redis_error("move a message to the dead-letter list"))?;
                Ok(Taken::Unreadable { key })
            }
        }
    }

    /// Whether the next message of `key` is expected to be large (the
    /// last one claimed from it was): then it is claimed without Lua.
    pub(super) fn large_expected(&self, key: &str) -> bool {
        lock(&self.large_from).as_deref() == Some(key)
    }

    /// Notes whether the next message of `key` is expected to be large,
    /// as the one just claimed (`bytes` long) was.
    fn expect_next(&self, key: &str, bytes: usize) {
        let mut large_from = lock(&self.large_from);
        if bytes >= STAGE_FROM_BYTES {
            *large_from = Some(key.to_string());
        } else if large_from.as_deref() == Some(key) {
            *large_from = None;
        }
    }

    /// Claims the next message of `key` (of `queue`) by plain commands;
    /// none when the list is empty.
    async fn claim_without_lua(
        &self,
        key: &str,
        queue: &str,
        max_bytes: u64,
    ) -> Result<Option<Taken>, WorkerError> {
        let (tag, held, claiming) = noted_claim(key, "moved");
        let (raw, _moved): (Option<Vec<u8>>, i64) = redis::pipe()
            .atomic()
            .cmd("LMOVE")
            .arg(key)
            .arg(&held)
            .arg("RIGHT")
            .arg("LEFT")
            .add_command(claiming)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("claim a message"))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        self.finish_claim((key, queue), &held, &tag, raw, max_bytes)
            .await
            .map(Some)
    }

    /// Waits up to `timeout` for a message on `key` (of `queue`) and claims
    /// it as it arrives, by plain commands (the wait is the `BLMOVE` of the
    /// claim); none when nothing came. What arrives is not handed to a
    /// wait that then leaves it for a claim: a long chain's message would
    /// travel twice.
    pub async fn wait_and_claim(
        &self,
        (key, queue): (&str, &str),
        timeout: std::time::Duration,
        max_bytes: u64,
    ) -> Result<Option<Taken>, WorkerError> {
        let mut waiter = self.waiter().await?;
        let (tag, held, ahead) = noted_claim(key, "ahead");
        let (_, raw): (i64, Option<Vec<u8>>) = redis::pipe()
            .add_command(ahead)
            .cmd("BLMOVE")
            .arg(key)
            .arg(&held)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(&mut waiter)
            .await
            .map_err(redis_error("wait for a message"))?;
        let Some(raw) = raw else {
            self.forget_claim(&held, &tag).await?;
            return Ok(None);
        };
        if raw.len() >= crate::memory::LARGE_MESSAGE_BYTES {
            // The connection's read buffer grew to the message's size.
            self.drop_waiter();
        }
        self.finish_claim((key, queue), &held, &tag, raw, max_bytes)
            .await
            .map(Some)
    }

    /// Ends a claim begun by plain commands whose message, `raw`, was
    /// moved to `held`: the message set aside if it is over `max_bytes` or
    /// not UTF-8, else its `unacked` entry written.
    async fn finish_claim(
        &self,
        (key, queue): (&str, &str),
        held: &str,
        tag: &str,
        raw: Vec<u8>,
        max_bytes: u64,
    ) -> Result<Taken, WorkerError> {
        let bytes = raw.len();
        let text = match String::from_utf8(raw) {
            Ok(text) if bytes as u64 <= max_bytes => text,
            unreadable_or_too_large => {
                let key = key.to_string();
                let taken = match unreadable_or_too_large {
                    Ok(_) => Taken::TooLarge {
                        key,
                        bytes: bytes as u64,
                    },
                    Err(_) => Taken::Unreadable { key },
                };
                self.end_claim(held, tag, None).await?;
                if bytes >= crate::memory::LARGE_MESSAGE_BYTES {
                    // A message run gives its memory back when it ends;
                    // one set aside (its text dropped above), here.
                    crate::memory::release();
                }
                return Ok(taken);
            }
        };
        self.expect_next(key, bytes);
        self.end_claim(held, tag, Some(&unacked_entry(&text, queue)))
            .await?;
        Ok(Taken::Message(Claimed {
            key: key.to_string(),
            text,
            tag: tag.to_string(),
            read: None,
        }))
    }

    /// Forgets a claim noted ahead of a wait that took nothing.
    async fn forget_claim(&self, held: &str, tag: &str) -> Result<(), WorkerError> {
        redis::cmd("EVAL")
            .arg(scripts::CLAIMED)
            .arg(2)
            .arg(held)
            .arg(DEAD_LETTER)
            .arg(tag)
            .arg("drop")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error("end a wait"))
    }

    /// Ends a claim begun without Lua: with `entry`, its `unacked` entry
    /// is written and its lease starts; without, the message goes to the
    /// dead-letter list.
    async fn end_claim(
        &self,
        held: &str,
        tag: &str,
        entry: Option<&str>,
    ) -> Result<(), WorkerError> {
        let mut claimed = redis::cmd("EVAL");
        claimed
            .arg(scripts::CLAIMED)
            .arg(2)
            .arg(held)
            .arg(DEAD_LETTER)
            .arg(tag)
            .arg(if entry.is_some() { "keep" } else { "dead" });
        let mut transaction = redis::pipe();
        transaction.atomic();
        if let Some(entry) = entry {
            transaction.hset("unacked", tag, entry).ignore();
        }
        transaction
            .add_command(claimed)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error("claim a message"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unacked_entry_names_where_the_message_was_delivered() {
        let message = r#"{"body": "W10=", "properties": {"delivery_info": {"exchange": "", "routing_key": "hi"}}}"#;
        assert_eq!(
            unacked_entry(message, "celery"),
            format!("[{message}, \"\", \"hi\"]")
        );
        let bare = r#"{"body": "W10="}"#;
        assert_eq!(
            unacked_entry(bare, "celery"),
            format!("[{bare}, \"\", \"celery\"]")
        );
    }
}
