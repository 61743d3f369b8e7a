//! The index of running executions as the writer keeps it: the running lists in the tree
//! (`r/` keys, see `keys`), the entries of executions that outgrew them (`u/0` id) and, in
//! memory, which list holds each listed execution and how many of each list's ids still
//! run there.
//!
//! An execution that becomes running joins the list of the group that makes it so; one
//! that stops running (or is deleted) only lowers its list's count. At the end of each
//! group the writer writes that group's new list, removes the lists no id runs in any
//! more, and rewrites the lists that hold more stale ids than running ones, so that the
//! lists never hold more than twice the executions they index (plus, after an open, one
//! stale id for each id an older list still names).
//!
//! Listing running executions reads every list, so the lists together hold at most
//! [`MAX_LISTED`] ids: beyond that, the oldest lists' running executions move to entries
//! of their own, which a listing pages through in id order like the other statuses'. Short
//! executions (the common case) start and end within their list; only a backlog or long
//! runs pay an entry each, as every execution did before lists.
//!
//! Memory: one entry per listed execution and per list, bounded like the lists.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

use durable_core::{Status, StoreError};
use foldhash::{HashMap, HashSet};

use crate::digest::{self, Writes};
use crate::error::sled_error;
use crate::keys::{self, ListKey};
use crate::writer;

/// The most ids the running lists hold together before the oldest lists' executions move
/// to entries of their own (see the module docs).
pub(crate) const MAX_LISTED: usize = 16_384;

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

/// The writer's view of the running index; see the module docs.
#[derive(Debug)]
pub(crate) struct RunningIndex {
    /// By key, so that the oldest list is the first.
    lists: BTreeMap<ListKey, List>,
    /// The list of each listed running execution; a running execution not here has an
    /// entry of its own.
    home: HashMap<String, ListKey>,
    /// How many ids the lists hold together.
    listed: usize,
    /// [`MAX_LISTED`], but in tests.
    max_listed: usize,
    /// The executions that became running in the group being staged, in order.
    joined: Vec<String>,
    /// The lists whose counts the group being staged lowered.
    lowered: HashSet<ListKey>,
}

#[cfg(test)]
thread_local! {
    /// The maximum of the indexes this thread makes, for tests whose lists overflow
    /// without writing [`MAX_LISTED`] executions first (libtest runs each test on a
    /// thread of its own, so a test's setting ends with it).
    pub(crate) static TEST_MAX_LISTED: std::cell::Cell<usize> =
        const { std::cell::Cell::new(MAX_LISTED) };
}

impl Default for RunningIndex {
    fn default() -> Self {
        #[cfg(not(test))]
        let max_listed = MAX_LISTED;
        #[cfg(test)]
        let max_listed = TEST_MAX_LISTED.with(std::cell::Cell::get);
        RunningIndex {
            lists: BTreeMap::new(),
            home: HashMap::default(),
            listed: 0,
            max_listed,
            joined: Vec::new(),
            lowered: HashSet::default(),
        }
    }
}

impl RunningIndex {
    /// The index of the lists in `db`, with the status of each id they name read from its
    /// execution value. Lists that a write should remove, compact or move to entries are
    /// written with the next group.
    pub(crate) fn load(db: &sled::Db) -> Result<RunningIndex, StoreError> {
        let mut index = RunningIndex::default();
        for entry in db.scan_prefix(keys::RUNNING) {
            let (key, value) = entry.map_err(sled_error)?;
            let list = keys::parse_running_list(&key)?;
            let ids = keys::decode_running_list(&key, &value)?;
            for id in &ids {
                let record = writer::load(db, &keys::execution(id))?;
                let running = record.is_some_and(|r| r.status == Status::Running);
                // No list names an execution with an entry of its own while it runs:
                // lists move to entries oldest first, and an execution rejoins a list
                // (a newer one) only after it stopped running, which removes its entry.
                if running {
                    // Scanned in key order: a later list is the one it joined last.
                    index.home.insert(id.clone(), list);
                }
            }
            index.listed += ids.len();
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
    /// `list`, and stages the removal of its own entry if it has one.
    pub(crate) fn leave(&mut self, id: &str, list: ListKey, batch: &mut Writes) {
        match self.home.remove(id) {
            Some(home) if home == list => self.joined.retain(|joined| joined != id),
            Some(home) => {
                if let Some(old) = self.lists.get_mut(&home) {
                    old.live = old.live.saturating_sub(1);
                }
                self.lowered.insert(home);
            }
            None => batch.remove(keys::running_entry(id)),
        }
    }

    /// Stages the group's index changes in `batch`: its new list `list`, the removal or
    /// rewrite of the lists whose counts it lowered, and the move of the oldest lists'
    /// executions to entries of their own while the lists hold too many ids. Returns
    /// whether it wrote.
    ///
    /// The writer calls this once all the group's requests are staged. Its changes to
    /// the index stand whether or not the group's batch then applies: a group that fails
    /// leaves the store failed until it is opened again, which loads the index anew.
    pub(crate) fn finish_group(&mut self, list: ListKey, batch: &mut Writes) -> bool {
        let mut wrote = false;
        for lowered in std::mem::take(&mut self.lowered) {
            let Some(old) = self.lists.get_mut(&lowered) else {
                continue;
            };
            let key = keys::running_list(lowered);
            if old.live == 0 {
                batch.know_hash(&key, Some(old.hash));
                batch.remove(key);
                self.listed -= old.ids.len();
                self.lists.remove(&lowered);
                wrote = true;
            } else if old.ids.len() > 2 * old.live {
                let home = &self.home;
                let live = |id: &String| home.get(id) == Some(&lowered);
                let kept: Vec<&str> = old
                    .ids
                    .iter()
                    .filter(|id| live(id))
                    .map(|id| id.as_str())
                    .collect();
                // Ids of a list written already, so they encode; were they not, the list
                // would only stay longer than it needs.
                let Ok(value) = keys::encode_running_list(kept.into_iter()) else {
                    continue;
                };
                let before = old.ids.len();
                old.ids.retain(live);
                self.listed -= before - old.ids.len();
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
                self.listed += live;
                self.lists.insert(list, List { ids, live, hash });
                wrote = true;
            } else {
                // Indexed one by one instead.
                for id in ids {
                    self.home.remove(&id);
                    batch.insert(keys::running_entry(&id), sled::IVec::default());
                }
                wrote = true;
            }
        }
        while self.listed > self.max_listed {
            let Some((oldest, old)) = self.lists.pop_first() else {
                break;
            };
            for id in &old.ids {
                if self.home.get(id) == Some(&oldest) {
                    self.home.remove(id);
                    batch.insert(keys::running_entry(id), sled::IVec::default());
                }
            }
            let key = keys::running_list(oldest);
            batch.know_hash(&key, Some(old.hash));
            batch.remove(key);
            self.listed -= old.ids.len();
            wrote = true;
        }
        wrote
    }

    /// The listed running executions, in id order, for tests.
    #[cfg(test)]
    pub(crate) fn listed(&self) -> Vec<String> {
        let mut running: Vec<String> = self.home.keys().cloned().collect();
        running.sort();
        running
    }

    /// Checks, for tests, that the lists in `db` are the ones in memory, that each has a
    /// running execution and at most twice as many ids as those, that its count is right,
    /// and that the lists hold at most the maximum.
    #[cfg(test)]
    pub(crate) fn check(&self, db: &sled::Db) -> Result<(), String> {
        let mut stored = 0;
        let mut listed = 0;
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
            listed += ids.len();
        }
        if stored != self.lists.len() || listed != self.listed || listed > self.max_listed {
            return Err(format!(
                "{stored} lists of {listed} ids stored, {} of {} kept",
                self.lists.len(),
                self.listed
            ));
        }
        Ok(())
    }
}
