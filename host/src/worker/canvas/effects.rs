//! What a task's end does on Redis, as data: the operations of one
//! commit, and the chord members to count before it.

use serde_json::Value;
use wfhost_canvas::celery::CelerySignature;

use crate::worker::message::TaskMessage;
use crate::worker::meta::State;

/// One effect of a commit on Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Stores and publishes a task's meta (unless SUCCESS is stored).
    Meta { key: String, text: String },
    /// Pushes a message onto a list; `read` is the message as a worker
    /// reads it, when the one that made it knows that without reading it
    /// back (a worker that claims it in its own commit runs it as is).
    Push {
        key: String,
        message: String,
        read: Option<Box<TaskMessage>>,
    },
    /// Records a message as claimed by the committing worker instead of
    /// pushing it — kombu's `unacked` entry `entry` under `tag`, its lease
    /// started — for it to run next.
    Claim { tag: String, entry: String },
    /// Appends an entry to a list (an audit record), oldest first.
    Append { key: String, entry: String },
    /// Holds a message in the delayed set until `due_ms`.
    Delay {
        due_ms: u64,
        key: String,
        message: String,
    },
    /// Sets a key with the result expiry.
    Set { key: String, value: String },
    /// Deletes a key.
    Delete { key: String },
    /// Ends a chord: its keys are deleted and its claim marked done.
    ChordDone { group: String },
    /// The operations after it happen only while this chord's body claim
    /// is held.
    Guard { group: String, token: String },
    /// The operations after it happen whatever the claim.
    Unguard,
}

/// A chord header member's result to count before the commit (Celery's
/// `on_chord_part_return`).
#[derive(Debug, Clone)]
pub struct ChordPart {
    /// The chord's group id.
    pub group: String,
    /// The member's task id.
    pub task_id: String,
    /// Its index in the header.
    pub index: Option<u64>,
    /// Its state.
    pub state: State,
    /// Its value, or its exception's stored form.
    pub result: Value,
    /// The chord's body signature.
    pub body: CelerySignature,
    /// The member that finished it, the body's parent.
    pub parent_id: String,
    /// The canvas's root.
    pub root_id: Option<String>,
}

/// What one task's end sends on.
#[derive(Debug, Default)]
pub struct FollowUp {
    /// The effects, in order.
    pub ops: Vec<Op>,
    /// Chord members to count first.
    pub parts: Vec<ChordPart>,
    /// Ids of the tasks sent directly (the meta's `children`).
    pub children: Vec<String>,
}
