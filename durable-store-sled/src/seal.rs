//! The seal: a checksum of sled's files taken when the store closes cleanly, so that the
//! next open can skip reading the whole tree (see `integrity`) when they are unchanged.
//!
//! sled recovers its tree from its files alone, deterministically: byte-identical files
//! give the tree they gave when they were written, which at a clean close is exactly the
//! tree the store acknowledged, the one its digest describes. So an open that finds the
//! files as sealed can take the digest stored in the tree as the truth without checking
//! it. Any change to the files (damage, an older copy, writes of a later session)
//! changes the checksum, and the open reads the whole tree as after a crash.
//!
//! The checksum covers sled's log `db` (its length and a CRC-32 of its bytes, which
//! catches every burst of damage up to 32 bits and other damage but by a chance of
//! 2^-32) and its blob files (names, lengths and CRC-32s), since sled skips a missing
//! blob while it recovers. Its snapshot files are left out: `repair` deletes a damaged
//! one and sled rebuilds what it held from the log. The seal is never 0, which marks a
//! store that was not closed cleanly.

use std::fs::File;
use std::io;
use std::path::Path;

/// The seal of the sled directory `sled`: never 0.
pub(crate) fn of_files(sled: &Path) -> io::Result<u64> {
    let (log_len, log_crc) = checksum(&sled.join("db"))?;
    let mut blobs_crc = crc32fast::Hasher::new();
    let mut names = Vec::new();
    match std::fs::read_dir(sled.join("blobs")) {
        Ok(entries) => {
            for entry in entries {
                names.push(entry?.file_name());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    for name in names {
        let (len, crc) = checksum(&sled.join("blobs").join(&name))?;
        blobs_crc.update(name.as_encoded_bytes());
        blobs_crc.update(&len.to_le_bytes());
        blobs_crc.update(&crc.to_le_bytes());
    }
    let mut len_crc = crc32fast::Hasher::new();
    len_crc.update(&log_len.to_le_bytes());
    len_crc.update(&blobs_crc.finalize().to_le_bytes());
    let seal = (u64::from(log_crc) << 32) | u64::from(len_crc.finalize());
    Ok(seal.max(1))
}

/// The length and CRC-32 of the file at `path`.
///
/// A large file is read in parts by several threads at once and their CRCs combined
/// (the same CRC as one pass): reading the log is most of an open's own work on a large
/// store (a million executions: 330 MB of log, about 50 ms of a 130 ms open on 2 cores), and
/// it is bound by copying from the page cache, which one core does at only a few GB/s.
fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    checksum_in_parts(&file, len, parts(len))
}

/// The length and CRC-32 of `file`, whose length was `len`, read in `parts` parts at once.
fn checksum_in_parts(file: &File, len: u64, parts: u64) -> io::Result<(u64, u32)> {
    if parts <= 1 {
        let crc = read_crc(file, 0, None)?;
        return Ok((crc.amount, crc.finalize()));
    }
    let part_len = len / parts;
    // The last part reads to the end of the file, as one pass would, whatever its length
    // now; the others read exactly their range.
    let ends = (1..=parts).map(|i| (i < parts).then_some(i * part_len));
    let crcs = std::thread::scope(|scope| {
        let mut ends = ends.enumerate();
        let (_, first_end) = ends.next().expect("at least two parts");
        let others: Vec<_> = ends
            .map(|(i, end)| scope.spawn(move || read_crc(file, i as u64 * part_len, end)))
            .collect();
        // This thread reads the first part meanwhile.
        let mut crcs = vec![read_crc(file, 0, first_end)];
        for other in others {
            crcs.push(
                other
                    .join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload)),
            );
        }
        crcs
    });
    let mut crcs = crcs.into_iter();
    let mut crc = crcs.next().expect("at least two parts")?;
    for part in crcs {
        crc.combine(&part?);
    }
    Ok((crc.amount, crc.finalize()))
}

/// How many parts to read a file of `len` bytes in: one per thread the machine runs at
/// once (at most 4), each of at least [`MIN_PART`] bytes.
fn parts(len: u64) -> u64 {
    if len < 2 * MIN_PART {
        // Spares the small files (most stores', every blob) asking how many threads run.
        return 1;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    (len / MIN_PART).clamp(1, threads as u64)
}

/// The smallest part of a file that a thread of its own reads: below this, starting the
/// thread costs more than it saves.
const MIN_PART: u64 = 16 << 20;

/// A CRC-32 of `file` from `start` to `end` (to its end with `None`), with the number of
/// bytes read in its `amount`. A file that ends before `end` was changed while it was
/// read: an error.
fn read_crc(file: &File, start: u64, end: Option<u64>) -> io::Result<Crc> {
    let mut crc = Crc::default();
    let mut buf = vec![0; BUFFER.min(end.map_or(usize::MAX, |end| (end - start) as usize))];
    let mut at = start;
    loop {
        let want = end.map_or(buf.len(), |end| buf.len().min((end - at) as usize));
        if want == 0 {
            return Ok(crc);
        }
        match read_at(file, &mut buf[..want], at) {
            Ok(0) if end.is_none() => return Ok(crc),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file was cut short while it was read",
                ))
            }
            Ok(n) => {
                crc.update(&buf[..n]);
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, at)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    // Moves the file's cursor too, which nothing here uses.
    std::os::windows::fs::FileExt::seek_read(file, buf, at)
}

/// How many bytes a thread reads at a time: a buffer that stays in the core's own cache
/// between the copy into it and the CRC of it.
const BUFFER: usize = 256 << 10;

/// A CRC-32 with the number of bytes it covers.
#[derive(Default)]
struct Crc {
    hasher: crc32fast::Hasher,
    amount: u64,
}

impl Crc {
    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.amount += bytes.len() as u64;
    }

    fn combine(&mut self, other: &Crc) {
        self.hasher.combine(&other.hasher);
        self.amount += other.amount;
    }

    fn finalize(self) -> u32 {
        self.hasher.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_to_the_log_or_the_blobs_breaks_the_seal() {
        let dir = std::env::temp_dir().join(format!("durable-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        std::fs::write(dir.join("db"), vec![5; 3000]).unwrap();
        let sealed = of_files(&dir).unwrap();
        assert_ne!(sealed, 0);
        assert_eq!(of_files(&dir).unwrap(), sealed, "the same files");
        let mut changes = 0;
        let mut check = |change: &dyn Fn(&Path)| {
            change(&dir);
            assert_ne!(of_files(&dir).unwrap(), sealed, "change {changes}");
            std::fs::remove_dir_all(dir.join("blobs")).unwrap();
            std::fs::create_dir_all(dir.join("blobs")).unwrap();
            std::fs::write(dir.join("db"), vec![5; 3000]).unwrap();
            assert_eq!(of_files(&dir).unwrap(), sealed, "undone {changes}");
            changes += 1;
        };
        check(&|dir| std::fs::write(dir.join("db"), vec![5; 2999]).unwrap());
        check(&|dir| {
            let mut bytes = vec![5; 3000];
            bytes[1234] ^= 0x20;
            std::fs::write(dir.join("db"), bytes).unwrap()
        });
        check(&|dir| std::fs::write(dir.join("blobs/17"), b"blob").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_read_in_parts_has_the_checksum_of_one_pass() {
        let path = std::env::temp_dir().join(format!("durable-seal-parts-{}", std::process::id()));
        let mut rng = fastrand::Rng::with_seed(8);
        for len in [0, 1, 5, 4096, 1 << 20, (1 << 20) + 3, 3 * BUFFER + 1] {
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            std::fs::write(&path, &bytes).unwrap();
            let file = File::open(&path).unwrap();
            let one_pass = (len as u64, crc32fast::hash(&bytes));
            for parts in 1..=5 {
                assert_eq!(
                    checksum_in_parts(&file, len as u64, parts).unwrap(),
                    one_pass,
                    "{len} bytes in {parts} parts"
                );
            }
            // The last part reads to the end of the file, as one pass would.
            let mut longer = bytes.clone();
            longer.extend_from_slice(b"grown");
            std::fs::write(&path, &longer).unwrap();
            let grown = (longer.len() as u64, crc32fast::hash(&longer));
            assert_eq!(checksum_in_parts(&file, len as u64, 3).unwrap(), grown);
            // A part that finds the file shorter than its range fails.
            if len >= 3 {
                let file = File::options().write(true).open(&path).unwrap();
                file.set_len(len as u64 / 3).unwrap();
                let file = File::open(&path).unwrap();
                assert!(
                    checksum_in_parts(&file, len as u64, 3).is_err(),
                    "{len} cut short"
                );
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
}
