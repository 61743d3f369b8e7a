//! The engine–machine protocol as generated code sees it: what a machine calls at each
//! durable point, and how an interrupt leaves it. The protocol's types live in the
//! execution layer ([`crate::execution`]) and are re-exported here.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use serde::de::DeserializeOwned;

use super::{FrameDecoder, FrameEncoder};
use crate::codec::{decode_value, FrameReader};
pub use crate::execution::{
    AwaitedInDurableFn, Entered, Entry, Interrupt, Operation, SavedLocal, SavedPoint, SavedType,
    Select,
};
use crate::execution::{Ctx, Machine, PointRun};

/// Where a running machine leaves the [`Interrupt`] that stops it.
///
/// Out of band, so that the machine's body returns the workflow's own output: the user's
/// `?` and `return` in it are Rust's own, with rustc's messages. Every protocol call
/// below that can fail takes the `Stop`: on an interrupt it records it and never
/// completes, and the future [`machine`] returns then ends with it.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<Mutex<Option<Interrupt>>>);

impl Stop {
    fn set(&self, interrupt: Interrupt) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(interrupt);
    }

    fn take(&self) -> Option<Interrupt> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Builds a state machine from its body, which gets the [`Stop`] it leaves interrupts in:
/// the machine ends with the body's output, or with the interrupt once the body stopped.
pub fn machine<O, F>(body: impl FnOnce(Stop) -> F) -> Machine<O>
where
    F: Future<Output = O> + Send + 'static,
{
    let stop = Stop::default();
    let body = body(stop.clone());
    Box::pin(Stoppable { body, stop })
}

pin_project_lite::pin_project! {
    /// A machine's body with the [`Stop`] it leaves interrupts in: the future
    /// [`machine`] boxes. A type of its own rather than an `async` block around the body,
    /// which would hold the body twice (as captured, and pinned inside), doubling the
    /// size of every activation.
    struct Stoppable<F> {
        #[pin]
        body: F,
        stop: Stop,
    }
}

impl<F: Future> Future for Stoppable<F> {
    type Output = Result<F::Output, Interrupt>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.body.poll(cx) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending => match this.stop.take() {
                Some(interrupt) => Poll::Ready(Err(interrupt)),
                None => Poll::Pending,
            },
        }
    }
}

/// The value of `result`; for an interrupt, stops the machine there (never completes).
async fn proceed<T>(stop: &Stop, result: Result<T, Interrupt>) -> T {
    match result {
        Ok(value) => value,
        Err(interrupt) => {
            stop.set(interrupt);
            std::future::pending().await
        }
    }
}

/// The machine's output, typed: the body ends with `output::<Output>('machine: loop ..)`,
/// which gives the user's `?` and `return` the workflow's output type to convert to.
pub fn output<O>(output: O) -> O {
    output
}

/// The value of a block number the machine does not have (never reached: the machine
/// only jumps to its own blocks).
pub fn unknown_block<T>() -> T {
    panic!("durable: internal error: unknown block; please report this bug")
}

/// What the resume block does with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Decodes it and runs on.
    Run,
    /// Decodes it and reports the locals ([`Entry::Inspect`]).
    Inspect,
    /// Has no frame: reports the locals of this point and their types
    /// ([`Entry::Layout`]).
    Layout(u32),
}

/// Where the machine starts: block 0 with the encoded input, or the resume block with the
/// frame (and what to do with it).
pub fn start(entry: Entry) -> (u32, Option<Vec<u8>>, Mode) {
    match entry {
        Entry::Start { input } => (0, Some(input), Mode::Run),
        Entry::Resume { frame } => (u32::MAX, Some(frame), Mode::Run),
        Entry::Inspect { frame } => (u32::MAX, Some(frame), Mode::Inspect),
        Entry::Layout { point } => (u32::MAX, None, Mode::Layout(point)),
    }
}

/// Decodes the input of workflow `W` (block 0). The `Workflow` trait's bounds make it
/// decodable, so the call adds no error of its own when the macro's input check fails
/// (nor does the generated code around it, which awaits only [`halt`] on an error).
pub fn input<W: crate::Workflow>(bytes: &mut Option<Vec<u8>>) -> Result<W::Input, Interrupt> {
    match bytes.take() {
        Some(bytes) => decode_value(&bytes)
            .map_err(|e| Interrupt::unreadable("cannot decode the workflow input", e)),
        None => Err(internal("no input")),
    }
}

/// Stops the machine with `interrupt`: records it and never completes.
pub async fn halt(stop: &Stop, interrupt: Interrupt) -> Infallible {
    proceed(stop, Err(interrupt)).await
}

/// Decodes the frame (the resume block): `locals` fills the slots of the frame's point and
/// returns the block to resume at.
pub async fn resume<F>(stop: &Stop, bytes: &mut Option<Vec<u8>>, mode: Mode, locals: F) -> u32
where
    F: FnOnce(&mut FrameDecoder<'_>) -> u32,
{
    let resumed = match (bytes.take(), mode) {
        (None, Mode::Layout(point)) => {
            let mut decoder = FrameDecoder::layout(point);
            let block = locals(&mut decoder);
            decoder.finish(block)
        }
        (Some(frame), _) => match FrameReader::new(&frame) {
            Ok(reader) => {
                let mut decoder = FrameDecoder::new(reader, mode == Mode::Inspect);
                let block = locals(&mut decoder);
                decoder.finish(block)
            }
            Err(e) => Err(Interrupt::unreadable("cannot read the frame", e)),
        },
        (None, _) => Err(internal("no frame")),
    };
    proceed(stop, resumed).await
}

fn internal(what: &str) -> Interrupt {
    Interrupt::Failed(format!(
        "durable: internal error: {what}; please report this bug"
    ))
}

/// Enters durable point `point`. If its operation has to run, `locals` is called to write
/// the frame (the slots live at the point, in the macro's order).
pub async fn enter<F>(stop: &Stop, ctx: &Ctx, point: u32, locals: F) -> Entered
where
    F: FnOnce(&mut FrameEncoder<'_>),
{
    let entered = ctx.enter_point(point, |writer| {
        let mut encoder = FrameEncoder::new(writer);
        locals(&mut encoder);
        encoder.finish()
    });
    proceed(stop, entered).await
}

/// The outcome type of one durable point, named by inference: the machine declares one
/// per point, passes it to that point's [`outcome`] (which fixes `T` to the operation's
/// output) and to [`FrameDecoder::outcome`] in the resume block, which reports `T` when
/// the layout is asked for. So every operation kind reports its outcome type at the one
/// place where all of them hand their outcome to the point machinery.
pub struct OutcomeType<T>(PhantomData<fn() -> T>);

impl<T> OutcomeType<T> {
    /// The outcome type of a point, inferred from its use.
    #[allow(clippy::new_without_default)] // generated code only; `Default` would add nothing
    pub const fn new() -> Self {
        OutcomeType(PhantomData)
    }
}

impl<T> Clone for OutcomeType<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutcomeType<T> {}

impl<T> std::fmt::Debug for OutcomeType<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

/// A point's outcome: the recorded one, or the one `run` obtains by running the
/// operation (`run` evaluates the operation only then). `_ty` names the outcome type
/// for the layout (see [`OutcomeType`]).
pub async fn outcome<T, F, Fut>(stop: &Stop, _ty: OutcomeType<T>, entered: Entered, run: F) -> T
where
    T: DeserializeOwned,
    F: FnOnce(PointRun) -> Fut,
    Fut: Future<Output = Result<T, Interrupt>>,
{
    let outcome = match entered {
        Entered::Recorded(outcome) => decode_value(&outcome).map_err(|e| {
            Interrupt::unreadable("cannot decode the recorded outcome of a durable point", e)
        }),
        Entered::Run(point) => run(point).await,
    };
    proceed(stop, outcome).await
}

/// Stands in for `op.await` in the user's fn when `#[durable]` reports an error: a value
/// of the right type, so the fn still type-checks and the error does not cascade. Never
/// called.
pub fn neutralised<O: Operation>(_: O) -> O::Output {
    unreachable!("`#[durable]` failed to expand")
}

/// Runs `op` at its point: the operation's own future, without one around it (each
/// layer would hold, and copy, the whole of the one inside).
pub fn run<O: Operation>(
    op: O,
    run: PointRun,
) -> impl Future<Output = Result<O::Output, Interrupt>> + Send {
    op.run(run)
}
