//! [`EngineBuilder`]: settings, registered workflows, and opening an engine.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::cluster;
use super::layouts;
use super::queue::{self, Queue};
use super::registry::Registry;
use super::shared::Shared;
use super::{healer, timers, Engine, StopOnDrop};
use crate::error::Error;
use crate::execution::{Limits, WorkflowFn};
use crate::record::{ListFilter, Status};
use crate::store::Store;
use crate::time::{Clock, SystemClock};

/// How many unfinished executions [`EngineBuilder::open`] reads per store call.
const OPEN_PAGE: usize = 1024;

/// Engine settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub max_concurrent: usize,
    pub history_limit: u64,
    pub max_value_bytes: usize,
    pub lease_ttl: Duration,
    pub suspend_after_every_point: bool,
    pub shutdown_timeout: Duration,
    /// How often an engine over a shared store looks for work that no signal announced.
    pub poll_interval: Duration,
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
            poll_interval: Duration::from_secs(5),
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
    /// (default 5 minutes); it is renewed while the execution commits, and over a shared
    /// store also every third of it while the execution runs (a long step body). Over a
    /// shared store this is how long the executions of an engine that died wait before
    /// other engines take them over.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// Over a store that several engines share ([`Store::is_shared`]), how often the
    /// engine looks for ready work that no signal announced: executions whose engine
    /// died (their leases expired), and anything missed while the store's notifications
    /// were interrupted (default 5 s). Other engines' new and woken executions arrive
    /// through the store's signals at once; this is only the fallback. Unused over other
    /// stores.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval.max(Duration::from_millis(1));
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

    /// The unfinished executions in the store (running, suspended or parked) that no
    /// workflow registered on this builder can resume, with what differs; without
    /// opening an engine, so nothing runs and nothing is written.
    ///
    /// For a deploy check: build the builder as the new release does, over the store (or
    /// a copy of it), and fail the deploy if this is not empty, since those executions
    /// would park.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, EngineBuilder, MemoryStore};
    /// # #[durable]
    /// # async fn order(ctx: Ctx, n: u32) -> u32 { n }
    /// # async fn ci() -> Result<(), durable_core::Error> {
    /// let stranded = EngineBuilder::new(MemoryStore::new())
    ///     .register(order)
    ///     .check_layouts()
    ///     .await?;
    /// assert!(stranded.is_empty(), "this release would park: {stranded:#?}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn check_layouts(&self) -> Result<Vec<super::Stranded>, Error> {
        super::check::check(&*self.store, &self.registry).await
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
            parked: Mutex::default(),
            shutdown_signal: Notify::new(),
            idle: Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
            limits: Limits {
                max_value_bytes: self.config.max_value_bytes,
                history_limit: self.config.history_limit,
                lease_ttl: self.config.lease_ttl,
            },
            config: self.config,
            health: Default::default(),
        });
        // Over a shared store, running executions are claimed with `Store::acquire` (some
        // are running on other engines); parked ones are not ready for anyone.
        let resume = if shared.store.is_shared() {
            &[Status::Parked][..]
        } else {
            &[Status::Running, Status::Parked][..]
        };
        // Each registered layout's description, kept once per store, names what differs
        // when an execution written by this code cannot resume on a later build.
        for version in shared.registry.all() {
            shared
                .store
                .save_layout(version.layout_fingerprint, version.layout.encode())
                .await?;
        }
        for &status in resume {
            resume_unfinished(&shared, status).await?;
        }
        tokio::spawn(queue::dispatch(shared.clone()));
        tokio::spawn(timers::run(shared.clone()));
        tokio::spawn(healer::heal(shared.clone()));
        if shared.store.is_shared() {
            cluster::start(&shared);
        }
        Ok(Engine {
            _running: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }
}

/// Enqueues every execution with `status` that this engine can run, reading the store's
/// unfinished index a page at a time: the cost follows the number of unfinished
/// executions, not of every execution ever stored.
async fn resume_unfinished(shared: &Shared, status: Status) -> Result<(), Error> {
    let mut filter = ListFilter::default().status(status).limit(OPEN_PAGE);
    loop {
        let page = shared.store.list(&filter).await?;
        for record in &page {
            // A parked execution resumes only once a version that reads it is registered.
            let runnable = status == Status::Running
                || shared
                    .registry
                    .resumer(
                        &record.workflow,
                        record.fingerprint,
                        layouts::stored_layout(record),
                    )
                    .is_some();
            if runnable {
                shared.enqueue(&record.id);
            }
        }
        match page.last() {
            Some(last) if page.len() == OPEN_PAGE => filter = filter.after(last.id.clone()),
            _ => return Ok(()),
        }
    }
}
