//! A sled store whose acknowledged commits are counted by the status they wrote, and
//! whose timer-index reads are counted: the benches wait for counts instead of polling.
//! Shared by `benches/sleepers.rs` and `benches/callbacks.rs` (`mod support;`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use durable_core::{
    Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, HistoryEntry, ListFilter,
    OperationRecord, Status, Store, StoreError, Timestamp,
};
use durable_store_sled::SledStore;
use tokio::sync::Notify;

/// Acknowledged commits by the status they wrote.
#[derive(Default)]
pub struct Counts {
    /// Commits that suspended an execution.
    pub suspended: AtomicU64,
    /// Commits that completed one.
    pub completed: AtomicU64,
    changed: Notify,
    /// Calls that read the timer index.
    pub timer_reads: AtomicU64,
}

impl Counts {
    /// Waits until `counter` reaches `target`.
    pub async fn reach(&self, counter: &AtomicU64, target: u64) {
        loop {
            let changed = self.changed.notified();
            if counter.load(Ordering::Acquire) >= target {
                return;
            }
            changed.await;
        }
    }
}

/// The sled store, with commits counted.
pub struct Counted {
    /// The store counted.
    pub store: SledStore,
    /// Where the counts go.
    pub counts: Arc<Counts>,
    /// The count the bench waits for: it is notified there, and every `every` commits.
    pub target: u64,
    /// How often the bench is notified on the way (a notification per commit would cost
    /// more than the commit).
    pub every: u64,
}

impl Counted {
    fn count(&self, counter: &AtomicU64) {
        let n = counter.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target || n.is_multiple_of(self.every) {
            self.counts.changed.notify_waiters();
        }
    }
}

#[async_trait]
impl Store for Counted {
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        self.store.create(record, input).await
    }
    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.store.load(id).await
    }
    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.load_input(id).await
    }
    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        let status = commit.record.status;
        let committed = self.store.commit(commit).await?;
        match status {
            Status::Suspended => self.count(&self.counts.suspended),
            Status::Completed => self.count(&self.counts.completed),
            _ => {}
        }
        Ok(committed)
    }
    async fn deliver(&self, delivery: Delivery) -> Result<Delivered, StoreError> {
        self.store.deliver(delivery).await
    }
    async fn operation(
        &self,
        execution: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        self.store.operation(execution, key).await
    }
    async fn operation_by_token(&self, token: &str) -> Result<Option<OperationRecord>, StoreError> {
        self.store.operation_by_token(token).await
    }
    async fn operations(
        &self,
        execution: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        self.store.operations(execution, after, limit).await
    }
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete(id).await
    }
    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.store.claim(id, owner, now, until).await
    }
    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        self.store.release(id, owner).await
    }
    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.counts.timer_reads.fetch_add(1, Ordering::Relaxed);
        self.store.due(now, limit).await
    }
    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.counts.timer_reads.fetch_add(1, Ordering::Relaxed);
        self.store.next_wake().await
    }
    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.counts.timer_reads.fetch_add(1, Ordering::Relaxed);
        self.store.timers_after(after, until, limit).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.store.list(filter).await
    }
    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.store.history(id).await
    }
    async fn save_layout(&self, layout: u64, description: Vec<u8>) -> Result<(), StoreError> {
        self.store.save_layout(layout, description).await
    }
    async fn layout(&self, layout: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.layout(layout).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.store.close().await
    }
}
