//! The content digest: a checksum of everything in the tree that each group of writes
//! keeps up to date and an open checks against the tree it finds.
//!
//! Why: sled recovers its log by reading it in order, and where a record fails its
//! checksum it either stops (near the end of the log) or skips the rest of that 512 KiB
//! segment and goes on with the next (further back). Stopping rolls the store back, which
//! the high-water mark notices (see `mark`); skipping loses writes from the middle of the
//! log, possibly the last write of some key, while later groups (and their numbers) are
//! intact. Only the contents can tell.
//!
//! The digest is the sum, modulo 2^64, of a 64-bit hash of every key and value in the
//! tree except the group key `m` (see `keys`). A sum does not depend on order, so a group
//! updates it from its own writes alone: for every key it writes, minus the hash of the
//! value the key had, plus the hash of its new value. The group stores the new digest in
//! `m`, in the same atomic batch as the writes it covers, so a tree that sled recovered
//! whole always matches the digest in its `m`, and a tree missing any write does not
//! (unless that write's hash difference is a multiple of 2^64, which for damage, not an
//! attacker, is a chance of 2^-64).
//!
//! Checking costs a scan of the whole tree at open (the engine's recovery lists every
//! execution at open too); keeping it up to date costs one read of each written key's old
//! value per group, on the writer thread, unless the group read it already to check its
//! requests (an execution's value, for every commit): see [`Writes::know`].

use std::num::Wrapping;

use durable_core::StoreError;
use foldhash::{HashMap, HashMapExt};

use crate::error::sled_error;
use crate::keys;

/// A digest of tree contents; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Digest(Wrapping<u64>);

impl Digest {
    pub(crate) fn from_u64(value: u64) -> Digest {
        Digest(Wrapping(value))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0 .0
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.0 += hash(key, value);
    }
}

/// A 64-bit hash of one key and its value: two CRC-32s that read the bytes in different
/// orders (each catches every burst of damage up to 32 bits; together they differ for
/// different values but by chance), spread by splitmix64's finalizer.
fn hash(key: &[u8], value: &[u8]) -> u64 {
    // A fresh hasher, copied: `Hasher::new` checks the CPU's features each time, which
    // was a sixth of this function on the writer thread.
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let fresh = FRESH.get_or_init(crc32fast::Hasher::new);
    let len = (key.len() as u32).to_le_bytes();
    let mut forward = fresh.clone();
    forward.update(&len);
    forward.update(key);
    forward.update(value);
    let mut backward = fresh.clone();
    backward.update(value);
    backward.update(key);
    backward.update(&len);
    let mut z = (u64::from(forward.finalize()) << 32) | u64::from(backward.finalize());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Reads the whole tree: the digest of its contents, and the value of the group key.
pub(crate) fn scan(tree: &sled::Tree) -> Result<(Digest, Option<sled::IVec>), StoreError> {
    let mut digest = Digest::default();
    let mut group = None;
    for entry in tree.iter() {
        let (key, value) = entry.map_err(sled_error)?;
        if key == keys::GROUP {
            group = Some(value);
        } else {
            digest.add(&key, &value);
        }
    }
    Ok((digest, group))
}

/// The writes of one group: the `sled::Batch` that applies them, and for the digest the
/// hash of the last write to each key. Keys and values are sled's own buffers, so that
/// the batch takes them without a copy.
///
/// Why the batch is built as the writes come rather than from a map of them at the end:
/// a second ordered map of every write, copied into the batch's, and an ordered set of
/// its keys for `sync::Visibility` were 6 % of the writer thread's instructions (callgrind,
/// the steps bench's 200 concurrent executions).
#[derive(Debug, Default)]
pub(crate) struct Writes {
    /// The last write to each key, as sled applies it.
    batch: sled::Batch,
    /// The [`hash`] of the last value written to each key (`None`: removed).
    written: HashMap<sled::IVec, Option<u64>>,
    /// The [`hash`] of what keys hold in the tree now (`None`: absent), as the writer
    /// already knows it.
    known: HashMap<sled::IVec, Option<u64>>,
}

impl Writes {
    /// No writes yet, with room for about `keys` keys without growing.
    pub(crate) fn with_capacity(keys: usize) -> Writes {
        Writes {
            batch: sled::Batch::default(),
            written: HashMap::with_capacity(keys),
            known: HashMap::with_capacity(keys),
        }
    }

    pub(crate) fn insert(&mut self, key: impl Into<sled::IVec>, value: impl Into<sled::IVec>) {
        let (key, value) = (key.into(), value.into());
        let hashed = hash(&key, &value);
        self.insert_hashed(key, value, hashed);
    }

    /// Like [`insert`](Self::insert), with the value's hash as [`entry_hash`] gave it for
    /// this key, which the caller computed already (to keep it with the value in memory).
    pub(crate) fn insert_hashed(
        &mut self,
        key: impl Into<sled::IVec>,
        value: impl Into<sled::IVec>,
        hashed: u64,
    ) {
        let key = key.into();
        self.written.insert(key.clone(), Some(hashed));
        self.batch.insert(key, value);
    }

    pub(crate) fn remove(&mut self, key: impl Into<sled::IVec>) {
        let key = key.into();
        self.written.insert(key.clone(), None);
        self.batch.remove(key);
    }

    /// Records the value `key` has in the tree now (`None`: absent), as the caller just read
    /// it, so that [`apply_to`](Self::apply_to) does not read it again. Sound because the
    /// writer thread is the only writer of the tree and applies these writes before any
    /// other: the tree cannot change between the caller's read and `apply_to`. The first
    /// value recorded for a key stays (a later one would be a read of the same tree).
    pub(crate) fn know(&mut self, key: &[u8], value: Option<&[u8]>) {
        if !self.known.contains_key(key) {
            let hashed = value.map(|value| hash(key, value));
            self.known.insert(key.into(), hashed);
        }
    }

    /// Like [`know`](Self::know), with the [`hash`] of the value instead of the value
    /// (from [`entry_hash`]), for a value the writer keeps in memory.
    pub(crate) fn know_hash(&mut self, key: &[u8], hashed: Option<u64>) {
        if !self.known.contains_key(key) {
            self.known.insert(key.into(), hashed);
        }
    }

    /// `digest`, the digest of `tree` before these writes, after them. Reads the value
    /// of each key not known (see [`know`](Self::know)) in `tree` now.
    pub(crate) fn apply_to(&self, tree: &sled::Tree, digest: Digest) -> Result<Digest, StoreError> {
        let mut digest = digest;
        for (key, new) in &self.written {
            let old = match self.known.get(key) {
                Some(known) => *known,
                None => tree
                    .get(key)
                    .map_err(sled_error)?
                    .map(|old| hash(key, &old)),
            };
            if let Some(old) = old {
                digest.0 -= old;
            }
            if let Some(new) = new {
                digest.0 += *new;
            }
        }
        Ok(digest)
    }

    /// The batch that applies these writes.
    #[cfg(test)]
    pub(crate) fn into_batch(self) -> sled::Batch {
        self.batch
    }

    /// The batch that applies these writes, and the keys they write or remove.
    pub(crate) fn into_parts(self) -> (sled::Batch, WrittenKeys) {
        (self.batch, WrittenKeys(self.written))
    }
}

/// The keys a group writes or removes (see `sync::Visibility`): the map the digest used,
/// handed over whole rather than copied.
#[derive(Debug, Default)]
pub(crate) struct WrittenKeys(HashMap<sled::IVec, Option<u64>>);

impl WrittenKeys {
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.0.contains_key(key)
    }

    /// Whether a key starting with `prefix` is among them. Goes through every key: only a
    /// listing of an execution's operations asks (`describe`, the end of a batch), never a
    /// commit.
    pub(crate) fn any_with_prefix(&self, prefix: &[u8]) -> bool {
        self.0.keys().any(|key| key.starts_with(prefix))
    }
}

/// The hash one key and its value add to the digest, for [`Writes::know_hash`].
pub(crate) fn entry_hash(key: &[u8], value: &[u8]) -> u64 {
    hash(key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary() -> sled::Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    #[test]
    fn a_digest_kept_up_to_date_equals_a_scan() {
        let db = temporary();
        let mut digest = Digest::default();
        let mut rng = fastrand::Rng::with_seed(3);
        for round in 0..50 {
            let mut writes = Writes::default();
            for _ in 0..rng.usize(1..20) {
                let key = format!("k{}", rng.u8(0..40)).into_bytes();
                let key = key.as_slice();
                // As the writer does for values it read to check a request.
                match rng.u8(0..3) {
                    0 => writes.know(key, db.get(key).unwrap().as_deref()),
                    // As the writer does for an execution value it keeps in memory.
                    1 => {
                        let old = db.get(key).unwrap();
                        writes.know_hash(key, old.map(|old| entry_hash(key, &old)));
                    }
                    _ => {}
                }
                if rng.bool() {
                    writes.remove(key);
                } else {
                    let value = vec![round; rng.usize(0..30)];
                    if rng.bool() {
                        writes.insert(key, value);
                    } else {
                        // As the writer does for a value whose hash it keeps.
                        let hashed = entry_hash(key, &value);
                        writes.insert_hashed(key, value, hashed);
                    }
                }
            }
            // As the writer does: the group key is not part of the digest.
            digest = writes.apply_to(&db, digest).unwrap();
            writes.insert(keys::GROUP, [round].as_slice());
            db.apply_batch(writes.into_batch()).unwrap();
            let (scanned, group) = scan(&db).unwrap();
            assert_eq!(scanned, digest, "round {round}");
            assert_eq!(group.as_deref(), Some([round].as_slice()));
        }
    }

    /// Stores hold digests of this hash: it must stay the one they were written with.
    /// The values are the hash's before commit 6757576 (two fresh `crc32fast::Hasher`s per
    /// entry): that commit's version of this test checked it against a copy of that code.
    #[test]
    fn the_hash_is_the_one_stores_were_written_with() {
        for (key, value, written) in [
            (&b""[..], &b""[..], 0xf5e5_d6bc_3ed0_0a8f),
            (b"e/one", b"value", 0x1525_353a_e9bf_3cc6),
            (b"m", &[7; 300][..], 0xca3c_a13c_1ed4_4ef7),
            (
                b"r/\0\0\0\0\0\0\0\x01\0\0\0\0",
                &[1; 5000][..],
                0x4dcd_f074_844d_9218,
            ),
        ] {
            assert_eq!(hash(key, value), written, "{key:?}");
        }
    }

    #[test]
    fn a_lost_or_changed_entry_changes_the_digest() {
        let db = temporary();
        for n in 0..20u8 {
            db.insert([n], vec![n; 8]).unwrap();
        }
        let (whole, _) = scan(&db).unwrap();
        db.remove([7]).unwrap();
        assert_ne!(scan(&db).unwrap().0, whole, "a lost key");
        db.insert([7], vec![6; 8]).unwrap();
        assert_ne!(scan(&db).unwrap().0, whole, "an older value");
        db.insert([7], vec![7; 8]).unwrap();
        assert_eq!(scan(&db).unwrap().0, whole);
        // A value moved to another key is another entry.
        db.remove([7]).unwrap();
        db.insert([7, 7], vec![7; 8]).unwrap();
        assert_ne!(scan(&db).unwrap().0, whole, "a moved value");
    }
}
