//! [`InstrumentedStore`]: a store wrapper for tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::record::{
    Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, HistoryEntry, ListFilter,
    OperationRecord,
};
use crate::store::{Acquired, Store, StoreSignal};
use crate::time::{Clock, SystemClock, Timestamp};

/// When an [`InstrumentedStore`] fails writes (`create`, `commit`, `deliver`, `delete`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailWrites {
    /// Never (the default).
    #[default]
    Never,
    /// Every write, until told otherwise.
    Always,
    /// Every `n`-th write (the `n`-th, the `2n`-th, ...).
    OneIn(u64),
    /// The next `n` writes, then none.
    Next(u64),
    /// Every write made while the store's clock ([`InstrumentedStore::with_clock`]) reads
    /// at or after `from` and before `until`: a fault for a period of time.
    Between {
        /// When writes start failing.
        from: Timestamp,
        /// When they succeed again.
        until: Timestamp,
    },
}

/// Calls an [`InstrumentedStore`] has seen, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// `create` calls.
    pub creates: u64,
    /// `commit` calls (including failed ones).
    pub commits: u64,
    /// `deliver` calls.
    pub deliveries: u64,
    /// `delete` calls.
    pub deletes: u64,
    /// `load`, `load_input`, `operation`, `operation_by_token`, `operations` and `history`
    /// calls.
    pub reads: u64,
    /// `list` calls.
    pub lists: u64,
    /// `due`, `next_wake` and `timers_after` calls.
    pub timer_reads: u64,
    /// Timer-index entries those calls returned.
    pub timer_entries: u64,
    /// Writes failed on purpose.
    pub failed_writes: u64,
    /// `recover` calls.
    pub recoveries: u64,
}

#[derive(Default)]
struct Counters {
    creates: AtomicU64,
    commits: AtomicU64,
    deliveries: AtomicU64,
    deletes: AtomicU64,
    reads: AtomicU64,
    lists: AtomicU64,
    timer_reads: AtomicU64,
    timer_entries: AtomicU64,
    failed_writes: AtomicU64,
    recoveries: AtomicU64,
    writes: AtomicU64,
}

/// A commit held back by [`InstrumentedStore::hold_commit`]: `reached` completes when the
/// commit arrives at the store, and sending on (or dropping) `release` lets it through;
/// [`release_failing`](Self::release_failing) lets it go on as a failed write instead.
#[derive(Debug)]
pub struct Held {
    /// Completes when the held commit has arrived.
    pub reached: oneshot::Receiver<()>,
    /// Lets the held commit through.
    pub release: oneshot::Sender<()>,
    fail: Arc<AtomicBool>,
}

impl Held {
    /// Releases the held commit as a write that failed (a [`StoreError::Backend`] I/O
    /// error, counted in [`Counts::failed_writes`]): nothing of it is written, as if the
    /// disk had filled up at that very write.
    pub fn release_failing(self) {
        self.fail.store(true, Ordering::SeqCst);
        let _ = self.release.send(());
    }
}

type Matcher = Box<dyn Fn(&Commit) -> bool + Send + Sync>;

struct Gate {
    matches: Matcher,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
    fail: Arc<AtomicBool>,
}

/// Wraps a store for tests: counts every call by kind ([`counts`](Self::counts)), holds
/// back one commit until released ([`hold_commit`](Self::hold_commit)), and fails writes
/// on demand ([`fail_writes`](Self::fail_writes)) with a [`StoreError::Backend`] I/O error
/// of kind [`StorageFull`](std::io::ErrorKind::StorageFull), writing nothing, the way a
/// full disk does; with [`poison_on_failure`](Self::poison_on_failure) it then refuses
/// every write until [`Store::recover`] is called, the way sled 0.34 does after an I/O
/// error.
pub struct InstrumentedStore<S> {
    inner: S,
    counters: Counters,
    fail: Mutex<FailWrites>,
    clock: Arc<dyn Clock>,
    /// Whether an injected failure poisons the store until `recover`.
    poisoning: AtomicBool,
    fail_reads: AtomicBool,
    poisoned: AtomicBool,
    gate: Mutex<Option<Gate>>,
    /// Claims still granted before `claim` refuses; `None`: no limit.
    claims_left: Mutex<Option<u64>>,
}

impl<S: Store> std::fmt::Debug for InstrumentedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl<S: Store> InstrumentedStore<S> {
    /// Wraps `inner`, failing nothing.
    pub fn new(inner: S) -> Self {
        InstrumentedStore {
            inner,
            counters: Counters::default(),
            fail: Mutex::new(FailWrites::Never),
            clock: Arc::new(SystemClock),
            poisoning: AtomicBool::new(false),
            fail_reads: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            gate: Mutex::new(None),
            claims_left: Mutex::new(None),
        }
    }

    /// Reads time for [`FailWrites::Between`] from `clock` (the engine's, typically a
    /// [`TestClock`](crate::TestClock)) instead of the system clock.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// With `on`, a write failed on purpose makes every later write fail too, until
    /// [`Store::recover`] is called: a store that cannot go on after an I/O error, as
    /// sled 0.34 is. Calls to `recover` made while the fault lasts heal nothing.
    pub fn poison_on_failure(&self, on: bool) {
        self.poisoning.store(on, Ordering::SeqCst);
        if !on {
            self.poisoned.store(false, Ordering::SeqCst);
        }
    }

    /// With `on`, record reads (`load`, `load_input`, `operation`, `operation_by_token`,
    /// `operations`, `history`) fail with a [`StoreError::Backend`] error until switched
    /// off, as sled 0.34's can once a write failed; listings and timer-index reads do
    /// not fail.
    pub fn fail_reads(&self, on: bool) {
        self.fail_reads.store(on, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The calls seen so far.
    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            creates: get(&c.creates),
            commits: get(&c.commits),
            deliveries: get(&c.deliveries),
            deletes: get(&c.deletes),
            reads: get(&c.reads),
            lists: get(&c.lists),
            timer_reads: get(&c.timer_reads),
            timer_entries: get(&c.timer_entries),
            failed_writes: get(&c.failed_writes),
            recoveries: get(&c.recoveries),
        }
    }

    /// Sets when writes fail from now on.
    pub fn fail_writes(&self, mode: FailWrites) {
        *self.fail.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.counters.writes.store(0, Ordering::SeqCst);
    }

    /// Grants only the next `claims` claims, then refuses every claim as if another engine
    /// held the lease (`None`: no limit). With
    /// [`suspend_after_every_point`](crate::EngineBuilder::suspend_after_every_point) an
    /// activation makes one commit, so `limit_claims(Some(1))` lets an engine advance an
    /// execution by exactly one commit before it is shut down and another one resumes it.
    pub fn limit_claims(&self, claims: Option<u64>) {
        *self.claims_left.lock().unwrap_or_else(|e| e.into_inner()) = claims;
    }

    /// Holds back the next commit for which `matches` returns true, until the returned
    /// [`Held::release`] is used. The commit has passed [`fail_writes`](Self::fail_writes)
    /// when it is held: a failure mode set while it waits applies to the writes after it.
    pub fn hold_commit(&self, matches: impl Fn(&Commit) -> bool + Send + Sync + 'static) -> Held {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        let fail = Arc::new(AtomicBool::new(false));
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(Gate {
            matches: Box::new(matches),
            reached: reached_tx,
            release: release_rx,
            fail: fail.clone(),
        });
        Held {
            reached,
            release,
            fail,
        }
    }

    /// Counts a write and decides whether it fails.
    fn write(&self) -> Result<(), StoreError> {
        let n = self.counters.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let fails = self.poisoned.load(Ordering::SeqCst) || {
            let mut mode = self.fail.lock().unwrap_or_else(|e| e.into_inner());
            match *mode {
                FailWrites::Never => false,
                FailWrites::Always => true,
                FailWrites::OneIn(every) => every != 0 && n.is_multiple_of(every),
                FailWrites::Next(0) => false,
                FailWrites::Next(left) => {
                    *mode = FailWrites::Next(left - 1);
                    true
                }
                FailWrites::Between { from, until } => {
                    let now = self.clock.now();
                    from <= now && now < until
                }
            }
        };
        if fails {
            return Err(self.failed_write());
        }
        Ok(())
    }

    /// Counts a write that fails on purpose, and the error it fails with.
    fn failed_write(&self) -> StoreError {
        self.counters.failed_writes.fetch_add(1, Ordering::SeqCst);
        if self.poisoning.load(Ordering::SeqCst) {
            self.poisoned.store(true, Ordering::SeqCst);
        }
        StoreError::backend(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "injected write failure (InstrumentedStore): no space left on device",
        ))
    }

    /// Counts a commit, holds it at the gate if it matches, and fails it if writes fail.
    async fn before_commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.counters.commits.fetch_add(1, Ordering::SeqCst);
        // Before the gate: a failure mode set while a commit is held applies to the writes
        // after it, so a test can fail exactly the write that follows a given commit.
        self.write()?;
        let gate = {
            let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            match &*gate {
                Some(g) if (g.matches)(commit) => gate.take(),
                _ => None,
            }
        };
        if let Some(gate) = gate {
            let _ = gate.reached.send(());
            let _ = gate.release.await;
            if gate.fail.load(Ordering::SeqCst) {
                return Err(self.failed_write());
            }
        }
        Ok(())
    }

    /// Counts a record read and fails it if reads fail.
    fn read(&self) -> Result<(), StoreError> {
        self.counters.reads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::backend(std::io::Error::other(
                "injected read failure (InstrumentedStore)",
            )));
        }
        Ok(())
    }

    fn timer_read(&self, entries: usize) {
        self.counters.timer_reads.fetch_add(1, Ordering::SeqCst);
        self.counters
            .timer_entries
            .fetch_add(entries as u64, Ordering::SeqCst);
    }
}

#[async_trait]
impl<S: Store> Store for InstrumentedStore<S> {
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        self.counters.creates.fetch_add(1, Ordering::SeqCst);
        self.write()?;
        self.inner.create(record, input).await
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.read()?;
        self.inner.load(id).await
    }

    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read()?;
        self.inner.load_input(id).await
    }

    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        self.before_commit(&commit).await?;
        self.inner.commit(commit).await
    }

    async fn commit_leased(&self, commit: Commit, owner: u128) -> Result<Committed, StoreError> {
        self.before_commit(&commit).await?;
        self.inner.commit_leased(commit, owner).await
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Delivered, StoreError> {
        self.counters.deliveries.fetch_add(1, Ordering::SeqCst);
        self.write()?;
        self.inner.deliver(delivery).await
    }

    async fn operation(
        &self,
        execution: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        self.read()?;
        self.inner.operation(execution, key).await
    }

    async fn operation_by_token(&self, token: &str) -> Result<Option<OperationRecord>, StoreError> {
        self.read()?;
        self.inner.operation_by_token(token).await
    }

    async fn operations(
        &self,
        execution: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        self.read()?;
        self.inner.operations(execution, after, limit).await
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.counters.deletes.fetch_add(1, Ordering::SeqCst);
        self.write()?;
        self.inner.delete(id).await
    }

    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        {
            let mut left = self.claims_left.lock().unwrap_or_else(|e| e.into_inner());
            match &mut *left {
                Some(0) => return Ok(false),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        self.inner.claim(id, owner, now, until).await
    }

    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        self.inner.release(id, owner).await
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    async fn acquire(
        &self,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Acquired, StoreError> {
        self.inner.acquire(owner, now, until, limit).await
    }

    async fn renew(
        &self,
        owner: u128,
        ids: &[String],
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.renew(owner, ids, now, until).await
    }

    fn signals(&self) -> Option<tokio::sync::broadcast::Receiver<StoreSignal>> {
        self.inner.signals()
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let due = self.inner.due(now, limit).await?;
        self.timer_read(due.len());
        Ok(due)
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        let next = self.inner.next_wake().await?;
        self.timer_read(usize::from(next.is_some()));
        Ok(next)
    }

    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let entries = self.inner.timers_after(after, until, limit).await?;
        self.timer_read(entries.len());
        Ok(entries)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.counters.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(filter).await
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read()?;
        self.inner.history(id).await
    }

    /// Passed through, neither counted nor failed: an engine writes layout descriptions
    /// once when it opens, and the counts and failures here are about executions.
    async fn save_layout(&self, layout: u64, description: Vec<u8>) -> Result<(), StoreError> {
        self.inner.save_layout(layout, description).await
    }

    async fn layout(&self, layout: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.layout(layout).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }

    /// Counts the call and recovers the wrapped store; clears the poison of
    /// [`poison_on_failure`](Self::poison_on_failure) unless writes still fail by the
    /// current mode.
    async fn recover(&self) -> Result<(), StoreError> {
        self.counters.recoveries.fetch_add(1, Ordering::SeqCst);
        self.inner.recover().await?;
        let still_failing = match *self.fail.lock().unwrap_or_else(|e| e.into_inner()) {
            FailWrites::Always => true,
            FailWrites::Between { from, until } => {
                let now = self.clock.now();
                from <= now && now < until
            }
            _ => false,
        };
        if !still_failing {
            self.poisoned.store(false, Ordering::SeqCst);
        }
        Ok(())
    }
}
