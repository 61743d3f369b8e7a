//! The workflow context: what a `#[durable]` fn's first parameter is.
//!
//! Invariant: `ExecState::record` is always the last record this context committed (or
//! loaded), so every commit is conditional on the sequence number it really read.

use std::sync::{Arc, Mutex, MutexGuard};

use super::runtime::Runtime;
use crate::codec::Codec;
use crate::record::{ExecutionRecord, Position};
use crate::time::Timestamp;

/// The context of one execution: the first parameter of every `#[durable]` fn.
///
/// Its methods build durable operations (`ctx.step(..)`), which become durable points
/// when awaited directly in the `#[durable]` fn. The engine hands the state machine a
/// fresh context on every activation; it is never part of a frame.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    runtime: Arc<dyn Runtime>,
    id: String,
    codec: Codec,
    /// The layout fingerprint of the code running the execution, written into frames.
    layout: u64,
    state: Mutex<ExecState>,
}

pub(super) struct ExecState {
    /// The record as last committed or loaded.
    pub record: ExecutionRecord,
    /// The point to resume at, until the machine enters it.
    pub resume: Option<Position>,
    /// Until when this engine's lease on the execution lasts.
    pub lease_until: Timestamp,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("execution", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A context for running (or inspecting) the execution `record` on `runtime`, which
    /// holds a lease on it until `lease_until`, with code whose frames are written with
    /// `codec` and have layout fingerprint `layout`.
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        record: ExecutionRecord,
        codec: Codec,
        layout: u64,
        lease_until: Timestamp,
    ) -> Self {
        let resume = record.position.clone();
        Ctx {
            inner: Arc::new(CtxInner {
                runtime,
                id: record.id.clone(),
                codec,
                layout,
                state: Mutex::new(ExecState {
                    record,
                    resume,
                    lease_until,
                }),
            }),
        }
    }

    /// The id of the execution this context runs.
    pub fn execution_id(&self) -> &str {
        &self.inner.id
    }

    /// The engine clock's current time.
    ///
    /// Reading it between durable points is fine: the value is an ordinary local, saved
    /// in the frame if it is still needed after the next point.
    pub fn now(&self) -> Timestamp {
        self.inner.runtime.clock().now()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, ExecState> {
        // Held only for short, non-panicking updates.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The layout fingerprint written into this execution's frames.
    pub(crate) fn layout(&self) -> u64 {
        self.inner.layout
    }

    pub(crate) fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.inner.runtime
    }

    /// The record as last committed.
    pub(crate) fn record(&self) -> ExecutionRecord {
        self.state().record.clone()
    }
}
