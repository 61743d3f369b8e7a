//! The engine–machine protocol: how a state machine is entered, how it stops, and what a
//! durable operation is.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::point::PointRun;
use crate::error::{CodecError, StoreError};

/// How a state machine is entered.
#[derive(Debug)]
pub enum Entry {
    /// A new execution: the encoded input (value envelope).
    Start {
        /// The encoded input.
        input: Vec<u8>,
    },
    /// Resume at the frame's point.
    Resume {
        /// The frame of the last committed point.
        frame: Vec<u8>,
    },
    /// Decode the frame and return its locals as JSON in [`Interrupt::Inspected`],
    /// running nothing.
    Inspect {
        /// The frame to decode.
        frame: Vec<u8>,
    },
    /// Return the locals saved at durable point `point` and their types in
    /// [`Interrupt::Layout`], running and decoding nothing.
    Layout {
        /// The point id.
        point: u32,
    },
}

/// A local saved in the frame of a durable point, as [`Entry::Layout`] reports it.
#[derive(Clone, Copy, Debug)]
pub struct SavedLocal {
    /// Its name in the source.
    pub name: &'static str,
    /// Its type's identity, to trace each type once.
    pub type_id: std::any::TypeId,
    /// Traces its type (see [`Shape::of`](crate::Shape::of)).
    pub shape: fn(bool) -> crate::shape::Shape,
}

/// What [`Entry::Layout`] reports of a durable point: its saved locals and the type of
/// its operation's outcome.
#[derive(Clone, Debug)]
pub struct SavedPoint {
    /// The locals saved in its frame, in frame order.
    pub locals: Vec<SavedLocal>,
    /// The outcome type; `None` only if the machine did not report it (never for
    /// generated code).
    pub outcome: Option<SavedType>,
}

/// A type reported by [`Entry::Layout`]: its identity (to trace each type once) and its
/// tracer (see [`Shape::of`](crate::Shape::of)).
#[derive(Clone, Copy, Debug)]
pub struct SavedType {
    /// Its identity.
    pub type_id: std::any::TypeId,
    /// Traces it.
    pub shape: fn(bool) -> crate::shape::Shape,
}

/// Why a state machine stopped without returning.
#[derive(Debug)]
pub enum Interrupt {
    /// It committed a wait and left memory; a timer or event resumes it.
    Suspended,
    /// It committed and stopped so the engine can resume it from the frame at once
    /// (shutdown, the engine's suspend-after-every-point mode, or an operation that goes
    /// on with no delay but must be built again, such as a step's next attempt).
    Yielded,
    /// The store failed or refused a commit; the last commit stands and the execution is
    /// retried later (or dropped, if another engine took it over).
    Store(StoreError),
    /// The execution cannot go on: a body panicked, or an internal error.
    Failed(String),
    /// The stored state (frame, recorded outcome, input) does not decode with this code:
    /// the execution is parked, its data intact, until code that reads it is registered.
    Unreadable(String),
    /// Answer to [`Entry::Inspect`]: the frame's live locals by name, as JSON, or why
    /// one cannot be read.
    Inspected(Vec<(&'static str, Result<serde_json::Value, String>)>),
    /// Answer to [`Entry::Layout`]: the locals saved at the point, in frame order, and its
    /// outcome type; `None` if the workflow has no such point.
    Layout(Option<SavedPoint>),
}

impl From<StoreError> for Interrupt {
    fn from(e: StoreError) -> Self {
        Interrupt::Store(e)
    }
}

impl Interrupt {
    /// A codec error while handling `what`.
    pub fn codec(what: &str, e: CodecError) -> Self {
        Interrupt::Failed(format!("{what}: {e}"))
    }

    /// Stored state that does not decode while handling `what`.
    pub fn unreadable(what: &str, e: CodecError) -> Self {
        Interrupt::Unreadable(format!("{what}: {e}"))
    }
}

/// What entering a durable point found.
#[derive(Debug)]
pub enum Entered {
    /// The point's operation already completed: its encoded outcome.
    Recorded(Vec<u8>),
    /// The operation has to run (again).
    Run(PointRun),
}

/// A durable operation: what may stand before `.await` at a durable point.
///
/// Implemented by the builders that [`Ctx`](crate::Ctx) methods return; only the macro
/// calls [`Operation::run`], which is why those builders are not futures themselves.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable operation",
    label = "a durable point must await an operation of the context, such as `ctx.step(..)`",
    note = "`.await`s on the context parameter are durable points; call other async code inside a step"
)]
pub trait Operation: Send {
    /// What the `.await` returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Runs the operation at its point: commits its progress and outcome through `run`,
    /// and returns the outcome as recorded, or `Err(Interrupt::Suspended)` once it has
    /// committed a wait.
    fn run(self, run: PointRun) -> impl Future<Output = Result<Self::Output, Interrupt>> + Send;
}

/// Marker for builders of durable operations, so that awaiting one outside a
/// `#[durable]` fn says what is wrong.
#[diagnostic::on_unimplemented(
    message = "durable operations can only be awaited directly in a `#[durable]` async fn",
    label = "this `.await` is not a durable point",
    note = "inside a `#[durable]` fn, `.await` the operation directly on the context parameter (`ctx.step(..).await`), not inside a closure or `async` block"
)]
pub trait AwaitedInDurableFn {}
