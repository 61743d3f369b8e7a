use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{LeaseTable, Store};
use crate::error::StoreError;
use crate::record::{Commit, Created, ExecutionRecord, HistoryEntry, ListFilter};
use crate::time::Timestamp;

/// A store that keeps everything in memory: for tests and for workflows that need the
/// programming model but not durability.
///
/// "Durable" in the [`Store`] docs means "visible to later calls on this store" here;
/// nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    leases: LeaseTable,
}

#[derive(Debug, Default)]
struct State {
    executions: BTreeMap<String, ExecutionRecord>,
    inputs: HashMap<String, Vec<u8>>,
    history: HashMap<String, BTreeMap<u64, HistoryEntry>>,
    timers: BTreeSet<(Timestamp, String)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation below completes before the guard drops, so a poisoned lock
        // still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        let mut state = self.state();
        if let Some(existing) = state.executions.get(&record.id) {
            return Ok(Created::Existing(Box::new(existing.clone())));
        }
        if let Some(at) = record.wake_at {
            state.timers.insert((at, record.id.clone()));
        }
        state.inputs.insert(record.id.clone(), input);
        state.executions.insert(record.id.clone(), record);
        Ok(Created::New)
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.state().executions.get(id).cloned())
    }

    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().inputs.get(id).cloned())
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let mut state = self.state();
        let id = commit.record.id.clone();
        let old_wake = match state.executions.get(&id) {
            Some(old) if old.seq == commit.expected_seq => old.wake_at,
            found => {
                return Err(StoreError::Conflict {
                    id,
                    expected: commit.expected_seq,
                    found: found.map(|r| r.seq),
                })
            }
        };
        if let Some(at) = old_wake {
            state.timers.remove(&(at, id.clone()));
        }
        if let Some(at) = commit.record.wake_at {
            state.timers.insert((at, id.clone()));
        }
        let history = state.history.entry(id.clone()).or_default();
        for entry in commit.history {
            history.insert(entry.number, entry);
        }
        *history = history.split_off(&commit.prune_history_below);
        state.executions.insert(id, commit.record);
        Ok(())
    }

    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.leases.claim(id, owner, now, until))
    }

    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        self.leases.release(id, owner);
        Ok(())
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        Ok(self
            .state()
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.state().timers.first().map(|(at, _)| *at))
    }

    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let start = match after {
            Some((at, id)) => Bound::Excluded((at, id.to_owned())),
            None => Bound::Unbounded,
        };
        Ok(self
            .state()
            .timers
            .range((start, Bound::Unbounded))
            .take_while(|(at, _)| *at <= until)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        Ok(self
            .state()
            .executions
            .values()
            .filter(|r| filter.matches(r))
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .state()
            .history
            .get(id)
            .map(|h| h.values().cloned().collect())
            .unwrap_or_default())
    }
}
