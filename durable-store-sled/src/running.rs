//! The writer's memory of running executions: their execution values, decoded, as the
//! tree holds them.
//!
//! Why: a running execution commits again and again, and each commit needs its execution
//! value as stored (the `seq` to check, the tail of its history, its indexes) and the
//! digest hash of that value (see `digest`). Reading and decoding it from sled was a third
//! of the writer thread's work per commit, and the writer thread is what every commit
//! waits for.
//!
//! Invariants:
//! - An entry is exactly what the tree holds under the execution's `e/` key: the writer
//!   thread is the only writer of the tree, and it updates or drops an entry after every
//!   group that wrote or deleted the execution, and forgets every entry when a group
//!   fails (its writes may or may not be in the tree).
//! - Only running executions are kept, at most [`MAX_RUNNING`] of them: a suspended or
//!   finished execution costs no memory, as the crate docs promise.

use std::collections::HashMap;

use durable_core::Status;

use crate::keys;

/// Most executions kept; beyond them, commits read their execution from the tree.
pub(crate) const MAX_RUNNING: usize = 1024;

/// An execution value as the tree holds it.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) value: keys::Execution,
    /// The digest hash of its `e/` entry (see `digest::entry_hash`).
    pub(crate) hash: u64,
}

/// The running executions the writer keeps; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Running {
    kept: HashMap<String, Kept>,
}

impl Running {
    /// Takes `id`'s value out, for a group that rewrites it (the group gives it back with
    /// [`keep`](Self::keep) once written).
    pub(crate) fn take(&mut self, id: &str) -> Option<Kept> {
        self.kept.remove(id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Kept> {
        self.kept.get(id)
    }

    /// Records `id`'s value after a group wrote (or kept) it: kept while it runs and
    /// there is room, forgotten otherwise.
    pub(crate) fn keep(&mut self, id: String, kept: Kept) {
        let room = self.kept.len() < MAX_RUNNING || self.kept.contains_key(&id);
        if kept.value.record.status == Status::Running && room {
            self.kept.insert(id, kept);
        } else {
            self.kept.remove(&id);
        }
    }

    /// Forgets `id`, deleted by a group.
    pub(crate) fn forget(&mut self, id: &str) {
        self.kept.remove(id);
    }

    /// Forgets everything, after a group that may or may not have reached the tree.
    pub(crate) fn clear(&mut self) {
        self.kept.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }
}
