//! Errors, one enum per layer: [`CodecError`] (bytes), [`StoreError`] (persistence),
//! [`Error`] (the engine's API), and [`StepError`] (what a workflow sees when a step gives
//! up).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value or frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Serializing a value failed (for example a map with non-string keys under JSON).
    Encode {
        /// What the serializer said.
        message: String,
    },
    /// The bytes are not a valid encoding of the expected type.
    Decode {
        /// What the deserializer said.
        message: String,
    },
    /// The bytes end before the structure they describe.
    Truncated {
        /// Bytes needed to go on.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The bytes do not start with the expected envelope tag: they were not written by
    /// this library, or belong to another kind of record.
    Foreign {
        /// The tag that was expected.
        expected: char,
        /// The first byte found.
        found: u8,
    },
    /// The envelope was written by a newer (or unknown) format version.
    UnsupportedVersion {
        /// The version in the bytes.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The envelope names a codec this build does not know.
    UnknownCodec {
        /// The codec id in the bytes.
        id: u8,
    },
    /// The value is too large for the envelope.
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The payload needs its Rust type to be read (bincode is not self-describing).
    NotSelfDescribing {
        /// The codec's name.
        codec: &'static str,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Encode { message } => write!(f, "cannot encode value: {message}"),
            CodecError::Decode { message } => write!(f, "cannot decode value: {message}"),
            CodecError::Truncated { needed, available } => write!(
                f,
                "truncated data: needed {needed} bytes, found {available}"
            ),
            CodecError::Foreign { expected, found } => write!(
                f,
                "foreign data: expected an envelope tagged {expected:?}, found byte {found:#04x}"
            ),
            CodecError::UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported format version {found} (this build reads version {supported})"
            ),
            CodecError::UnknownCodec { id } => write!(f, "unknown codec id {id}"),
            CodecError::TooLarge { limit } => write!(f, "value too large (limit {limit})"),
            CodecError::NotSelfDescribing { codec } => write!(
                f,
                "the {codec} codec is not self-describing: the value's type is needed to read it"
            ),
        }
    }
}

impl std::error::Error for CodecError {}

/// A store could not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A conditional commit found another sequence number than it expected: someone else
    /// advanced the execution (or it does not exist). Nothing was written.
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
    LeaseLost {
        /// The execution.
        id: String,
    },
    /// The data directory is already open in another engine or process.
    Locked {
        /// The directory.
        path: String,
    },
    /// A stored record could not be decoded: the data is corrupt or was written by an
    /// incompatible version.
    Corrupt {
        /// Which record.
        key: String,
        /// Why it could not be read.
        source: CodecError,
    },
    /// The store has been closed.
    Closed,
    /// The request breaks the store's contract (a caller's bug, not bad data): for
    /// example a commit that writes another execution's operation.
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// An I/O or backend error.
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend's own error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict {
                id,
                expected,
                found,
            } => match found {
                Some(found) => write!(
                    f,
                    "execution {id:?} was advanced concurrently: expected sequence {expected}, found {found}"
                ),
                None => write!(f, "execution {id:?} does not exist"),
            },
            StoreError::OperationConflict { id, key, expected } => write!(
                f,
                "operation {key:?} of execution {id:?} changed concurrently: expected {expected:?}"
            ),
            StoreError::LeaseLost { id } => write!(
                f,
                "execution {id:?} is leased to another engine; this engine's lease expired"
            ),
            StoreError::Locked { path } => write!(
                f,
                "the data directory {path} is already in use by another engine"
            ),
            StoreError::Corrupt { key, source } => write!(f, "corrupt record {key}: {source}"),
            StoreError::Closed => write!(f, "the store is closed"),
            StoreError::Invalid { message } => write!(f, "invalid store request: {message}"),
            StoreError::Backend(e) => write!(f, "store backend error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Corrupt { source, .. } => Some(source),
            StoreError::Backend(e) => Some(&**e),
            _ => None,
        }
    }
}

/// An error from the engine's API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    Store(StoreError),
    /// A value could not be encoded or decoded.
    Codec(CodecError),
    /// No workflow with this name is registered with the engine.
    NotRegistered {
        /// The workflow name.
        workflow: String,
    },
    /// An execution with this id exists but was started with another input or another
    /// workflow; execution ids are idempotency keys, so the start was refused.
    IdConflict {
        /// The execution id.
        id: String,
        /// What differs.
        reason: String,
    },
    /// No execution has this id.
    NotFound {
        /// The execution id.
        id: String,
    },
    /// The execution failed without an output: the workflow panicked between points or
    /// in an infallible step, or its state could not be read back. (A `Result` workflow
    /// that returned `Err` has failed too, but [`Handle::result`](crate::Handle::result)
    /// returns its output.)
    Failed {
        /// The execution id.
        id: String,
        /// What happened.
        message: String,
    },
    /// The execution runs another workflow than the one the handle was made for
    /// ([`Engine::handle`](crate::Engine::handle) cannot check without reading the
    /// store, so the handle's first read does).
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
    Parked {
        /// The execution id.
        id: String,
        /// Why it is parked.
        message: String,
    },
    /// The execution's stored state cannot be read (corrupt, truncated or foreign bytes,
    /// or a type that no longer decodes it).
    Corrupt {
        /// The execution id.
        id: String,
        /// What could not be read.
        message: String,
    },
    /// The engine is shutting down or has shut down.
    ShutDown,
    /// An argument was invalid.
    Invalid {
        /// What was wrong.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Store(e) => write!(f, "{e}"),
            Error::Codec(e) => write!(f, "{e}"),
            Error::NotRegistered { workflow } => {
                write!(
                    f,
                    "workflow {workflow:?} is not registered with this engine"
                )
            }
            Error::IdConflict { id, reason } => write!(
                f,
                "execution {id:?} already exists with a different start: {reason}"
            ),
            Error::NotFound { id } => write!(f, "no execution with id {id:?}"),
            Error::Failed { id, message } => write!(f, "execution {id:?} failed: {message}"),
            Error::WrongWorkflow {
                id,
                expected,
                found,
            } => write!(
                f,
                "execution {id:?} runs workflow `{found}`, not `{expected}` as the handle expects"
            ),
            Error::Parked { id, message } => write!(f, "execution {id:?} is parked: {message}"),
            Error::Corrupt { id, message } => {
                write!(f, "execution {id:?} has unreadable state: {message}")
            }
            Error::ShutDown => write!(f, "the engine has shut down"),
            Error::Invalid { message } => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            Error::Codec(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Codec(e)
    }
}

/// Why a step gave up: what `ctx.step(..).await` returns in its `Err`.
///
/// Match on it to handle an exhausted step like any other error:
///
/// ```
/// # use durable_core::StepError;
/// fn describe(e: &StepError<String>) -> String {
///     match e {
///         StepError::Failed { error, attempts } => format!("{error} after {attempts} attempts"),
///         StepError::Interrupted { attempts } => format!("outcome unknown after {attempts}"),
///         StepError::Panicked { message, .. } => format!("bug: {message}"),
///         _ => "other".into(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StepError<E> {
    /// The body returned `error` on its last attempt and the retry policy gave up
    /// (attempts exhausted, or the retry predicate said the error is permanent).
    Failed {
        /// The last attempt's error.
        error: E,
        /// How many attempts ran.
        attempts: u32,
    },
    /// An at-most-once attempt was interrupted (the process died while it ran) and no
    /// attempt is left: whether its effect happened is unknown.
    Interrupted {
        /// How many attempts were started.
        attempts: u32,
    },
    // New variants go last: recorded outcomes name variants by position.
    /// The body panicked on its last attempt and the retry policy gave up (attempts
    /// exhausted, or a [`retry_if`](crate::Step::retry_if) predicate is set and the
    /// step does not [`retry_panics`](crate::Step::retry_panics)).
    Panicked {
        /// The panic's message (its payload, when that is a string).
        message: String,
        /// How many attempts ran.
        attempts: u32,
    },
}

impl<E> StepError<E> {
    /// The body's error, if the step failed with one.
    pub fn into_error(self) -> Option<E> {
        match self {
            StepError::Failed { error, .. } => Some(error),
            StepError::Interrupted { .. } | StepError::Panicked { .. } => None,
        }
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        match self {
            StepError::Failed { attempts, .. }
            | StepError::Interrupted { attempts }
            | StepError::Panicked { attempts, .. } => *attempts,
        }
    }
}

impl<E: fmt::Display> fmt::Display for StepError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Failed { error, attempts } => {
                write!(f, "step failed after {attempts} attempt(s): {error}")
            }
            StepError::Interrupted { attempts } => write!(
                f,
                "at-most-once step interrupted after {attempts} attempt(s); its outcome is unknown"
            ),
            StepError::Panicked { message, attempts } => {
                write!(f, "step panicked after {attempts} attempt(s): {message}")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StepError<E> {}
