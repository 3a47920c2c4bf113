//! The worker's Redis: one multiplexed connection for the atomic scripts
//! and reads, and one of its own for blocking waits (a blocked command
//! would stall every other on a shared connection).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, Script};

use super::WorkerError;
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
    give_back: Script,
    renew: Script,
    pub(super) commit: Script,
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
            promote: Script::new(scripts::PROMOTE),
            restore: Script::new(scripts::RESTORE),
            restore_claiming: Script::new(scripts::RESTORE_CLAIMING),
            dead_letter: Script::new(scripts::DEAD_LETTER),
            give_back: Script::new(scripts::GIVE_BACK),
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

    /// Loads the scripts of a worker's claims and commits, so that the
    /// first ones do not each meet `NOSCRIPT` and load them at once.
    pub async fn load_scripts(&self) -> Result<(), WorkerError> {
        for script in [
            &self.scripts.claim,
            &self.scripts.commit,
            &self.scripts.renew,
        ] {
            script
                .prepare_invoke()
                .load_async(&mut self.conn.clone())
                .await
                .map_err(redis_error("load the worker's scripts"))?;
        }
        Ok(())
    }

    /// Gives the message `text` of the claim `tag` back to the list `key`
    /// it came from, unrun; false when the claim was gone already.
    pub async fn give_back(&self, key: &str, tag: &str, text: &str) -> Result<bool, WorkerError> {
        let given: i64 = self
            .scripts
            .give_back
            .key(key)
            .arg(tag)
            .arg(text)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error("give a message back"))?;
        Ok(given == 1)
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
