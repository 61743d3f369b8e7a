//! [`SledStore`]: the [`Store`] on one sled database in one directory.
//!
//! Invariants:
//! - One process, one store per directory: `open` takes an exclusive lock on the
//!   directory (see `lock`) before it opens sled in `<dir>/sled`, and keeps it until the
//!   store is closed or dropped. That is why leases can live in memory ([`LeaseTable`]):
//!   no other process can hold one on the same data.
//! - Every write (`create`, `commit`) is one atomic sled batch made by the single writer
//!   thread (see `writer`), and is answered only after the fsync that made it durable.
//!   Concurrent writes share that fsync.
//! - Reads see only synced writes. Reads of executions and operations written recently
//!   are answered from the writer's memory of them (see `recent`), which it updates
//!   after each group's sync; other reads run on tokio's blocking threads, go to the
//!   tree, and return once what they read is synced: a read of one key waits only if the
//!   group being synced wrote that key (see `sync::Visibility`).
//! - After [`close`](SledStore::close) every method returns [`StoreError::Closed`]; the
//!   state is taken out under the write side of its lock, so `close` waits for the reads
//!   in flight, and every later call finds it gone.
//! - After a group fails to be written or synced (a full disk), sled 0.34 refuses every
//!   later write until it is opened again, so [`recover`](Store::recover) reopens it in
//!   place under the write side of the same lock, keeping the directory lock: the writes
//!   acknowledged before survive, a failed group may or may not be there, and the open
//!   checks the whole tree as after a crash. While a reopen fails (the disk is still
//!   full), every call returns [`StoreError::Backend`] saying so, until a later
//!   `recover` succeeds.
//!
//! Directory layout: `durable.lock` (empty; held with an OS file lock while open) and
//! `sled/` (sled's own files: `sled/db` is its log, which the writer fsyncs, and
//! `sled/blobs/` holds items too large for the log, which the writer fsyncs too; see
//! `blobs`). The key layout and record formats inside sled are described in `keys`.

use std::fs::File;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use durable_core::{
    Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, HistoryEntry, LeaseTable,
    ListFilter, OperationRecord, Status, Store, StoreError, Timestamp,
};
use tokio::sync::{oneshot, OwnedRwLockReadGuard, RwLock};

use crate::blobs::Blobs;
use crate::error::{io_error, sled_error, sled_panicked};
use crate::integrity;
use crate::keys;
use crate::lock::DirLock;
use crate::options::Options;
use crate::recent::Recent;
use crate::repair;
use crate::sync::Visibility;
use crate::writer::{self, Disk, Request, Writer};

/// The subdirectory that holds sled's own files.
const DATA_DIR: &str = "sled";
/// sled's log file in its directory (sled 0.34), which the writer fsyncs.
const SLED_LOG: &str = "db";

/// A durable [`Store`] in a local directory, on sled.
///
/// Commits are conditional and atomic, and are fsynced before they return; concurrent
/// commits of many executions share one fsync (group commit). Only one `SledStore` can
/// have a directory open at a time, in this process or any other.
///
/// Reads run on tokio's blocking threads (inline when there is no tokio runtime), except
/// reads of executions and operations written recently, which come from memory; writes run
/// on the store's own writer thread, so no method blocks an async runtime's thread.
///
/// Dropping the store finishes every write already asked for, syncs, and releases the
/// directory; inside a tokio runtime this happens on a blocking thread, and an
/// [`open`](SledStore::open) of the same directory in this process waits for it.
/// [`close`](SledStore::close) does the same and reports the last sync's result.
pub struct SledStore {
    path: PathBuf,
    options: Options,
    /// `None` once closed, or while a reopen failed (`stranded`). Reads hold a read guard
    /// until their blocking work is done, so `close` (the writer) waits for reads in
    /// flight.
    state: Arc<RwLock<Option<Open>>>,
    /// What a failed reopen kept (the directory lock, and why it failed), for the next
    /// [`recover`](Store::recover); `Some` only while `state` is `None`.
    stranded: std::sync::Mutex<Option<Stranded>>,
    /// Set by the writer when a group failed: sled must be reopened.
    failed: Arc<AtomicBool>,
    leases: LeaseTable,
    /// Permits to read sled on a blocking thread: as many as the machine runs threads at
    /// once, since more readers than that only contend with each other and with the
    /// writer inside sled (and each is a thread of tokio's blocking pool).
    readers: Arc<tokio::sync::Semaphore>,
    /// Whether the open read the whole tree (it was not sealed).
    #[cfg(test)]
    scanned: bool,
}

/// Everything that lives while the store is open; dropped in field order, so the
/// directory lock is released only after the writer has stopped and sled has closed, and
/// a temporary directory is removed last.
struct Open {
    writer: Writer,
    db: sled::Db,
    /// Which writes reads may return: see `sync::Visibility`.
    visible: Arc<Visibility>,
    /// Recently written executions, which reads of them find here (see `recent`).
    recent: Arc<Recent>,
    /// The store's directory, to seal on a clean close (`None` for a temporary store).
    seal: Option<PathBuf>,
    lock: DirLock,
    _temporary: Option<RemoveDir>,
}

/// What opening the data directory gives: the writer, the database, what reads
/// wait for (see `sync::Visibility`), the recently written executions (see `recent`), and
/// whether the open read the whole tree.
type OpenedData = (Writer, sled::Db, Arc<Visibility>, Arc<Recent>, bool);

/// The parts of an [`Open`] store that outlive a reopen.
struct Kept {
    seal: Option<PathBuf>,
    lock: DirLock,
    temporary: Option<RemoveDir>,
}

/// A store whose reopen after a write error failed.
struct Stranded {
    kept: Kept,
    cause: String,
}

impl Open {
    /// Stops the writer and closes sled after a write error, keeping the directory lock
    /// for a reopen; blocks. Nothing is sealed: the next open checks the whole tree.
    fn break_up(self) -> Kept {
        let Open {
            writer,
            db,
            visible: _,
            recent: _,
            seal,
            lock,
            _temporary,
        } = self;
        let finished = std::panic::catch_unwind(AssertUnwindSafe(move || {
            let result = writer.finish();
            drop(db);
            result
        }));
        match finished {
            Ok(Ok(())) => {}
            // Expected: the disk that failed a write fails the last sync too.
            Ok(Err(e)) => tracing::warn!(error = %e, "the broken store's last sync failed"),
            Err(payload) => {
                let e = sled_panicked(payload, "closing after a write error");
                tracing::warn!(error = %e, "closing the broken store failed");
            }
        }
        Kept {
            seal,
            lock,
            temporary: _temporary,
        }
    }

    /// Finishes the queued writes, syncs, closes sled, seals its files (see `seal`) and
    /// releases the directory; blocks.
    fn finish(self) -> Result<(), StoreError> {
        let Open {
            writer,
            db,
            visible: _,
            recent: _,
            seal,
            lock,
            _temporary,
        } = self;
        let result = writer.finish();
        // sled's own close flushes and syncs its log.
        drop(db);
        if let (Some(dir), Ok(())) = (seal, &result) {
            integrity::seal(&dir, &dir.join(DATA_DIR));
        }
        drop(lock);
        drop(_temporary);
        result
    }

    /// Starts finishing (see [`finish`](Open::finish)): on a blocking thread inside a
    /// tokio runtime, here and now outside one. Marks the directory as closing first, so
    /// that an open of it in this process waits for the finish. With `log`, an error is
    /// also logged, for a finish nobody waits for.
    fn start_finishing(self, log: bool) -> Finishing {
        self.lock.closing();
        let finish = move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.finish()))
                .unwrap_or_else(|payload| Err(sled_panicked(payload, "closing")));
            if let (true, Err(e)) = (log, &result) {
                tracing::error!(error = %e, "closing a dropped store failed");
            }
            result
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Finishing::Background(runtime.spawn_blocking(finish)),
            // Not in a tokio runtime: there is no runtime thread to keep free.
            Err(_) => Finishing::Done(finish()),
        }
    }
}

/// A store being finished, from [`Open::start_finishing`].
enum Finishing {
    Background(tokio::task::JoinHandle<Result<(), StoreError>>),
    Done(Result<(), StoreError>),
}

impl Finishing {
    async fn wait(self) -> Result<(), StoreError> {
        match self {
            Finishing::Background(finishing) => finishing
                .await
                .unwrap_or_else(|e| Err(StoreError::backend(e))),
            Finishing::Done(result) => result,
        }
    }
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
        let mut debug = f.debug_struct("SledStore");
        debug.field("path", &self.path);
        if let Ok(state) = self.state.try_read() {
            debug.field("open", &state.is_some());
        }
        debug.finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens the store in directory `path`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::Locked`] if a store is already open on `path`, in this
    /// process or another one; with [`StoreError::Corrupt`] if the store is not what it
    /// acknowledged (see [`Options::accept_rollback`]); and with an
    /// [`InvalidInput`](std::io::ErrorKind) I/O error (as [`StoreError::Backend`]) if
    /// `path` is empty.
    ///
    /// Blocks: while sled reads its log, while the store checks its contents (after a
    /// crash it reads all of them), and while a store of this process on the same
    /// directory finishes closing.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// Like [`open`](SledStore::open), with the given [`Options`] (or
    /// [`Durability`](crate::Durability)).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: impl Into<Options>,
    ) -> Result<SledStore, StoreError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            // Rather than the current directory, which an empty path would resolve to.
            return Err(StoreError::backend(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "cannot open a store at an empty path: name its directory",
            )));
        }
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
        let lock = DirLock::acquire(&path)?;
        let failed = Arc::new(AtomicBool::new(false));
        let (writer, db, visible, recent, _scanned) = Self::open_data(&path, options, &failed)?;
        let seal = temporary.is_none().then(|| path.clone());
        Ok(SledStore {
            path,
            options,
            state: Arc::new(RwLock::new(Some(Open {
                writer,
                db,
                visible,
                recent,
                seal,
                lock,
                _temporary: temporary,
            }))),
            stranded: std::sync::Mutex::new(None),
            failed,
            leases: LeaseTable::new(),
            readers: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            #[cfg(test)]
            scanned: _scanned,
        })
    }

    /// Opens sled in the store's directory `path`, whose lock the caller holds, checks
    /// what it holds, and starts its writer; returns whether the check read the whole
    /// tree. Blocks.
    fn open_data(
        path: &Path,
        options: Options,
        failed: &Arc<AtomicBool>,
    ) -> Result<OpenedData, StoreError> {
        let data = path.join(DATA_DIR);
        let config = sled::Config::new()
            .path(&data)
            .cache_capacity(options.cache_capacity.max(1024 * 1024));
        // Timed for the debug event below: on a large store the seal's checksum and
        // sled's own open are most of an open (see benches/reopen.rs).
        let started = std::time::Instant::now();
        repair::prepare(&data)?;
        let sealed = integrity::sealed(path, &data);
        let seal_checked = started.elapsed();
        let db = open_sled(&config)?;
        let sled_opened = started.elapsed();
        let what = format!("the sled store in {}", path.display());
        let migration = crate::format::prepare(&db, &what)?;
        let log_path = data.join(SLED_LOG);
        let checked = integrity::check(path, &db, &log_path, sealed, options.accept_rollback)?;
        let scanned = checked.scanned;
        tracing::debug!(
            path = %path.display(),
            read_whole = scanned,
            until_sealed = ?seal_checked,
            until_sled_opened = ?sled_opened,
            until_checked = ?started.elapsed(),
            "store opened"
        );
        // Write access because some systems refuse to fsync a file opened read-only.
        let log = File::options()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| io_error(e, "cannot open", &log_path))?;
        let mut disk = Disk::new(
            db.clone(),
            log,
            Blobs::new(data),
            checked.mark,
            (checked.group, checked.digest),
            options.durability,
            failed.clone(),
        );
        if let Some(writes) = migration {
            // A group like any other: numbered, in the digest, durable before use.
            disk.write_now(writes)?;
        }
        // After the migration, which may write the lists.
        disk.applier.running = crate::running::RunningIndex::load(&db)?;
        let visible = disk.applier.visibility.clone();
        let recent = disk.applier.recent.clone();
        let writer = Writer::spawn(disk)?;
        Ok((writer, db, visible, recent, scanned))
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes every write already asked for, syncs, and releases the directory, which
    /// can then be opened again. Every later call on this store returns
    /// [`StoreError::Closed`]; closing again does nothing. Waits for reads in flight; the
    /// blocking part (which includes reading sled's log once, for a checksum that spares
    /// the next open a read of the whole store) runs on tokio's blocking threads.
    ///
    /// Durable: when this returns `Ok`, everything the store acknowledged survives a crash
    /// (as it already did when acknowledged); an `Err` reports that the last sync failed.
    pub async fn close(&self) -> Result<(), StoreError> {
        let mut state = self.state.write().await;
        if let Some(stranded) = self.stranded().take() {
            // Nothing to finish: the writer stopped and sled closed when the reopen began.
            drop(stranded.kept);
            return Err(StoreError::backend(std::io::Error::other(format!(
                "the store could not be reopened after a write error: {}",
                stranded.cause
            ))));
        }
        let Some(open) = state.take() else {
            return Ok(());
        };
        drop(state);
        // Started before the next await, so that dropping this future mid-way still
        // closes the store.
        open.start_finishing(false).wait().await
    }

    /// The open state, for as long as the guard lives; `Closed` once closed, a backend
    /// error while a reopen after a write error has not succeeded.
    async fn open_state(&self) -> Result<OwnedRwLockReadGuard<Option<Open>, Open>, StoreError> {
        OwnedRwLockReadGuard::try_map(self.state.clone().read_owned().await, Option::as_ref)
            .map_err(|_| self.not_open())
    }

    /// Why there is no open state.
    fn not_open(&self) -> StoreError {
        match &*self.stranded() {
            Some(stranded) => StoreError::backend(std::io::Error::other(format!(
                "the store is reopening after a write error; the last try failed: {}",
                stranded.cause
            ))),
            None => StoreError::Closed,
        }
    }

    fn stranded(&self) -> std::sync::MutexGuard<'_, Option<Stranded>> {
        // One assignment at a time: consistent after any panic.
        self.stranded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Store::recover`]: reopens sled in place if a write failed since it was
    /// opened (or a reopen failed), waiting for the reads in flight; does nothing
    /// otherwise. The blocking part runs on tokio's blocking threads.
    pub async fn recover(&self) -> Result<(), StoreError> {
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut state = self.state.clone().write_owned().await;
        let stranded = self.stranded().take();
        let kept = match state.take() {
            Some(open) => open,
            None => match stranded {
                Some(stranded) => {
                    let path = self.path.clone();
                    let options = self.options;
                    let failed = self.failed.clone();
                    return self
                        .reopen(state, stranded.kept, path, options, failed)
                        .await;
                }
                // Closed.
                None => return Err(StoreError::Closed),
            },
        };
        if !self.failed.load(Ordering::SeqCst) {
            // Another call reopened it while this one waited for the lock.
            *state = Some(kept);
            return Ok(());
        }
        // Closing sled gives up the reads it still serves; while its disk is full, sled
        // could not open again, and a store that cannot open can answer nothing.
        let data = self.path.join(DATA_DIR);
        if let Err(e) = blocking(move || probe_space(&data)).await {
            *state = Some(kept);
            return Err(e);
        }
        tracing::warn!(path = %self.path.display(), "reopening the store after a write error");
        let path = self.path.clone();
        let options = self.options;
        let failed = self.failed.clone();
        let kept = blocking(move || Ok(kept.break_up())).await?;
        self.reopen(state, kept, path, options, failed).await
    }

    /// Opens sled again into `state` with the `kept` lock; on failure the store stays
    /// stranded until the next [`recover`](Self::recover).
    async fn reopen(
        &self,
        mut state: tokio::sync::OwnedRwLockWriteGuard<Option<Open>>,
        kept: Kept,
        path: PathBuf,
        options: Options,
        failed: Arc<AtomicBool>,
    ) -> Result<(), StoreError> {
        let opened = blocking(move || {
            failed.store(false, Ordering::SeqCst);
            let opened = Self::open_data(&path, options, &failed);
            if opened.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            Ok((opened, kept))
        })
        .await?;
        match opened {
            (Ok((writer, db, visible, recent, _)), kept) => {
                *state = Some(Open {
                    writer,
                    db,
                    visible,
                    recent,
                    seal: kept.seal,
                    lock: kept.lock,
                    _temporary: kept.temporary,
                });
                tracing::info!(path = %self.path.display(), "store reopened after a write error");
                Ok(())
            }
            (Err(e), kept) => {
                let cause = e.to_string();
                *self.stranded() = Some(Stranded { kept, cause });
                Err(e)
            }
        }
    }

    /// Runs the blocking read `f` on the open database, on a blocking thread.
    async fn read<T, F>(&self, doing: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        // Never closed: a permit always comes.
        let permit = self.readers.clone().acquire_owned().await;
        let open = self.open_state().await?;
        let read = move || {
            let _permit = permit;
            let mut reader = Reader {
                db: &open.db,
                keys: Vec::new(),
                prefixes: Vec::new(),
                whole: false,
            };
            let read = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut reader)))
                .unwrap_or_else(|payload| Err(sled_panicked(payload, doing)));
            // Only what is durable: what the read saw of a group being synced is returned
            // once that group is.
            if reader.whole {
                open.visible.wait_durable();
            } else {
                open.visible.wait_reads(&reader.keys, &reader.prefixes);
            }
            read
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(read)
                .await
                .unwrap_or_else(|e| Err(StoreError::backend(e))),
            // Not in a tokio runtime: there is no runtime thread to keep free.
            Err(_) => read(),
        }
    }

    /// Hands `request` to the writer; holding the state while sending means `close`
    /// cannot stop the writer between the check and the send. Boxed: a request is some
    /// 500 bytes, which every future awaiting this one would otherwise hold, and the
    /// writer's queue would copy.
    async fn send(&self, request: Box<Request>) -> Result<(), StoreError> {
        // Without waiting when nothing holds or waits for the state's write lock (a close or
        // a reopen), which is nearly always; the wait is boxed, so that the future of every
        // commit does not carry the lock's waiter.
        if let Ok(state) = self.state.try_read() {
            return match &*state {
                Some(open) => open.writer.send(request),
                None => Err(self.not_open()),
            };
        }
        Box::pin(async move { self.open_state().await?.writer.send(request) }).await
    }

    /// Hands a request to the writer (see [`send`](Self::send)) and waits for its answer.
    /// Boxed by the caller, before this future holds it: moved in whole, the request would
    /// be copied once more on every commit.
    async fn submit<T>(
        &self,
        request: Box<Request>,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.send(request).await?;
        answer.await.unwrap_or_else(|_| Err(writer::writer_gone()))
    }

    async fn check_open(&self) -> Result<(), StoreError> {
        self.open_state().await.map(drop)
    }
}

/// The running executions that `filter` selects, at most `limit`, in id order: from the
/// running lists, which may also name executions no longer running, and the entries of
/// the running executions outside them (see `running`).
///
/// Each round takes the smallest ids after the last one taken, as many as the page still
/// needs, from both (the lists' selected in linear time, the entries by a range scan),
/// until enough of them pass the filter or neither holds more. The lists hold at most
/// `running::MAX_LISTED` ids, so a page costs at most that much more than a page of
/// another status.
fn list_running(
    db: &sled::Db,
    filter: &ListFilter,
    limit: usize,
) -> Result<Vec<ExecutionRecord>, StoreError> {
    let lists = db
        .scan_prefix(keys::RUNNING)
        .collect::<Result<Vec<_>, _>>()
        .map_err(sled_error)?;
    let mut ids = Vec::new();
    for (key, value) in &lists {
        ids.extend(keys::running_list_ids(key, value)?);
    }
    let mut records = Vec::new();
    let mut after = filter.after.clone();
    while records.len() < limit {
        let wanted = limit - records.len();
        let mut listed: Vec<&str> = match &after {
            Some(after) => ids
                .iter()
                .copied()
                .filter(|&id| id > after.as_str())
                .collect(),
            None => ids.clone(),
        };
        let lists_done = listed.len() <= wanted;
        if !lists_done {
            listed.select_nth_unstable(wanted);
            listed.truncate(wanted);
        }
        let own = index_ids(db, keys::RUNNING_ENTRY, after.as_deref())
            .take(wanted)
            .collect::<Result<Vec<_>, _>>()?;
        let entries_done = own.len() < wanted;
        let mut round = listed;
        round.extend(own.iter().map(String::as_str));
        round.sort_unstable();
        // An id two lists name, or a list and an entry, is one execution.
        round.dedup();
        let cut = round.len() > wanted;
        round.truncate(wanted);
        for id in &round {
            if let Some(record) = writer::load(db, &keys::execution(id))? {
                if filter.matches(&record) {
                    records.push(record);
                }
            }
        }
        if lists_done && entries_done && !cut {
            break;
        }
        after = round.last().map(|id| (*id).to_owned());
    }
    Ok(records)
}

/// The ids of the `u/` index entries under `prefix` (`u/` and a status byte) after
/// `after`, in id order.
fn index_ids<'a>(
    db: &'a sled::Db,
    prefix: &'a [u8],
    after: Option<&str>,
) -> impl Iterator<Item = Result<String, StoreError>> + 'a {
    let mut start = prefix.to_vec();
    let start = match after {
        Some(after) => {
            start.extend_from_slice(after.as_bytes());
            Bound::Excluded(start)
        }
        None => Bound::Included(start),
    };
    db.range((start, Bound::Unbounded))
        .keys()
        .map(|key| key.map_err(sled_error))
        .take_while(move |key| key.as_ref().map_or(true, |key| key.starts_with(prefix)))
        .map(move |key| keys::parse_unfinished(prefix, &key?))
}

/// A read of the tree that notes what it read, so that it waits only for the syncs of
/// the groups that wrote it (see `sync::Visibility`).
struct Reader<'a> {
    db: &'a sled::Db,
    /// The keys read one by one, and the prefixes of the keys scanned.
    keys: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
    /// Whether anything else was read (a scan): it then waits for every group applied.
    whole: bool,
}

impl Reader<'_> {
    /// The value of `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        self.keys.push(key.to_vec());
        self.db.get(key).map_err(sled_error)
    }

    /// The tree, for a scan of keys that start with `prefix` only.
    fn within(&mut self, prefix: &[u8]) -> &sled::Db {
        self.prefixes.push(prefix.to_vec());
        self.db
    }

    /// The whole tree, for other scans.
    fn tree(&mut self) -> &sled::Db {
        self.whole = true;
        self.db
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // A read cancelled mid-way may still hold the state on a blocking thread; the
        // store then closes when that read ends, on its thread.
        if let Some(open) = self
            .state
            .try_write()
            .ok()
            .and_then(|mut state| state.take())
        {
            drop(open.start_finishing(true));
        }
    }
}

#[async_trait]
impl Store for SledStore {
    /// See [`SledStore::close`].
    async fn close(&self) -> Result<(), StoreError> {
        SledStore::close(self).await
    }

    /// See [`SledStore::recover`].
    async fn recover(&self) -> Result<(), StoreError> {
        SledStore::recover(self).await
    }

    /// Durable: when this returns `Ok(Created::New)`, the record and its input have been
    /// written and fsynced, and survive a crash or a power cut.
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        let (request, answer) = Request::create(record, input)?;
        self.submit(Box::new(request), answer).await
    }

    /// A recently written execution is read from memory (see `recent`), any other from
    /// sled on a blocking thread.
    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        if let Some(kept) = self.open_state().await?.recent.get(id) {
            return Ok(Some(kept.value.record.clone()));
        }
        let key = keys::execution(id);
        self.read("reading a record", move |reader| {
            match reader.get(&key)? {
                Some(bytes) => keys::decode_record(&key, &bytes).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// Like [`load`](Store::load), from memory when it can.
    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let recent = self.open_state().await?.recent.get(id);
        if let Some(input) = recent.and_then(|kept| kept.value.input.clone()) {
            return Ok(Some(input));
        }
        let id = id.to_owned();
        self.read("reading an input", move |reader| {
            let key = keys::execution(&id);
            let Some(bytes) = reader.get(&key)? else {
                return Ok(None);
            };
            if let Some(input) = keys::decode_execution(&key, &bytes)?.input {
                return Ok(Some(input));
            }
            let input = reader.get(&keys::input(&id))?;
            Ok(input.map(|bytes| bytes.to_vec()))
        })
        .await
    }

    /// Durable: when this returns `Ok`, the record, its history entries, its index changes,
    /// its operation changes and its deliveries have been written in one atomic batch and
    /// fsynced, and survive a crash or a power cut. Commits of other executions made at the
    /// same time share the fsync.
    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        let (request, answer) = Request::commit(commit)?;
        self.submit(Box::new(request), answer).await
    }

    /// Durable: when this returns `Ok(Delivered::Applied { .. })`, the operation (and the
    /// execution it woke) has been written and fsynced like a commit, sharing its group's
    /// fsync.
    async fn deliver(&self, delivery: Delivery) -> Result<Delivered, StoreError> {
        let (request, answer) = Request::deliver(delivery)?;
        self.submit(Box::new(request), answer).await
    }

    /// A recently written operation is read from memory (see `recent`), any other from
    /// sled on a blocking thread.
    async fn operation(
        &self,
        execution: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let key = keys::operation(execution, key);
        if let Some(kept) = self.open_state().await?.recent.operation(&key) {
            return Ok(Some(kept.op.clone()));
        }
        self.read("reading an operation", move |reader| {
            match reader.get(&key)? {
                Some(bytes) => keys::decode_operation(&key, &bytes).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn operation_by_token(&self, token: &str) -> Result<Option<OperationRecord>, StoreError> {
        let token_key = keys::token(token);
        self.read("reading an operation", move |reader| {
            let Some(owner) = reader.get(&token_key)? else {
                return Ok(None);
            };
            let (execution, key): (String, String) = keys::decode(&token_key, &owner)?;
            let key = keys::operation(&execution, &key);
            match reader.get(&key)? {
                Some(bytes) => keys::decode_operation(&key, &bytes).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn operations(
        &self,
        execution: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let prefix = keys::operation_prefix(execution);
        let start = match after {
            Some(after) => Bound::Excluded(keys::operation(execution, after)),
            None => Bound::Included(prefix.clone()),
        };
        self.read("reading operations", move |reader| {
            let db = reader.within(&prefix);
            let mut ops = Vec::new();
            for entry in db.range((start, Bound::Unbounded)) {
                let (key, bytes) = entry.map_err(sled_error)?;
                if ops.len() >= limit || !key.starts_with(&prefix) {
                    break;
                }
                ops.push(keys::decode_operation(&key, &bytes)?);
            }
            Ok(ops)
        })
        .await
    }

    /// Durable: when this returns, the deletion has been written in one atomic batch and
    /// fsynced.
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let (request, answer) = Request::delete(id);
        self.submit(Box::new(request), answer).await
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
        self.check_open().await?;
        Ok(self.leases.claim(id, owner, now, until))
    }

    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        self.check_open().await?;
        self.leases.release(id, owner);
        Ok(())
    }

    /// The lease is checked in memory, like every lease of this store.
    async fn commit_leased(&self, commit: Commit, owner: u128) -> Result<Committed, StoreError> {
        self.leases.check(&commit.record.id, owner)?;
        // Not `self.commit(commit)`: through `async_trait`, each call of a trait method is a
        // boxed future, and this is every commit of an engine.
        let (request, answer) = Request::commit(commit)?;
        self.submit(Box::new(request), answer).await
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.read("reading the timer index", move |reader| {
            let db = reader.tree();
            let mut due = Vec::new();
            for key in db.scan_prefix(keys::TIMER).keys() {
                if due.len() >= limit {
                    break;
                }
                let (at, id) = keys::parse_timer(&key.map_err(sled_error)?)?;
                if at > now {
                    break;
                }
                due.push((at, id));
            }
            Ok(due)
        })
        .await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read("reading the timer index", |reader| {
            let db = reader.tree();
            match db.scan_prefix(keys::TIMER).keys().next() {
                Some(key) => Ok(Some(keys::parse_timer(&key.map_err(sled_error)?)?.0)),
                None => Ok(None),
            }
        })
        .await
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
        self.read("reading the timer index", move |reader| {
            let db = reader.tree();
            let mut entries = Vec::new();
            for key in db.range((start, Bound::Unbounded)).keys() {
                let key = key.map_err(sled_error)?;
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
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        let filter = filter.clone();
        let limit = filter.limit.unwrap_or(usize::MAX);
        self.read("listing records", move |reader| {
            let db = reader.tree();
            let mut records = Vec::new();
            if filter.status == Some(Status::Running) {
                return list_running(db, &filter, limit);
            }
            if let Some(prefix) = filter.status.and_then(keys::unfinished_prefix) {
                // An unfinished status: its index, never the finished executions.
                for id in index_ids(db, &prefix, filter.after.as_deref()) {
                    if records.len() >= limit {
                        break;
                    }
                    if let Some(record) = writer::load(db, &keys::execution(&id?))? {
                        if filter.matches(&record) {
                            records.push(record);
                        }
                    }
                }
                return Ok(records);
            }
            let start = match &filter.after {
                Some(after) => Bound::Excluded(keys::execution(after)),
                None => Bound::Included(keys::EXECUTION.to_vec()),
            };
            for entry in db.range((start, Bound::Unbounded)) {
                let (key, bytes) = entry.map_err(sled_error)?;
                if records.len() >= limit || !key.starts_with(keys::EXECUTION) {
                    break;
                }
                let record = keys::decode_record(&key, &bytes)?;
                if filter.matches(&record) {
                    records.push(record);
                }
            }
            Ok(records)
        })
        .await
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let id = id.to_owned();
        self.read("reading a history", move |reader| {
            read_history(reader.tree(), &id)
        })
        .await
    }

    async fn save_layout(&self, layout: u64, description: Vec<u8>) -> Result<(), StoreError> {
        let (request, answer) = Request::save_layout(layout, description);
        self.submit(Box::new(request), answer).await
    }

    async fn layout(&self, layout: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read("reading a layout", move |reader| {
            let bytes = reader.get(&keys::layout(layout))?;
            Ok(bytes.map(|b| b.to_vec()))
        })
        .await
    }
}

/// The retained history of `id`: its chunks, then the tail in its execution value,
/// without the entries below the value's prune line.
pub(crate) fn read_history(db: &sled::Db, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let key = keys::execution(id);
    let Some(bytes) = db.get(&key).map_err(sled_error)? else {
        return Ok(Vec::new());
    };
    let execution = keys::decode_execution(&key, &bytes)?;
    let mut history = Vec::new();
    for entry in db.scan_prefix(keys::history_prefix(id)) {
        let (key, bytes) = entry.map_err(sled_error)?;
        history.extend(keys::decode_history(&key, &bytes)?);
    }
    history.extend(keys::decode_entries(&key, &execution.tail)?);
    history.retain(|entry| entry.number >= execution.history_from);
    Ok(history)
}

/// Bytes [`probe_space`] writes: one of sled 0.34's log segments (its default size),
/// which is what an open may need to write.
const PROBE_BYTES: usize = 512 * 1024;

/// Checks that the filesystem of `dir` takes [`PROBE_BYTES`] again, by writing and
/// syncing a file of that size, then removing it.
fn probe_space(dir: &Path) -> Result<(), StoreError> {
    use std::io::Write;
    let path = dir.join("durable.probe");
    let written = File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0; PROBE_BYTES])?;
        file.sync_data()
    });
    let removed = std::fs::remove_file(&path);
    written.map_err(|e| io_error(e, "no room to reopen the store yet: cannot write", &path))?;
    removed.map_err(|e| io_error(e, "cannot remove", &path))
}

/// Runs `f` on a blocking thread inside a tokio runtime, here and now outside one.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(StoreError::backend(e))),
        Err(_) => f(),
    }
}

/// How long [`open_sled`] waits for sled's own lock on its log file.
const SLED_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled, waiting for sled's own lock on its log file.
///
/// Called only while holding the directory lock, which proves that no open store uses
/// the directory, so a taken sled lock can only be held a moment longer by: the
/// background threads of a closed store of this process (sled lets them finish after the
/// last `sled::Db` drops), or a child process forked by another thread, which holds a
/// copy of sled's file until it execs. sled 0.34 offers no way to release its lock
/// explicitly (it is an `flock` on a file sled keeps private), so the open retries until
/// those let go. Any other error is returned at once.
///
/// sled asserts on some damaged data instead of returning an error; such a panic is
/// returned as [`StoreError::Corrupt`].
fn open_sled(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + SLED_RELEASE_TIMEOUT;
    loop {
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| config.open()))
            .map_err(|payload| sled_panicked(payload, "opening its log"))?;
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(sled_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use durable_core::{ExecutionRecord, Status};

    use super::*;

    fn record(seq: u64) -> ExecutionRecord {
        ExecutionRecord {
            id: "a".into(),
            workflow: "w".into(),
            fingerprint: 1,
            seq,
            status: Status::Running,
            position: None,
            wake_at: None,
            output: None,
            message: None,
            history_next: 0,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
            parent: None,
            awaiting: Vec::new(),
        }
    }

    /// Pages of running executions skip the ids their lists still name after those
    /// executions stopped running (completed, suspended, deleted), list once those two
    /// lists name (they ran, waited and ran again), and lose none: with lists of several
    /// shapes (created together; created one by one), whatever the page size, before and
    /// after a reopen.
    #[tokio::test]
    async fn running_pages_skip_stale_ids_and_lose_none() {
        running_pages(crate::running::MAX_LISTED, false).await;
    }

    /// The same with lists that overflow: the oldest ones' executions have entries of
    /// their own, which the pages merge with the lists, the entries' ids sorting before
    /// the lists' and after them.
    #[tokio::test]
    async fn running_pages_merge_lists_and_own_entries() {
        running_pages(12, false).await;
        running_pages(12, true).await;
    }

    async fn running_pages(max_listed: usize, reversed: bool) {
        // The index is made as the store opens, on this thread.
        crate::running::TEST_MAX_LISTED.with(|max| max.set(max_listed));
        let dir = std::env::temp_dir().join(format!(
            "durable-running-{}-{max_listed}-{reversed}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(SledStore::open(&dir).unwrap());
        // Reversed, the executions created last (which stay listed) sort first.
        let id = |n: u32| format!("x{:03}", if reversed { 59 - n } else { n });
        // One in five of another workflow, for pages that filter some out.
        let rec = |n: u32, seq: u64, status: Status| {
            let mut r = record(seq);
            r.id = id(n);
            r.status = status;
            if n.is_multiple_of(5) {
                r.workflow = "other".into();
            }
            r
        };
        // 40 created at once (a few groups, so a few lists), 20 one by one.
        let mut creates = tokio::task::JoinSet::new();
        for n in 0..40 {
            let (store, r) = (store.clone(), rec(n, 0, Status::Running));
            creates.spawn(async move { store.create(r, Vec::new()).await.map(drop) });
        }
        while let Some(created) = creates.join_next().await {
            created.unwrap().unwrap();
        }
        for n in 40..60 {
            let r = rec(n, 0, Status::Running);
            store.create(r, Vec::new()).await.unwrap();
        }
        // One in three stops running, in one of three ways: fewer than run, so the lists
        // keep naming them (the writer rewrites a list only when more are gone than run).
        let mut running = Vec::new();
        for n in 0..60 {
            let status = match (n % 3, n / 3 % 3) {
                (0 | 1, _) => {
                    running.push(n);
                    continue;
                }
                (_, 0) => Status::Completed,
                (_, 1) => Status::Suspended,
                _ => {
                    assert!(store.delete(&id(n)).await.unwrap());
                    continue;
                }
            };
            store
                .commit(Commit::new(rec(n, 1, status), 0))
                .await
                .unwrap();
        }
        // A few running ones wait and run again: named by the list they joined first
        // (stale there) and by the one they joined again. Not when reversed, so that
        // there the entries' ids all sort after the lists'.
        for n in (1..60).step_by(9).filter(|_| !reversed) {
            for (seq, status) in [(1, Status::Suspended), (2, Status::Running)] {
                let next = rec(n, seq, status);
                store.commit(Commit::new(next, seq - 1)).await.unwrap();
            }
        }
        let named = |db: &sled::Db| -> Vec<String> {
            let mut named: Vec<String> = db
                .scan_prefix(keys::RUNNING)
                .flat_map(|entry| {
                    let (key, value) = entry.unwrap();
                    keys::decode_running_list(&key, &value).unwrap()
                })
                .collect();
            named.sort();
            named
        };
        let state = store.state.read().await;
        let mut named = named(&state.as_ref().unwrap().db);
        drop(state);
        let all = named.len();
        named.dedup();
        if max_listed < crate::running::MAX_LISTED {
            let state = store.state.read().await;
            let own = state
                .as_ref()
                .unwrap()
                .db
                .scan_prefix(keys::RUNNING_ENTRY)
                .count();
            drop(state);
            assert!(
                own > 0 && !named.is_empty(),
                "{own} own entries, {named:?} listed"
            );
        } else {
            assert!(all > named.len(), "no id named twice");
            assert!(named.len() > running.len(), "no stale id named");
        }
        let expected = |workflow: Option<&str>| -> Vec<String> {
            let of = |n: &u32| if n.is_multiple_of(5) { "other" } else { "w" };
            let mut ids: Vec<String> = running
                .iter()
                .filter(|n| workflow.is_none_or(|w| w == of(n)))
                .map(|&n| id(n))
                .collect();
            ids.sort();
            ids
        };
        async fn pages(store: &SledStore, page: usize, workflow: Option<&str>) -> Vec<String> {
            let mut ids: Vec<String> = Vec::new();
            loop {
                let mut filter = ListFilter::default().status(Status::Running).limit(page);
                filter.workflow = workflow.map(str::to_owned);
                filter.after = ids.last().cloned();
                let records = store.list(&filter).await.unwrap();
                assert!(records.len() <= page);
                let done = records.len() < page;
                ids.extend(records.into_iter().map(|r| r.id));
                if done {
                    return ids;
                }
            }
        }
        for page in [1, 2, 7, 15, 100] {
            for workflow in [None, Some("w"), Some("other")] {
                let listed = pages(&store, page, workflow).await;
                assert_eq!(listed, expected(workflow), "pages of {page}, {workflow:?}");
            }
        }
        store.close().await.unwrap();
        let store = SledStore::open(&dir).unwrap();
        for page in [1, 7, 100] {
            for workflow in [None, Some("other")] {
                let listed = pages(&store, page, workflow).await;
                assert_eq!(listed, expected(workflow), "reopened, {page}, {workflow:?}");
            }
        }
        store.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A reopen after a write error keeps the directory (a temporary one too), its lock
    /// and every acknowledged write, and the store accepts writes again. (A real full
    /// disk is `tests/disk_full.rs`.)
    #[tokio::test]
    async fn recover_reopens_sled_in_place_after_a_write_error() {
        let store = SledStore::temporary().unwrap();
        store.create(record(0), b"in".to_vec()).await.unwrap();
        // What the writer records when a group fails.
        store.failed.store(true, Ordering::SeqCst);
        store.recover().await.unwrap();
        assert!(!store.failed.load(Ordering::SeqCst));
        assert!(
            store.path().exists(),
            "a temporary directory survives a reopen"
        );
        assert!(matches!(
            SledStore::open(store.path()),
            Err(StoreError::Locked { .. })
        ));
        assert_eq!(store.load("a").await.unwrap(), Some(record(0)));
        let commit = Commit {
            record: record(1),
            expected_seq: 0,
            history: Vec::new(),
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        };
        store.commit(commit).await.unwrap();
        assert_eq!(store.load("a").await.unwrap(), Some(record(1)));
        let path = store.path().to_path_buf();
        store.close().await.unwrap();
        assert!(!path.exists(), "removed at the close");
    }

    /// A clean close seals sled's files, and the next open skips reading the whole tree
    /// while they are as sealed: not after a change to them, nor after writes.
    #[tokio::test]
    async fn an_open_reads_the_whole_tree_unless_the_files_are_as_sealed() {
        let dir = std::env::temp_dir().join(format!("durable-sealed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SledStore::open(&dir).unwrap();
        assert!(store.scanned, "a new store");
        store.create(record(0), b"in".to_vec()).await.unwrap();
        store.close().await.unwrap();

        let store = SledStore::open(&dir).unwrap();
        assert!(!store.scanned, "closed cleanly, unchanged");
        assert_eq!(store.load("a").await.unwrap(), Some(record(0)));
        store.close().await.unwrap();
        let store = SledStore::open(&dir).unwrap();
        assert!(!store.scanned, "closed cleanly again");
        let commit = Commit {
            record: record(1),
            expected_seq: 0,
            history: Vec::new(),
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        };
        store.commit(commit).await.unwrap();
        // Not closed: the writes of this session unsealed the files.
        let Some(open) = store.state.write().await.take() else {
            panic!("the store is open");
        };
        // As a crash would leave it: the writer stopped, sled closed, no seal.
        let Open {
            writer, db, lock, ..
        } = open;
        writer.finish().unwrap();
        drop(db);
        drop(lock);
        let store = SledStore::open(&dir).unwrap();
        assert!(store.scanned, "written since the seal");
        assert_eq!(store.load("a").await.unwrap(), Some(record(1)));
        store.close().await.unwrap();

        let store = SledStore::open(&dir).unwrap();
        assert!(!store.scanned, "closed cleanly after the scan");
        store.close().await.unwrap();
        // A file that sled ignores changes nothing it reads, but the files are no longer
        // as sealed.
        std::fs::write(dir.join("sled/blobs/stray"), b"?").unwrap();
        let store = SledStore::open(&dir).unwrap();
        assert!(store.scanned, "changed since the seal");
        store.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
