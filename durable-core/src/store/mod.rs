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
//! A store that engines in several processes share (a database) says so with
//! [`Store::is_shared`]; an engine over it finds ready work with [`Store::acquire`]
//! (claiming it in the same step, so two engines never take the same execution), renews
//! the leases of what it runs with [`Store::renew`], commits under its lease with
//! [`Store::commit_leased`], and hears of other engines' changes through
//! [`Store::signals`]. The defaults of these methods are right for stores owned by one
//! process.
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
use tokio::sync::broadcast;

pub use lease::LeaseTable;
pub use memory::MemoryStore;

/// The rules every store applies to operations and deliveries, as pure functions over
/// records: a store implementation calls them inside its own transaction so that every
/// store behaves alike (the conformance suite checks it).
///
/// One rule is about failures rather than records: a write that fails with
/// [`StoreError::Backend`] may or may not have been applied, and a store that cannot go
/// on after such a failure (sled 0.34 refuses every write after an I/O error) repairs
/// itself in [`Store::recover`](crate::Store::recover), keeping every acknowledged write.
/// The engine then retries the same commit: applied already, it is refused as a
/// [`StoreError::Conflict`] and the engine resumes the execution from what is stored.
pub mod store_rules {
    pub use super::rules::{apply, check_change, check_delivery, expect_holds, refusal};
}

use crate::error::StoreError;
use crate::record::{
    Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, HistoryEntry, ListFilter,
    OperationRecord,
};
use crate::time::Timestamp;

/// How many executions the default [`Store::acquire`] reads per store call.
const ACQUIRE_PAGE: usize = 256;

/// What [`Store::acquire`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Acquired {
    /// The executions now leased to the caller, to run.
    pub ids: Vec<String>,
    /// The earliest wake-up time later than `now` of any execution: when to look again.
    pub next_wake: Option<Timestamp>,
}

/// A change made through a shared store that the other engines using it should hear
/// about (see [`Store::signals`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreSignal {
    /// Executions may have become ready to run: one was created, woken by a delivery, or
    /// released while still running.
    Ready,
    /// The execution finished (`Completed` or `Failed`) or was parked.
    Finished(String),
    /// Signals may have been lost (the store's notification channel was interrupted):
    /// anything may have changed.
    Missed,
}

/// Claims `id` for `owner` only if nobody, `owner` included, holds an unexpired lease on
/// it: first as another owner for no time at all (granted only when no lease is live,
/// and expired at once), then as `owner`, which takes that expired lease over unless a
/// rival claimed in between.
async fn claim_free<S: Store + ?Sized>(
    store: &S,
    id: &str,
    owner: u128,
    now: Timestamp,
    until: Timestamp,
) -> Result<bool, StoreError> {
    Ok(store.claim(id, !owner, now, now).await? && store.claim(id, owner, now, until).await?)
}

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

    /// Applies `commit` as [`commit`](Store::commit) does, on behalf of lease owner
    /// `owner`: refused with [`StoreError::LeaseLost`], nothing written, when another owner
    /// holds the execution's lease (expired or not: that owner took the execution over).
    /// An execution nobody holds a lease on, or whose lease `owner` holds (even expired),
    /// is committed as usual; the sequence number still decides.
    ///
    /// The lease is checked before the sequence number. The default ignores the lease,
    /// which is right only for a store whose leases nobody can take over.
    ///
    /// Durable: as [`commit`](Store::commit).
    async fn commit_leased(&self, commit: Commit, owner: u128) -> Result<Committed, StoreError> {
        let _ = owner;
        self.commit(commit).await
    }

    /// Applies a change from outside to a pending operation, atomically:
    ///
    /// - an unknown token or key is [`Delivered::Unknown`]; then, in this order (see
    ///   [`store_rules::refusal`](crate::store_rules::refusal)), a settled operation is
    ///   [`Delivered::AlreadySettled`], a pending one whose
    ///   [`deadline`](crate::OperationRecord::deadline) is at or before the delivery's time
    ///   is [`Delivered::DeadlinePassed`], and one whose execution has finished
    ///   (`Completed`, `Failed` or `Cancelled`) is [`Delivered::ExecutionFinished`]; none
    ///   of them writes anything;
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

    /// Whether engines in other processes may use this store at the same time (a
    /// database). An engine over a shared store finds its work with
    /// [`acquire`](Store::acquire) instead of its own timer index reads, renews its leases
    /// in the background with [`renew`](Store::renew), and listens to
    /// [`signals`](Store::signals). The default is `false`: the store belongs to one
    /// process.
    fn is_shared(&self) -> bool {
        false
    }

    /// Claims for `owner`, until `until`, up to `limit` executions that are ready to run
    /// and on which no other owner holds an unexpired lease: `Suspended` ones whose
    /// `wake_at` is at or before `now`, and `Running` ones (new, woken by a delivery, or
    /// left by an engine whose lease expired). Returns their ids, and the earliest
    /// `wake_at` later than `now`.
    ///
    /// Concurrent calls by different owners never return the same execution, and what
    /// `owner` already holds is left out. A shared store answers with one query that
    /// skips what other callers are claiming; the default reads the timer and unfinished
    /// indexes and [`claim`](Store::claim)s each candidate nobody holds, which is correct
    /// for any store but reads every running execution.
    async fn acquire(
        &self,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Acquired, StoreError> {
        let mut ids = Vec::new();
        let mut cursor: Option<(Timestamp, String)> = None;
        while ids.len() < limit {
            let after = cursor.as_ref().map(|(at, id)| (*at, id.as_str()));
            let due = self.timers_after(after, now, ACQUIRE_PAGE).await?;
            let exhausted = due.len() < ACQUIRE_PAGE;
            for (at, id) in due {
                if ids.len() < limit && claim_free(self, &id, owner, now, until).await? {
                    ids.push(id.clone());
                }
                cursor = Some((at, id));
            }
            if exhausted {
                break;
            }
        }
        let mut filter = ListFilter::all()
            .status(crate::record::Status::Running)
            .limit(ACQUIRE_PAGE);
        while ids.len() < limit {
            let page = self.list(&filter).await?;
            for record in &page {
                if ids.len() < limit && claim_free(self, &record.id, owner, now, until).await? {
                    ids.push(record.id.clone());
                }
            }
            match page.last() {
                Some(last) if page.len() == ACQUIRE_PAGE => filter = filter.after(last.id.clone()),
                _ => break,
            }
        }
        // Entries after `(now + 1 ms, "")` are those later than `now` (ids are not empty).
        let next_wake = match now.checked_add(std::time::Duration::from_millis(1)) {
            Some(later) => self
                .timers_after(Some((later, "")), Timestamp::from_millis(u64::MAX), 1)
                .await?
                .pop()
                .map(|(at, _)| at),
            None => None,
        };
        Ok(Acquired { ids, next_wake })
    }

    /// Renews `owner`'s leases on `ids` until `until`; returns the ids whose lease another
    /// owner holds now (taken over): the engine drops those executions. The default
    /// [`claim`](Store::claim)s each id, so it may also grant a lease nobody held.
    async fn renew(
        &self,
        owner: u128,
        ids: &[String],
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut lost = Vec::new();
        for id in ids {
            if !self.claim(id, owner, now, until).await? {
                lost.push(id.clone());
            }
        }
        Ok(lost)
    }

    /// A feed of the changes other engines make through this store (a shared store's
    /// notifications), or `None` for a store that one process owns, whose engine knows
    /// every change itself. Each call returns a new receiver.
    fn signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        None
    }

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

    /// Makes the store usable again after a write failed with [`StoreError::Backend`]
    /// (a full disk, a lost connection), where the store cannot go on by itself: a store
    /// that refuses every write after an I/O error reopens itself in place, a pooled one
    /// drops its broken connections. The engine calls it, at most once per retry round,
    /// while its writes fail, before it tries them again; it also calls it when nothing
    /// is broken, so a call with nothing to repair must be cheap and harmless.
    ///
    /// Every acknowledged write survives a recovery. A write that failed may or may not
    /// have been applied: the engine's next commit, conditional on the sequence number,
    /// tells (see `store_rules`). Reads and writes made during a recovery wait for it or
    /// fail with [`StoreError::Backend`]; an `Err` says the store is still broken and
    /// the engine tries again later. The default does nothing.
    async fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Keeps `description`, the engine's description of the workflow layout whose
    /// fingerprint is `layout`, unless one is kept for that layout already (then nothing
    /// is written: a layout's description never changes). Descriptions are kept once per
    /// layout, not per execution, and are never deleted: they name what differs when an
    /// execution written by old code cannot resume on new code.
    ///
    /// Durable: when this returns `Ok`, the description survives a crash.
    async fn save_layout(&self, layout: u64, description: Vec<u8>) -> Result<(), StoreError>;

    /// The description kept for layout `layout`, `None` if there is none.
    async fn layout(&self, layout: u64) -> Result<Option<Vec<u8>>, StoreError>;

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
