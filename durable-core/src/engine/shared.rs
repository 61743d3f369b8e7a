//! The state the engine's handles, background tasks and executions share, and the
//! [`Runtime`] it offers executions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use foldhash::{HashMap, HashSet};
use tokio::sync::{watch, Notify, Semaphore};

use super::builder::Config;
use super::health::Monitor;
use super::queue::Queue;
use super::registry::Registry;
use super::timers;
use crate::error::{Error, StoreError};
use crate::execution::{Limits, Runtime};
use crate::record::ExecutionRecord;
use crate::store::Store;
use crate::time::{Clock, SleepFuture, Timestamp};

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
    /// The limits transitions enforce (from `config`).
    pub limits: Limits,
    /// Whether the store accepts writes, and the healer's signals.
    pub(crate) health: Monitor,
    pub(super) queue: Mutex<Queue>,
    pub(super) queue_changed: Notify,
    pub(super) permits: Arc<Semaphore>,
    /// Per-execution notifiers for [`Handle::result`](super::Handle::result) waiters.
    pub(super) waiters: Mutex<HashMap<String, Arc<Notify>>>,
    pub(super) shutting_down: AtomicBool,
    /// Executions this engine found it cannot run and left parked since it opened: a
    /// parked execution is resumed only by an engine that opens, so these stay parked
    /// for as long as it runs, even those a registered version has the layout of (their
    /// state did not decode).
    pub(super) parked: Mutex<HashSet<String>>,
    pub(super) shutdown_signal: Notify,
    pub(super) idle: Notify,
    /// Bumped after every commit, enqueue and end of an execution, for
    /// [`Engine::wait_until`](super::Engine::wait_until) to read the store again.
    pub(super) changes: watch::Sender<u64>,
}

impl Shared {
    /// The record of execution `id`, for an operator's request about it (re-drive,
    /// cancel): [`Error::ShutDown`] once the engine shuts down, [`Error::NotFound`] for an
    /// unknown id.
    pub async fn existing(&self, id: &str) -> Result<ExecutionRecord, Error> {
        if self.is_shutting_down() {
            return Err(Error::ShutDown);
        }
        self.store
            .load(id)
            .await?
            .ok_or_else(|| Error::NotFound { id: id.to_owned() })
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub(super) fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Queue operations do not panic midway, so a poisoned lock holds consistent data.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schedules an activation of `id` (again, if it is running now).
    /// Records that this engine left `id` parked.
    pub(super) fn note_parked(&self, id: &str) {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned());
    }

    /// Whether this engine left `id` parked.
    pub(super) fn parked_here(&self, id: &str) -> bool {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    pub fn enqueue(&self, id: &str) {
        if self.is_shutting_down() {
            return;
        }
        if self.queue().enqueue(id) {
            self.queue_changed.notify_one();
        }
        self.changed();
    }

    /// Tells the waiters of [`Engine::wait_until`](super::Engine::wait_until) that
    /// something may have changed; free when nobody waits.
    pub fn changed(&self) {
        if self.changes.receiver_count() > 0 {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Stops new activations and timers and wakes every result waiter; running
    /// activations stop at their next commit.
    pub(super) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.queue_changed.notify_one();
        self.shutdown_signal.notify_waiters();
        self.timers.changed.notify_one();
        self.health.release_all();
        self.notify_all_done();
    }

    /// Wakes every result waiter, to read its execution again.
    pub(super) fn notify_all_done(&self) {
        let waiters: Vec<_> = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            waiters.drain().map(|(_, w)| w).collect()
        };
        for waiter in waiters {
            waiter.notify_waiters();
        }
        self.changed();
    }

    /// Whether no execution is queued or running.
    pub fn is_idle(&self) -> bool {
        self.queue().is_idle()
    }

    /// How many executions are queued or running.
    pub fn active(&self) -> usize {
        self.queue().len()
    }

    pub(super) fn waiter(&self, id: &str) -> Arc<Notify> {
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
        self.changed();
    }
}

impl Runtime for Shared {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn owner(&self) -> u128 {
        self.owner
    }

    fn committed(&self, id: &str, wake_at: Option<Timestamp>, woken: &[String]) {
        if let Some(at) = wake_at {
            self.timer_set(id, at);
        }
        for woken in woken {
            self.enqueue(woken);
        }
        self.changed();
    }

    fn write_failed(&self, record: &ExecutionRecord, error: &StoreError) -> SleepFuture {
        // Waiting before reporting, so the round the report asks for cannot be missed.
        let round = self.health.next_round();
        self.health
            .write_failed(self.clock.now(), error, Some(record));
        round
    }

    fn write_succeeded(&self, id: &str) {
        self.health.write_succeeded(Some(id));
    }

    fn should_yield(&self) -> bool {
        self.config.suspend_after_every_point || self.is_shutting_down()
    }

    fn is_shutting_down(&self) -> bool {
        Shared::is_shutting_down(self)
    }

    fn runs(&self, workflow: &str, fingerprint: u64) -> bool {
        self.registry.find(workflow, fingerprint).is_some()
    }

    fn created(&self, id: &str) {
        self.enqueue(id);
    }

    fn finished(&self, id: &str) {
        self.notify_done(id);
    }
}
