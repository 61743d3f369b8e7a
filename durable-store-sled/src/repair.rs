//! What a process killed at any instant can leave in sled's directory, made harmless
//! before sled opens it.
//!
//! sled 0.34 keeps, beside its log `db`:
//! - `snap.<lsn>`: a snapshot of its page table as of log position `lsn` (16 hex
//!   digits), ending with its length (8 bytes) and a CRC-32 of what precedes them
//!   (4 bytes, little-endian). sled writes one as it opens, whenever the log grew since the
//!   last: to `snap.<lsn>.generating`, which it fsyncs and renames to `snap.<lsn>`, and
//!   only then deletes the older snapshots and zeroes log segments past a torn end.
//! - `conf`: its settings as text followed by their CRC-32, written once, by the open that
//!   creates the store, before the log file exists.
//!
//! When it opens, sled reads the snapshot whose name sorts last, `.generating` or not,
//! and refuses to open if it is cut short or fails its checksum ("Read corrupted data");
//! a kill between the creation of `snap.<lsn>.generating` and the end of its write leaves
//! exactly that (sled issues 1527, 1533). Without any snapshot, sled reads its whole log
//! from the start and writes a new one (it does so for every new store): every page's
//! last version is in the log, in a segment that sled never reuses while a page points
//! into it, and the log records are applied in log order, so the newest wins. So:
//! - every `.generating` snapshot is deleted: the rename never happened, so the older
//!   snapshot and the log it describes are untouched;
//! - a `snap.<lsn>` that fails sled's own checks (which no kill can cause, since it is
//!   fsynced before its rename, but damage can) is deleted, newest first, until one
//!   passes; sled then starts from the older one, or from the log;
//! - a `conf` that fails its checksum is deleted if the log is empty (a kill between its
//!   two writes), so that sled writes it again; beside data it is reported as
//!   [`StoreError::Corrupt`], since the log cannot be read without the right settings.

use std::fs;
use std::io;
use std::path::Path;

use durable_core::StoreError;

use crate::error::{corrupt, io_error};

/// Makes sled's directory `sled` openable after a kill at any instant; see the module
/// docs. Does nothing to a directory that does not exist.
pub(crate) fn prepare(sled: &Path) -> Result<(), StoreError> {
    let entries = match fs::read_dir(sled) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e, "cannot list", sled)),
    };
    let mut snapshots = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(e, "cannot list", sled))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("snap.") {
            continue;
        }
        if name.ends_with(".generating") {
            tracing::info!(
                file = name,
                "removing a sled snapshot whose write was cut short"
            );
            remove(&entry.path())?;
        } else {
            snapshots.push(entry.path());
        }
    }
    // sled reads the one whose name sorts last.
    snapshots.sort();
    while let Some(last) = snapshots.pop() {
        let bytes = fs::read(&last).map_err(|e| io_error(e, "cannot read", &last))?;
        if checksummed(&bytes, 12) {
            break;
        }
        tracing::warn!(file = %last.display(), "removing a damaged sled snapshot; sled rebuilds it from its log");
        remove(&last)?;
    }
    check_settings(sled)
}

/// Whether `bytes` end with a CRC-32 of what precedes the last `trailer` bytes, as sled
/// writes them (its snapshots: data, length, CRC; its settings: data, CRC).
fn checksummed(bytes: &[u8], trailer: usize) -> bool {
    if bytes.len() <= trailer {
        return false;
    }
    let (data, rest) = bytes.split_at(bytes.len() - trailer);
    let mut crc = [0; 4];
    crc.copy_from_slice(&rest[trailer - 4..]);
    crc32fast::hash(data) == u32::from_le_bytes(crc)
}

fn check_settings(sled: &Path) -> Result<(), StoreError> {
    let conf = sled.join("conf");
    let bytes = match fs::read(&conf) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e, "cannot read", &conf)),
    };
    if checksummed(&bytes, 4) {
        return Ok(());
    }
    let log = sled.join("db");
    let log_len = match fs::metadata(&log) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_error(e, "cannot read", &log)),
    };
    if log_len == 0 {
        tracing::info!(file = %conf.display(), "removing sled settings whose write was cut short");
        return remove(&conf);
    }
    Err(corrupt(
        conf.display().to_string(),
        "sled's settings file fails its checksum, so its log cannot be read safely; \
         restore the directory from a backup",
    ))
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(e, "cannot remove", path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_covers_what_precedes_the_trailer() {
        let data = b"segment_size: 524288\n";
        let mut conf = data.to_vec();
        conf.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        assert!(checksummed(&conf, 4));
        let mut snapshot = data.to_vec();
        snapshot.extend_from_slice(&(data.len() as u64).to_le_bytes());
        snapshot.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        assert!(checksummed(&snapshot, 12));
        assert!(!checksummed(&snapshot, 4));
        for len in 0..conf.len() {
            assert!(!checksummed(&conf[..len], 4), "cut to {len} bytes");
        }
        conf[3] ^= 1;
        assert!(!checksummed(&conf, 4));
    }
}
