//! The index of running executions as the writer keeps it: the running lists in the tree
//! (`r/` keys, see `keys`) and, in memory, which list holds each running execution and
//! how many of each list's ids still run there.
//!
//! An execution that becomes running joins the list of the group that makes it so; one
//! that stops running (or is deleted) only lowers its list's count. At the end of each
//! group the writer writes that group's new list, removes the lists no id runs in any
//! more, and rewrites the lists that hold more stale ids than running ones, so that the
//! lists never hold more than twice the running executions (plus, after an open, one
//! stale id for each id an older list still names). Memory: one entry per running
//! execution and per list, in proportion to unfinished work like the rest of an open.

use std::collections::hash_map::Entry;

use durable_core::{Status, StoreError};
use foldhash::{HashMap, HashSet};

use crate::digest::{self, Writes};
use crate::error::sled_error;
use crate::keys::{self, ListKey};

/// How many ids a migration puts in one list.
pub(crate) const MIGRATION_LIST: usize = 4096;

/// One list in the tree.
#[derive(Debug)]
struct List {
    /// The ids the list holds in the tree.
    ids: Vec<String>,
    /// How many of them run and have this list as their home.
    live: usize,
    /// The digest hash of the list's entry (see `digest::entry_hash`).
    hash: u64,
}

/// The writer's view of the running lists; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct RunningIndex {
    lists: HashMap<ListKey, List>,
    /// The list of each running execution.
    home: HashMap<String, ListKey>,
    /// The executions that became running in the group being staged, in order.
    joined: Vec<String>,
    /// The lists whose counts the group being staged lowered.
    lowered: HashSet<ListKey>,
}

impl RunningIndex {
    /// The index of the lists in `db`, with the status of each id they name read from its
    /// execution value. Lists that a write should remove or compact are written with
    /// the next group.
    pub(crate) fn load(db: &sled::Db) -> Result<RunningIndex, StoreError> {
        let mut index = RunningIndex::default();
        for entry in db.scan_prefix(keys::RUNNING) {
            let (key, value) = entry.map_err(sled_error)?;
            let list = keys::parse_running_list(&key)?;
            let ids = keys::decode_running_list(&key, &value)?;
            for id in &ids {
                let running = match db.get(keys::execution(id)).map_err(sled_error)? {
                    Some(bytes) => {
                        keys::decode_record(&keys::execution(id), &bytes)?.status == Status::Running
                    }
                    None => false,
                };
                if running {
                    // Scanned in key order: a later list is the one it joined last.
                    index.home.insert(id.clone(), list);
                }
            }
            let hash = digest::entry_hash(&key, &value);
            index.lists.insert(list, List { ids, live: 0, hash });
        }
        for home in index.home.values() {
            if let Some(list) = index.lists.get_mut(home) {
                list.live += 1;
            }
        }
        index.lowered = index.lists.keys().copied().collect();
        Ok(index)
    }

    /// Records that `id` became running in the group that will write `list`.
    pub(crate) fn join(&mut self, id: &str, list: ListKey) {
        if let Entry::Vacant(vacant) = self.home.entry(id.to_owned()) {
            vacant.insert(list);
            self.joined.push(id.to_owned());
        }
    }

    /// Records that `id` stopped running (or was deleted) in the group that will write
    /// `list`.
    pub(crate) fn leave(&mut self, id: &str, list: ListKey) {
        match self.home.remove(id) {
            Some(home) if home == list => self.joined.retain(|joined| joined != id),
            Some(home) => {
                if let Some(old) = self.lists.get_mut(&home) {
                    old.live = old.live.saturating_sub(1);
                }
                self.lowered.insert(home);
            }
            None => {}
        }
    }

    /// Stages the group's list changes in `batch`: its new list `list`, and the removal
    /// or rewrite of the lists whose counts it lowered. Returns whether it wrote.
    ///
    /// The writer calls this once all the group's requests are staged. Its changes to
    /// the index stand whether or not the group's batch then applies: a group that fails
    /// leaves the store failed until it is opened again, which loads the index anew.
    pub(crate) fn finish_group(&mut self, list: ListKey, batch: &mut Writes) -> bool {
        let mut wrote = false;
        for lowered in std::mem::take(&mut self.lowered) {
            let Entry::Occupied(mut entry) = self.lists.entry(lowered) else {
                continue;
            };
            let key = keys::running_list(lowered);
            let old = entry.get_mut();
            if old.live == 0 {
                batch.know_hash(&key, Some(old.hash));
                batch.remove(key);
                entry.remove();
                wrote = true;
            } else if old.ids.len() > 2 * old.live {
                let home = &self.home;
                old.ids.retain(|id| home.get(id) == Some(&lowered));
                // Ids of a list written already, so they encode; were they not, the list
                // would only stay longer than it needs.
                let Ok(value) = keys::encode_running_list(old.ids.iter().map(String::as_str))
                else {
                    continue;
                };
                batch.know_hash(&key, Some(old.hash));
                old.hash = digest::entry_hash(&key, &value);
                batch.insert_hashed(key, value, old.hash);
                wrote = true;
            }
        }
        if !self.joined.is_empty() {
            let ids = std::mem::take(&mut self.joined);
            let key = keys::running_list(list);
            // Ids of executions whose values (which hold them) encoded, in a number that a
            // group of requests bounds: they encode.
            if let Ok(value) = keys::encode_running_list(ids.iter().map(String::as_str)) {
                // A new group's number: no list has its key yet.
                batch.know_hash(&key, None);
                let hash = digest::entry_hash(&key, &value);
                batch.insert_hashed(key, value, hash);
                let live = ids.len();
                self.lists.insert(list, List { ids, live, hash });
                wrote = true;
            } else {
                tracing::error!(
                    executions = ids.len(),
                    "cannot encode a running list: an open will not find these executions"
                );
            }
        }
        wrote
    }

    /// The running executions, in id order, for tests.
    #[cfg(test)]
    pub(crate) fn running(&self) -> Vec<String> {
        let mut running: Vec<String> = self.home.keys().cloned().collect();
        running.sort();
        running
    }

    /// Checks, for tests, that the lists in `db` are the ones in memory, that each has a
    /// running execution and at most twice as many ids as those, and that its count is
    /// right.
    #[cfg(test)]
    pub(crate) fn check(&self, db: &sled::Db) -> Result<(), String> {
        let mut stored = 0;
        for entry in db.scan_prefix(keys::RUNNING) {
            let (key, value) = entry.map_err(|e| e.to_string())?;
            let list = keys::parse_running_list(&key).map_err(|e| e.to_string())?;
            let ids = keys::decode_running_list(&key, &value).map_err(|e| e.to_string())?;
            let kept = self.lists.get(&list).ok_or(format!("{list:?} not kept"))?;
            let live = self.home.values().filter(|home| **home == list).count();
            if kept.ids != ids || kept.hash != digest::entry_hash(&key, &value) {
                return Err(format!("{list:?} differs from the one kept"));
            }
            if kept.live != live || live == 0 || ids.len() > 2 * live {
                return Err(format!("{list:?}: {} ids, {live} live", ids.len()));
            }
            stored += 1;
        }
        if stored != self.lists.len() {
            return Err(format!("{stored} lists stored, {} kept", self.lists.len()));
        }
        Ok(())
    }
}

/// The writes that replace format 3's entries of running executions (`u/0` id) by running
/// lists under group 0, which no group of writes has (they count from 1).
pub(crate) fn migrate_v3(db: &sled::Db, batch: &mut Writes) -> Result<usize, StoreError> {
    let mut ids = Vec::new();
    for key in db.scan_prefix(keys::UNFINISHED_RUNNING_V3).keys() {
        let key = key.map_err(sled_error)?;
        ids.push(keys::parse_unfinished(keys::UNFINISHED_RUNNING_V3, &key)?);
        batch.remove(key);
    }
    write_migrated(&ids, batch)?;
    Ok(ids.len())
}

/// Writes `ids` as running lists of group 0, [`MIGRATION_LIST`] ids each.
pub(crate) fn write_migrated(ids: &[String], batch: &mut Writes) -> Result<(), StoreError> {
    for (part, chunk) in ids.chunks(MIGRATION_LIST).enumerate() {
        let part = u32::try_from(part).map_err(|_| StoreError::Invalid {
            message: format!("{} running executions are too many to migrate", ids.len()),
        })?;
        let value = keys::encode_running_list(chunk.iter().map(String::as_str))?;
        batch.insert(keys::running_list((0, part)), value);
    }
    Ok(())
}
