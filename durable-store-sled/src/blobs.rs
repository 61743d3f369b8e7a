//! Making sled's blob files durable.
//!
//! sled 0.34 writes a log item (a page of the tree, or an update of one) whose encoding is
//! larger than a quarter of its 512 KiB segment, about 128 KiB, to a file of its own,
//! `sled/blobs/<lsn>`, and puts only a pointer to it in the log. It writes that file with
//! plain writes and never fsyncs it or the directory, so a power cut could keep the
//! pointer (the log is fsynced) and lose what it points to: a large value, or any page of
//! small values that adds up to that much. [`Blobs::sync`] closes the gap: before a group
//! of commits is acknowledged, every blob file not synced yet is fsynced, then the
//! directory, so that both the files and their names survive.
//!
//! Invariants:
//! - A blob file is created and written once and never changed, so a file whose size is
//!   the one it had when it was last fsynced needs no fsync. Files are remembered with
//!   that size: one that sled was still writing when it was seen (its writes may come
//!   from any thread) is fsynced again once it has grown.
//! - A file that disappears between the listing and the fsync was removed by sled (its
//!   page moved on) and needs nothing.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::PathBuf;

/// The blob files of one sled directory and what has been fsynced of them.
#[derive(Debug)]
pub(crate) struct Blobs {
    dir: PathBuf,
    /// Size of each file when it was last fsynced.
    synced: HashMap<OsString, u64>,
}

impl Blobs {
    /// The blobs of sled's directory `sled`; none is taken as synced yet.
    pub(crate) fn new(sled: PathBuf) -> Blobs {
        Blobs {
            dir: sled.join("blobs"),
            synced: HashMap::new(),
        }
    }

    /// Fsyncs every blob file that is new or grew since its last fsync, then, if there
    /// was one, the directory. Returns how many files were fsynced.
    pub(crate) fn sync(&mut self) -> io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // sled creates it as it opens; nothing can be in a directory that is not.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut present = HashMap::with_capacity(self.synced.len());
        let mut fsynced = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let len = match entry.metadata() {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if self.synced.get(&name) != Some(&len) {
                // Write access because some systems refuse to fsync a file opened
                // read-only.
                match File::options().write(true).open(entry.path()) {
                    Ok(file) => file.sync_data()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                fsynced += 1;
            }
            present.insert(name, len);
        }
        if fsynced > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        self.synced = present;
        Ok(fsynced)
    }

    /// The directory of the blob files.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The files fsynced so far, by name, with the size each had then.
    #[cfg(test)]
    pub(crate) fn synced(&self) -> &HashMap<OsString, u64> {
        &self.synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_grown_files_are_fsynced_once() {
        let dir = std::env::temp_dir().join(format!("durable-blobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut blobs = Blobs::new(dir.clone());
        assert_eq!(blobs.sync().unwrap(), 0, "no directory yet");
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        std::fs::write(dir.join("blobs/100"), b"one").unwrap();
        std::fs::write(dir.join("blobs/200"), b"tw").unwrap();
        assert_eq!(blobs.sync().unwrap(), 2);
        assert_eq!(blobs.sync().unwrap(), 0, "nothing changed");
        std::fs::write(dir.join("blobs/200"), b"two").unwrap();
        std::fs::remove_file(dir.join("blobs/100")).unwrap();
        assert_eq!(blobs.sync().unwrap(), 1, "the grown file only");
        let synced: Vec<_> = blobs.synced().iter().collect();
        assert_eq!(synced, [(&OsString::from("200"), &3)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
