//! [`Handle`]: a typed handle on one execution, to read its status and await its result.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::shared::Shared;
use crate::codec::decode_value;
use crate::error::{Error, StoreError};
use crate::execution::Workflow;
use crate::record::{ExecutionRecord, Status};

/// A typed handle on one execution.
pub struct Handle<W> {
    pub(super) shared: Arc<Shared>,
    pub(super) id: String,
    pub(super) workflow: PhantomData<fn() -> W>,
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
    ///
    /// [`Error::WrongWorkflow`] if the execution runs another workflow than `W`, and
    /// [`Error::ShutDown`] once the engine has shut down and closed its store.
    pub async fn status(&self) -> Result<Status, Error> {
        Ok(self.load().await?.status)
    }

    /// The execution's record, checked to be an execution of `W`.
    async fn load(&self) -> Result<ExecutionRecord, Error> {
        let record = match self.shared.store.load(&self.id).await {
            Ok(record) => record,
            // What the caller needs to know is that the engine is gone, not how its
            // store reacts to that.
            Err(StoreError::Closed) if self.shared.is_shutting_down() => {
                return Err(Error::ShutDown)
            }
            Err(e) => return Err(e.into()),
        };
        let record = record.ok_or_else(|| Error::NotFound {
            id: self.id.clone(),
        })?;
        if record.workflow != W::NAME {
            return Err(Error::WrongWorkflow {
                id: self.id.clone(),
                expected: W::NAME.to_owned(),
                found: record.workflow,
            });
        }
        Ok(record)
    }

    /// Waits for the execution to finish and returns its output.
    ///
    /// Works from any task, and after a restart on a new engine over the same store.
    /// A `Result` workflow that returned `Err` has failed (its status is
    /// [`Status::Failed`]) but has an output, which this returns: `Ok(Err(e))`.
    /// Returns [`Error::Failed`] if the execution failed without one (a panic between
    /// points, state that cannot be read back), [`Error::Parked`] if it is
    /// parked, [`Error::WrongWorkflow`] if it runs another workflow than `W`, and
    /// [`Error::ShutDown`] if the engine shuts down first.
    ///
    /// While the store fails (see [`Engine::health`](super::Engine::health)) it keeps
    /// waiting: the execution has not failed, and goes on once the store works again.
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
            let record = match self.load().await {
                Ok(record) => record,
                Err(Error::Store(e)) if e.is_failure() && !shared.is_shutting_down() => {
                    // Waiting before reporting, so the round the report asks for cannot
                    // be missed.
                    let round = shared.health.next_round();
                    shared.health.read_failed(&e);
                    round.await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match record.status {
                Status::Completed => {
                    let output = record.output.as_deref().unwrap_or_default();
                    return Ok(decode_value(output)?);
                }
                // A workflow that returned `Err` failed with an output: that is its result.
                Status::Failed if record.output.is_some() => {
                    let output = record.output.as_deref().unwrap_or_default();
                    return Ok(decode_value(output)?);
                }
                Status::Failed => {
                    return Err(Error::Failed {
                        id: self.id.clone(),
                        message: record.message.unwrap_or_default(),
                    })
                }
                // A parked execution that a registered version can read is resumed by
                // this engine (it was queued when the engine opened), unless this engine
                // tried and left it parked (its state did not decode).
                Status::Parked
                    if shared.parked_here(&self.id)
                        || shared
                            .registry
                            .resumer(
                                &record.workflow,
                                record.fingerprint,
                                super::layouts::stored_layout(&record),
                            )
                            .is_none() =>
                {
                    return Err(Error::Parked {
                        id: self.id.clone(),
                        message: record.message.unwrap_or_default(),
                    })
                }
                Status::Cancelled => {
                    return Err(Error::Cancelled {
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
