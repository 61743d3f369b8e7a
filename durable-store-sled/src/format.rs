//! The store's format version (key `v`), checked and migrated when a store opens.
//!
//! Format 2 (no `v` key) has no unfinished index and no operations; format 3 adds
//! both, with an entry of its own for every unfinished execution; format 4 indexes most
//! running ones by lists instead (see `keys` and `running`), so a store of format 3 must
//! not be opened by code that does not know the lists. Opening a format-2 store indexes
//! its unfinished executions once (one scan of the executions), each with an entry of its
//! own, and records format 4 in the same group; a format-3 store only records format 4,
//! its entries being format 4's entries of executions outside the lists. The old
//! execution values stay readable (see `keys`) and are rewritten by their next commit. A
//! store of a newer format is refused with [`StoreError::UnsupportedFormat`], unchanged.

use durable_core::{Status, StoreError};

use crate::digest::Writes;
use crate::error::sled_error;
use crate::keys;

/// Checks the format of the store in `db`: `Err` for a newer one, the writes that
/// migrate an older (or new, empty) one to the current format, `None` for a current one;
/// reads only. The caller applies the writes as a group of the writer (see `writer`), so
/// they are numbered and in the digest like every other write.
pub(crate) fn prepare(db: &sled::Db, what: &str) -> Result<Option<Writes>, StoreError> {
    match db.get(keys::FORMAT).map_err(sled_error)? {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_le_bytes)
                .map_err(|_| crate::error::corrupt("v", "the format key is not 4 bytes"))?;
            if found > keys::FORMAT_VERSION {
                return Err(StoreError::UnsupportedFormat {
                    what: what.to_owned(),
                    found: u64::from(found),
                    supported: u64::from(keys::FORMAT_VERSION),
                });
            }
            if found == 3 {
                return finish(Writes::default(), 0).map(Some);
            }
            if found < keys::FORMAT_VERSION {
                return migrate_from_2(db).map(Some);
            }
            Ok(None)
        }
        None => migrate_from_2(db).map(Some),
    }
}

/// The writes that build the unfinished index from the executions and record the current
/// format: for a store of format 2, and for a new, empty one.
fn migrate_from_2(db: &sled::Db) -> Result<Writes, StoreError> {
    let mut batch = Writes::default();
    let mut migrated = 0usize;
    for entry in db.scan_prefix(keys::EXECUTION) {
        let (key, bytes) = entry.map_err(sled_error)?;
        let record = keys::decode_record(&key, &bytes)?;
        let index = match record.status {
            Status::Running => Some(keys::running_entry(&record.id)),
            status => keys::unfinished(status, &record.id),
        };
        if let Some(index) = index {
            batch.insert(index, sled::IVec::default());
            migrated += 1;
        }
    }
    finish(batch, migrated)
}

fn finish(mut batch: Writes, migrated: usize) -> Result<Writes, StoreError> {
    batch.insert(keys::FORMAT, keys::FORMAT_VERSION.to_le_bytes().as_slice());
    if migrated > 0 {
        tracing::info!(
            executions = migrated,
            "migrating a sled store to format {}",
            keys::FORMAT_VERSION
        );
    }
    Ok(batch)
}
