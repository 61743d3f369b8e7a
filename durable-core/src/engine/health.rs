//! The engine's health ([`Engine::health`](super::Engine::health)): what the engine
//! knows while its store fails writes (a full disk, a lost database), and the signals
//! between what waits for the store and the healer (see `healer`).
//!
//! A failed write is logged at error level with its cause, counted, and turns the health
//! to degraded. Nothing gives up: a transition whose commit failed keeps its commit and
//! waits for the healer's next round; so does an activation that met a store failure
//! before it could run, and a result waiter whose read failed. The first write that
//! succeeds again turns the health back to ok.
//!
//! Invariants:
//! - Every failure reported here asks the healer for a round (a stored permit if it is
//!   busy), and a waiter takes its [`Monitor::next_round`] before reporting, so no waiter
//!   waits for a round that never comes; shutdown ends every wait, also one taken after
//!   it began.
//! - `waiting` names exactly the executions whose next step is a retry after a store
//!   failure (in an activation or queued after one); their own next successful write,
//!   or the end of their activation, takes them out.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use foldhash::{HashMap, HashMapExt};
use serde::Serialize;
use tokio::sync::{watch, Notify};

use crate::error::StoreError;
use crate::record::ExecutionRecord;
use crate::time::{SleepFuture, Timestamp};

/// Whether the engine's store accepts writes, from [`Engine::health`](super::Engine::health).
///
/// Serializes to JSON for an application's health endpoint, e.g.
/// `{"degraded":{"since":1700000000000,"cause":"store backend error: No space left on
/// device (os error 28)","failed_writes":3,"waiting_executions":2},"failed_writes":3}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// `None` while the store works; what went wrong while its writes fail.
    pub degraded: Option<Degraded>,
    /// Store writes that failed since the engine opened, ever growing: a counter to
    /// export as a metric.
    pub failed_writes: u64,
}

impl Health {
    /// Whether the last store write the engine made succeeded (or none failed yet).
    pub fn is_ok(&self) -> bool {
        self.degraded.is_none()
    }
}

/// How the engine's store is failing, in [`Health::degraded`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Degraded {
    /// When the first write of this run of failures failed (engine clock).
    pub since: Timestamp,
    /// The last failure's error, with its cause (e.g. the operating system's
    /// "No space left on device").
    pub cause: String,
    /// Writes that failed since `since`.
    pub failed_writes: u64,
    /// Executions waiting for the store to retry their commit or their activation.
    pub waiting_executions: usize,
}

/// What an execution waiting for the store waits for (see the describe module).
#[derive(Clone, Debug)]
pub(crate) struct StoreWait {
    pub since: Timestamp,
    pub cause: String,
    /// The execution's record as last committed, when its own commit failed: what
    /// `describe` shows if the store cannot be read either.
    pub record: Option<ExecutionRecord>,
}

#[derive(Clone)]
struct Run {
    since: Timestamp,
    cause: String,
    failed_writes: u64,
}

/// The health state and the healer's signals, one per engine.
pub(crate) struct Monitor {
    /// Whether `run` is set: read on every successful write, so a healthy engine takes no
    /// lock.
    degraded: AtomicBool,
    run: Mutex<Option<Run>>,
    failed_writes: AtomicU64,
    /// Runs of failures since the engine opened (a run ends at a successful write), for
    /// the healer's backoff. Written only when a run starts, so that a successful write
    /// costs two loads.
    runs: AtomicU64,
    waiting: Mutex<HashMap<String, StoreWait>>,
    /// `waiting.len()`, read without the lock.
    waiting_len: AtomicUsize,
    /// A failure asks the healer for a round.
    failed: Notify,
    /// The number of rounds the healer has finished.
    rounds: watch::Sender<u64>,
    /// Set by [`Monitor::release_all`]: no round comes any more.
    released: AtomicBool,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            degraded: AtomicBool::new(false),
            run: Mutex::new(None),
            failed_writes: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            waiting_len: AtomicUsize::new(0),
            failed: Notify::new(),
            rounds: watch::Sender::new(0),
            released: AtomicBool::new(false),
        }
    }
}

impl Monitor {
    /// The engine's health now.
    pub fn health(&self) -> Health {
        let degraded = self
            .run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map(|run| Degraded {
                since: run.since,
                cause: run.cause,
                failed_writes: run.failed_writes,
                waiting_executions: self.waiting_len.load(Ordering::SeqCst),
            });
        Health {
            degraded,
            failed_writes: self.failed_writes.load(Ordering::SeqCst),
        }
    }

    /// Records that a write (of the transition of `execution`, as last committed, if any)
    /// failed at `now`: logs it, counts it, degrades the health, and asks the healer for
    /// a round.
    pub fn write_failed(
        &self,
        now: Timestamp,
        error: &StoreError,
        execution: Option<&ExecutionRecord>,
    ) {
        let cause = error_chain(error);
        match execution {
            Some(record) => {
                tracing::error!(execution = %record.id, error = %cause, "store write failed; retrying when the store heals")
            }
            None => tracing::error!(error = %cause, "store write failed"),
        }
        self.failed_writes.fetch_add(1, Ordering::SeqCst);
        {
            let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
            let run = run.get_or_insert_with(|| {
                self.runs.fetch_add(1, Ordering::SeqCst);
                Run {
                    since: now,
                    cause: String::new(),
                    failed_writes: 0,
                }
            });
            run.cause = cause.clone();
            run.failed_writes += 1;
            self.degraded.store(true, Ordering::SeqCst);
        }
        if let Some(record) = execution {
            self.wait(&record.id, now, cause, Some(record));
        }
        self.failed.notify_one();
    }

    /// Records the result of a write made for a caller (`start`, a callback completion,
    /// a deletion): the caller gets the error, and the health reflects it.
    pub fn observe<T>(&self, now: Timestamp, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => self.write_succeeded(None),
            Err(e) if e.is_failure() => self.write_failed(now, e, None),
            // A refusal: the store works.
            Err(_) => {}
        }
    }

    /// Records that a read made for a caller waiting for an execution failed: logs it and
    /// asks the healer for a round, which the caller then waits for.
    pub fn read_failed(&self, error: &StoreError) {
        tracing::warn!(error = %error_chain(error), "store read failed; retrying when the store heals");
        self.failed.notify_one();
    }

    /// Records that `execution`'s activation ended on a store failure that it could not
    /// wait out itself (a read it needed, or a commit when the engine shuts down): the
    /// execution runs again after the healer's next round, which this asks for.
    pub fn activation_failed(&self, now: Timestamp, error: &StoreError, execution: &str) {
        let cause = error_chain(error);
        tracing::warn!(execution, error = %cause, "store read failed; retrying when the store heals");
        self.wait(execution, now, cause, None);
        self.failed.notify_one();
    }

    fn wait(&self, id: &str, now: Timestamp, cause: String, record: Option<&ExecutionRecord>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.get_mut(id) {
            Some(wait) => {
                wait.cause = cause;
                if let Some(record) = record {
                    wait.record = Some(record.clone());
                }
            }
            None => {
                let record = record.cloned();
                let wait = StoreWait {
                    since: now,
                    cause,
                    record,
                };
                waiting.insert(id.to_owned(), wait);
            }
        }
        self.waiting_len.store(waiting.len(), Ordering::SeqCst);
    }

    /// Records that a write (of `execution`'s transition, if any) succeeded: the health
    /// is ok again, and the execution no longer waits for the store.
    pub fn write_succeeded(&self, execution: Option<&str>) {
        if self.degraded.load(Ordering::SeqCst) {
            let mut run = self.run.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(ended) = run.take() {
                tracing::info!(
                    failed_writes = ended.failed_writes,
                    "store writes succeed again"
                );
            }
            self.degraded.store(false, Ordering::SeqCst);
        }
        if let Some(id) = execution {
            self.stop_waiting(id);
        }
    }

    /// Takes `id` out of the executions waiting for the store.
    pub fn stop_waiting(&self, id: &str) {
        if self.waiting_len.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.remove(id);
        self.waiting_len.store(waiting.len(), Ordering::SeqCst);
    }

    /// Why `id` waits for the store, if it does.
    pub fn waiting_for_store(&self, id: &str) -> Option<StoreWait> {
        if self.waiting_len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.get(id).cloned()
    }

    /// A future that completes when the healer finishes its next round (or the engine
    /// shuts down). Take it after reporting the failure it waits out.
    pub fn next_round(&self) -> SleepFuture {
        let mut rounds = self.rounds.subscribe();
        // Read after subscribing: a release after this read wakes the subscription.
        if self.released.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(async move {
            // An error means the engine is gone: nothing to wait for.
            let _ = rounds.changed().await;
        })
    }

    /// Completes when a failure asks for a round (at once if one did since the last).
    pub(super) fn round_asked(&self) -> tokio::sync::futures::Notified<'_> {
        self.failed.notified()
    }

    /// Ends a round: every wait taken before it completes.
    pub(super) fn round_done(&self) {
        self.rounds.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs of failures since the engine opened: a new one starts at the first failure
    /// after a successful write.
    pub(super) fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// How many executions wait for the store.
    pub(super) fn waiting(&self) -> usize {
        self.waiting_len.load(Ordering::SeqCst)
    }

    /// Ends every wait for a round: the engine is shutting down.
    pub fn release_all(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.rounds.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// `error` and its sources, joined: the cause an operator needs (`Backend` errors keep
/// the operating system's error as a source).
pub(super) fn error_chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = std::error::Error::source(cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_degrades_on_a_failure_and_heals_on_a_success() {
        let monitor = Monitor::default();
        assert!(monitor.health().is_ok());
        let error = StoreError::backend(std::io::Error::other("No space left on device"));
        let record = ExecutionRecord::new("a", "w", 1, Timestamp::EPOCH);
        monitor.write_failed(Timestamp::from_millis(7), &error, Some(&record));
        monitor.write_failed(Timestamp::from_millis(9), &error, None);
        let health = monitor.health();
        let degraded = health.degraded.expect("degraded");
        assert_eq!(degraded.since, Timestamp::from_millis(7));
        assert!(degraded.cause.contains("No space left on device"));
        assert_eq!(
            (degraded.failed_writes, degraded.waiting_executions),
            (2, 1)
        );
        let wait = monitor.waiting_for_store("a").expect("waits");
        assert_eq!(wait.record, Some(record));
        monitor.write_succeeded(Some("a"));
        assert_eq!(
            monitor.health(),
            Health {
                degraded: None,
                failed_writes: 2
            }
        );
        assert!(monitor.waiting_for_store("a").is_none());
    }
}
