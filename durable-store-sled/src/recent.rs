//! Recently written executions and operations, as the tree holds them once synced: kept
//! up to date by the writer thread, read by the writer and by the store's reads.
//!
//! Why: an execution that runs commits again and again, and reads its record back (an
//! activation loads it and its input, a handle loads it to see how it ended). Reading and
//! decoding its value from sled was a third of the writer thread's work per commit, and
//! every read was a hop to one of tokio's blocking threads and back: with many executions,
//! those hops cost more than the commits.
//!
//! Invariants:
//! - An entry is exactly what the tree holds under the execution's `e/` key (or the
//!   operation's `o/` key), and that is durable: the writer thread is the only writer of
//!   the tree, and after every group it replaces (or drops) the entry of each execution
//!   and operation the group wrote or deleted, once the group is synced and before it
//!   answers or takes the next group (see `sync`). Readers that find the group's writes
//!   in the tree before that wait for the sync (see `sync::Visibility`). A group that
//!   fails (its writes may or may not be in the tree) empties it.
//! - Reads of it never wait for the writer's I/O: the lock is held only to look up,
//!   replace or drop entries.
//! - It holds at most [`MAX_RECENT`] executions and as many operations, the most recently
//!   written, and at most [`MAX_RECENT_BYTES`] of their stored values each; beyond them,
//!   readers and the writer read the tree. So a suspended or finished execution costs no
//!   memory once others have been written after it. The count is sized for a few thousand
//!   executions running at once: past it, every commit read its execution back from sled
//!   (the steps bench with 2,000 executions: a third more of the writer thread's work).

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use durable_core::OperationRecord;
use foldhash::{HashMap, HashMapExt};

use crate::keys;

/// Most executions kept, and most operations.
pub(crate) const MAX_RECENT: usize = 4096;
/// Most bytes of stored values kept for the executions, and again for the operations:
/// large frames or results make fewer entries fit.
pub(crate) const MAX_RECENT_BYTES: usize = 16 * 1024 * 1024;

/// An execution value as the tree holds it.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) value: keys::Execution,
    /// The digest hash of its `e/` entry (see `digest::entry_hash`).
    pub(crate) hash: u64,
    /// The length of the entry's value.
    pub(crate) size: usize,
}

/// An operation as the tree holds it.
#[derive(Debug, Clone)]
pub(crate) struct KeptOp {
    pub(crate) op: OperationRecord,
    /// The digest hash of its `o/` entry.
    pub(crate) hash: u64,
    /// The length of the entry's value.
    pub(crate) size: usize,
}

/// What an entry counts against [`MAX_RECENT_BYTES`]: its stored value's length.
trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Kept {
    fn weight(&self) -> usize {
        self.size
    }
}

impl Weigh for KeptOp {
    fn weight(&self) -> usize {
        self.size
    }
}

/// Values [`Recent::publish`] no longer keeps, to be dropped by its caller.
#[derive(Debug, Default)]
#[must_use = "dropped at once, it frees the replaced values while the caller waits"]
pub(crate) struct Replaced {
    executions: Vec<Arc<Kept>>,
    operations: Vec<Arc<KeptOp>>,
}

/// The recently written executions and operations; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By execution id.
    executions: Bounded<String, Kept>,
    /// By `o/` key.
    operations: Bounded<Vec<u8>, KeptOp>,
}

/// A map of at most [`MAX_RECENT`] entries weighing at most [`MAX_RECENT_BYTES`], which
/// drops the oldest first.
#[derive(Debug)]
struct Bounded<K, V> {
    kept: HashMap<K, Arc<V>>,
    /// Keys in the order they were first kept, the oldest first: the order they go in.
    /// May hold keys no longer kept (removed since).
    order: VecDeque<K>,
    /// The kept entries' weights, summed.
    bytes: usize,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded {
            kept: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Weigh> Bounded<K, V> {
    fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
    {
        self.kept.get(key).cloned()
    }

    /// Keeps `value` under `key`; the value it replaces goes to `replaced`.
    fn put(&mut self, key: K, value: Arc<V>, replaced: &mut Vec<Arc<V>>) {
        self.bytes += value.weight();
        // A key kept already is replaced in place, without a copy of the key.
        match self.kept.entry(key) {
            Entry::Occupied(mut kept) => {
                let old = kept.insert(value);
                self.bytes -= old.weight();
                replaced.push(old);
            }
            Entry::Vacant(vacant) => {
                self.order.push_back(vacant.key().clone());
                vacant.insert(value);
            }
        }
    }

    /// Forgets `key`; its value goes to `replaced`.
    fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q, replaced: &mut Vec<Arc<V>>)
    where
        K: Borrow<Q>,
    {
        if let Some(old) = self.kept.remove(key) {
            self.bytes -= old.weight();
            replaced.push(old);
        }
    }

    /// Forgets the oldest entries beyond [`MAX_RECENT`] or [`MAX_RECENT_BYTES`]; their
    /// values go to `replaced`.
    fn trim(&mut self, replaced: &mut Vec<Arc<V>>) {
        while self.kept.len() > MAX_RECENT || self.bytes > MAX_RECENT_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest, replaced);
        }
        if self.order.len() > 2 * MAX_RECENT {
            // Keys removed since they were kept: drop them from the order.
            let Bounded { kept, order, .. } = self;
            order.retain(|key| kept.contains_key(key));
        }
    }

    fn clear(&mut self) {
        self.kept.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

impl Recent {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock: the map is consistent after any panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `id`'s value as the tree durably holds it, if kept.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Kept>> {
        self.inner().executions.get(id)
    }

    /// The operation under the `o/` key `key` as the tree durably holds it, if kept.
    pub(crate) fn operation(&self, key: &[u8]) -> Option<Arc<KeptOp>> {
        self.inner().operations.get(key)
    }

    /// Records what a synced group left: the values of the executions it `written`, the
    /// executions it `deleted`, and its operations by `o/` key (`None`: deleted).
    ///
    /// Returns the values it no longer keeps, for the caller to drop once it has answered
    /// the group: freeing a group's worth of decoded records is work its answers need not
    /// wait for.
    pub(crate) fn publish<W, O>(
        &self,
        written: W,
        deleted: impl IntoIterator<Item = String>,
        operations: O,
    ) -> Replaced
    where
        W: IntoIterator<Item = (String, Arc<Kept>)>,
        W::IntoIter: ExactSizeIterator,
        O: IntoIterator<Item = (Vec<u8>, Option<Arc<KeptOp>>)>,
        O::IntoIter: ExactSizeIterator,
    {
        let (written, operations) = (written.into_iter(), operations.into_iter());
        // Sized at once: grown entry by entry, they were a seventh of this call.
        let mut replaced = Replaced {
            executions: Vec::with_capacity(written.len()),
            operations: Vec::with_capacity(operations.len()),
        };
        let (executions, ops) = (&mut replaced.executions, &mut replaced.operations);
        let mut inner = self.inner();
        for id in deleted {
            inner.executions.remove(&id, executions);
        }
        for (id, kept) in written {
            inner.executions.put(id, kept, executions);
        }
        for (key, op) in operations {
            match op {
                Some(op) => inner.operations.put(key, op, ops),
                None => inner.operations.remove(&key, ops),
            }
        }
        inner.executions.trim(executions);
        inner.operations.trim(ops);
        replaced
    }

    /// Forgets everything, after a group that may or may not have reached the tree.
    pub(crate) fn clear(&self) {
        let mut inner = self.inner();
        inner.executions.clear();
        inner.operations.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner().executions.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use durable_core::{ExecutionRecord, Timestamp};

    use super::*;

    fn kept(id: &str) -> Kept {
        Kept {
            value: keys::Execution {
                record: ExecutionRecord::new(id, "w", 1, Timestamp::EPOCH),
                input: None,
                history_from: 0,
                tail: Vec::new(),
            },
            hash: 0,
            size: 100,
        }
    }

    #[test]
    fn the_oldest_go_first_and_deleted_ones_at_once() {
        let recent = Recent::default();
        let ids: Vec<String> = (0..MAX_RECENT + 10).map(|n| format!("x{n}")).collect();
        let _ = recent.publish(
            ids.iter().map(|id| (id.clone(), Arc::new(kept(id)))),
            [],
            [],
        );
        assert_eq!(recent.len(), MAX_RECENT);
        assert!(recent.get("x9").is_none(), "among the oldest");
        assert!(recent.get("x10").is_some());
        // Written again: kept, and still where it was first kept in the order.
        let _ = recent.publish(
            [("x10".to_owned(), Arc::new(kept("x10")))],
            ["x11".to_owned()],
            [],
        );
        assert!(recent.get("x11").is_none(), "deleted");
        assert_eq!(recent.len(), MAX_RECENT - 1);
        for n in 0..3 * MAX_RECENT {
            let id = format!("y{n}");
            let _ = recent.publish([(id.clone(), Arc::new(kept(&id)))], [], []);
            let _ = recent.publish([], [id], []);
        }
        assert_eq!(recent.len(), MAX_RECENT - 1);
        assert!(recent.inner().executions.order.len() <= 2 * MAX_RECENT + 1);
        recent.clear();
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn large_values_make_fewer_entries_fit() {
        let recent = Recent::default();
        let weighing = |id: &str, size| Arc::new(Kept { size, ..kept(id) });
        let tenth = MAX_RECENT_BYTES / 10;
        let ids: Vec<String> = (0..25).map(|n| format!("x{n}")).collect();
        let _ = recent.publish(
            ids.iter().map(|id| (id.clone(), weighing(id, tenth))),
            [],
            [],
        );
        assert_eq!(recent.len(), 10, "ten tenths of the budget");
        assert!(recent.get("x14").is_none() && recent.get("x15").is_some());
        // Replaced in place by a lighter value: its old weight no longer counts.
        let _ = recent.publish([("x15".to_owned(), weighing("x15", 1))], [], []);
        assert_eq!(recent.inner().executions.bytes, 9 * tenth + 1);
        let _ = recent.publish([("y".to_owned(), weighing("y", tenth))], [], []);
        assert_eq!(recent.len(), 11, "the lighter one made room");
        // Removed: its weight goes with it.
        let _ = recent.publish([], ["x16".to_owned()], []);
        assert_eq!(recent.inner().executions.bytes, 9 * tenth + 1);
        recent.clear();
        assert_eq!(recent.inner().executions.bytes, 0);
    }
}
