//! Making a group durable and answering it, and what reads may see meanwhile.
//!
//! Invariants:
//! - The writer thread applies a group, then syncs it here before it takes the next one:
//!   one sync per group, covering every write the group applied.
//! - A group's answers, refusals too, are sent only once the group is durable: a refusal
//!   may rest on a write accepted earlier in the group.
//! - Before any answer of a durable group is sent, `recent` holds what the group wrote,
//!   the group's number is the synced one (see [`Visibility`]), and the high-water mark
//!   records it (see `mark`). So the next group finds `recent` up to date.
//! - Once a group fails (its apply or its sync), every later group fails as well, with a
//!   copy of the first error: its writes would land on top of writes that may be lost,
//!   and sled 0.34 refuses writes after an I/O error anyway. `recent` is emptied, and
//!   readers stop waiting (see [`Visibility`]). `SledStore::recover` opens everything
//!   anew.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use durable_core::{Committed, Created, Delivered, StoreError};
use foldhash::HashSet;
use tokio::sync::oneshot;

use crate::blobs::Blobs;
use crate::digest::WrittenKeys;
use crate::mark::Mark;
use crate::options::Durability;
use crate::recent::{Kept, KeptOp, Recent};

/// The answer channel of a request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Which writes readers may see: those of groups that are durable.
///
/// sled shows an applied batch to readers at once, but a reader must not see (and act
/// on) a write that a crash could still undo. So a read of the tree, once done, waits
/// until what it saw is durable: a read of known keys (or of the keys under a prefix)
/// until the last group that wrote one of them is synced, any other read until every
/// group applied before it ended is. Groups are numbered in apply order and synced in
/// that order.
///
/// Why not a lock held from a group's apply to its sync, as before: every read then
/// waited for whole syncs of groups that had nothing to do with it, and under load a
/// sync is most of the time (a callback's completion reads its token's operation first:
/// twice the completions per second without that wait).
#[derive(Debug)]
pub(crate) struct Visibility {
    state: Mutex<Synced>,
    changed: Condvar,
    /// The number of the last group whose writes may be in the tree; set before its
    /// batch is applied.
    applied: AtomicU64,
}

#[derive(Debug)]
struct Synced {
    /// The number of the last durable group.
    number: u64,
    /// The keys written by the group being synced (the last applied, when it is not the
    /// last durable one): the writer syncs each group before it applies the next.
    pending: WrittenKeys,
    /// Set when a group failed: nothing applied after the last durable group will be
    /// synced, and readers stop waiting for it.
    failed: bool,
    /// How many readers wait for a sync. std's `Condvar::notify_all` is a system call
    /// even with no one waiting, and a group's answers wait for it: most groups have no
    /// reader waiting.
    waiters: usize,
}

impl Visibility {
    /// Every group up to `group` is durable, none is applied beyond it.
    pub(crate) fn new(group: u64) -> Visibility {
        Visibility {
            state: Mutex::new(Synced {
                number: group,
                pending: WrittenKeys::default(),
                failed: false,
                waiters: 0,
            }),
            changed: Condvar::new(),
            applied: AtomicU64::new(group),
        }
    }

    /// Group `number`'s writes, to `keys`, may be in the tree from now on; every group
    /// before it is durable.
    pub(crate) fn applying(&self, number: u64, keys: WrittenKeys) {
        self.lock().pending = keys;
        self.applied.store(number, Ordering::SeqCst);
    }

    /// The number of the last durable group.
    #[cfg(test)]
    pub(crate) fn synced(&self) -> u64 {
        self.lock().number
    }

    /// How many readers wait for a sync.
    #[cfg(test)]
    pub(crate) fn waiters(&self) -> usize {
        self.lock().waiters
    }

    /// Group `number` (the one applied last) and every group before it are durable.
    pub(crate) fn durable(&self, number: u64) {
        let mut state = self.lock();
        state.number = number;
        // Freed once readers may go on.
        let written = std::mem::take(&mut state.pending);
        // Read under the lock: a reader that starts waiting after it is released finds
        // the new number first.
        let waiting = state.waiters > 0;
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
        drop(written);
    }

    fn fail(&self) {
        self.lock().failed = true;
        self.changed.notify_all();
    }

    /// Waits until what a read of the tree that has just ended saw is durable: every group
    /// applied by now is synced, or a group failed (the read then saw what a failed
    /// group left, as the tree holds it).
    pub(crate) fn wait_durable(&self) {
        let target = self.applied.load(Ordering::SeqCst);
        self.wait_for(target);
    }

    /// Waits until what a read of exactly `keys`, and of keys starting with `prefixes`,
    /// that has just ended saw is durable: the last group that wrote one of them is
    /// synced (or a group failed).
    pub(crate) fn wait_reads(&self, keys: &[Vec<u8>], prefixes: &[Vec<u8>]) {
        if let Some(group) = self.pending_group(keys, prefixes) {
            self.wait_for(group);
        }
    }

    /// The group not yet durable that wrote one of `keys` or a key starting with one of
    /// `prefixes`, if any.
    pub(crate) fn pending_group(&self, keys: &[Vec<u8>], prefixes: &[Vec<u8>]) -> Option<u64> {
        let state = self.lock();
        let exact = || {
            keys.iter()
                .any(|key| state.pending.contains(key.as_slice()))
        };
        let scanned = || {
            prefixes
                .iter()
                .any(|prefix| state.pending.any_with_prefix(prefix))
        };
        (exact() || scanned()).then(|| self.applied.load(Ordering::SeqCst))
    }

    fn wait_for(&self, group: u64) {
        let mut state = self.lock();
        while state.number < group && !state.failed {
            state.waiters += 1;
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiters -= 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Synced> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An answer that waits for the sync of its group.
pub(crate) enum Waiting {
    Create(Reply<Created>, Result<Created, StoreError>),
    Commit(Reply<Committed>, Result<Committed, StoreError>),
    Deliver(Reply<Delivered>, Delivered),
    Delete(Reply<bool>, bool),
    SaveLayout(Reply<()>),
}

impl Waiting {
    pub(crate) fn send(self) {
        // A caller that stopped waiting (its future was dropped) needs no answer.
        match self {
            Waiting::Create(reply, created) => drop(reply.send(created)),
            Waiting::Commit(reply, result) => drop(reply.send(result)),
            Waiting::Deliver(reply, delivered) => drop(reply.send(Ok(delivered))),
            Waiting::Delete(reply, existed) => drop(reply.send(Ok(existed))),
            Waiting::SaveLayout(reply) => drop(reply.send(Ok(()))),
        }
    }

    pub(crate) fn fail(self, error: StoreError) {
        match self {
            Waiting::Create(reply, _) => drop(reply.send(Err(error))),
            Waiting::Commit(reply, _) => drop(reply.send(Err(error))),
            Waiting::Deliver(reply, _) => drop(reply.send(Err(error))),
            Waiting::Delete(reply, _) => drop(reply.send(Err(error))),
            Waiting::SaveLayout(reply) => drop(reply.send(Err(error))),
        }
    }
}

/// A copy of `error` for each request of a failed group: the same variant where it can be
/// copied ([`StoreError::Corrupt`]), its message otherwise.
pub(crate) fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Corrupt { key, source } => StoreError::Corrupt {
            key: key.clone(),
            source: source.clone(),
        },
        StoreError::Backend(e) => StoreError::backend(match e.downcast_ref::<io::Error>() {
            Some(io) => io::Error::new(io.kind(), io.to_string()),
            None => io::Error::other(e.to_string()),
        }),
        other => StoreError::backend(io::Error::other(other.to_string())),
    }
}

/// What a group left in the tree, for `recent` once it is durable.
#[derive(Default)]
pub(crate) struct Publish {
    pub(crate) written: Vec<(String, Arc<Kept>)>,
    pub(crate) deleted: HashSet<String>,
    pub(crate) operations: Vec<(Vec<u8>, Option<Arc<KeptOp>>)>,
}

/// A group as the writer thread applied it.
pub(crate) struct Applied {
    /// The group's number if it wrote to the tree, `None` if it only refused and read.
    pub(crate) number: Option<u64>,
    /// `Err` if its batch could not be applied.
    pub(crate) applied: Result<(), StoreError>,
    pub(crate) publish: Publish,
    pub(crate) waiting: Vec<Waiting>,
}

/// What making groups durable needs: the files to sync, the mark, and whom to tell.
pub(crate) struct Syncer {
    pub(crate) db: sled::Db,
    /// sled's log file, `db` in sled's directory, opened separately to fsync it.
    pub(crate) log: File,
    pub(crate) blobs: Blobs,
    pub(crate) mark: Mark,
    pub(crate) durability: Durability,
    /// Set when a group could not be written or synced (see `writer::Applier::failed`).
    pub(crate) failed: Arc<AtomicBool>,
    pub(crate) visibility: Arc<Visibility>,
    pub(crate) recent: Arc<Recent>,
    /// The first failure, which every later group reports too.
    pub(crate) broken: Option<StoreError>,
}

impl Syncer {
    /// Makes every applied write durable.
    ///
    /// `sled::Db::flush` alone is not enough for [`Durability::PowerLoss`]: on Linux, sled
    /// 0.34 ends a flush with `sync_file_range`, which neither flushes the drive's write
    /// cache nor writes the file's size, so a power cut can lose a write it reported
    /// flushed (sled issue #1452); `fdatasync` on the log file does both, once the flush
    /// has written the data. And sled never fsyncs the files of items too large for its
    /// log (see `blobs`).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.db.flush()?;
        match self.durability {
            Durability::PowerLoss => {
                self.log.sync_data()?;
                self.blobs.sync().map(drop)
            }
            Durability::ProcessCrash => Ok(()),
        }
    }

    /// The last sync, whatever the durability, as the store closes: every applied write,
    /// then the mark, so the mark is never durable before what it counts.
    pub(crate) fn sync_all(&mut self) -> io::Result<()> {
        self.db.flush()?;
        self.log.sync_data()?;
        self.blobs.sync()?;
        self.mark.sync()
    }

    /// Fsyncs the mark if its delay is over (see `mark`); with process-crash durability
    /// it waits for the close.
    pub(crate) fn sync_mark_if_due(&mut self) {
        let due = self
            .mark
            .sync_due()
            .is_some_and(|due| due <= Instant::now());
        if due && self.durability == Durability::PowerLoss {
            if let Err(e) = self.mark.sync() {
                tracing::error!(error = %e, "cannot fsync the store's high-water mark");
            }
        }
    }

    /// How long the writer may wait for a request before the mark's fsync is due.
    pub(crate) fn idle_limit(&self) -> Option<std::time::Duration> {
        match self.durability {
            Durability::PowerLoss => self
                .mark
                .sync_due()
                .map(|due| due.saturating_duration_since(Instant::now())),
            Durability::ProcessCrash => None,
        }
    }

    /// Syncs `group` unless it wrote nothing, then answers it.
    pub(crate) fn finish(&mut self, group: Applied) {
        let failed = match (&self.broken, &group.applied, group.number) {
            (Some(e), _, _) => Some(copy_error(e)),
            (None, Err(_), _) => group.applied.err(),
            (None, Ok(()), None) => None,
            (None, Ok(()), Some(_)) => self.sync().map_err(StoreError::backend).err(),
        };
        if let Some(e) = failed {
            self.fail(&e, group.waiting.len());
            group
                .waiting
                .into_iter()
                .for_each(|w| w.fail(copy_error(&e)));
            self.broken.get_or_insert(e);
            return;
        }
        let Publish {
            written,
            deleted,
            operations,
        } = group.publish;
        let replaced = group.number.map(|number| {
            let replaced = self.recent.publish(written, deleted, operations);
            self.visibility.durable(number);
            replaced
        });
        tracing::trace!(answers = group.waiting.len(), "group answered");
        group.waiting.into_iter().for_each(Waiting::send);
        // After the answers, so that a caller does not wait for it: the callers' next
        // requests are prepared while the mark is written (see `mark` for the window
        // this leaves).
        if let Some(number) = group.number {
            if let Err(e) = self.mark.record(number) {
                // The group is durable all the same; only the check of a later open is
                // weaker until a mark is written again.
                tracing::error!(error = %e, "cannot write the store's high-water mark");
            }
        }
        drop(replaced);
    }

    fn fail(&self, error: &StoreError, requests: usize) {
        if self.broken.is_none() {
            tracing::error!(error = %error, requests, "group commit failed");
        }
        self.failed.store(true, Ordering::SeqCst);
        // The failed groups' writes may or may not be in the tree.
        self.recent.clear();
        self.visibility.fail();
    }
}
