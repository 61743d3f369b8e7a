//! The store's format version (key `v`), checked and migrated when a store opens.
//!
//! Format 2 (no `v` key) has no unfinished index and no operations; format 3 adds
//! both. Opening a format-2 store enters its unfinished executions into the index once
//! (one scan of the executions) and records format 3; the old execution values stay
//! readable (see `keys`) and are rewritten by their next commit. A store of a newer format
//! is refused with [`StoreError::UnsupportedFormat`], unchanged.

use durable_core::StoreError;

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
            if found < keys::FORMAT_VERSION {
                return migrate(db).map(Some);
            }
            Ok(None)
        }
        None => migrate(db).map(Some),
    }
}

/// The writes that build the unfinished index from the executions and record the current
/// format.
fn migrate(db: &sled::Db) -> Result<Writes, StoreError> {
    let mut batch = Writes::default();
    let mut migrated = 0usize;
    for entry in db.scan_prefix(keys::EXECUTION) {
        let (key, bytes) = entry.map_err(sled_error)?;
        let record = keys::decode_record(&key, &bytes)?;
        if let Some(index) = keys::unfinished(record.status, &record.id) {
            batch.insert(index, sled::IVec::default());
            migrated += 1;
        }
    }
    batch.insert(keys::FORMAT, keys::FORMAT_VERSION.to_le_bytes().as_slice());
    if migrated > 0 {
        tracing::info!(
            unfinished = migrated,
            "migrating a sled store to format {}",
            keys::FORMAT_VERSION
        );
    }
    Ok(batch)
}
