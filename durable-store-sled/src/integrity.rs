//! What an open checks before the store is used: that sled's tree is what the store
//! acknowledged. Two checks, because sled loses data from a damaged log in two ways:
//! - the contents against the digest the last group stored beside them (`digest`):
//!   writes lost from the middle of the log;
//! - the last group's number against the high-water mark (`mark`): a log that ends
//!   early, or an older copy of it, whose contents match its own last group.
//!
//! Either failure refuses the open with [`StoreError::Corrupt`] unless the caller accepts
//! the rollback, in which case what was found becomes the truth: the tree's digest and
//! number are stored again and the mark is set to them, so that the next open passes.
//!
//! Reading the whole tree is skipped when sled's files are exactly as the store sealed
//! them at its last clean close (see `seal`): they then recover to the tree that the
//! stored digest describes.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use durable_core::StoreError;

use crate::digest::{self, Digest};
use crate::error::{corrupt, io_error, sled_error, sled_panicked};
use crate::keys;
use crate::mark::{self, Mark};
use crate::seal;

/// A store that passed the checks (or whose rollback was accepted): where its writer
/// goes on from.
pub(crate) struct Checked {
    pub(crate) mark: Mark,
    /// The number of the last group in the tree.
    pub(crate) group: u64,
    /// The digest of the tree's contents.
    pub(crate) digest: Digest,
    /// Whether the whole tree was read (it was not sealed).
    pub(crate) scanned: bool,
}

/// Whether sled's files in `sled` are as the store in `dir` sealed them when it last
/// closed cleanly (see `seal`); call before sled opens them.
pub(crate) fn sealed(dir: &Path, sled: &Path) -> bool {
    let Some(sealed) = mark::read_seal(dir) else {
        return false;
    };
    match seal::of_files(sled) {
        Ok(now) => now == sealed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot checksum sled's files; reading the whole store");
            false
        }
    }
}

/// Seals sled's files in `sled` once sled has let go of them (see `seal`): call after a
/// clean close of the store in `dir`. Best effort: a store left unsealed is only read
/// whole at its next open.
pub(crate) fn seal(dir: &Path, sled: &Path) {
    let log = sled.join("db");
    let result = wait_for_sled(&log).and_then(|released| {
        let sealed = seal::of_files(sled).and_then(|seal| mark::write_seal(dir, seal));
        // Explicitly, as the directory lock is (see `lock`).
        released.unlock().and(sealed)
    });
    if let Err(e) = result {
        tracing::info!(error = %e, "the store was not sealed; its next open reads it whole");
    }
}

/// sled's lock on its log, taken once sled's last thread has let go of the file, so that
/// nothing writes it any more.
fn wait_for_sled(log: &Path) -> std::io::Result<File> {
    let file = File::open(log)?;
    let deadline = Instant::now() + SLED_RELEASE_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(std::io::Error::other("sled still holds its log"))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// How long sealing waits for sled's background threads to let go of its log.
const SLED_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the tree of the store in `dir`, whose sled log is `log`; see the module docs.
/// Reads the whole tree, unless sled's files were `sealed` as they are.
pub(crate) fn check(
    dir: &Path,
    db: &sled::Db,
    log: &Path,
    sealed: bool,
    accept_rollback: bool,
) -> Result<Checked, StoreError> {
    let as_sealed = if sealed { stored_digest(db)? } else { None };
    let scanned = as_sealed.is_none();
    let (digest, stored) = match as_sealed {
        Some(found) => found,
        None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| digest::scan(db)))
            .map_err(|payload| sled_panicked(payload, "reading its tree"))??,
    };
    let (group, recorded) = match &stored {
        Some(bytes) => {
            let (group, recorded) = keys::decode_group(bytes)?;
            (group, Some(Digest::from_u64(recorded)))
        }
        // A new store, or one written before groups were numbered.
        None => (0, None),
    };
    let differs = recorded.is_some_and(|recorded| recorded != digest);
    if differs {
        let problem = corrupt(
            log.display().to_string(),
            format!(
                "sled's log does not hold what the store acknowledged: the tree's contents \
                 do not match the digest stored by its last group of writes (group {group}), \
                 so writes were lost from the middle of the log (it is damaged); restore the \
                 directory from a backup, or open it with `Options::accept_rollback(true)` \
                 to go on from what is left"
            ),
        );
        if !accept_rollback {
            return Err(problem);
        }
        tracing::warn!(error = %problem, "opening with the rollback accepted");
    }
    let mark = Mark::open(dir, log, group, accept_rollback)?;
    if stored.is_none() || differs {
        // So that the next open checks against what is there now.
        db.insert(keys::GROUP, keys::encode_group(group, digest.as_u64()))
            .and_then(|_| db.flush())
            .map_err(sled_error)?;
        File::options()
            .write(true)
            .open(log)
            .and_then(|log| log.sync_data())
            .map_err(|e| io_error(e, "cannot sync", log))?;
    }
    Ok(Checked {
        mark,
        group,
        digest,
        scanned,
    })
}

/// What a scan of a sealed tree would find: the digest stored in it, taken as its own,
/// and the group value; `None` if it has none.
fn stored_digest(db: &sled::Db) -> Result<Option<(Digest, Option<sled::IVec>)>, StoreError> {
    let Some(bytes) = db.get(keys::GROUP).map_err(sled_error)? else {
        return Ok(None);
    };
    let (_, digest) = keys::decode_group(&bytes)?;
    Ok(Some((Digest::from_u64(digest), Some(bytes))))
}
