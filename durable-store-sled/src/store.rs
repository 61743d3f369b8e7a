//! [`SledStore`]: the [`Store`] on one sled database in one directory.
//!
//! Invariants:
//! - One process, one store per directory: `open` takes an exclusive lock on
//!   `<dir>/durable.lock` before it opens sled in `<dir>/sled`, and keeps it until the store
//!   is closed or dropped. That is why leases can live in memory ([`LeaseTable`]): no other
//!   process can hold one on the same data.
//! - Every write (`create`, `commit`) is one atomic sled batch made by the single writer
//!   thread (see `writer`), and is answered only after the flush that made it durable.
//!   Concurrent writes share that flush.
//! - Reads go to the tree directly from the calling thread. They see a write as soon as
//!   its batch is applied, which can be a moment before its flush has completed and before
//!   its caller got its answer. A commit based on such a read is flushed with or after the
//!   write it read (sled's log is written in order), never before it.
//! - After [`close`](SledStore::close) every method returns [`StoreError::Closed`].
//!
//! The key layout and record formats are described in `keys`.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use async_trait::async_trait;
use durable_core::{
    Commit, Created, ExecutionRecord, HistoryEntry, LeaseTable, ListFilter, Store, StoreError,
    Timestamp,
};

use crate::keys;
use crate::writer::{self, Request, Writer};

/// The file in the store's directory that marks it as open.
const LOCK_FILE: &str = "durable.lock";
/// The subdirectory that holds sled's own files.
const DATA_DIR: &str = "sled";

/// A durable [`Store`] in a local directory, on sled.
///
/// Commits are conditional and atomic, and are fsynced before they return; concurrent
/// commits of many executions share one fsync (group commit). Only one `SledStore` can
/// have a directory open at a time, in this process or any other.
///
/// Dropping the store finishes every write already asked for, flushes, and releases the
/// directory; [`close`](SledStore::close) does the same without blocking the runtime.
pub struct SledStore {
    path: PathBuf,
    open: RwLock<Option<Open>>,
    leases: LeaseTable,
}

/// Everything that lives while the store is open; dropped in field order, so the
/// directory lock is released only after the writer has stopped and sled has closed.
struct Open {
    writer: Writer,
    db: sled::Db,
    _lock: Option<File>,
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
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| io_error(e, "cannot create", path))?;
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
        let db = sled::Config::new()
            .path(path.join(DATA_DIR))
            .open()
            .map_err(StoreError::backend)?;
        Self::start(path.to_path_buf(), db, Some(lock))
    }

    /// A store in a fresh directory under the system's temporary directory, deleted when
    /// the store is closed or dropped: for tests and benchmarks.
    ///
    /// Writes are flushed like those of [`open`](SledStore::open), so it performs like a
    /// real store.
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
        let db = sled::Config::new()
            .path(&path)
            .temporary(true)
            .open()
            .map_err(StoreError::backend)?;
        Self::start(path, db, None)
    }

    fn start(path: PathBuf, db: sled::Db, lock: Option<File>) -> Result<SledStore, StoreError> {
        let writer = Writer::spawn(db.clone())?;
        Ok(SledStore {
            path,
            open: RwLock::new(Some(Open {
                writer,
                db,
                _lock: lock,
            })),
            leases: LeaseTable::new(),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes every write already asked for, flushes, and releases the directory, which
    /// can then be opened again. Every later call on this store returns
    /// [`StoreError::Closed`]; closing again does nothing.
    ///
    /// Durable: when this returns `Ok`, everything the store acknowledged survives a crash
    /// (as it already did when acknowledged); an `Err` reports that the last flush failed.
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
    /// Durable: when this returns `Ok(Created::New)`, the record and its input have been
    /// flushed to disk (fsync) and survive a crash.
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
            let input = db.get(keys::input(id)).map_err(StoreError::backend)?;
            Ok(input.map(|bytes| bytes.to_vec()))
        })
    }

    /// Durable: when this returns `Ok`, the record, its history entries and its timer
    /// index change have been flushed to disk (fsync) in one atomic batch and survive a
    /// crash. Commits of other executions made at the same time share the flush.
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

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        self.with_db(|db| {
            let mut records = Vec::new();
            for entry in db.scan_prefix(keys::EXECUTION) {
                if records.len() >= limit {
                    break;
                }
                let (key, bytes) = entry.map_err(StoreError::backend)?;
                let record: ExecutionRecord = keys::decode(&key, &bytes)?;
                if filter.matches(&record) {
                    records.push(record);
                }
            }
            Ok(records)
        })
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.with_db(|db| {
            db.scan_prefix(keys::history_prefix(id))
                .map(|entry| {
                    let (key, bytes) = entry.map_err(StoreError::backend)?;
                    keys::decode(&key, &bytes)
                })
                .collect()
        })
    }
}

fn io_error(error: std::io::Error, doing: &str, path: &Path) -> StoreError {
    StoreError::backend(std::io::Error::new(
        error.kind(),
        format!("{doing} {}: {error}", path.display()),
    ))
}
