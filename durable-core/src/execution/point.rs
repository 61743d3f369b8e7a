//! Entering a durable point and committing its operation's progress and outcome.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ctx::Ctx;
use super::protocol::{Entered, Interrupt};
use super::transition::Change;
use crate::codec::{decode_value, Codec, FrameReader, FrameWriter};
use crate::error::CodecError;
use crate::record::{Delivery, Event, OperationChange, PointState, Position, Status};
use crate::time::Timestamp;

impl Ctx {
    /// Enters durable point `point`: hands back its recorded outcome if the execution
    /// resumed after it completed, or a [`PointRun`] to run its operation (again), whose
    /// frame `encode` writes when the point is entered afresh.
    pub(crate) fn enter_point<F>(&self, point: u32, encode: F) -> Result<Entered, Interrupt>
    where
        F: FnOnce(&mut FrameWriter) -> Result<(), CodecError>,
    {
        let resume = self.state().resume.take();
        if let Some(position) = resume {
            if position.point == point {
                return Ok(match position.state {
                    PointState::Completed { outcome } | PointState::StepGaveUp { outcome } => {
                        Entered::Recorded(outcome)
                    }
                    state => Entered::Run(PointRun {
                        ctx: self.clone(),
                        point,
                        frame: position.frame,
                        state: Some(state),
                    }),
                });
            }
            // The frame does not fit this code: park, keeping it, rather than fail.
            return Err(Interrupt::Unreadable(format!(
                "resumed at durable point {} but the state machine entered point {point}",
                position.point
            )));
        }
        let mut writer = FrameWriter::new(self.codec(), point, self.layout());
        encode(&mut writer).map_err(|e| {
            Interrupt::Failed(format!(
                "cannot save the frame at durable point {point}: {e}"
            ))
        })?;
        let frame = writer.finish();
        self.check_size("the frame", point, frame.len())?;
        if cfg!(debug_assertions) {
            FrameReader::new(&frame)
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
        let limit = self.runtime().limits().max_value_bytes;
        if len > limit {
            return Err(Interrupt::Failed(format!(
                "{what} at durable point {point} is {len} bytes, over the limit of {limit} \
                 (EngineBuilder::max_value_bytes); keep bulky data outside the workflow"
            )));
        }
        Ok(())
    }
}

/// Progress of a durable point's operation, short of its outcome: what
/// [`PointRun::commit_progress`] commits.
pub(crate) struct Progress {
    /// The point's new state.
    pub state: PointState,
    /// When a timer wakes the execution, if it suspends until a time.
    pub wake_at: Option<Timestamp>,
    /// The operations whose settlement wakes it, if it suspends on operations.
    pub awaiting: Vec<String>,
    /// History entries.
    pub events: Vec<Event>,
    /// Changes to the execution's operations, with their conditions.
    pub operations: Vec<OperationChange>,
    /// Deliveries to other executions' operations.
    pub deliveries: Vec<Delivery>,
}

impl Progress {
    /// Progress to `state` with nothing else.
    pub fn to(state: PointState) -> Self {
        Progress {
            state,
            wake_at: None,
            awaiting: Vec::new(),
            events: Vec::new(),
            operations: Vec::new(),
            deliveries: Vec::new(),
        }
    }
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
    /// The execution's context.
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The codec of the workflow.
    pub(crate) fn codec(&self) -> Codec {
        self.ctx.codec()
    }

    /// The state the point resumed in, `None` when it was entered afresh.
    pub(crate) fn resumed_state(&self) -> Option<&PointState> {
        self.state.as_ref()
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.ctx.now()
    }

    /// The durable point's id.
    pub(crate) fn point(&self) -> u32 {
        self.point
    }

    /// The id of the execution.
    pub(crate) fn execution_id(&self) -> &str {
        self.ctx.execution_id()
    }

    /// The sequence number of the record as last committed. Read when a point is
    /// entered afresh, it is the same every time that entry is run again (a crash before
    /// the point's first commit leaves the record as it was) and differs from any other
    /// entry of any point of the execution (each one follows another commit).
    pub(crate) fn seq(&self) -> u64 {
        self.ctx.state().record.seq
    }

    /// A future that completes once the engine clock reaches `deadline`.
    pub(crate) fn sleep_until(&self, deadline: Timestamp) -> crate::time::SleepFuture {
        self.ctx.runtime().clock().sleep_until(deadline)
    }

    /// The wake-up time of the last commit, if it waits for one.
    pub(crate) fn wake_at(&self) -> Option<Timestamp> {
        self.ctx.state().record.wake_at
    }

    /// Whether the engine is shutting down (a machine that could go on at once should
    /// stop after its commit instead).
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.ctx.runtime().is_shutting_down()
    }

    /// Commits progress at this point without finishing it: `Suspended` if it waits for
    /// a time or for operations, `Running` otherwise. The commit's own future, without
    /// one around it (see `Ctx::commit` for why).
    pub(crate) fn commit_progress(
        &self,
        progress: Progress,
    ) -> impl Future<Output = Result<(), Interrupt>> + Send + '_ {
        let suspends = progress.wake_at.is_some() || !progress.awaiting.is_empty();
        self.ctx.commit(Change {
            position: Some(Position {
                point: self.point,
                frame: self.frame.clone(),
                state: progress.state,
            }),
            point: Some(self.point),
            wake_at: progress.wake_at,
            awaiting: progress.awaiting,
            events: progress.events,
            operations: progress.operations,
            deliveries: progress.deliveries,
            ..Change::to(if suspends {
                Status::Suspended
            } else {
                Status::Running
            })
        })
    }

    /// Commits progress at this point: its new state, the wake-up time if it suspends
    /// until then, and history entries.
    pub(crate) fn progress(
        &self,
        state: PointState,
        wake_at: Option<Timestamp>,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<(), Interrupt>> + Send + '_ {
        self.commit_progress(Progress {
            wake_at,
            events,
            ..Progress::to(state)
        })
    }

    /// Commits the operation's outcome; after this, the point is done. Returns the
    /// outcome decoded from the bytes it committed: what a resume after this point
    /// decodes, so the workflow sees the same value whether or not it restarts here (a
    /// type may not survive serialization unchanged: skipped fields, a normalising
    /// `Serialize`).
    ///
    /// The outcome is encoded and decoded before the returned future starts, so the
    /// future does not borrow it (and need not be `Sync`).
    pub(crate) fn complete<T: Serialize + DeserializeOwned + Send>(
        self,
        outcome: &T,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<T, Interrupt>> + Send {
        self.complete_with(outcome, events, Vec::new())
    }

    /// Like [`complete`](PointRun::complete), with changes to the execution's operations
    /// in the same commit.
    pub(crate) fn complete_with<T: Serialize + DeserializeOwned + Send>(
        self,
        outcome: &T,
        events: Vec<Event>,
        operations: Vec<OperationChange>,
    ) -> impl Future<Output = Result<T, Interrupt>> + Send {
        self.finish(outcome, events, operations, false)
    }

    /// Like [`complete`](PointRun::complete), for a step that gave up: the outcome (its
    /// error) is recorded as [`PointState::StepGaveUp`], which a re-drive runs again.
    pub(crate) fn give_up<T: Serialize + DeserializeOwned + Send>(
        self,
        outcome: &T,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<T, Interrupt>> + Send {
        self.finish(outcome, events, Vec::new(), true)
    }

    fn finish<T: Serialize + DeserializeOwned + Send>(
        self,
        outcome: &T,
        events: Vec<Event>,
        operations: Vec<OperationChange>,
        gave_up: bool,
    ) -> impl Future<Output = Result<T, Interrupt>> + Send {
        let recorded = record(self.codec(), outcome).map_err(|e| {
            Interrupt::Failed(format!(
                "cannot save the outcome of durable point {}: {e}",
                self.point
            ))
        });
        async move {
            let (outcome, value) = recorded?;
            self.ctx
                .check_size("the outcome", self.point, outcome.len())?;
            self.commit_progress(Progress {
                events,
                operations,
                ..Progress::to(if gave_up {
                    PointState::StepGaveUp { outcome }
                } else {
                    PointState::Completed { outcome }
                })
            })
            .await?;
            if self.ctx.should_yield() {
                return Err(Interrupt::Yielded);
            }
            Ok(value)
        }
    }
}

/// Encodes `value` and decodes it back: the bytes to store and the value as recorded.
fn record<T: Serialize + DeserializeOwned>(
    codec: Codec,
    value: &T,
) -> Result<(Vec<u8>, T), CodecError> {
    let bytes = codec.encode_value(value)?;
    let value = decode_value::<T>(&bytes).map_err(|e| CodecError::Decode {
        message: format!(
            "the value encodes but does not decode with the {} codec ({e}); \
             choose a self-describing codec with `#[durable(codec = json)]`",
            codec.name()
        ),
    })?;
    Ok((bytes, value))
}
