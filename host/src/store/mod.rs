//! Durable workflow state in a redb file: workflows, their steps, and an
//! append-only event log per workflow.
//!
//! Any number of processes may have one database open at once, each
//! reading and writing (redb's multi-writer mode: one write transaction at
//! a time, across processes). Every commit is durable, and a state change
//! is committed before the executor moves on unless it may wait for a later
//! commit (`commit` explains which, and how changes that arrive together
//! share a transaction), so a process killed at any instant leaves a
//! consistent database that `resume` can continue from. A process that
//! ends after its workflows leaves the file as such a kill would, without
//! redb's close ([`Store::exit`]).
//!
//! - `leases` knows which workflows run, in any process;
//! - `check` says whether a file is whole (`wfhost check`);
//! - `commit` is the group committer, and when a write must be on the disk;
//! - `tables` names the tables and the schema version;
//! - `schema` creates the tables and migrates older files;
//! - `overlay` lets a file that cannot be written be read all the same;
//! - `read` and `write` are the store's reads and writes;
//! - `handle` is redb's open database, however it was opened;
//! - `error` is what can go wrong, named in one place.

mod check;
mod commit;
mod create;
mod error;
mod handle;
mod leases;
mod overlay;
mod parking;
mod read;
mod schedules;
mod schema;
mod signals;
mod tables;
mod tally;
mod write;

pub use check::{CheckReport, Finding, PageCheck, RepairedCopy, check_file};
pub use commit::Durability;
pub(crate) use commit::Flush;
pub use error::{StoreError, hush_caught_redb_panics};
pub(crate) use leases::Lease;
pub use read::Overview;
pub(crate) use read::StepTotals;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ConcurrencyMode, Database, DatabaseError, ReadTransaction};

use commit::Committer;
use error::Fault;
use handle::{Db, Opened};
use leases::Leases;

/// Memory redb may use to cache pages. Its default (1 GiB) would let the
/// cache of a long workflow's records grow with the workflow; the executor
/// reads stored steps once, when it resumes, and pages the system caches
/// are a read away, so a small cache costs nothing measurable
/// (BENCHMARKS.md, "flat": 1 MiB against 4 MiB).
const CACHE_BYTES: usize = 1 << 20;

/// Why the database file at `path` does not open.
fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match err {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path },
        // The system's refusal (permissions, read-only media) is named as
        // such: the file may be perfectly sound. A file that is not what
        // redb wrote comes back as invalid data.
        DatabaseError::Storage(redb::StorageError::Io(source))
            if !matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Open { path, source }
        }
        other => StoreError::Damaged {
            path,
            reason: other.to_string(),
        },
    }
}

/// Whether the system refused to open a file because it may not be
/// written: read-only media, or permissions.
fn refuses_writes(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// The state database.
pub struct Store {
    db: Arc<Db>,
    path: PathBuf,
    committer: Arc<Committer>,
    leases: Leases,
    /// Wakes this process's waits when it has put a signal: other
    /// processes' signals are found by reading the file.
    signalled: tokio::sync::Notify,
}

/// redb's settings for a database file: shared with every other process
/// that opens it.
pub(super) fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder
        .set_cache_size(CACHE_BYTES)
        .set_concurrency_mode(ConcurrencyMode::MultiWriter);
    builder
}

impl Store {
    /// Opens the database at `path`, creating it (and its directory) if
    /// needed. A database that is damaged, or of another schema version,
    /// or open in a process that does not share it, is refused with an
    /// error that says so.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::default())
    }

    /// Opens the database at `path` like [`Store::open`], committing with
    /// `durability`. A new database is made whole before it appears at
    /// `path` (see `create.rs`).
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        match Self::open_existing(path, durability) {
            Err(StoreError::Missing { .. }) => create::create(path, durability),
            opened => opened,
        }
    }

    /// Opens the database at `path`, which must exist: what commands that
    /// only look at records use, so that a mistyped path is not made into
    /// a new, empty database.
    pub fn open_existing(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        match std::fs::metadata(path) {
            Ok(file) if file.len() == 0 => Err(StoreError::Damaged {
                path: path.to_path_buf(),
                reason: "the file is empty, which a wfhost database never is \
                         (move it away to start a new database)"
                    .into(),
            }),
            Ok(_) => {
                create::remove_abandoned(path);
                Self::open_file(path, durability)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Missing {
                path: path.to_path_buf(),
            }),
            Err(source) => Err(StoreError::Open {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Opens the database at `path`, which must exist, to read it: for
    /// reading and writing like [`Store::open_existing`] where the system
    /// allows, else for reading only (a file on read-only media, or one
    /// this user may not write), where every write fails and says so.
    pub fn open_to_read(path: &Path) -> Result<Self, StoreError> {
        match Self::open_existing(path, Durability::Strict) {
            Err(StoreError::Open { source, .. }) if refuses_writes(&source) => {
                Self::open_read_only(path)
            }
            opened => opened,
        }
    }

    /// Opens the database file at `path`, which exists.
    pub(super) fn open_file(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Self::open_handle(path, durability, || {
            builder().open(path).map(Opened::Writable)
        })
    }

    /// Opens the database file at `path`, which exists, for reading only:
    /// beside the processes that write it, if any; else, when redb must
    /// repair the file first (as every wfhost leaves it), through a
    /// private layer that takes the repair's writes (see `overlay`).
    fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        Self::open_handle(path, Durability::Strict, || {
            match builder().open_read_only(path) {
                Err(DatabaseError::RepairAborted) => {
                    let overlay = overlay::Overlay::over(std::fs::File::open(path)?)?;
                    Database::builder()
                        .set_cache_size(CACHE_BYTES)
                        .create_with_backend(overlay)
                        .map(Opened::Repaired)
                }
                opened => opened.map(Opened::ReadOnly),
            }
        })
    }

    fn open_handle(
        path: &Path,
        durability: Durability,
        open: impl FnOnce() -> Result<Opened, DatabaseError>,
    ) -> Result<Self, StoreError> {
        error::guarded(path, || {
            let started = std::time::Instant::now();
            let db = open().map_err(|err| open_error(path, err))?;
            tracing::debug!(
                path = %path.display(),
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "opened the state database"
            );
            let leases = Leases::on_file(path).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            Self::start(db, path.to_path_buf(), durability, leases)
        })
    }

    /// Checks the schema of an open database and sets up its committer.
    fn start(
        db: Opened,
        path: PathBuf,
        durability: Durability,
        leases: Leases,
    ) -> Result<Self, StoreError> {
        let file = (path.as_os_str() != ":memory:").then(|| path.clone());
        let db = Arc::new(Db::new(db, file));
        let committer = Committer::start(Arc::clone(&db), path.clone(), durability)?;
        let store = Store {
            db,
            path,
            committer,
            leases,
            signalled: tokio::sync::Notify::new(),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// A database that lives in memory only, for library users and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|err| Fault::Redb(err.into()).at(&path))?;
        let db = Opened::Writable(db);
        Self::start(db, path, Durability::default(), Leases::in_process())
    }

    /// Returns once everything written so far is on the disk: what a
    /// process that stops without ending its workflows (a graceful stop of
    /// `serve`) does last, since the default [`Durability`] lets pure
    /// steps' records wait in memory.
    pub fn flush(&self) {
        self.committer.commit_all();
    }

    /// How long the commits of this process took so far.
    pub fn commit_latency(&self) -> crate::histogram::Histogram {
        self.committer.latency()
    }

    /// Ends this process's use of the store, which must not be opened again
    /// before the process exits: what is written is committed, and the
    /// file is left as a crash would leave it, without redb's close (which
    /// costs flushes). Every commit records what the next open needs to
    /// carry on at once, so nothing is lost or rebuilt.
    pub fn exit(self) {
        self.committer.commit_all();
        // The database's file and locks go with the process.
        std::mem::forget(self);
    }

    /// Takes the lease that says workflow `id` of `tenant` runs here,
    /// unless this or another process runs it (see `leases`).
    pub(crate) fn lease(&self, tenant: &str, id: &str) -> Result<Option<Lease>, StoreError> {
        self.leases
            .take(tenant, id)
            .map_err(|source| self.lock_error(source))
    }

    /// Whether workflow `id` of `tenant` runs now, here or in another
    /// process.
    pub fn is_running(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.leases
            .is_held(tenant, id)
            .map_err(|source| self.lock_error(source))
    }

    /// Fails when a lock that is no wfhost lease blocks the file's leases
    /// (see `leases`): no workflow could start.
    pub fn check_leases(&self) -> Result<(), StoreError> {
        self.leases
            .check_unblocked()
            .map_err(|source| self.lock_error(source))
    }

    fn lock_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Lease {
            path: self.path.clone(),
            source,
        }
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` in a read transaction; whatever goes wrong in it is
    /// named once, here.
    fn read<R>(
        &self,
        read: impl Fn(&ReadTransaction) -> Result<R, Fault>,
    ) -> Result<R, StoreError> {
        error::guarded(&self.path, || {
            let once = || {
                let txn = self.db.get().begin_read().map_err(Fault::from)?;
                read(&txn)
            };
            // A handle that saw an I/O error (a full disk) takes no more
            // transactions: read again on one opened afresh.
            match once() {
                Err(fault) if fault.is_previous_io() && self.db.reopen() => once(),
                result => result,
            }
            .map_err(|fault| fault.at(&self.path))
        })
    }

    /// The error of `fault` in this database.
    fn fault(&self, fault: impl Into<Fault>) -> StoreError {
        fault.into().at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::records::{StepRecord, StepStatus};

    /// Writes `records` of workflow `workflow` (tenant `t`) in one flushed
    /// commit, `event` saying why.
    async fn put(store: &Store, workflow: &str, records: &[StepRecord], event: &str) {
        let refs: Vec<&StepRecord> = records.iter().collect();
        store
            .put_steps("t", workflow, &refs, event, None, Flush::Always)
            .await
            .unwrap();
    }

    /// A continuing run reads one record by id, and the totals of all
    /// without holding them; other workflows' records stay out of both.
    #[tokio::test]
    async fn steps_are_read_one_by_one_and_totalled() {
        let store = Store::in_memory().unwrap();
        let record = |id: &str, seq: u64, fuel: u64| {
            let mut record = StepRecord::new(id, None, "m.add", vec![json!(seq)], Map::new());
            (record.seq, record.fuel_used) = (seq, fuel);
            record
        };
        let (a, b, other) = (record("0", 0, 10), record("1", 4, 32), record("0", 9, 1000));
        put(&store, "wf", &[a.clone(), b], "step_succeeded").await;
        put(&store, "wf-2", &[other], "step_succeeded").await;
        assert_eq!(store.step("t", "wf", "0").unwrap(), Some(a));
        assert_eq!(store.step("t", "wf", "2").unwrap(), None);
        assert_eq!(store.step("u", "wf", "0").unwrap(), None);
        let totals = store.step_totals("t", "wf").unwrap();
        assert_eq!((totals.next_seq, totals.fuel_used), (5, 42));
        assert_eq!(
            store.step_totals("t", "none").unwrap(),
            StepTotals::default()
        );
    }

    /// Every write of a step record counts in its workflow's tally, the
    /// record it replaces counted out; the tally equals the records
    /// counted one by one, and `check` says so when it does not. A
    /// workflow that had records before it had a tally is not given one.
    #[tokio::test]
    async fn a_tally_counts_every_write_and_check_holds_it_to_the_records() {
        use tables::{JOURNAL, TALLIES};
        use tally::{Counted, Tally};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open(&path).unwrap();
        let record = |seq: u64, status: StepStatus| {
            let mut record = StepRecord::new(
                &format!("s{seq}"),
                None,
                "m.add",
                vec![json!(seq)],
                Map::new(),
            );
            (record.seq, record.status) = (seq, status);
            record.started_at_ms = Some(1_000 + seq);
            record
        };
        let running: Vec<StepRecord> = (0..50).map(|i| record(i, StepStatus::Running)).collect();
        put(&store, "wf", &running, "step").await;
        let done: Vec<StepRecord> = (0..50).map(|i| record(i, StepStatus::Succeeded)).collect();
        put(&store, "wf", &done[..30], "step").await;
        put(&store, "wf", &done[30..], "step").await;
        put(&store, "wf", &[record(50, StepStatus::Failed)], "step").await;
        let kept = |workflow: &'static str| {
            store
                .read(|txn| {
                    let key = TALLIES.key("t", workflow, 0, "");
                    let journal = txn.open_table(JOURNAL)?;
                    let stored = journal.get(key)?;
                    stored
                        .map(|stored| TALLIES.decode(&key, stored.value()))
                        .transpose()
                })
                .unwrap()
        };
        let tally = kept("wf").expect("a new workflow's tally");
        assert_eq!(tally.of_status(StepStatus::Succeeded), 50);
        assert_eq!(tally.of_status(StepStatus::Failed), 1);
        assert_eq!(tally.of_status(StepStatus::Running), 0);
        assert_eq!(tally.last_moment_ms, 1_050);
        let latest: Vec<u64> = tally.latest.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(latest, (11..=50).collect::<Vec<_>>());
        let mut recounted = Tally::default();
        for record in store.steps("t", "wf").unwrap() {
            recounted.count(&record.id, &Counted::of(&record), None);
        }
        assert_eq!(tally, recounted);

        // Records written before tallies were kept: none is begun later.
        put(&store, "old", &[record(0, StepStatus::Running)], "step").await;
        let forget = |workflow: &'static str| {
            let txn = store.db.get().begin_write().unwrap();
            txn.open_table(JOURNAL)
                .unwrap()
                .remove(TALLIES.key("t", workflow, 0, ""))
                .unwrap();
            txn.commit().unwrap();
        };
        forget("old");
        let again = [
            record(0, StepStatus::Succeeded),
            record(1, StepStatus::Running),
        ];
        put(&store, "old", &again, "step").await;
        assert_eq!(kept("old"), None);

        // A tally that does not add up is told by `check`.
        {
            let txn = store.db.get().begin_write().unwrap();
            let mut wrong = tally.clone();
            wrong.by_status.insert("succeeded".into(), 49);
            let key = TALLIES.key("t", "wf", 0, "");
            txn.open_table(JOURNAL)
                .unwrap()
                .insert(key, TALLIES.encode(&key, &wrong).as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        store.exit();
        let report = check_file(&path, None).unwrap();
        let told: Vec<&str> = report
            .findings
            .iter()
            .map(|finding| finding.problem.as_str())
            .filter(|problem| problem.contains("tally"))
            .collect();
        assert_eq!(told.len(), 1, "{:?}", report.findings);
        assert!(
            told[0].contains("the tally says 50 records") && told[0].contains("the records are 51"),
            "{}",
            told[0]
        );
    }

    /// A bit flipped on the disk in a record, or in the key it is stored
    /// under, is refused as damage: every read gives what was written or
    /// an error, never the changed record (without checksums, a flipped
    /// digit was read back as another number, with no error).
    #[tokio::test]
    async fn a_record_changed_on_the_disk_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            let records: Vec<StepRecord> = (0..40)
                .map(|i| {
                    let id = format!("step-{i:03}");
                    let mut record =
                        StepRecord::new(&id, None, "m.add", vec![json!(1000 + i)], Map::new());
                    record.seq = i;
                    record
                })
                .collect();
            put(&store, "wf", &records, "step_succeeded").await;
        }
        let pristine_bytes = std::fs::read(&path).unwrap();
        let pristine = Store::open(&path).unwrap().steps("t", "wf").unwrap();
        assert_eq!(pristine.len(), 40);
        // Where the records' ids (in keys and values) and arguments are.
        let places: Vec<usize> = [&b"step-0"[..], b"[10"]
            .iter()
            .flat_map(|marker| {
                pristine_bytes
                    .windows(marker.len())
                    .enumerate()
                    .filter(move |(_, window)| window == marker)
                    .map(|(at, _)| at)
            })
            .collect();
        assert!(places.len() >= 80, "{} places", places.len());
        let mut rng = fastrand::Rng::with_seed(11);
        let damaged = dir.path().join("damaged.redb");
        let mut refused = 0;
        for &place in &places {
            let mut bytes = pristine_bytes.clone();
            let at = place + rng.usize(0..6);
            bytes[at] ^= 1 << rng.u8(0..8);
            std::fs::write(&damaged, &bytes).unwrap();
            let Ok(store) = Store::open(&damaged) else {
                refused += 1;
                continue;
            };
            match store.steps("t", "wf") {
                Ok(steps) => assert!(steps == pristine, "a flip at byte {at} was read"),
                Err(err) => {
                    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
                    refused += 1;
                }
            }
        }
        // Some places hold copies of pages no longer in use.
        assert!(refused >= places.len() / 2, "{refused} of {}", places.len());
    }

    /// A damaged file is an error, never a panic: bits flipped where redb
    /// keeps its pages' layouts once made it index past a page and the
    /// process die (exit 101).
    #[tokio::test]
    async fn damaged_files_are_errors_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            for batch in 0..30 {
                let records: Vec<StepRecord> = (0..10)
                    .map(|i| {
                        let mut record = StepRecord::new(
                            &format!("{batch}.{i}"),
                            None,
                            "m.add",
                            vec![json!(i)],
                            Map::new(),
                        );
                        record.seq = batch * 10 + i;
                        record
                    })
                    .collect();
                let refs: Vec<&StepRecord> = records.iter().collect();
                let event = "step_succeeded";
                store
                    .put_steps("t", "wf", &refs, event, None, Flush::BeforeReturning)
                    .await
                    .unwrap();
            }
        }
        let pristine = std::fs::read(&path).unwrap();
        let pages = pristine.len() / 4096;
        let mut rng = fastrand::Rng::with_seed(7);
        let damaged = dir.path().join("damaged.redb");
        let mut refused = 0;
        for _ in 0..500 {
            let mut bytes = pristine.clone();
            let at = rng.usize(0..pages) * 4096 + rng.usize(0..128);
            bytes[at] ^= 1 << rng.u8(0..8);
            std::fs::write(&damaged, &bytes).unwrap();
            let read = std::panic::catch_unwind(|| {
                let Ok(store) = Store::open(&damaged) else {
                    return 1;
                };
                let reads = [
                    store.workflows(None, None).err(),
                    store.usage(None).err(),
                    store.steps("t", "wf").err(),
                    store.events("t", "wf").err(),
                ];
                usize::from(reads.iter().any(Option::is_some))
            });
            match read {
                Ok(n) => refused += n,
                Err(panic) => {
                    panic!(
                        "a damaged file made the store panic: {:?} at {at}",
                        panic.downcast_ref::<String>()
                    );
                }
            }
        }
        assert!(refused > 0, "no damage was noticed at all");
    }
}
