//! The exclusive hold a store has on its directory.
//!
//! Invariants:
//! - A [`DirLock`] holds an OS file lock (`flock`) on `<dir>/durable.lock`; at most one
//!   exists per directory, across every process.
//! - The lock is released by an explicit unlock, never by closing the file alone: a child
//!   process forked by any thread of this process holds a copy of the lock file's open
//!   file description until it execs, and a lock held through that copy would outlive the
//!   store (`close` is not enough; close-on-exec only helps once the child execs).
//! - Within this process, a directory whose store is being closed (its [`DirLock`] marked
//!   [`closing`](DirLock::closing)) is waited for by the next [`DirLock::acquire`], so that
//!   closing or dropping a store, which finishes in the background, is followed by a
//!   successful open; a directory whose store is open is [`StoreError::Locked`] at once.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use durable_core::StoreError;

use crate::error::io_error;

/// The file in the store's directory that carries the lock.
const LOCK_FILE: &str = "durable.lock";

/// How long an open waits for a store of this process that is closing on the same
/// directory: closing finishes the queued writes and one sync, so this is generous.
const CLOSING_TIMEOUT: Duration = Duration::from_secs(30);

/// Directories of this process's stores, by canonical path; `true` once closing.
struct Registry {
    dirs: Mutex<HashMap<PathBuf, bool>>,
    changed: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        dirs: Mutex::new(HashMap::new()),
        changed: Condvar::new(),
    })
}

impl Registry {
    fn dirs(&self) -> MutexGuard<'_, HashMap<PathBuf, bool>> {
        // The map is valid after any panic: every change is one insert or remove.
        self.dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `dir` as open, after waiting for a closing store of it.
    fn enter(&self, dir: &Path, shown: &Path) -> Result<(), StoreError> {
        let deadline = Instant::now() + CLOSING_TIMEOUT;
        let mut dirs = self.dirs();
        loop {
            match dirs.get(dir) {
                None => break,
                Some(false) => return Err(locked(shown)),
                Some(true) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(locked(shown));
                    }
                    dirs = self
                        .changed
                        .wait_timeout(dirs, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        dirs.insert(dir.to_path_buf(), false);
        Ok(())
    }

    fn leave(&self, dir: &Path) {
        self.dirs().remove(dir);
        self.changed.notify_all();
    }
}

fn locked(dir: &Path) -> StoreError {
    StoreError::Locked {
        path: dir.display().to_string(),
    }
}

/// The exclusive hold on a store's directory; see the module docs.
pub(crate) struct DirLock {
    file: File,
    /// The canonical path, the registry's key.
    canonical: PathBuf,
}

impl DirLock {
    /// Takes the lock on the existing directory `dir`, or fails with
    /// [`StoreError::Locked`] if a store has it open, in this process or another one.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let canonical = dir
            .canonicalize()
            .map_err(|e| io_error(e, "cannot resolve", dir))?;
        let registry = registry();
        registry.enter(&canonical, dir)?;
        match Self::lock_file(dir) {
            Ok(file) => Ok(DirLock { file, canonical }),
            Err(e) => {
                registry.leave(&canonical);
                Err(e)
            }
        }
    }

    fn lock_file(dir: &Path) -> Result<File, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(e, "cannot open", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(TryLockError::WouldBlock) => Err(locked(dir)),
            Err(TryLockError::Error(e)) => Err(io_error(e, "cannot lock", &path)),
        }
    }

    /// Marks the directory as closing: an open in this process now waits for this lock
    /// to be released instead of failing with [`StoreError::Locked`].
    pub(crate) fn closing(&self) {
        registry().dirs().insert(self.canonical.clone(), true);
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Explicitly, so that a forked child's copy of the file does not keep it locked.
        if let Err(e) = self.file.unlock() {
            tracing::error!(path = %self.canonical.display(), error = %e, "cannot unlock a store's directory");
        }
        registry().leave(&self.canonical);
    }
}
