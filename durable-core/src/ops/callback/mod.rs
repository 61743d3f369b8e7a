//! Callbacks: a workflow waits for the outside world (a person's approval, a webhook, a
//! job on another system) to send it a result by id.
//!
//! - [`Ctx::create_callback`](crate::Ctx::create_callback) is a durable point that commits
//!   an [`OperationRecord`](crate::OperationRecord) of kind `Callback` (its token is the
//!   callback id) and returns a [`Callback`] handle, which is saved in frames like any
//!   other local, so the id can be handed out by a step and awaited at a later point.
//! - [`Ctx::wait_callback`](crate::Ctx::wait_callback) is a durable point that returns the
//!   outcome if it has arrived (a completion that arrives early waits in the operation
//!   record), or commits `Suspended` awaiting the operation, with `wake_at` at the
//!   earlier of the timeout and the heartbeat deadline. A completion is a
//!   [`Store::deliver`](crate::Store::deliver) by token, which wakes the execution in the
//!   same write; a timeout is committed by the workflow with
//!   [`Expect::Pending`](crate::Expect::Pending), so a completion that won the race wins.
//! - [`Ctx::wait_for_callback`](crate::Ctx::wait_for_callback) does both at one point,
//!   running a submitter with the id in between.
//!
//! Payloads travel as JSON (the wire format of the HTTP endpoints) and are decoded into
//! the workflow's type at the await; one that does not decode is
//! [`CallbackError::Undecodable`], with the raw payload, never a panic.
//!
//! # Storage
//!
//! A callback's record stays with its execution after the workflow received its outcome,
//! until the execution is deleted: a late or duplicate completion then gets a precise
//! error (already completed, timed out, execution finished) rather than "unknown", and
//! `describe` lists it. It takes a few hundred bytes. A workflow that loops forever over
//! callbacks should await with
//! [`delete_when_received`](WaitCallback::delete_when_received), which deletes the record
//! in the commit that records the outcome: its storage stays bounded, and later
//! completions of that id are unknown.

mod create;
pub(crate) mod id;
mod submit;
mod wait;

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::record::OperationState;

pub use create::CreateCallback;
pub use submit::WaitForCallback;
pub use wait::WaitCallback;

/// A callback created by [`Ctx::create_callback`](crate::Ctx::create_callback): the id
/// to hand to whoever completes it, and what a later
/// [`Ctx::wait_callback`](crate::Ctx::wait_callback) awaits.
///
/// It is a plain value, saved in frames like any local. `T` is the type its result
/// decodes into. Its `Debug` output leaves the id out, since knowing the id is the
/// authority to complete the callback.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Callback<T> {
    id: String,
    key: String,
    name: String,
    #[serde(skip)]
    result: PhantomData<fn() -> T>,
}

impl<T> Callback<T> {
    pub(crate) fn new(id: String, key: String, name: String) -> Self {
        Callback {
            id,
            key,
            name,
            result: PhantomData,
        }
    }

    /// The callback id: what [`Engine::complete_callback`](crate::Engine::complete_callback)
    /// and the HTTP endpoints take. Unguessable (128 bits from the operating system's
    /// random source) and URL-safe. Treat it as a secret: whoever knows it can complete
    /// the callback.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The callback's name, as given to `create_callback`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> Clone for Callback<T> {
    fn clone(&self) -> Self {
        Callback::new(self.id.clone(), self.key.clone(), self.name.clone())
    }
}

impl<T> PartialEq for Callback<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.key == other.key && self.name == other.name
    }
}

impl<T> Eq for Callback<T> {}

impl<T> fmt::Debug for Callback<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Why a callback gave no value: what `ctx.wait_callback(..).await` (and
/// `ctx.create_callback(..).await`, `ctx.wait_for_callback(..).await`) return in their
/// `Err`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The sender failed the callback
    /// ([`Engine::fail_callback`](crate::Engine::fail_callback)), with an error payload.
    #[error("callback `{name}` was failed by its sender: {error}")]
    Failed {
        /// The callback's name.
        name: String,
        /// The sender's error payload, as JSON text (see
        /// [`sender_error`](CallbackError::sender_error)).
        error: String,
    },
    /// Its timeout passed before it was completed.
    #[error("callback `{name}` timed out")]
    TimedOut {
        /// The callback's name.
        name: String,
    },
    /// Its heartbeat timeout passed without a heartbeat or a completion.
    #[error("callback `{name}` timed out waiting for a heartbeat")]
    HeartbeatTimedOut {
        /// The callback's name.
        name: String,
    },
    /// It was completed with a payload that does not decode into the awaited type.
    #[error("callback `{name}` was completed with a payload that does not decode into the awaited type: {message}")]
    Undecodable {
        /// The callback's name.
        name: String,
        /// What the decoder said.
        message: String,
        /// The payload as it arrived (JSON text).
        payload: String,
    },
    /// A timeout or heartbeat timeout longer than [`MAX_WAIT`](crate::MAX_WAIT); the
    /// callback was not created.
    #[error("callback `{name}` has a timeout of {requested_ms} ms, longer than the maximum of {} days", crate::MAX_WAIT.as_secs() / 86_400)]
    TooFar {
        /// The callback's name.
        name: String,
        /// The requested timeout in milliseconds (saturated).
        requested_ms: u64,
    },
    /// `wait_for_callback`'s submitter failed and its retry policy gave up; the callback
    /// was cancelled, so later completions are refused.
    #[error("the submitter of callback `{name}` failed after {attempts} attempt(s): {error}")]
    SubmitFailed {
        /// The callback's name.
        name: String,
        /// The submitter's last error, as JSON text, or its panic message.
        error: String,
        /// How many attempts ran.
        attempts: u32,
    },
    /// The awaited callback is not one of this execution's: its record was deleted
    /// ([`delete_when_received`](WaitCallback::delete_when_received) and awaited again),
    /// or the handle came from another execution.
    #[error("callback `{name}` is not a callback of this execution")]
    NotFound {
        /// The callback's name.
        name: String,
    },
    /// It was cancelled by its own execution.
    #[error("callback `{name}` was cancelled")]
    Cancelled {
        /// The callback's name.
        name: String,
    },
}

impl CallbackError {
    /// The sender's error payload of a [`Failed`](CallbackError::Failed) callback,
    /// decoded from JSON into `E`; `None` for other errors or if it does not decode.
    pub fn sender_error<E: DeserializeOwned>(&self) -> Option<E> {
        match self {
            CallbackError::Failed { error, .. } => serde_json::from_str(error).ok(),
            _ => None,
        }
    }

    /// The callback's name.
    pub fn name(&self) -> &str {
        match self {
            CallbackError::Failed { name, .. }
            | CallbackError::TimedOut { name }
            | CallbackError::HeartbeatTimedOut { name }
            | CallbackError::Undecodable { name, .. }
            | CallbackError::TooFar { name, .. }
            | CallbackError::SubmitFailed { name, .. }
            | CallbackError::NotFound { name }
            | CallbackError::Cancelled { name } => name,
        }
    }
}

/// The settled state of a callback whose deadline has passed.
pub(crate) fn timed_out(heartbeat: bool) -> OperationState {
    OperationState::TimedOut { heartbeat }
}

/// The workflow's outcome for a settled callback named `name`, and the word the history
/// records for it. A payload is JSON, decoded into `T` here.
pub(crate) fn outcome<T: DeserializeOwned>(
    name: &str,
    state: &OperationState,
) -> (Result<T, CallbackError>, &'static str) {
    let name = name.to_owned();
    match state {
        OperationState::Succeeded { payload } => match serde_json::from_slice(payload) {
            Ok(value) => (Ok(value), "succeeded"),
            Err(e) => (
                Err(CallbackError::Undecodable {
                    name,
                    message: e.to_string(),
                    payload: String::from_utf8_lossy(payload).into_owned(),
                }),
                "succeeded",
            ),
        },
        OperationState::Failed { error } => (
            Err(CallbackError::Failed {
                name,
                error: String::from_utf8_lossy(error).into_owned(),
            }),
            "failed",
        ),
        OperationState::TimedOut { heartbeat: false } => {
            (Err(CallbackError::TimedOut { name }), "timed out")
        }
        OperationState::TimedOut { heartbeat: true } => (
            Err(CallbackError::HeartbeatTimedOut { name }),
            "heartbeat timed out",
        ),
        OperationState::Cancelled => (Err(CallbackError::Cancelled { name }), "cancelled"),
        // A pending operation has no outcome; callers settle it first.
        OperationState::Pending => (Err(CallbackError::NotFound { name }), "not found"),
    }
}
