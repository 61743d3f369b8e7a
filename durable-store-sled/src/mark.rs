//! The high-water mark: how far the store's acknowledged writes went, kept outside sled's
//! files, so that an open can tell that sled's log came back shorter than it was.
//!
//! sled reads its log up to the first record that fails its checksum and drops the rest
//! (it takes it for the torn end of a crash), so one flipped byte or a cut-off tail rolls
//! the store back without an error. Against that:
//! - Every group of writes (see `writer`) is numbered, and its batch stores its number in
//!   the tree (key `m`, see `keys`), atomically with its writes.
//! - Once a group is durable and answered, and before the next group is applied, its
//!   number is written over `durable.mark` (a 24-byte file: `b"DMK1" | number: u64 |
//!   seal: u64 | CRC-32 of the rest`, little-endian; the seal is 0 but after a clean
//!   close, see `seal`). The mark is therefore never ahead of what sled made durable, and
//!   it is at least every answered group but the last one, for the few microseconds
//!   between that group's answers and its mark: a process killed at any other instant
//!   leaves it in the page cache, where the next open finds it. Writing it after the
//!   answers keeps it off the callers' path (they prepare their next requests meanwhile).
//! - An open compares the number found in the tree with the mark. Lower means that
//!   acknowledged groups are missing from the log: the open is refused with
//!   [`StoreError::Corrupt`](durable_core::StoreError::Corrupt), unless the caller accepts
//!   the rollback, which then becomes the new mark. Equal or higher (a kill between a
//!   group's sync and its mark) is a store as acknowledged.
//!
//! What the mark costs: one 24-byte write per group, after its answers, not an fsync.
//! The mark is fsynced when the store closes and, with
//! [`Durability::PowerLoss`](crate::Durability), at most [`SYNC_DELAY`] after a group
//! changed it (by the writer, between groups or when idle), so groups never wait for it. The price is a window: a power cut can leave the
//! mark up to `SYNC_DELAY` behind the log (never ahead of it, since it is written after
//! the log's fsync), and damage to exactly the groups of that window, on top of the power
//! cut, would go unnoticed. The log's own fsync still keeps those groups. A process
//! killed between a group's answers and its mark leaves the same window, one group
//! wide.
//!
//! A new store's mark is written to `durable.mark.new`, fsynced and renamed, so a kill
//! never leaves a half-written one; a store written before marks existed has none and
//! no group number in its tree, and gets a mark of 0.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use durable_core::StoreError;

use crate::error::{corrupt, io_error};

/// The mark's file in the store's directory.
const MARK_FILE: &str = "durable.mark";
/// Where a new mark is written before it is renamed to [`MARK_FILE`].
const NEW_MARK_FILE: &str = "durable.mark.new";
const MAGIC: &[u8; 4] = b"DMK1";
const LEN: usize = 24;

/// The longest a changed mark waits for its fsync, with power-loss durability.
pub(crate) const SYNC_DELAY: Duration = Duration::from_millis(100);

/// The open mark file.
#[derive(Debug)]
pub(crate) struct Mark {
    file: File,
    path: PathBuf,
    /// When the mark was first changed after its last fsync; `None` when it is synced.
    changed: Option<Instant>,
}

fn encode(group: u64, seal: u64) -> [u8; LEN] {
    let mut bytes = [0; LEN];
    bytes[..4].copy_from_slice(MAGIC);
    bytes[4..12].copy_from_slice(&group.to_le_bytes());
    bytes[12..20].copy_from_slice(&seal.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..20]);
    bytes[20..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// The group number and seal in a mark file's bytes, or what is wrong with them.
fn decode(bytes: &[u8]) -> Result<(u64, u64), String> {
    if bytes.len() != LEN {
        return Err(format!("it holds {} bytes instead of {LEN}", bytes.len()));
    }
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[20..]);
    if &bytes[..4] != MAGIC || crc32fast::hash(&bytes[..20]) != u32::from_le_bytes(crc) {
        return Err("its checksum does not match".to_owned());
    }
    let mut group = [0; 8];
    group.copy_from_slice(&bytes[4..12]);
    let mut seal = [0; 8];
    seal.copy_from_slice(&bytes[12..20]);
    Ok((u64::from_le_bytes(group), u64::from_le_bytes(seal)))
}

/// The seal in the mark of the store in `dir`, if it was closed cleanly (see `seal`).
pub(crate) fn read_seal(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join(MARK_FILE)).ok()?;
    decode(&bytes)
        .ok()
        .map(|(_, seal)| seal)
        .filter(|&seal| seal != 0)
}

/// Adds `seal` to the mark of the store in `dir`, which must be closed, and fsyncs it.
pub(crate) fn write_seal(dir: &Path, seal: u64) -> io::Result<()> {
    let path = dir.join(MARK_FILE);
    let (group, _) = decode(&std::fs::read(&path)?).map_err(io::Error::other)?;
    let file = File::options().write(true).open(&path)?;
    write_at_start(&file, &encode(group, seal))?;
    file.sync_data()
}

impl Mark {
    /// Checks the mark of the store in `dir` against `in_log`, the number of the last
    /// group found in sled's tree, and opens it; see the module docs. `log` names sled's
    /// log in errors. With `accept_rollback`, a store behind its mark (or with a missing
    /// or damaged mark) opens, and `in_log` becomes its mark.
    pub(crate) fn open(
        dir: &Path,
        log: &Path,
        in_log: u64,
        accept_rollback: bool,
    ) -> Result<Mark, StoreError> {
        let path = dir.join(MARK_FILE);
        let new = dir.join(NEW_MARK_FILE);
        // What a kill while creating a mark leaves; the mark itself was not there yet.
        match std::fs::remove_file(&new) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_error(e, "cannot remove", &new))
            }
            _ => {}
        }
        let shown = path.display().to_string();
        let problem = match std::fs::read(&path) {
            Ok(bytes) => match decode(&bytes) {
                Ok((marked, _)) if marked <= in_log => None,
                Ok((marked, _)) => Some(corrupt(
                    log.display().to_string(),
                    format!(
                        "sled's log holds the store's writes up to group {in_log}, but group \
                         {marked} was acknowledged (`{shown}`): acknowledged commits were \
                         lost, as the log is damaged, cut short or older than the store; \
                         restore the directory from a backup, or open it with \
                         `Options::accept_rollback(true)` to go on from what is left"
                    ),
                )),
                Err(what) => Some(corrupt(
                    shown.clone(),
                    format!(
                        "the store's high-water mark is damaged ({what}), so whether sled's \
                         log lost acknowledged commits cannot be checked; restore the \
                         directory from a backup, or open it with \
                         `Options::accept_rollback(true)` to trust the log"
                    ),
                )),
            },
            // A new store, or one written before marks existed.
            Err(e) if e.kind() == io::ErrorKind::NotFound && in_log == 0 => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(corrupt(
                shown.clone(),
                format!(
                    "the store's high-water mark is missing, though sled's log holds writes \
                     up to group {in_log}, so whether the log lost acknowledged commits \
                     cannot be checked; restore the directory from a backup, or open it with \
                     `Options::accept_rollback(true)` to trust the log"
                ),
            )),
            Err(e) => return Err(io_error(e, "cannot read", &path)),
        };
        let replace = problem.is_some() || !path.exists();
        if let Some(problem) = problem {
            if !accept_rollback {
                return Err(problem);
            }
            tracing::warn!(error = %problem, "opening with the rollback accepted");
        }
        if replace {
            Self::create(dir, &new, &path, in_log)?;
        }
        let file = File::options()
            .write(true)
            .open(&path)
            .map_err(|e| io_error(e, "cannot open", &path))?;
        let mut mark = Mark {
            file,
            path,
            changed: None,
        };
        // The log may be ahead (a kill between a group's sync and its mark).
        mark.record(in_log)
            .map_err(|e| io_error(e, "cannot write", &mark.path))?;
        Ok(mark)
    }

    /// Writes a whole new mark file atomically: to `new`, fsynced, renamed over `path`,
    /// and the directory fsynced.
    fn create(dir: &Path, new: &Path, path: &Path, group: u64) -> Result<(), StoreError> {
        let mut file = File::create(new).map_err(|e| io_error(e, "cannot create", new))?;
        file.write_all(&encode(group, 0))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(e, "cannot write", new))?;
        std::fs::rename(new, path).map_err(|e| io_error(e, "cannot rename", new))?;
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error(e, "cannot sync", dir))
    }

    /// Sets the mark to `group`, without an fsync: call once `group` is durable, before it
    /// is answered.
    pub(crate) fn record(&mut self, group: u64) -> io::Result<()> {
        write_at_start(&self.file, &encode(group, 0))?;
        self.changed.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// When the mark's fsync is due, if it changed since the last one.
    pub(crate) fn sync_due(&self) -> Option<Instant> {
        self.changed.map(|changed| changed + SYNC_DELAY)
    }

    /// Fsyncs the mark if it changed since the last fsync. After a failure the next
    /// attempt is due [`SYNC_DELAY`] later, so a failing disk is not retried in a loop.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        if self.changed.is_some() {
            if let Err(e) = self.file.sync_data() {
                self.changed = Some(Instant::now());
                return Err(e);
            }
            self.changed = None;
        }
        Ok(())
    }
}

/// Overwrites the start of `file` with `bytes`: one `pwrite` where there is one.
#[cfg(unix)]
fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)
}

#[cfg(not(unix))]
fn write_at_start(mut file: &File, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_any_damage_is_noticed() {
        let bytes = encode(0x0102_0304_0506_0708, 9);
        assert_eq!(decode(&bytes), Ok((0x0102_0304_0506_0708, 9)));
        for at in 0..LEN {
            for bit in 0..8 {
                let mut damaged = bytes;
                damaged[at] ^= 1 << bit;
                assert!(decode(&damaged).is_err(), "byte {at} bit {bit}");
            }
        }
        for len in 0..LEN {
            assert!(decode(&bytes[..len]).is_err(), "cut to {len}");
        }
    }
}
