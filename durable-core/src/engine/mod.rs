//! The engine: registers workflows, starts executions, and drives them one transition at
//! a time over a [`Store`].
//!
//! Invariants:
//! - An execution runs in at most one activation at a time in this engine (the queue's
//!   `active` set), and only while this engine holds its lease in the store.
//! - A suspended execution is not in memory: it is a record plus a timer-index entry; the
//!   timer service enqueues it when due.
//! - Every state change a caller can observe through [`Handle::result`] was committed
//!   first.

mod activation;
mod describe;
mod queue;
mod registry;
mod timers;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore};

use crate::codec::decode_value;
use crate::error::{Error, StoreError};
use crate::record::{Created, ExecutionRecord, HistoryEntry, ListFilter, Status};
use crate::store::Store;
use crate::time::{Clock, SystemClock};
use crate::workflow::{Workflow, WorkflowFn};

pub use describe::{Description, Local, PointDescription, Waiting};
use queue::Queue;
pub(crate) use registry::Registry;

/// Longest execution id accepted by [`Engine::start`].
pub const MAX_ID_LEN: usize = 1024;

/// Engine settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub max_concurrent: usize,
    pub history_limit: u64,
    pub max_value_bytes: usize,
    pub lease_ttl: Duration,
    pub suspend_after_every_point: bool,
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent: 512,
            history_limit: 1000,
            max_value_bytes: 16 * 1024 * 1024,
            lease_ttl: Duration::from_secs(300),
            suspend_after_every_point: false,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// State shared by the engine's handles, its background tasks and every [`Ctx`](crate::Ctx).
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    /// This engine's lease-owner id.
    pub owner: u128,
    pub registry: Registry,
    /// How commits and activations signal the timer service.
    pub(crate) timers: timers::Signals,
    queue: Mutex<Queue>,
    queue_changed: Notify,
    permits: Arc<Semaphore>,
    /// Per-execution notifiers for [`Handle::result`] waiters.
    waiters: Mutex<std::collections::HashMap<String, Arc<Notify>>>,
    shutting_down: AtomicBool,
    shutdown_signal: Notify,
    idle: Notify,
}

impl Shared {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Queue operations do not panic midway, so a poisoned lock holds consistent data.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schedules an activation of `id` (again, if it is running now).
    pub fn enqueue(&self, id: &str) {
        if self.is_shutting_down() {
            return;
        }
        if self.queue().enqueue(id) {
            self.queue_changed.notify_one();
        }
    }

    /// Stops new activations and timers and wakes every result waiter; running
    /// activations stop at their next commit.
    fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.queue_changed.notify_one();
        self.shutdown_signal.notify_waiters();
        self.timers.changed.notify_one();
        let waiters: Vec<_> = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            waiters.drain().map(|(_, w)| w).collect()
        };
        for waiter in waiters {
            waiter.notify_waiters();
        }
    }

    /// Whether no execution is queued or running.
    pub fn is_idle(&self) -> bool {
        self.queue().is_idle()
    }

    /// How many executions are queued or running.
    pub fn active(&self) -> usize {
        self.queue().len()
    }

    fn waiter(&self, id: &str) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.entry(id.to_owned()).or_default().clone()
    }

    /// Wakes everyone waiting for the result of `id`.
    pub fn notify_done(&self, id: &str) {
        let waiter = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            waiters.remove(id)
        };
        if let Some(waiter) = waiter {
            waiter.notify_waiters();
        }
    }
}

/// Configures and opens an [`Engine`].
///
/// ```
/// # use durable_core::{durable, Ctx, Engine, MemoryStore};
/// # #[durable] async fn hello(ctx: Ctx, name: String) -> String { format!("hello {name}") }
/// # #[tokio::main] async fn main() -> Result<(), durable_core::Error> {
/// let engine = Engine::builder(MemoryStore::new())
///     .register(hello)
///     .max_concurrent(64)
///     .open()
///     .await?;
/// let greeting = engine.start(hello, "greet-1", "ada".to_string()).await?.result().await?;
/// assert_eq!(greeting, "hello ada");
/// # engine.shutdown().await;
/// # Ok(()) }
/// ```
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Registry,
    config: Config,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// A builder over `store` with the system clock and default settings.
    pub fn new(store: impl Store) -> Self {
        Self::with_store(Arc::new(store))
    }

    /// A builder over a shared store.
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        EngineBuilder {
            store,
            clock: Arc::new(SystemClock),
            registry: Registry::default(),
            config: Config::default(),
        }
    }

    /// Registers a workflow. Several versions of one workflow (same name, different
    /// code) may be registered side by side: each execution runs on the version whose
    /// fingerprint it carries.
    pub fn register<F: WorkflowFn>(mut self, _workflow: F) -> Self {
        self.registry.register::<F::Workflow>();
        self
    }

    /// The clock the engine reads and waits on (default: [`SystemClock`]); pass a
    /// [`TestClock`](crate::TestClock) to move time by hand in tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many executions run at once (default 512); others wait in a queue.
    pub fn max_concurrent(mut self, executions: usize) -> Self {
        self.config.max_concurrent = executions.max(1);
        self
    }

    /// How many history entries are kept per execution (default 1000); older ones are
    /// dropped. History is never needed to resume.
    pub fn history_limit(mut self, entries: u64) -> Self {
        self.config.history_limit = entries;
        self
    }

    /// The largest input, frame or step outcome the engine stores (default 16 MiB). A
    /// larger one is refused with an error that names it, before anything is written:
    /// keep bulky data outside the workflow and pass references to it.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.config.max_value_bytes = bytes.max(64);
        self
    }

    /// How long a claim on an execution lasts before another engine may take it over
    /// (default 5 minutes); it is renewed while the execution commits.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// How long [`Engine::shutdown`] waits for running executions to reach their next
    /// durable point before dropping them (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Stops every activation right after each commit and resumes it from the stored
    /// frame, as if the process had restarted there. For tests: it proves that a workflow
    /// resumes correctly at every durable point. Off by default.
    pub fn suspend_after_every_point(mut self, on: bool) -> Self {
        self.config.suspend_after_every_point = on;
        self
    }

    /// Opens the engine: starts its dispatcher and timer service and resumes every
    /// execution that was running (or parked and now has its version registered).
    ///
    /// Must be called within a tokio runtime.
    pub async fn open(self) -> Result<Engine, Error> {
        let shared = Arc::new(Shared {
            store: self.store,
            clock: self.clock,
            owner: fastrand::u128(..),
            registry: self.registry,
            timers: timers::Signals::new(self.config.max_concurrent),
            queue: Mutex::new(Queue::default()),
            queue_changed: Notify::new(),
            permits: Arc::new(Semaphore::new(self.config.max_concurrent)),
            waiters: Mutex::default(),
            shutting_down: AtomicBool::new(false),
            shutdown_signal: Notify::new(),
            idle: Notify::new(),
            config: self.config,
        });
        for status in [Status::Running, Status::Parked] {
            let filter = ListFilter {
                status: Some(status),
                ..ListFilter::default()
            };
            for record in shared.store.list(&filter).await? {
                let runnable = status == Status::Running
                    || shared
                        .registry
                        .find(&record.workflow, record.fingerprint)
                        .is_some();
                if runnable {
                    shared.enqueue(&record.id);
                }
            }
        }
        tokio::spawn(queue::dispatch(shared.clone()));
        tokio::spawn(timers::run(shared.clone()));
        Ok(Engine {
            _running: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }
}

/// Runs workflows over a store. Cheap to clone; clones share one engine.
///
/// Dropping the last clone stops the engine as [`Engine::shutdown`] does, without
/// waiting: executions stop at their next commit and the store is released once they
/// have. Call `shutdown().await` to know when that has happened (for example before
/// opening the same sled directory again).
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    _running: Arc<StopOnDrop>,
}

/// Stops the engine's background work when the last [`Engine`] clone goes away;
/// [`Handle`]s do not keep an engine running.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.begin_shutdown();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder over `store`.
    pub fn builder(store: impl Store) -> EngineBuilder {
        EngineBuilder::new(store)
    }

    /// Starts an execution of `workflow` with id `id`, or finds the one already started
    /// with that id.
    ///
    /// The id is an idempotency key: starting the same id with the same input returns a
    /// handle to the existing execution (running or finished) and runs nothing twice;
    /// the same id with another input or workflow is [`Error::IdConflict`].
    ///
    /// Durable: when this returns `Ok`, the execution survives a crash and will run to
    /// its end on this or a later engine.
    pub async fn start<F: WorkflowFn>(
        &self,
        workflow: F,
        id: impl Into<String>,
        input: <F::Workflow as Workflow>::Input,
    ) -> Result<Handle<F::Workflow>, Error> {
        let id = id.into();
        self.start_typed::<F::Workflow>(&id, input).await?;
        Ok(self.handle(workflow, id))
    }

    async fn start_typed<W: Workflow>(&self, id: &str, input: W::Input) -> Result<(), Error> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return Err(Error::ShutDown);
        }
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(Error::Invalid {
                message: format!(
                    "an execution id must be 1 to {MAX_ID_LEN} bytes long, got {}",
                    id.len()
                ),
            });
        }
        if shared.registry.find(W::NAME, W::FINGERPRINT).is_none() {
            return Err(Error::NotRegistered {
                workflow: W::NAME.to_owned(),
            });
        }
        let encoded = W::CODEC.encode_value(&input)?;
        if encoded.len() > shared.config.max_value_bytes {
            return Err(Error::Invalid {
                message: format!(
                    "the input of execution {id:?} is {} bytes, over the limit of {} (EngineBuilder::max_value_bytes)",
                    encoded.len(),
                    shared.config.max_value_bytes
                ),
            });
        }
        let now = shared.clock.now();
        let record = ExecutionRecord {
            id: id.to_owned(),
            workflow: W::NAME.to_owned(),
            fingerprint: W::FINGERPRINT,
            seq: 0,
            status: Status::Running,
            position: None,
            wake_at: None,
            output: None,
            message: None,
            history_next: 0,
            created_at: now,
            updated_at: now,
        };
        match shared.store.create(record, encoded.clone()).await? {
            Created::New => shared.enqueue(id),
            Created::Existing(existing) => {
                self.check_same_start::<W>(&existing, &encoded).await?;
                if existing.status == Status::Running {
                    shared.enqueue(id);
                }
            }
        }
        Ok(())
    }

    async fn check_same_start<W: Workflow>(
        &self,
        existing: &ExecutionRecord,
        encoded: &[u8],
    ) -> Result<(), Error> {
        let conflict = |reason: String| Error::IdConflict {
            id: existing.id.clone(),
            reason,
        };
        if existing.workflow != W::NAME {
            return Err(conflict(format!(
                "it runs workflow {:?}, not {:?}",
                existing.workflow,
                W::NAME
            )));
        }
        let stored = self
            .shared
            .store
            .load_input(&existing.id)
            .await?
            .ok_or_else(|| Error::NotFound {
                id: existing.id.clone(),
            })?;
        // Compare values, not bytes: the stored input may use another codec.
        let same = stored == encoded
            || decode_value::<W::Input>(&stored)
                .ok()
                .and_then(|v| W::CODEC.encode_value(&v).ok())
                .is_some_and(|b| b == encoded);
        if same {
            Ok(())
        } else {
            Err(conflict("it was started with a different input".into()))
        }
    }

    /// A handle on the execution `id` of `workflow`, e.g. to await its result after a
    /// restart. Does not check that the execution exists.
    pub fn handle<F: WorkflowFn>(
        &self,
        _workflow: F,
        id: impl Into<String>,
    ) -> Handle<F::Workflow> {
        Handle {
            shared: self.shared.clone(),
            id: id.into(),
            workflow: PhantomData,
        }
    }

    /// The execution's record, `None` if there is none.
    pub async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, Error> {
        Ok(self.shared.store.load(id).await?)
    }

    /// The executions that pass `filter`.
    pub async fn executions(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, Error> {
        Ok(self.shared.store.list(filter).await?)
    }

    /// Shows an execution like a paused debugger: status, the current durable point
    /// (operation and source line), every live local of its frame decoded to JSON by
    /// name, what it waits for, attempt counts and its history. Works for running,
    /// suspended, parked, failed and completed executions; unreadable stored state is
    /// [`Error::Corrupt`], never a panic.
    pub async fn describe(&self, id: &str) -> Result<Description, Error> {
        describe::describe(&self.shared, id).await
    }

    /// The execution's retained operation history, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, Error> {
        Ok(self.shared.store.history(id).await?)
    }

    /// Stops the engine gracefully: no new activations start, running ones stop at their
    /// next durable point (after its commit), timers stop, and the store is closed (so a
    /// sled directory can be opened again). Executions that have not stopped within the
    /// shutdown timeout are dropped mid-transition; their last commit stands, so nothing
    /// is half-committed, and a later engine resumes them.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.begin_shutdown();
        let drained = tokio::time::timeout(shared.config.shutdown_timeout, async {
            loop {
                let idle = shared.idle.notified();
                if shared.queue().running() == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            shared.queue().abort_all();
        }
        if let Err(e) = shared.store.close().await {
            tracing::error!(error = %e, "closing the store failed");
        }
    }
}

/// A typed handle on one execution.
pub struct Handle<W> {
    shared: Arc<Shared>,
    id: String,
    workflow: PhantomData<fn() -> W>,
}

impl<W> Clone for Handle<W> {
    fn clone(&self) -> Self {
        Handle {
            shared: self.shared.clone(),
            id: self.id.clone(),
            workflow: PhantomData,
        }
    }
}

impl<W> std::fmt::Debug for Handle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("id", &self.id).finish()
    }
}

impl<W: Workflow> Handle<W> {
    /// The execution id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The execution's current status.
    pub async fn status(&self) -> Result<Status, Error> {
        match self.shared.store.load(&self.id).await? {
            Some(record) => Ok(record.status),
            None => Err(Error::NotFound {
                id: self.id.clone(),
            }),
        }
    }

    /// Waits for the execution to finish and returns its output.
    ///
    /// Works from any task, and after a restart on a new engine over the same store.
    /// Returns [`Error::Failed`] if the execution failed, [`Error::Parked`] if it is
    /// parked, and [`Error::ShutDown`] if the engine shuts down first.
    pub async fn result(&self) -> Result<W::Output, Error>
    where
        W::Output: DeserializeOwned,
    {
        let shared = &self.shared;
        loop {
            let waiter = shared.waiter(&self.id);
            let done = waiter.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            let record = match shared.store.load(&self.id).await {
                // The engine closed its store on shutting down.
                Err(StoreError::Closed) if shared.is_shutting_down() => {
                    return Err(Error::ShutDown)
                }
                loaded => loaded?.ok_or_else(|| Error::NotFound {
                    id: self.id.clone(),
                })?,
            };
            match record.status {
                Status::Completed => {
                    let output = record.output.as_deref().unwrap_or_default();
                    return Ok(decode_value(output)?);
                }
                Status::Failed => {
                    return Err(Error::Failed {
                        id: self.id.clone(),
                        message: record.message.unwrap_or_default(),
                    })
                }
                // A parked execution whose version this engine has is resumed by it.
                Status::Parked
                    if shared
                        .registry
                        .find(&record.workflow, record.fingerprint)
                        .is_none() =>
                {
                    return Err(Error::Parked {
                        id: self.id.clone(),
                        message: record.message.unwrap_or_default(),
                    })
                }
                Status::Running | Status::Suspended | Status::Parked => {}
            }
            if shared.is_shutting_down() {
                return Err(Error::ShutDown);
            }
            done.await;
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<EngineBuilder>();
    assert_send_sync::<crate::Ctx>();
};
