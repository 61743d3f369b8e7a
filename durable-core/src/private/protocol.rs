//! The engine–machine protocol: how a state machine is entered, how it stops, and what it
//! calls at each durable point.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode_value, FrameWriter};
use crate::ctx::{Ctx, PointRun};
use crate::error::{CodecError, StoreError};
use crate::workflow::Machine;

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
}

/// Why a state machine stopped without returning.
#[derive(Debug)]
pub enum Interrupt {
    /// It committed a wait and left memory; a timer or event resumes it.
    Suspended,
    /// It committed and stopped so the engine can resume it from the frame (shutdown, or
    /// the engine's suspend-after-every-point mode).
    Yielded,
    /// The store failed; the last commit stands and the execution is retried later.
    Store(StoreError),
    /// The execution cannot go on: its state cannot be decoded, or a body panicked.
    Failed(String),
    /// Answer to [`Entry::Inspect`]: the frame's live locals by name, as JSON.
    Inspected(Vec<(&'static str, serde_json::Value)>),
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
}

/// The parameter type of the function item `#[durable]` defines in place of the
/// `async fn`: it cannot be built outside this crate, so that function is never called;
/// it only stands for the workflow (see [`WorkflowFn`](crate::WorkflowFn)).
#[derive(Debug)]
pub struct Select(());

/// Boxes a state machine future.
pub fn machine<O, F>(future: F) -> Machine<O>
where
    F: Future<Output = Result<O, Interrupt>> + Send + 'static,
{
    Box::pin(future)
}

/// Decodes the input of workflow `W`: the `Workflow` trait's bounds make it decodable, so
/// the call adds no error of its own when the macro's input check fails.
pub fn decode_workflow_input<W: crate::Workflow>(bytes: &[u8]) -> Result<W::Input, Interrupt> {
    decode_value(bytes).map_err(|e| Interrupt::codec("cannot decode the workflow input", e))
}

/// What [`enter`] found at a durable point.
#[derive(Debug)]
pub enum Entered {
    /// The point's operation already completed: its encoded outcome.
    Recorded(Vec<u8>),
    /// The operation has to run (again).
    Run(PointRun),
}

/// Enters durable point `point`. If its operation has to run, `encode` is called to
/// write the frame (the slots live at the point, in the macro's order).
pub fn enter<F>(ctx: &Ctx, point: u32, encode: F) -> Result<Entered, Interrupt>
where
    F: FnOnce(&mut FrameWriter) -> Result<(), CodecError>,
{
    ctx.enter_point(point, encode)
}

/// Decodes the recorded outcome of a completed point.
pub fn recorded<T: DeserializeOwned>(outcome: &[u8]) -> Result<T, Interrupt> {
    decode_value(outcome)
        .map_err(|e| Interrupt::codec("cannot decode the recorded outcome of a durable point", e))
}

/// A durable operation: what may stand before `.await` at a durable point.
///
/// Implemented by the builders that [`Ctx`] methods return; only the macro calls
/// [`Operation::run`], which is why those builders are not futures themselves.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable operation",
    label = "a durable point must await an operation of the context, such as `ctx.step(..)`",
    note = "`.await`s on the context parameter are durable points; call other async code inside a step"
)]
pub trait Operation: Send {
    /// What the `.await` returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Runs the operation at its point: commits its progress and outcome through `run`,
    /// and returns the outcome, or `Err(Interrupt::Suspended)` once it has committed a
    /// wait.
    fn run(self, run: PointRun) -> impl Future<Output = Result<Self::Output, Interrupt>> + Send;
}

/// Stands in for `op.await` in the user's fn when `#[durable]` reports an error: a value
/// of the right type, so the fn still type-checks and the error does not cascade. Never
/// called.
pub fn neutralised<O: Operation>(_: O) -> O::Output {
    unreachable!("`#[durable]` failed to expand")
}

/// Runs `op` at its point.
pub async fn run<O: Operation>(op: O, run: PointRun) -> Result<O::Output, Interrupt> {
    op.run(run).await
}

/// Marker for builders of durable operations, so that awaiting one outside a
/// `#[durable]` fn says what is wrong.
#[diagnostic::on_unimplemented(
    message = "durable operations can only be awaited directly in a `#[durable]` async fn",
    label = "this `.await` is not a durable point",
    note = "inside a `#[durable]` fn, `.await` the operation directly on the context parameter (`ctx.step(..).await`), not inside a closure or `async` block"
)]
pub trait AwaitedInDurableFn {}
