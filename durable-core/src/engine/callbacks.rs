//! Completing callbacks from outside: [`Engine::complete_callback`],
//! [`Engine::fail_callback`], [`Engine::heartbeat_callback`].
//!
//! A completion is one [`Store::deliver`](crate::Store::deliver) by the callback's id (its
//! operation's token): the store settles the operation and, if the execution is
//! suspended awaiting it, wakes it in the same atomic write; the engine then enqueues it,
//! so it runs at once, with no polling. Of concurrent completions of one id, the store
//! lets exactly one settle it.
//!
//! The store refuses, without writing and in this order, a settled callback (with how it
//! was settled, also when its execution has finished since), a pending one whose deadline
//! has passed at the completion's time (as timed out: the workflow may not have noticed
//! the timeout yet, but the answer must not depend on when it does), and one whose
//! execution has finished (see `store::rules::refusal`). So a completion is one trip to
//! the store's writer, with no read before it. Ids are secrets: they are never logged,
//! and errors do not repeat them.

use serde::de::IgnoredAny;
use serde::Serialize;

use super::Engine;
use crate::error::StoreError;
use crate::ops::callback::id;
use crate::record::{
    Delivered, Delivery, OperationRecord, OperationRef, OperationState, Settlement, Status,
};

/// Why a completion, failure or heartbeat of a callback was refused. Nothing was
/// written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompletionError {
    /// No callback has this id (or its record was deleted: its execution was deleted,
    /// or the workflow received its outcome with `delete_when_received`).
    #[error("no callback has this id")]
    NotFound,
    /// The callback was already completed, failed or cancelled: the first completion
    /// won.
    #[error("callback `{name}` is already {}", state.as_str())]
    AlreadyCompleted {
        /// The callback's name.
        name: String,
        /// How it was settled.
        state: CallbackState,
    },
    /// The callback's timeout (or heartbeat timeout) has passed.
    #[error("callback `{name}` has timed out{}", if *heartbeat { " waiting for a heartbeat" } else { "" })]
    TimedOut {
        /// The callback's name.
        name: String,
        /// Whether the heartbeat timeout, not the overall timeout, passed.
        heartbeat: bool,
    },
    /// The callback's execution has finished (completed or failed) without receiving it.
    #[error("the execution of callback `{name}` has finished ({})", status.as_str())]
    ExecutionFinished {
        /// The callback's name.
        name: String,
        /// The execution's status.
        status: Status,
    },
    /// The payload is not JSON, or cannot be encoded as JSON.
    #[error("invalid callback payload: {message}")]
    InvalidPayload {
        /// What is wrong with it.
        message: String,
    },
    /// The payload is larger than the engine stores
    /// ([`EngineBuilder::max_value_bytes`](crate::EngineBuilder::max_value_bytes)).
    #[error("the callback payload is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The engine is shutting down or has shut down.
    #[error("the engine has shut down")]
    ShutDown,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a callback stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallbackState {
    /// Waiting for a completion.
    Pending,
    /// Completed with a value.
    Succeeded,
    /// Failed by its sender.
    Failed,
    /// Its timeout passed.
    TimedOut,
    /// Its heartbeat timeout passed.
    HeartbeatTimedOut,
    /// Cancelled by its own execution.
    Cancelled,
}

impl CallbackState {
    /// The state's name in lower case, with spaces.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Succeeded => "succeeded",
            CallbackState::Failed => "failed",
            CallbackState::TimedOut => "timed out",
            CallbackState::HeartbeatTimedOut => "heartbeat timed out",
            CallbackState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn of(state: &OperationState) -> Self {
        match state {
            OperationState::Pending => CallbackState::Pending,
            OperationState::Succeeded { .. } => CallbackState::Succeeded,
            OperationState::Failed { .. } => CallbackState::Failed,
            OperationState::TimedOut { heartbeat: false } => CallbackState::TimedOut,
            OperationState::TimedOut { heartbeat: true } => CallbackState::HeartbeatTimedOut,
            OperationState::Cancelled => CallbackState::Cancelled,
        }
    }
}

impl Engine {
    /// Completes the callback `id` with `value`, which the workflow's `wait_callback`
    /// receives (as JSON, decoded into the type it awaits).
    ///
    /// Durable: when this returns `Ok`, the completion survives a crash, and the
    /// execution runs on (at once if it was waiting; when it reaches its await
    /// otherwise). Refused, with nothing written, if no callback has this id, it was
    /// already completed, failed or cancelled, its timeout has passed, or its execution
    /// has finished ([`CompletionError`]).
    pub async fn complete_callback<T: Serialize + ?Sized>(
        &self,
        id: &str,
        value: &T,
    ) -> Result<(), CompletionError> {
        let payload = to_json(value)?;
        self.check_size(&payload)?;
        self.settle(id, OperationState::Succeeded { payload }).await
    }

    /// Completes the callback `id` with a payload that is already JSON text (one JSON
    /// value), as the HTTP endpoint receives it; see
    /// [`complete_callback`](Engine::complete_callback).
    pub async fn complete_callback_json(
        &self,
        id: &str,
        json: &[u8],
    ) -> Result<(), CompletionError> {
        self.check_size(json)?;
        check_json(json)?;
        let payload = json.to_vec();
        self.settle(id, OperationState::Succeeded { payload }).await
    }

    /// Fails the callback `id` with `error`: the workflow's `wait_callback` gives
    /// [`CallbackError::Failed`](crate::CallbackError::Failed) with the error as JSON.
    /// Durable and refused as [`complete_callback`](Engine::complete_callback) is.
    pub async fn fail_callback<E: Serialize + ?Sized>(
        &self,
        id: &str,
        error: &E,
    ) -> Result<(), CompletionError> {
        let error = to_json(error)?;
        self.check_size(&error)?;
        self.settle(id, OperationState::Failed { error }).await
    }

    /// Fails the callback `id` with an error that is already JSON text; see
    /// [`fail_callback`](Engine::fail_callback).
    pub async fn fail_callback_json(&self, id: &str, json: &[u8]) -> Result<(), CompletionError> {
        self.check_size(json)?;
        check_json(json)?;
        let error = json.to_vec();
        self.settle(id, OperationState::Failed { error }).await
    }

    /// Records a heartbeat for the callback `id`: its heartbeat timeout starts again
    /// from now. Wakes nothing. Refused as
    /// [`complete_callback`](Engine::complete_callback) is (a heartbeat after the
    /// heartbeat timeout is [`CompletionError::TimedOut`]).
    ///
    /// Durable: when this returns `Ok`, the heartbeat survives a crash.
    pub async fn heartbeat_callback(&self, id: &str) -> Result<(), CompletionError> {
        self.deliver(id, Settlement::Heartbeat).await
    }

    async fn settle(&self, id: &str, state: OperationState) -> Result<(), CompletionError> {
        self.deliver(id, Settlement::Settle(state)).await
    }

    /// Refuses a payload larger than the engine stores.
    fn check_size(&self, payload: &[u8]) -> Result<(), CompletionError> {
        let limit = self.shared.config.max_value_bytes;
        if payload.len() > limit {
            return Err(CompletionError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(())
    }

    async fn deliver(&self, id: &str, settlement: Settlement) -> Result<(), CompletionError> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return Err(CompletionError::ShutDown);
        }
        if !id::is_well_formed(id) {
            return Err(CompletionError::NotFound);
        }
        let store_error = |e: StoreError| match e {
            StoreError::Closed => CompletionError::ShutDown,
            e => CompletionError::Store(e),
        };
        let now = shared.clock.now();
        let delivery = Delivery {
            to: OperationRef::Token(id.to_owned()),
            settlement,
            at: now,
        };
        let delivered = shared.store.deliver(delivery).await;
        shared.health.observe(now, &delivered);
        match delivered.map_err(store_error)? {
            Delivered::Applied {
                execution, woke, ..
            } => {
                if woke {
                    shared.enqueue(&execution);
                }
                Ok(())
            }
            Delivered::Unknown => Err(CompletionError::NotFound),
            Delivered::AlreadySettled(settled) => Err(already_settled(*settled)),
            Delivered::DeadlinePassed(op) => Err(CompletionError::TimedOut {
                heartbeat: op.deadline().is_some_and(|(_, heartbeat)| heartbeat),
                name: op.name,
            }),
            Delivered::ExecutionFinished { status, .. } => {
                // Rare, so the callback's name is read only now.
                let name = shared
                    .store
                    .operation_by_token(id)
                    .await
                    .map_err(store_error)?
                    .ok_or(CompletionError::NotFound)?
                    .name;
                Err(CompletionError::ExecutionFinished { name, status })
            }
        }
    }
}

fn already_settled(op: OperationRecord) -> CompletionError {
    match op.state {
        OperationState::TimedOut { heartbeat } => CompletionError::TimedOut {
            name: op.name,
            heartbeat,
        },
        state => CompletionError::AlreadyCompleted {
            name: op.name,
            state: CallbackState::of(&state),
        },
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CompletionError> {
    serde_json::to_vec(value).map_err(|e| CompletionError::InvalidPayload {
        message: e.to_string(),
    })
}

/// Checks that `json` is exactly one JSON value.
fn check_json(json: &[u8]) -> Result<(), CompletionError> {
    serde_json::from_slice::<IgnoredAny>(json)
        .map(drop)
        .map_err(|e| CompletionError::InvalidPayload {
            message: format!("not JSON: {e}"),
        })
}
