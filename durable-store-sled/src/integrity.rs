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

use std::fs::File;
use std::path::Path;

use durable_core::StoreError;

use crate::digest::{self, Digest};
use crate::error::{corrupt, io_error, sled_error, sled_panicked};
use crate::keys;
use crate::mark::Mark;

/// A store that passed the checks (or whose rollback was accepted): where its writer
/// goes on from.
pub(crate) struct Checked {
    pub(crate) mark: Mark,
    /// The number of the last group in the tree.
    pub(crate) group: u64,
    /// The digest of the tree's contents.
    pub(crate) digest: Digest,
}

/// Checks the tree of the store in `dir`, whose sled log is `log`; see the module docs.
/// Reads the whole tree.
pub(crate) fn check(
    dir: &Path,
    db: &sled::Db,
    log: &Path,
    accept_rollback: bool,
) -> Result<Checked, StoreError> {
    let (digest, stored) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| digest::scan(db)))
            .map_err(|payload| sled_panicked(payload, "reading its tree"))??;
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
    })
}
