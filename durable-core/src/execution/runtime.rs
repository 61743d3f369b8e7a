//! The narrow handle through which a running execution reaches the engine that runs it.

use std::sync::Arc;
use std::time::Duration;

use crate::error::StoreError;
use crate::record::ExecutionRecord;
use crate::store::Store;
use crate::time::{Clock, SleepFuture, Timestamp};

/// Limits a transition enforces.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// The largest input, frame or outcome stored.
    pub max_value_bytes: usize,
    /// How many history entries are kept per execution.
    pub history_limit: u64,
    /// How long a claim on an execution lasts.
    pub lease_ttl: Duration,
}

/// What an execution needs from its engine: the store, the clock, the limits, its lease
/// identity, and two signals. The engine implements it; the execution layer knows nothing
/// else of the engine.
pub(crate) trait Runtime: Send + Sync + 'static {
    /// Where the execution is stored.
    fn store(&self) -> &Arc<dyn Store>;

    /// The engine's clock.
    fn clock(&self) -> &Arc<dyn Clock>;

    /// The limits a transition enforces.
    fn limits(&self) -> &Limits;

    /// The lease owner id the engine claims executions as.
    fn owner(&self) -> u128;

    /// Called after a commit of `id` returned: the wake-up time it set, if any, and the
    /// executions its deliveries woke.
    fn committed(&self, id: &str, wake_at: Option<Timestamp>, woken: &[String]);

    /// Called when a commit failed with a store failure (`StoreError::Backend`), with the
    /// execution's record as last committed: the engine reports it; the returned future
    /// completes when the commit should be tried again (the store may have recovered
    /// meanwhile) or the engine shuts down.
    fn write_failed(&self, record: &ExecutionRecord, error: &StoreError) -> SleepFuture;

    /// Called after every successful commit of `id`.
    fn write_succeeded(&self, id: &str);

    /// Whether a machine should stop right after its next commit (shutdown, or the
    /// suspend-after-every-point test mode).
    fn should_yield(&self) -> bool;

    /// Whether the engine is shutting down.
    fn is_shutting_down(&self) -> bool;

    /// Whether the engine runs version `fingerprint` of workflow `workflow` (an execution
    /// it starts as a child would otherwise be parked).
    fn runs(&self, workflow: &str, fingerprint: u64) -> bool;

    /// Called after the execution `id` was created (a child): schedules it to run.
    fn created(&self, id: &str);

    /// Called after the execution `id` was finished by another execution's operation
    /// (a child cancelled by its batch): wakes whoever waits for its result.
    fn finished(&self, id: &str);
}
