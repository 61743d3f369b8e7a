//! Child workflows: a `#[durable]` fn runs another `#[durable]` fn as a child execution
//! and awaits its output at a durable point ([`Ctx::call`](crate::Ctx::call)), or starts
//! (or attaches to) an execution by id and awaits it ([`Ctx::invoke`](crate::Ctx::invoke)).
//!
//! The child is an execution of its own (its own record, frame and history), whose id is
//! derived from the parent's id and the operation key of the call, and whose record names
//! the parent's operation it reports to ([`ParentLink`](crate::ParentLink)). The protocol,
//! in three writes, keeps every crash between them harmless:
//!
//! 1. the parent commits the point as `Awaiting` the child operation and, in the same
//!    commit, a pending [`OperationRecord`](crate::OperationRecord) of kind `Child`
//!    (still `Running`): from now on the child has an operation to report to;
//! 2. the parent creates the child ([`Store::create`](crate::Store::create), idempotent by
//!    id: a parent resumed after a crash finds the same child and never starts a second);
//! 3. the parent commits `Suspended` awaiting the operation, on the condition that it is
//!    still pending ([`Expect::Pending`](crate::Expect::Pending)).
//!
//! The child's last commit (completed or failed) carries a delivery that settles the
//! parent's operation and wakes the parent in the same atomic write, so there is no
//! window in which the child has finished and the parent is never woken. A child that
//! finished before step 3 makes that commit fail; the parent then runs the point again
//! and finds the operation settled. The operation record stays with the parent until the
//! parent is deleted: `describe` lists it.
//!
//! `invoke` follows the same steps with an id of the caller's choosing. When the id is
//! held by an execution this point did not start (it has no link to this operation), the
//! point checks that it is the same start (workflow and input, as `Engine::start` does),
//! then watches it: it suspends with a timer and reads the execution's status when woken,
//! until it has finished.
//!
//! A parked child (no registered version matches it) keeps its parent waiting: it goes on
//! once its version is registered.

mod call;
mod invoke;
mod run;

use serde::{Deserialize, Serialize};

use crate::codec::decode_value;
use crate::record::OperationState;

pub use call::Call;
pub use invoke::Invoke;
pub(crate) use run::child_id;

/// Why a child workflow gave no output: what `ctx.call(..).await` returns in its `Err`.
///
/// A child whose workflow returns `Result` and returned `Err` did give an output (its
/// `Err`), which the parent receives as `Ok(Err(..))`: an error of the child's own type
/// to match on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// The child failed without returning: it panicked, or its stored state could not be
    /// read.
    #[error("child execution {id:?} of workflow `{workflow}` failed: {message}")]
    Failed {
        /// The child's workflow name.
        workflow: String,
        /// The child execution's id.
        id: String,
        /// Why it failed, as its record says.
        message: String,
    },
    /// The child's output does not decode into the caller's output type (the child's
    /// code changed its output type while the caller waited).
    #[error(
        "the output of child execution {id:?} of workflow `{workflow}` cannot be read: {message}"
    )]
    Undecodable {
        /// The child's workflow name.
        workflow: String,
        /// The child execution's id.
        id: String,
        /// What the decoder said.
        message: String,
    },
    /// The engine does not run the child's workflow (this version of it), so the child
    /// was not started. `#[durable]` registers the workflows a body calls by path with
    /// the caller; a workflow called through a variable must be registered by hand.
    #[error(
        "workflow `{workflow}` is not registered with this engine, so it cannot run as a child"
    )]
    NotRegistered {
        /// The child's workflow name.
        workflow: String,
    },
    /// The execution id is held by an execution that this point may not attach to: for
    /// `invoke`, one of another workflow or started with another input (ids are
    /// idempotency keys); for `call`, one that is not this call's child (started by hand
    /// under the child's id).
    #[error("execution {id:?} already exists with a different start: {reason}")]
    IdConflict {
        /// The id.
        id: String,
        /// What differs.
        reason: String,
    },
    /// The id given to `invoke` is not a valid execution id (empty or too long), or a
    /// child's derived id would be too long (calls nested too deep under a long id).
    #[error("invalid execution id: {message}")]
    InvalidId {
        /// What is wrong with it.
        message: String,
    },
}

impl ChildError {
    /// The child execution's id, when there is one.
    pub fn id(&self) -> Option<&str> {
        match self {
            ChildError::Failed { id, .. }
            | ChildError::Undecodable { id, .. }
            | ChildError::IdConflict { id, .. } => Some(id),
            ChildError::NotRegistered { .. } | ChildError::InvalidId { .. } => None,
        }
    }
}

/// The outcome a settled child operation gives: the child's output decoded into `T`, or
/// why there is none.
pub(crate) fn outcome<T: serde::de::DeserializeOwned>(
    workflow: &str,
    id: &str,
    state: &OperationState,
) -> Result<T, ChildError> {
    match state {
        OperationState::Succeeded { payload } => {
            decode_value(payload).map_err(|e| ChildError::Undecodable {
                workflow: workflow.to_owned(),
                id: id.to_owned(),
                message: e.to_string(),
            })
        }
        OperationState::Failed { error } => Err(ChildError::Failed {
            workflow: workflow.to_owned(),
            id: id.to_owned(),
            message: String::from_utf8_lossy(error).into_owned(),
        }),
        // A child operation is settled only by its child's last commit (succeeded or
        // failed) or by the caller itself when the id is taken.
        other => Err(ChildError::Failed {
            workflow: workflow.to_owned(),
            id: id.to_owned(),
            message: format!("the child operation ended as {other:?}"),
        }),
    }
}

/// What creating an execution that reports to a parent's operation found.
pub(crate) enum Creation {
    /// The execution reports to that operation: created now, or before a crash (then
    /// scheduled again if it still runs).
    Reporting,
    /// An execution that does not report to it, or runs another workflow, holds the id.
    Held(Box<crate::ExecutionRecord>),
}

/// Creates execution `id` of workflow `workflow` (version `fingerprint`) with the encoded
/// `input`, reporting to `link`, and has the engine run it; idempotent by id (step 2 of
/// the protocol above).
pub(crate) async fn create_reporting(
    ctx: &crate::Ctx,
    id: &str,
    workflow: &str,
    fingerprint: u64,
    input: Vec<u8>,
    link: &crate::ParentLink,
) -> Result<Creation, crate::StoreError> {
    use crate::record::{Created, ExecutionRecord, Status};
    let mut record = ExecutionRecord::new(id, workflow, fingerprint, ctx.now());
    record.parent = Some(link.clone());
    match ctx.runtime().store().create(record, input).await? {
        Created::New => {
            ctx.runtime().created(id);
            Ok(Creation::Reporting)
        }
        Created::Existing(existing)
            if existing.parent.as_ref() == Some(link) && existing.workflow == workflow =>
        {
            if existing.status == Status::Running {
                ctx.runtime().created(id);
            }
            Ok(Creation::Reporting)
        }
        Created::Existing(existing) => Ok(Creation::Held(existing)),
    }
}

/// Creates child execution `id` of a batch item, as [`create_reporting`] does. `Err` with
/// a [`ChildError`] when the child cannot start: the id is invalid or held by another
/// execution, or the input is over the engine's size limit.
pub(crate) async fn start_child(
    ctx: &crate::Ctx,
    id: &str,
    workflow: &str,
    fingerprint: u64,
    input: Vec<u8>,
    link: crate::ParentLink,
) -> Result<Result<(), ChildError>, crate::StoreError> {
    use crate::record::MAX_ID_LEN;
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Ok(Err(ChildError::InvalidId {
            message: format!(
                "an execution id must be 1 to {MAX_ID_LEN} bytes long, got {}",
                id.len()
            ),
        }));
    }
    let limit = ctx.runtime().limits().max_value_bytes;
    if input.len() > limit {
        return Ok(Err(ChildError::Failed {
            workflow: workflow.to_owned(),
            id: id.to_owned(),
            message: format!(
                "its input is {} bytes, over the limit of {limit} \
                 (EngineBuilder::max_value_bytes); keep bulky data outside the workflow",
                input.len()
            ),
        }));
    }
    match create_reporting(ctx, id, workflow, fingerprint, input, &link).await? {
        Creation::Reporting => Ok(Ok(())),
        Creation::Held(existing) => Ok(Err(ChildError::IdConflict {
            id: id.to_owned(),
            reason: format!(
                "an execution of workflow `{}` that is not this item's child holds it",
                existing.workflow
            ),
        })),
    }
}
