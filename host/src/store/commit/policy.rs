//! When commits are made: the durability modes, which records may wait in
//! memory for a later commit, and for how long.

use std::time::Duration;

/// How the records of finished steps reach the disk. A workflow's start and
/// end, and the records of effectful steps (those holding a grant), are
/// committed before anything goes on in every mode; the modes differ in the
/// records of pure steps, whose effects stay inside their sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A pure step's record waits in memory while the next step runs; the
    /// committer's thread flushes what has gathered in one transaction, at
    /// most once per `GROUP_WINDOW`. Nothing is reported, and no
    /// effectful step starts, before everything it depends on is on the
    /// disk; a crash loses only pure steps whose records were not yet
    /// flushed, and `resume` runs them again. The default.
    #[default]
    Grouped,
    /// Every step's record is on the disk before the step that made it
    /// moves on: one flush per step.
    Strict,
    /// Like [`Durability::Grouped`], with at most one commit of pure steps'
    /// records per `window`: fewer flushes, for disks whose flush is slow.
    Batched {
        /// The longest a finished step's record waits for its commit.
        window: Duration,
    },
}

impl Durability {
    /// How long the committer's thread lets writes gather before it
    /// commits them.
    pub(super) fn gathering(self) -> Duration {
        match self {
            Durability::Grouped => GROUP_WINDOW,
            Durability::Strict => Duration::ZERO,
            Durability::Batched { window } => window,
        }
    }
}

/// When a write of step records must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Flush {
    /// Before the writer goes on with [`Durability::Strict`]; with the
    /// other modes, as soon as the committer's thread gets to it.
    #[default]
    BeforeReturning,
    /// With the workflow's final write, which the writer makes next: the
    /// last step of a workflow needs no commit of its own, since nothing
    /// runs between its record and the workflow's end. A crash in between
    /// loses the step, and `resume` runs it again, as if the crash had come
    /// before its commit.
    WithWorkflowEnd,
    /// With whatever commit comes next, or within the store's window
    /// ([`LAZY_WINDOW`] with [`Durability::Strict`]): news that nothing
    /// waits for, such as a step's attempt having started, which shows
    /// while the attempt runs and is overwritten by its outcome.
    Lazily,
    /// A workflow's start that nobody is told of before the workflow ends
    /// (a submission that waits for the result): with whatever commit comes
    /// next, as [`Flush::Lazily`] — a short workflow's end, its first
    /// effectful step, the committer's thread within [`LAZY_WINDOW`] at the
    /// latest — or before the writer goes on with [`Durability::Strict`].
    /// Commits keep their order, so nothing of the workflow is on the disk
    /// without it; a crash before then loses a workflow nobody heard of.
    Unannounced,
    /// Before the writer goes on, whatever the store's [`Durability`]: the
    /// records of an effectful step (one holding a grant), whose input must
    /// be durable before it starts and whose outcome must be durable before
    /// anything after it starts, so that `resume` never repeats an effect
    /// whose success was recorded.
    Always,
}

/// How often at most the committer's thread commits pure steps' records
/// with [`Durability::Grouped`]. Committing each as it comes would leave a
/// handful of records per commit, and a commit costs many times what a
/// record adds to it; a millisecond's records share one instead, at no
/// cost to what is reported, which waits for its own commit, and to
/// `resume`, which runs again only pure steps lost in a crash.
pub(crate) const GROUP_WINDOW: Duration = Duration::from_millis(1);

/// How long a write marked [`Flush::Lazily`] waits for a commit at most
/// with [`Durability::Strict`].
pub(crate) const LAZY_WINDOW: Duration = Duration::from_millis(100);

/// Writes that may wait in memory at most: past them, a writer waits for
/// its commit, so that steps far faster than the disk cannot fill memory.
pub(super) const MAX_AHEAD: usize = MAX_BATCH;

/// Writes gathered into one transaction at most: bounds how long the
/// writers of a batch wait for each other.
pub(super) const MAX_BATCH: usize = 1024;
