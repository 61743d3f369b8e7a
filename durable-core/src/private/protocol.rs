//! The engine–machine protocol as generated code sees it: what a machine calls at each
//! durable point. The protocol's types live in the execution layer
//! ([`crate::execution`]) and are re-exported here.

use std::future::Future;

use serde::de::DeserializeOwned;

use crate::codec::{decode_value, FrameWriter};
use crate::error::CodecError;
pub use crate::execution::Select;
pub use crate::execution::{AwaitedInDurableFn, Entered, Entry, Interrupt, Operation};
use crate::execution::{Ctx, Machine, PointRun};

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
