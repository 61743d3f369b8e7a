//! Errors, one enum per layer: [`CodecError`] (bytes), [`StoreError`] (persistence),
//! [`Error`] (the engine's API), and [`StepError`] (what a workflow sees when a step gives
//! up). The error workflows and step bodies return is [`Failure`](crate::Failure), in its
//! own module.

use serde::{Deserialize, Serialize};

use crate::failure::Failure;

/// A value or frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Serializing a value failed (for example a map with non-string keys under JSON).
    #[error("cannot encode value: {message}")]
    Encode {
        /// What the serializer said.
        message: String,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode value: {message}")]
    Decode {
        /// What the deserializer said.
        message: String,
    },
    /// The bytes end before the structure they describe.
    #[error("truncated data: needed {needed} bytes, found {available}")]
    Truncated {
        /// Bytes needed to go on.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The bytes do not start with the expected envelope tag: they were not written by
    /// this library, or belong to another kind of record.
    #[error("foreign data: expected an envelope tagged {expected:?}, found byte {found:#04x}")]
    Foreign {
        /// The tag that was expected.
        expected: char,
        /// The first byte found.
        found: u8,
    },
    /// The envelope was written by a newer (or unknown) format version.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the bytes.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The envelope names a codec this build does not know.
    #[error("unknown codec id {id}")]
    UnknownCodec {
        /// The codec id in the bytes.
        id: u8,
    },
    /// The value is too large for the envelope.
    #[error("value too large (limit {limit})")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The payload needs its Rust type to be read (bincode is not self-describing).
    #[error("the {codec} codec is not self-describing: the value's type is needed to read it")]
    NotSelfDescribing {
        /// The codec's name.
        codec: &'static str,
    },
}

/// A store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A conditional commit found another sequence number than it expected: someone else
    /// advanced the execution (or it does not exist). Nothing was written.
    #[error("{}", conflict_message(id, *expected, *found))]
    Conflict {
        /// The execution.
        id: String,
        /// The sequence number the commit was based on.
        expected: u64,
        /// The sequence number found, `None` if the execution does not exist.
        found: Option<u64>,
    },
    /// A commit's condition on one of its execution's operations did not hold (see
    /// [`Expect`](crate::Expect)): typically a delivery settled the operation between the
    /// workflow's read and its commit. Nothing was written.
    #[error("operation {key:?} of execution {id:?} changed concurrently: expected {expected:?}")]
    OperationConflict {
        /// The execution.
        id: String,
        /// The operation's key.
        key: String,
        /// What the commit expected.
        expected: crate::record::Expect,
    },
    /// Another engine has taken over the execution's lease (this engine's expired): the
    /// commit was not made, and this engine must drop the execution.
    #[error("execution {id:?} is leased to another engine; this engine's lease expired")]
    LeaseLost {
        /// The execution.
        id: String,
    },
    /// The data directory is already open in another engine or process.
    #[error("the data directory {path} is already in use by another engine")]
    Locked {
        /// The directory.
        path: String,
    },
    /// A stored record could not be decoded: the data is corrupt or was written by an
    /// incompatible version.
    #[error("corrupt record {key}: {source}")]
    Corrupt {
        /// Which record.
        key: String,
        /// Why it could not be read.
        source: CodecError,
    },
    /// The store was written by a newer version of its code (a newer on-disk format or
    /// database schema) than this build knows; nothing was changed.
    #[error("{what} has format version {found}, newer than the {supported} this build reads; open it with a newer version")]
    UnsupportedFormat {
        /// What has the format (a directory, a database schema).
        what: String,
        /// The version found.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// The request breaks the store's contract (a caller's bug, not bad data): for
    /// example a commit that writes another execution's operation.
    #[error("invalid store request: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// An I/O or backend error.
    #[error("store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the store failed (I/O, a lost connection: [`StoreError::Backend`]), which
    /// retrying after the store heals can cure, rather than refused a request.
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self, StoreError::Backend(_))
    }

    /// Wraps a backend's own error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }
}

/// An error from the engine's API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A value could not be encoded or decoded.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// No workflow with this name is registered with the engine.
    #[error("workflow {workflow:?} is not registered with this engine")]
    NotRegistered {
        /// The workflow name.
        workflow: String,
    },
    /// An execution with this id exists but was started with another input or another
    /// workflow; execution ids are idempotency keys, so the start was refused.
    #[error("execution {id:?} already exists with a different start: {reason}")]
    IdConflict {
        /// The execution id.
        id: String,
        /// What differs.
        reason: String,
    },
    /// No execution has this id.
    #[error("no execution with id {id:?}")]
    NotFound {
        /// The execution id.
        id: String,
    },
    /// The execution failed without an output: the workflow panicked between points or
    /// in an infallible step, or its state could not be read back. (A `Result` workflow
    /// that returned `Err` has failed too, but [`Handle::result`](crate::Handle::result)
    /// returns its output.)
    #[error("execution {id:?} failed: {message}")]
    Failed {
        /// The execution id.
        id: String,
        /// What happened.
        message: String,
    },
    /// The execution runs another workflow than the one the handle was made for
    /// ([`Engine::handle`](crate::Engine::handle) cannot check without reading the
    /// store, so the handle's first read does).
    #[error("execution {id:?} runs workflow `{found}`, not `{expected}` as the handle expects")]
    WrongWorkflow {
        /// The execution id.
        id: String,
        /// The workflow the handle was made for.
        expected: String,
        /// The workflow the execution runs.
        found: String,
    },
    /// The execution is parked: no registered version of its workflow matches the code
    /// that wrote its state. Its data is intact; registering the matching version
    /// resumes it.
    #[error("execution {id:?} is parked: {message}")]
    Parked {
        /// The execution id.
        id: String,
        /// Why it is parked.
        message: String,
    },
    /// The execution's stored state cannot be read (corrupt, truncated or foreign bytes,
    /// or a type that no longer decodes it).
    #[error("execution {id:?} has unreadable state: {message}")]
    Corrupt {
        /// The execution id.
        id: String,
        /// What could not be read.
        message: String,
    },
    /// The engine is shutting down or has shut down.
    #[error("the engine has shut down")]
    ShutDown,
    /// [`Engine::redrive`](crate::Engine::redrive) was asked to re-drive an execution
    /// that has not failed.
    #[error("execution {id:?} is {} and only a failed execution can be re-driven", status.as_str())]
    NotFailed {
        /// The execution id.
        id: String,
        /// Its status.
        status: crate::record::Status,
    },
    /// No registered version can resume the execution's state (its layout differs from
    /// every registered version's, or it has no layout and its code is not registered).
    #[error("no registered version can resume execution {id:?}: {message}")]
    NoCompatibleVersion {
        /// The execution id.
        id: String,
        /// What differs.
        message: String,
    },
    /// An argument was invalid.
    #[error("{message}")]
    Invalid {
        /// What was wrong.
        message: String,
    },
    /// [`Engine::wait_until`](crate::Engine::wait_until) gave up: the execution stopped
    /// (finished or parked) in a state that does not satisfy the condition, so it never
    /// will in this engine.
    #[error("execution {id:?} is {} and will not reach the awaited state ({wanted})", status.as_str())]
    NotReached {
        /// The execution id.
        id: String,
        /// The condition, as text.
        wanted: String,
        /// The status it stopped in.
        status: crate::record::Status,
    },
    /// The execution was cancelled ([`Engine::cancel`](crate::Engine::cancel), or the
    /// batch that started it completed early): it has no output.
    #[error("execution {id:?} was cancelled: {message}")]
    Cancelled {
        /// The execution id.
        id: String,
        /// Why.
        message: String,
    },
}

/// Why a step gave up: what `ctx.step(..).await` returns in its `Err`.
///
/// `E` is the body's error type: [`Failure`](crate::Failure) (the default) for
/// [`Ctx::step`](crate::Ctx::step), your own type for
/// [`Ctx::typed_step`](crate::Ctx::typed_step). A `StepError` converts into a `Failure`
/// with `?` (a `StepError<Failure>` keeps the body's failure, with the step's outcome as
/// context). Match on it to handle an exhausted step like any other error:
///
/// ```
/// # use durable_core::StepError;
/// fn describe(e: &StepError<String>) -> String {
///     match e {
///         StepError::Failed { error, attempts } => format!("{error} after {attempts} attempts"),
///         StepError::Interrupted { attempts } => format!("outcome unknown after {attempts}"),
///         StepError::Panicked { message, .. } => format!("bug: {message}"),
///         StepError::TimedOut { timeout_ms, .. } => format!("no answer in {timeout_ms} ms"),
///         _ => "other".into(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StepError<E = Failure> {
    /// The body returned `error` on its last attempt and the retry policy gave up
    /// (attempts exhausted, or the retry predicate said the error is permanent).
    #[error("step failed after {attempts} attempt(s): {error}")]
    Failed {
        /// The last attempt's error.
        error: E,
        /// How many attempts ran.
        attempts: u32,
    },
    /// An at-most-once attempt was interrupted (the process died while it ran) and no
    /// attempt is left: whether its effect happened is unknown.
    #[error("at-most-once step interrupted after {attempts} attempt(s); its outcome is unknown")]
    Interrupted {
        /// How many attempts were started.
        attempts: u32,
    },
    // New variants go last: recorded outcomes name variants by position.
    /// The body panicked on its last attempt and the retry policy gave up (attempts
    /// exhausted, or a [`retry_if`](crate::Step::retry_if) predicate is set and the
    /// step does not [`retry_panics`](crate::Step::retry_panics)).
    #[error("step panicked after {attempts} attempt(s): {message}")]
    Panicked {
        /// The panic's message (its payload, when that is a string).
        message: String,
        /// How many attempts ran.
        attempts: u32,
    },
    /// The last attempt did not finish within the step's
    /// [`timeout`](crate::Step::timeout) and the retry policy gave up.
    #[error("step timed out after {attempts} attempt(s) (the last one ran for its {timeout_ms} ms limit)")]
    TimedOut {
        /// How many attempts ran.
        attempts: u32,
        /// The per-attempt limit, in milliseconds.
        timeout_ms: u64,
    },
}

impl<E> StepError<E> {
    /// The body's error, if the step failed with one.
    pub fn into_error(self) -> Option<E> {
        match self {
            StepError::Failed { error, .. } => Some(error),
            StepError::Interrupted { .. }
            | StepError::Panicked { .. }
            | StepError::TimedOut { .. } => None,
        }
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        match self {
            StepError::Failed { attempts, .. }
            | StepError::Interrupted { attempts }
            | StepError::Panicked { attempts, .. }
            | StepError::TimedOut { attempts, .. } => *attempts,
        }
    }
}

fn conflict_message(id: &str, expected: u64, found: Option<u64>) -> String {
    match found {
        Some(found) => format!(
            "execution {id:?} was advanced concurrently: expected sequence {expected}, found {found}"
        ),
        None => format!("execution {id:?} does not exist"),
    }
}

/// Records any error in a [`Failure`]: its type name, message and source chain. A step
/// error over a `Failure` (what `ctx.step(..).await` gives) keeps the body's failure, with
/// the step's outcome as context, so its type name and terminal flag survive the `?`.
/// Here rather than beside `Failure` so that `failure` needs nothing from this module.
impl<E> From<E> for Failure
where
    E: std::error::Error + 'static,
{
    fn from(error: E) -> Self {
        let step = (&error as &dyn std::any::Any).downcast_ref::<StepError<Failure>>();
        if let Some(StepError::Failed { error, attempts }) = step {
            return error
                .clone()
                .context(format!("step failed after {attempts} attempt(s)"));
        }
        Failure::record(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_error_over_a_failure_keeps_the_body_failure() {
        let body = Failure::terminal("card declined");
        let step: StepError<Failure> = StepError::Failed {
            error: body,
            attempts: 2,
        };
        let failure = Failure::from(step);
        assert!(failure.is_terminal());
        assert_eq!(
            failure.to_string(),
            "step failed after 2 attempt(s): card declined"
        );
        let panicked: StepError<Failure> = StepError::Panicked {
            message: "boom".into(),
            attempts: 1,
        };
        let failure = Failure::from(panicked);
        assert!(failure.is::<StepError<Failure>>());
        assert_eq!(
            failure.to_string(),
            "step panicked after 1 attempt(s): boom"
        );
    }
}
