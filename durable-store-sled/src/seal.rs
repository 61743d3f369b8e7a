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
use std::io::{self, Read};
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
fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let mut file = File::open(path)?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0; 1 << 20];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok((len, crc.finalize())),
            Ok(n) => {
                crc.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
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
}
