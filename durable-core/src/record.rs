//! The records a [`Store`](crate::Store) keeps: what an execution is, where it stands, and
//! what happened to it.
//!
//! Invariants every store relies on:
//! - `seq` grows by exactly one with every commit of an execution; a commit names the
//!   `seq` it was based on and is refused if the stored one differs.
//! - `wake_at` is `Some` exactly when the execution waits for a time (a retry delay); the
//!   store keeps an index of `(wake_at, id)` so that due executions are a query.
//! - `position` is `None` until the first durable point commits; after that it holds the
//!   frame of the last committed point and that point's state.
//! - History entries are numbered per execution from 0 with no gaps; a store may drop
//!   entries below the number a commit names (the history is bounded and is never needed
//!   to resume).
//!
//! Stores persist these structs with [`Codec::Bincode`](crate::Codec) inside a value
//! envelope, so the format version travels with every record.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Where an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// Ready to run or running: an engine resumes it from its last frame.
    Running,
    /// Waiting for its `wake_at` time; the timer index wakes it.
    Suspended,
    /// Finished; `output` holds the workflow's return value.
    Completed,
    /// Failed for good; `message` says why. Either a `Result` workflow returned `Err`
    /// (its output is kept in `output`), or it cannot go on: a panic between points or
    /// in an infallible step, or state that cannot be read back (no `output`).
    Failed,
    /// Waiting for an operator: no registered workflow version matches its state.
    Parked,
}

impl Status {
    /// Whether the execution will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }

    /// The status's name in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Parked => "parked",
        }
    }
}

/// One execution of a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution id, chosen by whoever started it; also its idempotency key.
    pub id: String,
    /// The workflow's registered name.
    pub workflow: String,
    /// Fingerprint of the workflow code that wrote `position`.
    pub fingerprint: u64,
    /// Bumped by one with every commit.
    pub seq: u64,
    /// Where the execution stands.
    pub status: Status,
    /// The last committed durable point, `None` before the first one.
    pub position: Option<Position>,
    /// When the execution should be woken, if it waits for a time.
    pub wake_at: Option<Timestamp>,
    /// The encoded output (value envelope) once the workflow returned: completed, or
    /// failed by returning `Err`.
    pub output: Option<Vec<u8>>,
    /// Why the execution failed or is parked.
    pub message: Option<String>,
    /// Number the next history entry gets.
    pub history_next: u64,
    /// When the execution was created.
    pub created_at: Timestamp,
    /// When the execution was last committed.
    pub updated_at: Timestamp,
}

/// The last committed durable point of an execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The point's id within its workflow.
    pub point: u32,
    /// The frame: the live locals at the point (frame envelope).
    pub frame: Vec<u8>,
    /// How far the point's operation got.
    pub state: PointState,
}

/// How far a durable point's operation got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PointState {
    /// The operation finished; `outcome` is what its `.await` returns (value envelope).
    Completed {
        /// The encoded outcome.
        outcome: Vec<u8>,
    },
    /// A step attempt failed and attempt `attempt` runs next (at `wake_at`).
    Retrying {
        /// The attempt to run next, counting from 1.
        attempt: u32,
    },
    /// An at-most-once step attempt was started and has not finished; if the execution
    /// resumes here, that attempt counts as failed.
    Started {
        /// The attempt that was started.
        attempt: u32,
    },
    /// A durable wait (`ctx.sleep`) until `until`.
    Waiting {
        /// When the wait ends.
        until: Timestamp,
    },
    /// A condition wait: check `attempt` runs next (at `wake_at`) on `state`.
    Polling {
        /// The check to run next, counting from 1.
        attempt: u32,
        /// The state the last check returned (value envelope).
        state: Vec<u8>,
    },
}

/// One entry of an execution's operation history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Entry number within the execution, from 0.
    pub number: u64,
    /// When it happened (engine clock).
    pub at: Timestamp,
    /// The durable point it concerns, if any.
    pub point: Option<u32>,
    /// What happened.
    pub event: Event,
}

/// What a history entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// The execution was created.
    Created,
    /// An at-most-once step attempt was started.
    StepStarted {
        /// The step's name.
        name: String,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A step attempt succeeded.
    StepSucceeded {
        /// The step's name.
        name: String,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A step attempt failed.
    StepFailed {
        /// The step's name.
        name: String,
        /// The attempt, from 1.
        attempt: u32,
        /// The error, as JSON.
        error: String,
        /// When the next attempt runs, `None` if the step gave up.
        retry_at: Option<Timestamp>,
    },
    /// An at-most-once attempt was found interrupted when the execution resumed.
    StepInterrupted {
        /// The step's name.
        name: String,
        /// The attempt, from 1.
        attempt: u32,
        /// When the next attempt runs, `None` if the step gave up.
        retry_at: Option<Timestamp>,
    },
    /// A durable wait began.
    WaitStarted {
        /// The wait's name.
        name: String,
        /// When it ends.
        until: Timestamp,
    },
    /// A durable wait ended.
    WaitFinished {
        /// The wait's name.
        name: String,
    },
    /// A condition check ran.
    ConditionChecked {
        /// The wait's name.
        name: String,
        /// The check, from 1.
        attempt: u32,
        /// The state it returned, as JSON.
        state: String,
        /// When the next check runs, `None` if the wait ended.
        next_check: Option<Timestamp>,
    },
    /// The workflow returned.
    Completed,
    /// The execution failed.
    Failed {
        /// Why.
        message: String,
    },
    /// The execution was parked.
    Parked {
        /// Why.
        message: String,
    },
    // New variants go last: stored history names variants by position.
    /// A step attempt panicked; it counts as a failed attempt.
    StepPanicked {
        /// The step's name.
        name: String,
        /// The attempt, from 1.
        attempt: u32,
        /// The panic's message.
        message: String,
        /// When the next attempt runs, `None` if the step gave up.
        retry_at: Option<Timestamp>,
    },
}

/// One atomic transition of an execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The new record; its `seq` must be `expected_seq + 1`.
    pub record: ExecutionRecord,
    /// The `seq` the commit is based on.
    pub expected_seq: u64,
    /// History entries to append (numbers continue the execution's history).
    pub history: Vec<HistoryEntry>,
    /// History entries numbered below this may be dropped.
    pub prune_history_below: u64,
}

/// What [`Store::create`](crate::Store::create) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The execution was created.
    New,
    /// An execution with this id already exists; nothing was written.
    Existing(Box<ExecutionRecord>),
}

/// Which executions [`Store::list`](crate::Store::list) returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only executions with this status.
    pub status: Option<Status>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// At most this many (by id order).
    pub limit: Option<usize>,
}

impl ListFilter {
    /// Whether `record` passes the status and workflow conditions.
    pub fn matches(&self, record: &ExecutionRecord) -> bool {
        self.status.is_none_or(|s| s == record.status)
            && self.workflow.as_ref().is_none_or(|w| *w == record.workflow)
    }
}
