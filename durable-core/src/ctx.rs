//! The workflow context: what a `#[durable]` fn's first parameter is, and how a durable
//! point commits.
//!
//! Invariant: `ExecState::record` is always the last record this context committed (or
//! loaded), so every commit is conditional on the sequence number it really read.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::codec::{Codec, FrameWriter};
use crate::engine::Shared;
use crate::error::CodecError;
use crate::private::{Entered, Interrupt};
use crate::record::{Commit, Event, ExecutionRecord, HistoryEntry, PointState, Position, Status};
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
    shared: Arc<Shared>,
    id: String,
    codec: Codec,
    state: Mutex<ExecState>,
}

struct ExecState {
    record: ExecutionRecord,
    resume: Option<Position>,
    lease_until: Timestamp,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("execution", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        record: ExecutionRecord,
        codec: Codec,
        lease_until: Timestamp,
    ) -> Self {
        let resume = record.position.clone();
        Ctx {
            inner: Arc::new(CtxInner {
                shared,
                id: record.id.clone(),
                codec,
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
        self.inner.shared.clock.now()
    }

    fn state(&self) -> MutexGuard<'_, ExecState> {
        // Held only for short, non-panicking updates.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn codec(&self) -> Codec {
        self.inner.codec
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The record as last committed.
    pub(crate) fn record(&self) -> ExecutionRecord {
        self.state().record.clone()
    }

    pub(crate) fn enter_point<F>(&self, point: u32, encode: F) -> Result<Entered, Interrupt>
    where
        F: FnOnce(&mut FrameWriter) -> Result<(), CodecError>,
    {
        let resume = self.state().resume.take();
        if let Some(position) = resume {
            if position.point == point {
                return Ok(match position.state {
                    PointState::Completed { outcome } => Entered::Recorded(outcome),
                    state => Entered::Run(PointRun {
                        ctx: self.clone(),
                        point,
                        frame: position.frame,
                        state: Some(state),
                    }),
                });
            }
            return Err(Interrupt::Failed(format!(
                "resumed at durable point {} but the state machine entered point {point}",
                position.point
            )));
        }
        let mut writer = FrameWriter::new(self.inner.codec, point);
        encode(&mut writer).map_err(|e| {
            Interrupt::Failed(format!(
                "cannot save the frame at durable point {point}: {e}"
            ))
        })?;
        let frame = writer.finish();
        self.check_size("the frame", point, frame.len())?;
        if cfg!(debug_assertions) {
            crate::codec::FrameReader::new(&frame)
                .map_err(|e| Interrupt::codec("a frame just written cannot be read back", e))?;
        }
        Ok(Entered::Run(PointRun {
            ctx: self.clone(),
            point,
            frame,
            state: None,
        }))
    }

    /// Refuses a value over the engine's size limit, naming it.
    fn check_size(&self, what: &str, point: u32, len: usize) -> Result<(), Interrupt> {
        let limit = self.inner.shared.config.max_value_bytes;
        if len > limit {
            return Err(Interrupt::Failed(format!(
                "{what} at durable point {point} is {len} bytes, over the limit of {limit} \
                 (EngineBuilder::max_value_bytes); keep bulky data outside the workflow"
            )));
        }
        Ok(())
    }

    /// Commits a transition built from the last committed record.
    pub(crate) async fn commit(&self, change: Change) -> Result<(), Interrupt> {
        let shared = &self.inner.shared;
        let now = shared.clock.now();
        let renew = self.state().lease_until <= now.saturating_add(shared.config.lease_ttl / 2);
        if renew {
            let until = now.saturating_add(shared.config.lease_ttl);
            if !shared
                .store
                .claim(&self.inner.id, shared.owner, now, until)
                .await?
            {
                return Err(Interrupt::Failed(format!(
                    "execution {:?} lost its lease to another engine",
                    self.inner.id
                )));
            }
            self.state().lease_until = until;
        }
        let commit = {
            let state = self.state();
            let old = &state.record;
            let mut record = old.clone();
            record.seq = old.seq + 1;
            record.updated_at = now;
            record.status = change.status;
            record.position = change.position;
            record.wake_at = change.wake_at;
            record.output = change.output;
            record.message = change.message;
            let history: Vec<HistoryEntry> = change
                .events
                .into_iter()
                .enumerate()
                .map(|(i, event)| HistoryEntry {
                    number: old.history_next + i as u64,
                    at: now,
                    point: change.point,
                    event,
                })
                .collect();
            record.history_next = old.history_next + history.len() as u64;
            Commit {
                expected_seq: old.seq,
                prune_history_below: record
                    .history_next
                    .saturating_sub(shared.config.history_limit),
                record,
                history,
            }
        };
        let record = commit.record.clone();
        let wake_at = record.wake_at;
        shared.store.commit(commit).await?;
        self.state().record = record;
        if let Some(at) = wake_at {
            shared.timer_set(&self.inner.id, at);
        }
        Ok(())
    }

    /// Whether the state machine should stop after the commit it just made.
    fn should_yield(&self) -> bool {
        let shared = &self.inner.shared;
        shared.config.suspend_after_every_point || shared.is_shutting_down()
    }
}

/// One transition's changes to an execution record.
pub(crate) struct Change {
    pub status: Status,
    pub position: Option<Position>,
    pub point: Option<u32>,
    pub wake_at: Option<Timestamp>,
    pub output: Option<Vec<u8>>,
    pub message: Option<String>,
    pub events: Vec<Event>,
}

/// A durable point whose operation is running: how operations commit their progress.
///
/// Not public API.
#[derive(Debug)]
pub struct PointRun {
    ctx: Ctx,
    point: u32,
    frame: Vec<u8>,
    state: Option<PointState>,
}

impl PointRun {
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The state the point resumed in, `None` when it was entered afresh.
    pub(crate) fn resumed_state(&self) -> Option<&PointState> {
        self.state.as_ref()
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.ctx.now()
    }

    /// The wake-up time of the last commit, if it waits for one.
    pub(crate) fn wake_at(&self) -> Option<Timestamp> {
        self.ctx.state().record.wake_at
    }

    /// Commits progress at this point without finishing it.
    pub(crate) async fn progress(
        &self,
        state: PointState,
        wake_at: Option<Timestamp>,
        events: Vec<Event>,
    ) -> Result<(), Interrupt> {
        self.ctx
            .commit(Change {
                status: if wake_at.is_some() {
                    Status::Suspended
                } else {
                    Status::Running
                },
                position: Some(Position {
                    point: self.point,
                    frame: self.frame.clone(),
                    state,
                }),
                point: Some(self.point),
                wake_at,
                output: None,
                message: None,
                events,
            })
            .await
    }

    /// Commits the operation's outcome; after this, the point is done. Returns the
    /// outcome decoded from the bytes it committed: what a resume after this point
    /// decodes, so the workflow sees the same value whether or not it restarts here (a
    /// type may not survive serialization unchanged: skipped fields, a normalising
    /// `Serialize`).
    ///
    /// The outcome is encoded and decoded before the returned future starts, so the
    /// future does not borrow it (and need not be `Sync`).
    pub(crate) fn complete<T: serde::Serialize + serde::de::DeserializeOwned + Send>(
        self,
        outcome: &T,
        events: Vec<Event>,
    ) -> impl std::future::Future<Output = Result<T, Interrupt>> + Send {
        let codec = self.ctx.codec();
        let recorded = codec
            .encode_value(outcome)
            .and_then(|bytes| {
                let value =
                    crate::codec::decode_value::<T>(&bytes).map_err(|e| CodecError::Decode {
                        message: format!(
                            "the outcome encodes but does not decode with the {} codec ({e}); \
                             choose a self-describing codec with `#[durable(codec = json)]`",
                            codec.name()
                        ),
                    })?;
                Ok((bytes, value))
            })
            .map_err(|e| {
                Interrupt::Failed(format!(
                    "cannot save the outcome of durable point {}: {e}",
                    self.point
                ))
            });
        async move {
            let (outcome, value) = recorded?;
            self.ctx
                .check_size("the outcome", self.point, outcome.len())?;
            self.progress(PointState::Completed { outcome }, None, events)
                .await?;
            if self.ctx.should_yield() {
                return Err(Interrupt::Yielded);
            }
            Ok(value)
        }
    }
}
