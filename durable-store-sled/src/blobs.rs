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
//! - On Linux, an inotify watch on the directory, set up before the listing it vouches
//!   for, reports every file created, written, renamed or removed there (sled writes its
//!   blobs with `write`, which inotify sees, never through a mapping), so while it reports
//!   nothing, the last listing still holds and a group skips it: one `read` that finds no
//!   event instead of opening, listing and closing the directory. Anything reported
//!   (including a lost event, `IN_Q_OVERFLOW`) means a full listing. Without a watch (not
//!   Linux, no inotify instance left, the directory not there yet) every sync lists.

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
    /// Tells whether the directory changed since the last listing (see the module docs).
    watch: Watch,
}

impl Blobs {
    /// The blobs of sled's directory `sled`; none is taken as synced yet.
    pub(crate) fn new(sled: PathBuf) -> Blobs {
        Blobs {
            dir: sled.join("blobs"),
            synced: HashMap::new(),
            watch: Watch::default(),
        }
    }

    /// Fsyncs every blob file that is new or grew since its last fsync, then, if there
    /// was one, the directory. Returns how many files were fsynced.
    pub(crate) fn sync(&mut self) -> io::Result<usize> {
        // Before the listing, so that a change made during the listing is reported too.
        if !self.watch.changed(&self.dir) {
            return Ok(0);
        }
        let listed = self.list_and_sync();
        if listed.is_err() {
            // Whatever failed must be tried again by the next sync.
            self.watch.forget();
        }
        listed
    }

    fn list_and_sync(&mut self) -> io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // sled creates it as it opens; nothing can be in a directory that is not. A
            // watch on a directory that went away watches nothing any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.watch.forget();
                return Ok(0);
            }
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

    /// Whether a watch vouches for the last listing, so that a sync may skip the next.
    #[cfg(test)]
    pub(crate) fn watched(&self) -> bool {
        self.watch.active()
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

/// Whether the blob directory changed since the last listing, from an inotify watch.
#[cfg(target_os = "linux")]
#[derive(Debug, Default)]
enum Watch {
    /// No watch: the next sync sets one up, then lists.
    #[default]
    None,
    /// A non-blocking inotify instance watching the directory since before the last
    /// listing.
    Watching(std::os::fd::OwnedFd),
    /// inotify refused (no instance or watch left for this user): every sync lists.
    Unavailable,
}

#[cfg(target_os = "linux")]
impl Watch {
    /// What a watch reports: every way a file of the directory (or the directory itself)
    /// can change.
    fn flags() -> rustix::fs::inotify::WatchFlags {
        use rustix::fs::inotify::WatchFlags as F;
        F::CREATE
            | F::MODIFY
            | F::CLOSE_WRITE
            | F::MOVED_FROM
            | F::MOVED_TO
            | F::DELETE
            | F::DELETE_SELF
            | F::MOVE_SELF
            | F::ONLYDIR
    }

    /// Whether `dir` may have changed since the last listing: `false` only when a watch
    /// set up before that listing reports nothing. Sets up a watch for the listing that
    /// follows a `true`, if there is none.
    fn changed(&mut self, dir: &std::path::Path) -> bool {
        use rustix::fs::inotify;
        use rustix::io::Errno;
        match self {
            Watch::Watching(fd) => match drain(fd) {
                Ok(reported) => reported,
                Err(_) => {
                    *self = Watch::None;
                    true
                }
            },
            Watch::Unavailable => true,
            Watch::None => {
                let watched =
                    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                        .and_then(|fd| inotify::add_watch(&fd, dir, Self::flags()).map(|_| fd));
                *self = match watched {
                    Ok(fd) => Watch::Watching(fd),
                    // Not created yet: try again next time.
                    Err(Errno::NOENT) => Watch::None,
                    Err(e) => {
                        tracing::debug!(error = %e, "no inotify watch on sled's blobs: every sync lists them");
                        Watch::Unavailable
                    }
                };
                true
            }
        }
    }

    /// Drops the watch: it no longer vouches for the last listing.
    fn forget(&mut self) {
        if let Watch::Watching(_) = self {
            *self = Watch::None;
        }
    }

    #[cfg(test)]
    fn active(&self) -> bool {
        matches!(self, Watch::Watching(_))
    }
}

/// Reads every event queued on the non-blocking inotify instance `fd`; returns whether
/// there was any.
#[cfg(target_os = "linux")]
fn drain(fd: &std::os::fd::OwnedFd) -> rustix::io::Result<bool> {
    use rustix::io::Errno;
    // Room for an event (16 bytes and a name of up to 256); uninitialised, as a
    // zeroed buffer would cost more than the read that finds nothing.
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1024];
    let mut reported = false;
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(([], _)) => return Ok(reported),
            Ok(_) => reported = true,
            Err(Errno::AGAIN) => return Ok(reported),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Without inotify, every sync lists the directory.
#[cfg(not(target_os = "linux"))]
#[derive(Debug, Default)]
struct Watch;

#[cfg(not(target_os = "linux"))]
impl Watch {
    fn changed(&mut self, _dir: &std::path::Path) -> bool {
        true
    }

    fn forget(&mut self) {}

    #[cfg(test)]
    fn active(&self) -> bool {
        false
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

    #[test]
    fn a_watched_directory_is_listed_again_after_any_change() {
        let dir = std::env::temp_dir().join(format!("durable-blobs-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        let mut blobs = Blobs::new(dir.clone());
        assert_eq!(blobs.sync().unwrap(), 0);
        assert_eq!(blobs.watched(), cfg!(target_os = "linux"));
        assert_eq!(blobs.sync().unwrap(), 0, "nothing changed");
        std::fs::write(dir.join("blobs/300"), b"new").unwrap();
        assert_eq!(blobs.sync().unwrap(), 1, "a file created since");
        assert_eq!(blobs.sync().unwrap(), 0);
        let mut file = File::options()
            .append(true)
            .open(dir.join("blobs/300"))
            .unwrap();
        io::Write::write_all(&mut file, b"er").unwrap();
        assert_eq!(blobs.sync().unwrap(), 1, "a file written since");
        drop(file);
        // A directory removed and created again is watched again.
        std::fs::remove_dir_all(dir.join("blobs")).unwrap();
        assert_eq!(blobs.sync().unwrap(), 0);
        assert!(!blobs.watched(), "the removed directory's watch is dropped");
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        std::fs::write(dir.join("blobs/400"), b"four").unwrap();
        assert_eq!(blobs.sync().unwrap(), 1, "a file of the new directory");
        assert_eq!(blobs.sync().unwrap(), 0);
        std::fs::write(dir.join("blobs/500"), b"five").unwrap();
        assert_eq!(blobs.sync().unwrap(), 1, "the new directory is watched");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
