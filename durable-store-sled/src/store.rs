//! [`SledStore`]: the [`Store`] on one sled database in one directory.
//!
//! Invariants:
//! - One process, one store per directory: `open` takes an exclusive lock on
//!   `<dir>/durable.lock` before it opens sled in `<dir>/sled`, and keeps it until the store
//!   is closed or dropped. That is why leases can live in memory ([`LeaseTable`]): no other
//!   process can hold one on the same data.
//! - Every write (`create`, `commit`) is one atomic sled batch made by the single writer
//!   thread (see `writer`), and is answered only after the fsync that made it durable.
//!   Concurrent writes share that fsync.
//! - Reads go to the tree directly from the calling thread. They see a write as soon as
//!   its batch is applied, which can be a moment before its fsync has completed and before
//!   its caller got its answer. The writer applies a group only after the previous group's
//!   fsync has returned, so a commit based on such a read cannot become durable without
//!   the write it read.
//! - After [`close`](SledStore::close) every method returns [`StoreError::Closed`].
//!
//! Directory layout: `durable.lock` (empty; held with an OS file lock while open) and
//! `sled/` (sled's own files; `sled/db` is its log, which the writer fsyncs). The key
//! layout and record formats inside sled are described in `keys`.
//!
//! Known limit: sled writes a single log item larger than about 128 KiB (a quarter of its
//! 512 KiB segment) to a separate file under `sled/blobs/` and does not fsync it, so a
//! power cut (not a process crash) can lose a transition whose execution value (record,
//! small input, newest history entries), large input or history chunk is that large even
//! after it was acknowledged.

use std::fs::{File, TryLockError};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use async_trait::async_trait;
use durable_core::{
    Commit, Created, ExecutionRecord, HistoryEntry, LeaseTable, ListFilter, Store, StoreError,
    Timestamp,
};

use crate::keys;
use crate::writer::{self, Disk, Request, Writer};

/// The file in the store's directory that marks it as open.
const LOCK_FILE: &str = "durable.lock";
/// The subdirectory that holds sled's own files.
const DATA_DIR: &str = "sled";
/// sled's log file in its directory (sled 0.34), which the writer fsyncs.
const SLED_LOG: &str = "db";

/// What a commit survives once it has returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// The process dying and the machine losing power (the default): every group of
    /// commits ends with sled's flush and an `fdatasync` of its log file.
    #[default]
    PowerLoss,
    /// The process dying, not the machine losing power: every group of commits ends with
    /// sled's own flush only, which on Linux does not persist the log file's size
    /// (sled issue #1452). Faster by the cost of one `fdatasync` per group.
    ProcessCrash,
}

/// How [`SledStore::open_with`] opens a store; a [`Durability`] converts into the
/// default options with that durability.
///
/// ```
/// use durable_store_sled::{Durability, Options};
///
/// let options = Options::default()
///     .durability(Durability::PowerLoss)
///     .cache_capacity(32 * 1024 * 1024);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Options {
    /// What a commit survives once it has returned (default [`Durability::PowerLoss`]).
    pub durability: Durability,
    /// Bytes of sled's page cache (default [`Options::DEFAULT_CACHE_CAPACITY`]).
    pub cache_capacity: u64,
}

impl Options {
    /// The default size of sled's page cache: 32 MiB (sled's own default is 1 GiB).
    ///
    /// sled counts a page by its size in the log; in memory it takes more, so the
    /// process holds about 1.3 to 2 times this much for the cache once the data outgrows
    /// it. Pages outside the cache are read from the disk (usually the OS page cache) when
    /// needed, so a smaller cache costs speed, never correctness. With a million sleeping
    /// executions, 32 MiB suspended and woke them as fast as 64 MiB did (benchmark
    /// `sleepers`), in 55 MB less memory.
    pub const DEFAULT_CACHE_CAPACITY: u64 = 32 * 1024 * 1024;

    /// Sets what a commit survives once it has returned.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the size of sled's page cache in bytes (at least 1 MiB is used).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::default(),
            cache_capacity: Options::DEFAULT_CACHE_CAPACITY,
        }
    }
}

impl From<Durability> for Options {
    fn from(durability: Durability) -> Self {
        Options::default().durability(durability)
    }
}

/// A durable [`Store`] in a local directory, on sled.
///
/// Commits are conditional and atomic, and are fsynced before they return; concurrent
/// commits of many executions share one fsync (group commit). Only one `SledStore` can
/// have a directory open at a time, in this process or any other.
///
/// Dropping the store finishes every write already asked for, syncs, and releases the
/// directory; [`close`](SledStore::close) does the same without blocking the runtime.
pub struct SledStore {
    path: PathBuf,
    open: RwLock<Option<Open>>,
    leases: LeaseTable,
}

/// Everything that lives while the store is open; dropped in field order, so the
/// directory lock is released only after the writer has stopped and sled has closed, and
/// a temporary directory is removed last.
struct Open {
    writer: Writer,
    db: sled::Db,
    _lock: File,
    _temporary: Option<RemoveDir>,
}

/// Removes a temporary store's directory when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a temporary store");
        }
    }
}

const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SledStore>();
};

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("open", &self.read().is_some())
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens the store in directory `path`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::Locked`] if a store is already open on `path`, in this
    /// process or another one.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// Like [`open`](SledStore::open), with the given [`Options`] (or [`Durability`]).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: impl Into<Options>,
    ) -> Result<SledStore, StoreError> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| io_error(e, "cannot create", path))?;
        Self::open_dir(path.to_path_buf(), None, options.into())
    }

    /// A store in a fresh directory under the system's temporary directory, removed when
    /// the store is closed or dropped: for tests and benchmarks.
    ///
    /// Apart from its place and its end it is a store like any [`open`](SledStore::open)
    /// one: it fsyncs the same way, so a benchmark on it measures the real cost of a
    /// commit.
    pub fn temporary() -> Result<SledStore, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        // `create_dir` fails on a directory that exists, so a leftover of an earlier process
        // with the same pid is skipped rather than reused.
        let path = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("durable-sled-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => break path,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error(e, "cannot create", &path)),
            }
        };
        Self::open_dir(path.clone(), Some(RemoveDir(path)), Options::default())
    }

    /// Opens the store in the existing directory `path`. A `temporary` directory is
    /// removed when the store closes, or right away if it cannot be opened.
    fn open_dir(
        path: PathBuf,
        temporary: Option<RemoveDir>,
        options: Options,
    ) -> Result<SledStore, StoreError> {
        let lock_path = path.join(LOCK_FILE);
        let lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_error(e, "cannot open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: path.display().to_string(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e, "cannot lock", &lock_path)),
        }
        let data = path.join(DATA_DIR);
        let config = sled::Config::new()
            .path(&data)
            .cache_capacity(options.cache_capacity.max(1024 * 1024));
        let db = open_sled(&config)?;
        let log_path = data.join(SLED_LOG);
        // Write access because some systems refuse to fsync a file opened read-only.
        let log = File::options()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| io_error(e, "cannot open", &log_path))?;
        let writer = Writer::spawn(Disk {
            db: db.clone(),
            log,
            durability: options.durability,
        })?;
        Ok(SledStore {
            path,
            open: RwLock::new(Some(Open {
                writer,
                db,
                _lock: lock,
                _temporary: temporary,
            })),
            leases: LeaseTable::new(),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes every write already asked for, syncs, and releases the directory, which
    /// can then be opened again. Every later call on this store returns
    /// [`StoreError::Closed`]; closing again does nothing.
    ///
    /// Durable: when this returns `Ok`, everything the store acknowledged survives a crash
    /// (as it already did when acknowledged); an `Err` reports that the last sync failed.
    pub async fn close(&self) -> Result<(), StoreError> {
        let taken = self.open.write().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut open) = taken else {
            return Ok(());
        };
        let result = match open.writer.stop() {
            Some(stopped) => stopped.await.unwrap_or_else(|_| Err(writer::writer_gone())),
            None => Ok(()),
        };
        // The writer has answered, so joining it here waits only for its thread to exit.
        drop(open);
        result
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<Open>> {
        // Nothing panics while holding the write guard, which only swaps the option.
        self.open.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the open database.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&sled::Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let open = self.read();
        f(&open.as_ref().ok_or(StoreError::Closed)?.db)
    }

    /// Hands `request` to the writer; holding the read guard while sending means `close`
    /// cannot stop the writer between the check and the send.
    fn send(&self, request: Request) -> Result<(), StoreError> {
        let open = self.read();
        open.as_ref()
            .ok_or(StoreError::Closed)?
            .writer
            .send(request)
    }

    fn check_open(&self) -> Result<(), StoreError> {
        self.with_db(|_| Ok(()))
    }
}

#[async_trait]
impl Store for SledStore {
    /// See [`SledStore::close`].
    async fn close(&self) -> Result<(), StoreError> {
        SledStore::close(self).await
    }

    /// Durable: when this returns `Ok(Created::New)`, the record and its input have been
    /// written and fsynced, and survive a crash or a power cut.
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        let (request, answer) = Request::create(record, input)?;
        self.send(request)?;
        answer.await.unwrap_or_else(|_| Err(writer::writer_gone()))
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.with_db(|db| writer::load(db, &keys::execution(id)))
    }

    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_db(|db| {
            let key = keys::execution(id);
            let Some(bytes) = db.get(&key).map_err(StoreError::backend)? else {
                return Ok(None);
            };
            if let Some(input) = keys::decode_execution(&key, &bytes)?.input {
                return Ok(Some(input));
            }
            let input = db.get(keys::input(id)).map_err(StoreError::backend)?;
            Ok(input.map(|bytes| bytes.to_vec()))
        })
    }

    /// Durable: when this returns `Ok`, the record, its history entries and its timer
    /// index change have been written in one atomic batch and fsynced, and survive a crash
    /// or a power cut. Commits of other executions made at the same time share the fsync.
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let (request, answer) = Request::commit(commit)?;
        self.send(request)?;
        answer.await.unwrap_or_else(|_| Err(writer::writer_gone()))
    }

    /// Leases are kept in memory: the directory lock makes this process the only one
    /// that can hold any.
    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.check_open()?;
        Ok(self.leases.claim(id, owner, now, until))
    }

    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        self.check_open()?;
        self.leases.release(id, owner);
        Ok(())
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.with_db(|db| {
            let mut due = Vec::new();
            for key in db.scan_prefix(keys::TIMER).keys() {
                if due.len() >= limit {
                    break;
                }
                let (at, id) = keys::parse_timer(&key.map_err(StoreError::backend)?)?;
                if at > now {
                    break;
                }
                due.push((at, id));
            }
            Ok(due)
        })
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.with_db(|db| match db.scan_prefix(keys::TIMER).keys().next() {
            Some(key) => Ok(Some(
                keys::parse_timer(&key.map_err(StoreError::backend)?)?.0,
            )),
            None => Ok(None),
        })
    }

    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let start = match after {
            Some((at, id)) => Bound::Excluded(keys::timer(at, id)),
            None => Bound::Included(keys::TIMER.to_vec()),
        };
        self.with_db(|db| {
            let mut entries = Vec::new();
            for key in db.range((start, Bound::Unbounded)).keys() {
                let key = key.map_err(StoreError::backend)?;
                if entries.len() >= limit || !key.starts_with(keys::TIMER) {
                    break;
                }
                let (at, id) = keys::parse_timer(&key)?;
                if at > until {
                    break;
                }
                entries.push((at, id));
            }
            Ok(entries)
        })
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        self.with_db(|db| {
            let mut records = Vec::new();
            for entry in db.scan_prefix(keys::EXECUTION) {
                if records.len() >= limit {
                    break;
                }
                let (key, bytes) = entry.map_err(StoreError::backend)?;
                let record = keys::decode_record(&key, &bytes)?;
                if filter.matches(&record) {
                    records.push(record);
                }
            }
            Ok(records)
        })
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.with_db(|db| read_history(db, id))
    }
}

/// The retained history of `id`: its chunks, then the tail in its execution value,
/// without the entries below the value's prune line.
pub(crate) fn read_history(db: &sled::Db, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let key = keys::execution(id);
    let Some(bytes) = db.get(&key).map_err(StoreError::backend)? else {
        return Ok(Vec::new());
    };
    let execution = keys::decode_execution(&key, &bytes)?;
    let mut history = Vec::new();
    for entry in db.scan_prefix(keys::history_prefix(id)) {
        let (key, bytes) = entry.map_err(StoreError::backend)?;
        history.extend(keys::decode_history(&key, &bytes)?);
    }
    history.extend(keys::decode_entries(&key, &execution.tail)?);
    history.retain(|entry| entry.number >= execution.history_from);
    Ok(history)
}

/// How long [`open_sled`] waits for a closed store's sled threads to let go of the
/// directory.
const SLED_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled, waiting out a closed store of this process whose background threads still
/// hold sled's own file lock.
///
/// Called only while holding `durable.lock`, which proves that no open store uses the
/// directory: when the last `sled::Db` of a closed store drops, sled's background
/// threads may hold its lock a moment longer, so a reopen in the same process can find
/// it taken. Any other error is returned at once.
fn open_sled(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + SLED_RELEASE_TIMEOUT;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(StoreError::backend(e)),
        }
    }
}

fn io_error(error: std::io::Error, doing: &str, path: &Path) -> StoreError {
    StoreError::backend(std::io::Error::new(
        error.kind(),
        format!("{doing} {}: {error}", path.display()),
    ))
}
