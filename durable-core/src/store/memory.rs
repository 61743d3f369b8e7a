use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use foldhash::{HashMap, HashMapExt};

use super::{rules, LeaseTable, Store};
use crate::error::StoreError;
use crate::record::{
    Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, HistoryEntry, ListFilter,
    OperationAction, OperationRecord, OperationRef, Status,
};
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

/// Operations are keyed `(execution, key)`, so one execution's are a range.
type OpKey = (String, String);

#[derive(Debug, Default)]
struct State {
    executions: BTreeMap<String, ExecutionRecord>,
    inputs: HashMap<String, Vec<u8>>,
    history: HashMap<String, BTreeMap<u64, HistoryEntry>>,
    /// Layout descriptions, by layout fingerprint.
    layouts: HashMap<u64, Vec<u8>>,
    timers: BTreeSet<(Timestamp, String)>,
    /// `(status, id)` of every unfinished execution.
    unfinished: BTreeSet<(u8, String)>,
    operations: BTreeMap<OpKey, OperationRecord>,
    tokens: HashMap<String, OpKey>,
}

/// What the timer and unfinished indexes hold for one execution.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Indexed {
    wake_at: Option<Timestamp>,
    status: Status,
}

impl Indexed {
    fn of(record: &ExecutionRecord) -> Indexed {
        Indexed {
            wake_at: record.wake_at,
            status: record.status,
        }
    }
}

/// The unfinished index's key of a status, `None` for finished ones.
fn unfinished_rank(status: Status) -> Option<u8> {
    match status {
        Status::Running => Some(0),
        Status::Suspended => Some(1),
        Status::Parked => Some(2),
        Status::Completed | Status::Failed | Status::Cancelled => None,
    }
}

impl State {
    /// Stores `record`, keeping the timer and unfinished indexes in step; `old` is what the
    /// indexes hold for the execution now (its wake-up time and status), if it exists.
    fn put_record(&mut self, old: Option<Indexed>, record: ExecutionRecord) {
        let new = Indexed::of(&record);
        if old != Some(new) {
            let id = &record.id;
            if let Some(old) = old {
                if let Some(at) = old.wake_at {
                    self.timers.remove(&(at, id.clone()));
                }
                if let Some(rank) = unfinished_rank(old.status) {
                    self.unfinished.remove(&(rank, id.clone()));
                }
            }
            if let Some(at) = new.wake_at {
                self.timers.insert((at, id.clone()));
            }
            if let Some(rank) = unfinished_rank(new.status) {
                self.unfinished.insert((rank, id.clone()));
            }
        }
        match self.executions.get_mut(&record.id) {
            // Keeps the key's allocation: a commit does not change the id.
            Some(stored) => *stored = record,
            None => {
                self.executions.insert(record.id.clone(), record);
            }
        }
    }

    fn put_operation(&mut self, op: OperationRecord) {
        let key = (op.execution.clone(), op.key.clone());
        self.remove_operation(&key);
        if let Some(token) = &op.token {
            self.tokens.insert(token.clone(), key.clone());
        }
        self.operations.insert(key, op);
    }

    fn remove_operation(&mut self, key: &OpKey) {
        if let Some(old) = self.operations.remove(key) {
            if let Some(token) = old.token {
                self.tokens.remove(&token);
            }
        }
    }

    fn resolve(&self, to: &OperationRef) -> Option<OpKey> {
        match to {
            OperationRef::Token(token) => self.tokens.get(token).cloned(),
            OperationRef::Key { execution, key } => Some((execution.clone(), key.clone())),
        }
    }

    /// Applies a delivery under the store's lock.
    fn deliver(&mut self, delivery: &Delivery) -> Delivered {
        let Some(key) = self.resolve(&delivery.to) else {
            return Delivered::Unknown;
        };
        let op = self.operations.get(&key);
        let execution = self.executions.get(&key.0);
        if let Some(refused) = rules::refusal(op, execution, delivery.at) {
            return refused;
        }
        let (Some(mut op), Some(old)) = (op.cloned(), execution.cloned()) else {
            return Delivered::Unknown;
        };
        let mut execution = old.clone();
        let answer = rules::apply(delivery, &mut op, &mut execution);
        if execution != old {
            self.put_record(Some(Indexed::of(&old)), execution);
        }
        self.operations.insert(key, op);
        answer
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation below is checked before it starts and completes before the guard
        // drops, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Store::commit`], at once: nothing in it waits.
    fn commit_now(&self, commit: Commit) -> Result<Committed, StoreError> {
        let mut state = self.state();
        let id = commit.record.id.clone();
        let old = match state.executions.get(&id) {
            Some(old) if old.seq == commit.expected_seq => Indexed::of(old),
            found => {
                return Err(StoreError::Conflict {
                    id,
                    expected: commit.expected_seq,
                    found: found.map(|r| r.seq),
                })
            }
        };
        // Check every operation change before writing anything, against the operations
        // as the earlier changes leave them.
        let mut staged: HashMap<&str, Option<&OperationRecord>> = HashMap::new();
        for change in &commit.operations {
            let current = match staged.get(change.key.as_str()) {
                Some(staged) => *staged,
                None => state.operations.get(&(id.clone(), change.key.clone())),
            };
            rules::check_change(&id, change, current)?;
            let after = match &change.action {
                OperationAction::Keep => current,
                OperationAction::Put(op) => Some(&**op),
                OperationAction::Delete => None,
            };
            if let Some(token) = after.and_then(|op| op.token.as_ref()) {
                let owner = state.tokens.get(token);
                if owner.is_some_and(|(e, k)| *e != id || *k != change.key) {
                    return Err(StoreError::OperationConflict {
                        id: id.clone(),
                        key: change.key.clone(),
                        expected: change.expect,
                    });
                }
            }
            staged.insert(&change.key, after);
        }
        for change in &commit.operations {
            let key = (id.clone(), change.key.clone());
            match &change.action {
                OperationAction::Keep => {}
                OperationAction::Put(op) => state.put_operation((**op).clone()),
                OperationAction::Delete => state.remove_operation(&key),
            }
        }
        let history = state.history.entry(id.clone()).or_default();
        for entry in commit.history {
            history.insert(entry.number, entry);
        }
        // Usually one entry falls below the line per commit: remove those rather than
        // split the whole history off (which copies what stays).
        while history
            .first_key_value()
            .is_some_and(|(number, _)| *number < commit.prune_history_below)
        {
            history.pop_first();
        }
        state.put_record(Some(old), commit.record);
        let mut committed = Committed::default();
        for delivery in &commit.deliveries {
            if rules::check_delivery(delivery).is_err() {
                continue;
            }
            if let Delivered::Applied {
                execution,
                woke: true,
                ..
            } = state.deliver(delivery)
            {
                committed.woken.push(execution);
            }
        }
        Ok(committed)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        let mut state = self.state();
        if let Some(existing) = state.executions.get(&record.id) {
            return Ok(Created::Existing(Box::new(existing.clone())));
        }
        state.inputs.insert(record.id.clone(), input);
        state.put_record(None, record);
        Ok(Created::New)
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.state().executions.get(id).cloned())
    }

    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().inputs.get(id).cloned())
    }

    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        self.commit_now(commit)
    }

    async fn commit_leased(&self, commit: Commit, owner: u128) -> Result<Committed, StoreError> {
        self.leases.check(&commit.record.id, owner)?;
        // Not through `commit`: its boxed future would be a second copy of the commit.
        self.commit_now(commit)
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Delivered, StoreError> {
        rules::check_delivery(&delivery)?;
        Ok(self.state().deliver(&delivery))
    }

    async fn operation(
        &self,
        execution: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        Ok(self
            .state()
            .operations
            .get(&(execution.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn operation_by_token(&self, token: &str) -> Result<Option<OperationRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .tokens
            .get(token)
            .and_then(|key| state.operations.get(key))
            .cloned())
    }

    async fn operations(
        &self,
        execution: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded((execution.to_owned(), after.to_owned())),
            None => Bound::Included((execution.to_owned(), String::new())),
        };
        Ok(self
            .state()
            .operations
            .range((start, Bound::Unbounded))
            .take_while(|((e, _), _)| e == execution)
            .take(limit)
            .map(|(_, op)| op.clone())
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(old) = state.executions.remove(id) else {
            return Ok(false);
        };
        if let Some(at) = old.wake_at {
            state.timers.remove(&(at, id.to_owned()));
        }
        if let Some(rank) = unfinished_rank(old.status) {
            state.unfinished.remove(&(rank, id.to_owned()));
        }
        state.inputs.remove(id);
        state.history.remove(id);
        let keys: Vec<OpKey> = state
            .operations
            .range((id.to_owned(), String::new())..)
            .take_while(|((e, _), _)| e == id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            state.remove_operation(&key);
        }
        Ok(true)
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
        let state = self.state();
        let limit = filter.limit.unwrap_or(usize::MAX);
        let after = filter.after.clone().unwrap_or_default();
        let records = match filter.status.and_then(unfinished_rank) {
            Some(rank) => state
                .unfinished
                .range((Bound::Excluded((rank, after)), Bound::Unbounded))
                .take_while(|(r, _)| *r == rank)
                .filter_map(|(_, id)| state.executions.get(id))
                .filter(|r| filter.matches(r))
                .take(limit)
                .cloned()
                .collect(),
            None => state
                .executions
                .values()
                .filter(|r| filter.matches(r))
                .take(limit)
                .cloned()
                .collect(),
        };
        Ok(records)
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .state()
            .history
            .get(id)
            .map(|h| h.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn save_layout(&self, layout: u64, description: Vec<u8>) -> Result<(), StoreError> {
        self.state().layouts.entry(layout).or_insert(description);
        Ok(())
    }

    async fn layout(&self, layout: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state().layouts.get(&layout).cloned())
    }
}
