//! Persistence: the [`Store`] trait and the in-memory [`MemoryStore`].
//!
//! The trait speaks in transitions, not key-value plumbing: create an execution, load it,
//! commit one transition conditionally on its sequence number, claim it to run it, and
//! query what is due. Every method that writes says what is durable when it returns.
//!
//! A store must not assume that one engine owns every execution: claims are leases with
//! an expiry, commits are conditional, and wake-ups are queries. Stores that are owned by
//! one process (the in-memory and sled stores) keep leases in memory with a
//! [`LeaseTable`], since a lease cannot outlive the process that holds the store.
//!
//! Finding work must not cost in proportion to history: a store keeps an index of
//! unfinished executions (`Running`, `Suspended`, `Parked`), maintained by the commits
//! that change an execution's status, so that [`Store::list`] by one of those statuses
//! reads only the matching executions, and an engine opening over a million finished
//! executions reads none of them.

mod lease;
mod memory;
mod rules;

use async_trait::async_trait;

pub use lease::LeaseTable;
pub use memory::MemoryStore;

/// The rules every store applies to operations and deliveries, as pure functions over
/// records: a store implementation calls them inside its own transaction so that every
/// store behaves alike (the conformance suite checks it).
pub mod store_rules {
    pub use super::rules::{apply, check_change, check_delivery, expect_holds, refusal};
}

use crate::error::StoreError;
use crate::record::{
    Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, HistoryEntry, ListFilter,
    OperationRecord,
};
use crate::time::Timestamp;

/// Where executions live.
///
/// Implementations must pass the store conformance suite (`tests/store_conformance.rs`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `record` with its encoded `input`, unless an execution with the same id
    /// exists, in which case nothing is written and the existing record is returned.
    ///
    /// Durable: when this returns `Ok(Created::New)`, the execution survives a crash.
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError>;

    /// The execution's record, `None` if there is none.
    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError>;

    /// The execution's encoded input, `None` if there is no such execution.
    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies one transition atomically: the new record, its history entries, the timer
    /// index change implied by the old and new `wake_at`, the unfinished-index change
    /// implied by the old and new status, its operation changes (in order) and its
    /// deliveries.
    ///
    /// Refused, with nothing written, with [`StoreError::Conflict`] unless the stored
    /// `seq` equals `commit.expected_seq`, and with [`StoreError::OperationConflict`]
    /// unless every operation change's [`Expect`](crate::Expect) holds (checked against
    /// the operations as the earlier changes of the same commit leave them). A `Put`
    /// whose token belongs to another operation is an `OperationConflict` too. Deliveries
    /// follow [`deliver`](Store::deliver)'s rules, except that one that cannot apply is
    /// skipped; the executions they wake are returned in [`Committed::woken`].
    ///
    /// Durable: when this returns `Ok`, the whole transition survives a crash. Concurrent
    /// commits may share one flush.
    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError>;

    /// Applies a change from outside to a pending operation, atomically:
    ///
    /// - an unknown token or key is [`Delivered::Unknown`]; an operation whose execution
    ///   has finished (`Completed` or `Failed`) is [`Delivered::ExecutionFinished`]; a
    ///   settled one is [`Delivered::AlreadySettled`]; none of them writes anything;
    /// - [`Settlement::Settle`](crate::Settlement::Settle) writes the new state and
    ///   `updated_at`; if the execution is `Suspended` and its `awaiting` names the
    ///   operation, the execution is woken in the same write: `Running`, no `wake_at`
    ///   (its timer leaves the index), `awaiting` empty, `seq` + 1, `updated_at` = the
    ///   delivery's time;
    /// - [`Settlement::Heartbeat`](crate::Settlement::Heartbeat) writes `heartbeat_at`
    ///   and `updated_at` and wakes nothing.
    ///
    /// Durable: when this returns `Ok(Delivered::Applied { .. })`, the change survives a
    /// crash. Concurrent deliveries and commits may share one flush; of concurrent
    /// deliveries to one operation, exactly one settles it.
    async fn deliver(&self, delivery: Delivery) -> Result<Delivered, StoreError>;

    /// The operation `key` of execution `execution`, `None` if there is none.
    async fn operation(
        &self,
        execution: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, StoreError>;

    /// The operation whose token is `token`, `None` if there is none.
    async fn operation_by_token(&self, token: &str) -> Result<Option<OperationRecord>, StoreError>;

    /// The operations of `execution` whose keys sort after `after` (by UTF-8 bytes; all
    /// when `None`), in key order, at most `limit`.
    async fn operations(
        &self,
        execution: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError>;

    /// Deletes an execution and everything stored for it (input, history, operations,
    /// tokens, index entries); returns whether it existed. The engine deletes only
    /// finished executions.
    ///
    /// Durable: when this returns, the deletion survives a crash.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;

    /// Claims the execution for `owner` until `until`, unless another owner holds an
    /// unexpired lease on it. Returns whether the claim was granted; claiming again as
    /// the same owner renews it. Leases need not be durable.
    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives up `owner`'s lease on the execution, if it holds one.
    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError>;

    /// Executions whose `wake_at` is at or before `now`, earliest first, at most `limit`.
    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError>;

    /// The earliest `wake_at` of any execution, if any.
    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Timer-index entries `(wake_at, id)` that come after `after` in `(wake_at, id)`
    /// order (all of them when `after` is `None`) and whose `wake_at` is at or before
    /// `until`, earliest first, at most `limit`. Ids compare by their UTF-8 bytes.
    ///
    /// The engine's timer service reads the index with this from the last entry it
    /// handed out, so each due timer is read once. The default implementation is correct
    /// but rereads every entry up to `after` through [`due`](Store::due); a store should
    /// replace it with a range read of its index.
    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let Some(after) = after else {
            return self.due(until, limit).await;
        };
        let mut entries = self.due(until, usize::MAX).await?;
        entries.retain(|(at, id)| (*at, id.as_str()) > after);
        entries.truncate(limit);
        Ok(entries)
    }

    /// Executions that pass `filter`, in id order, at most `filter.limit`.
    ///
    /// With a status filter of `Running`, `Suspended` or `Parked` the store reads only
    /// unfinished executions (its unfinished index), so the cost follows the number of
    /// matches, not the number of executions ever stored.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// The execution's retained history entries, oldest first.
    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Finishes every write already asked for and releases what the store holds (files,
    /// locks, connections), so that it can be opened again; later calls may fail with
    /// [`StoreError::Closed`]. [`Engine::shutdown`](crate::Engine::shutdown) calls it.
    /// The default does nothing.
    ///
    /// Durable: when this returns `Ok`, every acknowledged write survives a crash.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
