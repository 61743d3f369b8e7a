//! The records a [`Store`](crate::Store) keeps: what an execution is, where it stands, and
//! what happened to it.
//!
//! Invariants every store relies on:
//! - `seq` grows by exactly one with every commit of an execution; a commit names the
//!   `seq` it was based on and is refused if the stored one differs.
//! - `wake_at` is `Some` exactly when the execution waits for a time (a retry delay); the
//!   store keeps an index of `(wake_at, id)` so that due executions are a query.
//! - `position` is `None` until the first durable point commits; after that it holds the
//!   frame of the last committed point and that point's state. A completed execution has
//!   none; a failed or parked one keeps it (a failed one can be re-driven from it). The
//!   frame names the layout fingerprint of the code that wrote it (see `codec`).
//! - History entries are numbered per execution from 0 with no gaps; a store may drop
//!   entries below the number a commit names (the history is bounded and is never needed
//!   to resume).
//! - An execution may have any number of [`OperationRecord`]s beside its record: operations
//!   that outlive the durable point that created them (a callback created at one point and
//!   awaited at a later one, a child execution, the items of a fan-out). An operation is
//!   *pending* until it is settled, either by a [`Delivery`] from outside (a callback's
//!   completion, a child's result) or by a commit of its own execution (a timeout). A
//!   delivery that arrives before the workflow awaits the operation is kept in the
//!   operation record until it does.
//! - `awaiting` lists the operations whose settlement wakes a `Suspended` execution: a
//!   delivery that settles one of them makes the execution `Running` again (a commit by the
//!   store itself, `seq` + 1) and reports it woken. A commit that suspends on an operation
//!   names it with [`Expect::Pending`], so a delivery that lands between the workflow's read
//!   and its commit makes the commit fail instead of suspending forever.
//!
//! Stores persist these structs with [`Codec::Bincode`](crate::Codec) inside a value
//! envelope, so the format version travels with every record.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Longest execution id accepted by [`Engine::start`](crate::Engine::start) and
/// [`Ctx::invoke`](crate::Ctx::invoke).
pub const MAX_ID_LEN: usize = 1024;

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
    // New variants go last: stored records name variants by position.
    /// Stopped before it finished, by [`Engine::cancel`](crate::Engine::cancel) or by the
    /// batch that started it completing early; it runs no further workflow code.
    /// `message` says why; the last frame is kept for inspection.
    Cancelled,
}

impl Status {
    /// Whether the execution will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    /// The status's name in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Parked => "parked",
            Status::Cancelled => "cancelled",
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
    /// The operation of another execution that started this one (a child execution) and
    /// receives its result when it finishes.
    pub parent: Option<ParentLink>,
    /// The keys of the operations whose settlement wakes this execution while it is
    /// `Suspended` (empty when only a time can wake it).
    pub awaiting: Vec<String>,
}

impl ExecutionRecord {
    /// A new execution of `workflow` with id `id`, as [`Store::create`](crate::Store::create)
    /// receives it: `Running`, before its first durable point, created at `now`.
    pub fn new(
        id: impl Into<String>,
        workflow: impl Into<String>,
        fingerprint: u64,
        now: Timestamp,
    ) -> Self {
        ExecutionRecord {
            id: id.into(),
            workflow: workflow.into(),
            fingerprint,
            seq: 0,
            status: Status::Running,
            position: None,
            wake_at: None,
            output: None,
            message: None,
            history_next: 0,
            created_at: now,
            updated_at: now,
            parent: None,
            awaiting: Vec::new(),
        }
    }
}

/// Where a child execution reports to: an operation of its parent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent execution's id.
    pub execution: String,
    /// The key of the parent's operation that the child settles when it finishes.
    pub operation: String,
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
    // New variants go last: stored records name variants by position.
    /// Waiting for the operation `key` (a callback) to be settled, or for `wake_at` (its
    /// timeout or heartbeat deadline).
    Awaiting {
        /// The awaited operation's key.
        key: String,
    },
    /// `ctx.wait_for_callback`: the callback `key` exists and its submitter runs attempt
    /// `attempt` next (at `wake_at`, if set).
    Submitting {
        /// The callback's operation key.
        key: String,
        /// The submitter attempt to run next, counting from 1.
        attempt: u32,
    },
    // New variants go last: stored records name variants by position. Steps write the
    // two below; `Retrying` and `Started` are still read, from executions stored by
    // earlier versions.
    /// A step attempt failed and attempt `attempt` runs next (at `wake_at`, or at once
    /// when there is none).
    StepRetrying {
        /// The attempt to run next, counting from 1.
        attempt: u32,
        /// The execution's sequence number when the step was first entered: with the
        /// execution id and the point, what the step's idempotency key is made of, so
        /// that every attempt gets the same key.
        key_seq: u64,
        /// When the first attempt began (the start of the step's retry budget).
        since: Timestamp,
    },
    /// An at-most-once step attempt was started and has not finished; if the execution
    /// resumes here, that attempt counts as failed.
    StepStarted {
        /// The attempt that was started.
        attempt: u32,
        /// See [`PointState::StepRetrying`].
        key_seq: u64,
        /// See [`PointState::StepRetrying`].
        since: Timestamp,
    },
    /// A step gave up (its attempts or its retry budget ran out, or its error was
    /// terminal): `outcome` is the error its `.await` returned, read like
    /// [`PointState::Completed`]'s. Kept apart so that re-driving an execution that
    /// failed there runs the step again with a fresh attempt budget
    /// ([`Engine::redrive`](crate::Engine::redrive)).
    StepGaveUp {
        /// The encoded outcome (the step's error).
        outcome: Vec<u8>,
    },
    /// A batch (`ctx.map`, `ctx.parallel`) is running: its counters and the items in
    /// flight. The items' outcomes are operation records, not part of this state, which
    /// grows with the number of items in flight only.
    Batch(BatchState),
}

/// Where a batch (`ctx.map`, `ctx.parallel`) stands, as its point state holds it.
///
/// Item `i` of the batch is the operation record keyed [`BatchState::item_key`]`(i)`,
/// written when the item settles (a step item) or when it starts (a child item, which
/// its child execution settles).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchState {
    /// The batch's key: the prefix of its items' operation keys.
    pub key: String,
    /// How many items the batch has.
    pub total: u64,
    /// Items with a lower index have been started.
    pub next: u64,
    /// The items started and not settled, by index.
    pub in_flight: Vec<InFlight>,
    /// How many items succeeded.
    pub succeeded: u64,
    /// How many items failed.
    pub failed: u64,
    /// Why the batch completed, once it has (the items still in flight are then being
    /// cancelled).
    pub done: Option<CompletionReason>,
}

impl BatchState {
    /// The operation key of item `index`: the batch key, a dot, the number of hex digits
    /// of `index` less one as one hex digit, then `index` in hex, so that items sort in
    /// input order.
    pub fn item_key(&self, index: u64) -> String {
        item_key(&self.key, index)
    }

    /// How many items have settled (succeeded or failed).
    pub fn settled(&self) -> u64 {
        self.succeeded + self.failed
    }
}

/// The operation key of item `index` of the batch `key` (see [`BatchState::item_key`]).
pub(crate) fn item_key(key: &str, index: u64) -> String {
    ordered_key(format_args!("{key}."), index)
}

/// `prefix`, the number of hex digits of `n` less one as one hex digit, then `n` in hex.
///
/// Short, because an operation key is stored several times (the operation's key and
/// record, the token index, the awaiting execution's record); and keys with one prefix
/// sort in the order of their numbers (fewer digits first, then by value): `c02` <
/// `c1ff` < `c2100`.
pub(crate) fn ordered_key(prefix: impl std::fmt::Display, n: u64) -> String {
    let digits = format!("{n:x}");
    format!("{prefix}{:x}{digits}", digits.len() - 1)
}

/// An item of a batch that has started and not settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// Its index in the input.
    pub index: u64,
    /// A step item: the attempt that runs next, from 1. A child item: 0.
    pub attempt: u32,
    /// A step item waiting to retry: when the next attempt runs.
    pub retry_at: Option<Timestamp>,
    /// A child item whose child execution has been created.
    pub created: bool,
}

/// Why a batch completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CompletionReason {
    /// Every item settled.
    AllCompleted,
    /// The completion policy's minimum number of successes was reached.
    MinSuccessful,
    /// More items failed than the completion policy tolerates.
    FailureToleranceExceeded,
}

impl CompletionReason {
    /// The reason in a few words.
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionReason::AllCompleted => "all completed",
            CompletionReason::MinSuccessful => "minimum successes reached",
            CompletionReason::FailureToleranceExceeded => "failure tolerance exceeded",
        }
    }
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
    /// A callback was created (its id is not recorded here: it is a secret).
    CallbackCreated {
        /// The callback's name.
        name: String,
        /// When it times out, if ever.
        timeout_at: Option<Timestamp>,
    },
    /// The workflow received a callback's outcome.
    CallbackReceived {
        /// The callback's name.
        name: String,
        /// How it ended: `succeeded`, `failed`, `timed out`, `heartbeat timed out`,
        /// `cancelled` or `not found`.
        outcome: String,
    },
    /// A step attempt did not finish within the step's timeout; it counts as a failed
    /// attempt.
    StepTimedOut {
        /// The step's name.
        name: String,
        /// The attempt, from 1.
        attempt: u32,
        /// The per-attempt limit, in milliseconds.
        timeout_ms: u64,
        /// When the next attempt runs, `None` if the step gave up.
        retry_at: Option<Timestamp>,
    },
    /// A condition check returned an error; the state stays what the last good check
    /// returned.
    ConditionCheckFailed {
        /// The wait's name.
        name: String,
        /// The check, from 1.
        attempt: u32,
        /// The error, as text.
        error: String,
        /// When the next check runs, `None` if the wait gave up.
        next_check: Option<Timestamp>,
    },
    /// A failed execution was re-driven by an operator
    /// ([`Engine::redrive`](crate::Engine::redrive)): it resumes from its last committed
    /// point on the version with code fingerprint `fingerprint`.
    Redriven {
        /// The code fingerprint of the version that resumes it.
        fingerprint: u64,
    },
    /// A child execution was started (`call`), or started or attached to (`invoke`).
    ChildStarted {
        /// The child's workflow name.
        name: String,
        /// The child execution's id.
        execution: String,
    },
    /// The workflow received a child execution's result.
    ChildFinished {
        /// The child's workflow name.
        name: String,
        /// The child execution's id.
        execution: String,
        /// How it ended: `completed`, `failed`, `cancelled` or `not found`.
        outcome: String,
    },
    /// A batch (`ctx.map`, `ctx.parallel`) began.
    BatchStarted {
        /// The batch's name.
        name: String,
        /// How many items it has.
        items: u64,
    },
    /// An item of a batch failed (step items: after its last attempt).
    ItemFailed {
        /// The batch's name.
        name: String,
        /// The item's index.
        index: u64,
        /// Why, as text.
        error: String,
    },
    /// A batch completed.
    BatchFinished {
        /// The batch's name.
        name: String,
        /// Why it completed.
        reason: CompletionReason,
        /// How many items succeeded.
        succeeded: u64,
        /// How many failed.
        failed: u64,
        /// How many were cancelled while in flight.
        cancelled: u64,
    },
    /// The execution was cancelled ([`Status::Cancelled`]).
    Cancelled {
        /// Why.
        reason: String,
    },
}

impl Event {
    /// The name of the operation it concerns (a step's, a wait's), if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Event::StepStarted { name, .. }
            | Event::StepSucceeded { name, .. }
            | Event::StepFailed { name, .. }
            | Event::StepInterrupted { name, .. }
            | Event::StepPanicked { name, .. }
            | Event::StepTimedOut { name, .. }
            | Event::WaitStarted { name, .. }
            | Event::WaitFinished { name }
            | Event::ConditionChecked { name, .. }
            | Event::ConditionCheckFailed { name, .. }
            | Event::CallbackCreated { name, .. }
            | Event::CallbackReceived { name, .. }
            | Event::ChildStarted { name, .. }
            | Event::ChildFinished { name, .. }
            | Event::BatchStarted { name, .. }
            | Event::ItemFailed { name, .. }
            | Event::BatchFinished { name, .. } => Some(name),
            Event::Created
            | Event::Completed
            | Event::Failed { .. }
            | Event::Parked { .. }
            | Event::Redriven { .. }
            | Event::Cancelled { .. } => None,
        }
    }

    /// The event in a few words, without times, for assertions on a history:
    /// `"step charge: failed #1, retrying"`, `"step charge: succeeded #2"`,
    /// `"wait trial: started"`, `"completed"`. Errors and states are left out (they are
    /// in the event itself).
    pub fn summary(&self) -> String {
        fn then(retry_at: &Option<Timestamp>) -> &'static str {
            if retry_at.is_some() {
                "retrying"
            } else {
                "gave up"
            }
        }
        match self {
            Event::Created => "created".into(),
            Event::StepStarted { name, attempt } => format!("step {name}: started #{attempt}"),
            Event::StepSucceeded { name, attempt } => {
                format!("step {name}: succeeded #{attempt}")
            }
            Event::StepFailed {
                name,
                attempt,
                retry_at,
                ..
            } => format!("step {name}: failed #{attempt}, {}", then(retry_at)),
            Event::StepPanicked {
                name,
                attempt,
                retry_at,
                ..
            } => format!("step {name}: panicked #{attempt}, {}", then(retry_at)),
            Event::StepTimedOut {
                name,
                attempt,
                retry_at,
                ..
            } => format!("step {name}: timed out #{attempt}, {}", then(retry_at)),
            Event::StepInterrupted {
                name,
                attempt,
                retry_at,
            } => format!("step {name}: interrupted #{attempt}, {}", then(retry_at)),
            Event::WaitStarted { name, .. } => format!("wait {name}: started"),
            Event::WaitFinished { name } => format!("wait {name}: finished"),
            Event::ConditionChecked {
                name,
                attempt,
                next_check,
                ..
            } => match next_check {
                Some(_) => format!("condition {name}: checked #{attempt}, waiting"),
                None => format!("condition {name}: checked #{attempt}, done"),
            },
            Event::ConditionCheckFailed {
                name,
                attempt,
                next_check,
                ..
            } => format!(
                "condition {name}: check failed #{attempt}, {}",
                then(next_check)
            ),
            Event::CallbackCreated { name, .. } => format!("callback {name}: created"),
            Event::CallbackReceived { name, outcome } => {
                format!("callback {name}: received, {outcome}")
            }
            Event::ChildStarted { name, .. } => format!("child {name}: started"),
            Event::ChildFinished { name, outcome, .. } => {
                format!("child {name}: finished, {outcome}")
            }
            Event::BatchStarted { name, items } => format!("batch {name}: started, {items} items"),
            Event::ItemFailed { name, index, .. } => format!("batch {name}: item {index} failed"),
            Event::BatchFinished { name, reason, .. } => {
                format!("batch {name}: finished, {}", reason.as_str())
            }
            Event::Cancelled { .. } => "cancelled".into(),
            Event::Completed => "completed".into(),
            Event::Failed { .. } => "failed".into(),
            Event::Parked { .. } => "parked".into(),
            Event::Redriven { .. } => "redriven".into(),
        }
    }
}

/// An operation that outlives the durable point that created it: a callback, a child
/// execution, an item of a fan-out. Stored beside its execution's record under
/// `(execution, key)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The execution it belongs to.
    pub execution: String,
    /// Its key, unique within the execution (chosen by the operation, e.g. from the point
    /// id that created it).
    pub key: String,
    /// What it is.
    pub kind: OperationKind,
    /// The name it shows in history and inspection.
    pub name: String,
    /// The secret that lets the outside address it ([`OperationRef::Token`]), unique in the
    /// store: a callback's id.
    pub token: Option<String>,
    /// Whether it is still pending, and how it was settled.
    pub state: OperationState,
    /// When the last heartbeat arrived, if any.
    pub heartbeat_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last written.
    pub updated_at: Timestamp,
}

impl OperationRecord {
    /// When a pending callback times out if nothing arrives: the earlier of its timeout
    /// and its heartbeat deadline (the last heartbeat, or its creation, plus the heartbeat
    /// timeout), and whether that is the heartbeat deadline. `None` if it never times out,
    /// and for every other kind of operation.
    pub fn deadline(&self) -> Option<(Timestamp, bool)> {
        let OperationKind::Callback {
            timeout_at,
            heartbeat_timeout_ms,
        } = &self.kind
        else {
            return None;
        };
        let heartbeat = heartbeat_timeout_ms.map(|ms| {
            self.heartbeat_at
                .unwrap_or(self.created_at)
                .saturating_add(std::time::Duration::from_millis(ms))
        });
        match (*timeout_at, heartbeat) {
            (Some(t), Some(h)) if h < t => Some((h, true)),
            (Some(t), _) => Some((t, false)),
            (None, Some(h)) => Some((h, true)),
            (None, None) => None,
        }
    }
}

/// What an [`OperationRecord`] stands for, with the settings its module needs after a
/// restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OperationKind {
    /// A callback: settled from outside by its token.
    Callback {
        /// When it times out, if ever.
        timeout_at: Option<Timestamp>,
        /// How long it may go without a heartbeat (milliseconds), if it has such a limit.
        heartbeat_timeout_ms: Option<u64>,
    },
    /// A child execution: settled by the child's last commit.
    Child {
        /// The child execution's id.
        execution: String,
        /// The child's workflow name.
        workflow: String,
    },
    // New variants go last: stored records name variants by position.
    /// An item of a batch (`ctx.map`, `ctx.parallel`): settled by the batch itself (a
    /// step item) or by its child execution's last commit (a child item).
    Item {
        /// The batch's key.
        batch: String,
        /// The item's index in the input.
        index: u64,
        /// Its place in the order in which the batch saw items settle (from 0), once the
        /// batch has seen it settle; `None` while pending, and for an item cancelled.
        order: Option<u64>,
        /// The child execution running the item, for a child item.
        execution: Option<String>,
        /// The child's workflow name, for a child item.
        workflow: Option<String>,
    },
}

impl OperationKind {
    /// The kind's name in lower case.
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationKind::Callback { .. } => "callback",
            OperationKind::Child { .. } => "child",
            OperationKind::Item { .. } => "item",
        }
    }
}

/// Whether an operation is pending, and how it was settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OperationState {
    /// Not settled yet.
    Pending,
    /// Settled with a result: a callback's payload, a child's encoded output.
    Succeeded {
        /// The payload, as the operation's module encoded it.
        payload: Vec<u8>,
    },
    /// Settled with an error: a callback failed by its sender, a child that failed.
    Failed {
        /// The error, as the operation's module encoded it.
        error: Vec<u8>,
    },
    /// Its time ran out (or its heartbeats stopped) before it was settled otherwise.
    TimedOut {
        /// Whether the heartbeat limit, not the overall timeout, ran out.
        heartbeat: bool,
    },
    /// Given up by its own execution.
    Cancelled,
}

impl OperationState {
    /// Whether the operation is still pending.
    pub fn is_pending(&self) -> bool {
        matches!(self, OperationState::Pending)
    }
}

/// How a delivery names its operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OperationRef {
    /// By its token (a callback id handed to the outside).
    Token(String),
    /// By execution and key (a child reporting to its parent).
    Key {
        /// The execution.
        execution: String,
        /// The operation's key.
        key: String,
    },
}

/// What a [`Delivery`] does to a pending operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// Settles it (the state must not be [`OperationState::Pending`]).
    Settle(OperationState),
    /// Records a heartbeat; it stays pending.
    Heartbeat,
}

/// A change to a pending operation that comes from outside its execution's transitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The operation.
    pub to: OperationRef,
    /// What happens to it.
    pub settlement: Settlement,
    /// When (engine clock).
    pub at: Timestamp,
}

/// What [`Store::deliver`](crate::Store::deliver) did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivered {
    /// The operation was changed.
    Applied {
        /// Its execution.
        execution: String,
        /// Its key.
        key: String,
        /// Whether the execution was suspended awaiting it and is now `Running`.
        woke: bool,
    },
    /// No operation has this token or key.
    Unknown,
    /// The operation was already settled (its current record); nothing was written.
    AlreadySettled(Box<OperationRecord>),
    /// The operation's execution has finished; nothing was written.
    ExecutionFinished {
        /// The execution.
        execution: String,
        /// Its status.
        status: Status,
    },
    /// The operation's deadline ([`OperationRecord::deadline`]: a callback's timeout or
    /// heartbeat timeout) had passed at the delivery's time; nothing was written. The
    /// operation is its current record, still pending until its execution notices.
    DeadlinePassed(Box<OperationRecord>),
}

/// What a commit requires of an operation's current state; otherwise the whole commit is
/// refused with [`StoreError::OperationConflict`](crate::StoreError::OperationConflict).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// No operation with this key exists.
    Absent,
    /// It exists and is pending.
    Pending,
    /// It exists and is settled.
    Settled,
    /// No condition.
    Any,
}

/// What a commit does to an operation once its condition holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationAction {
    /// Nothing: the change is only a condition.
    Keep,
    /// Writes the record (its `execution` and `key` must be the commit's and the change's).
    Put(Box<OperationRecord>),
    /// Deletes the operation (and its token).
    Delete,
}

/// One operation change of a [`Commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationChange {
    /// The operation's key within the committing execution.
    pub key: String,
    /// The condition.
    pub expect: Expect,
    /// The write.
    pub action: OperationAction,
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
    /// Changes to this execution's operations, each with its condition; applied in order.
    pub operations: Vec<OperationChange>,
    /// Deliveries to other executions' operations (a child's result to its parent),
    /// applied as [`Store::deliver`](crate::Store::deliver) applies them; a delivery whose
    /// operation is unknown, settled or finished is skipped, never a reason to refuse.
    pub deliveries: Vec<Delivery>,
}

impl Commit {
    /// A commit of `record` based on `expected_seq`, with nothing else.
    pub fn new(record: ExecutionRecord, expected_seq: u64) -> Self {
        Commit {
            record,
            expected_seq,
            history: Vec::new(),
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        }
    }
}

/// What a successful [`Store::commit`](crate::Store::commit) reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Executions that the commit's deliveries woke (made `Running`): their engines should
    /// run them.
    pub woken: Vec<String>,
}

/// What [`Store::create`](crate::Store::create) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The execution was created.
    New,
    /// An execution with this id already exists; nothing was written.
    Existing(Box<ExecutionRecord>),
}

/// Which executions [`Store::list`](crate::Store::list) returns: those that pass every
/// condition set, in id order, from after the cursor `after`, at most `limit`.
///
/// Pages: pass the id of the last execution of a page as `after` to get the next one.
///
/// ```
/// use durable_core::{ListFilter, Status};
///
/// let first_page = ListFilter::default().status(Status::Running).limit(100);
/// let next_page = first_page.clone().after("order-0099");
/// # let _ = next_page;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only executions with this status.
    pub status: Option<Status>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only children of this execution.
    pub parent: Option<String>,
    /// Only executions whose id sorts after this one (by UTF-8 bytes).
    pub after: Option<String>,
    /// At most this many (all when `None`).
    pub limit: Option<usize>,
}

impl ListFilter {
    /// Every execution.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only executions with `status`.
    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// Only executions of workflow `name`.
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflow = Some(name.into());
        self
    }

    /// Only children of execution `id`.
    pub fn parent(mut self, id: impl Into<String>) -> Self {
        self.parent = Some(id.into());
        self
    }

    /// Only executions whose id sorts after `id`: the next page after the one that ended
    /// with `id`.
    pub fn after(mut self, id: impl Into<String>) -> Self {
        self.after = Some(id.into());
        self
    }

    /// At most `limit` executions.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `record` passes the status, workflow, parent and cursor conditions (not the
    /// limit).
    pub fn matches(&self, record: &ExecutionRecord) -> bool {
        self.status.is_none_or(|s| s == record.status)
            && self.workflow.as_ref().is_none_or(|w| *w == record.workflow)
            && self.parent.as_ref().is_none_or(|p| {
                record
                    .parent
                    .as_ref()
                    .is_some_and(|link| link.execution == *p)
            })
            && self
                .after
                .as_ref()
                .is_none_or(|after| record.id.as_bytes() > after.as_bytes())
    }
}
