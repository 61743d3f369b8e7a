//! The [`Workflow`] trait that `#[durable]` implements.

use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ctx::Ctx;
use super::protocol::{Entry, Interrupt};
use crate::codec::Codec;

/// The boxed state machine a workflow runs as.
#[doc(hidden)]
pub type Machine<O> = Pin<Box<dyn Future<Output = Result<O, Interrupt>> + Send + 'static>>;

/// A workflow: an `async fn` rewritten by `#[durable]` into a resumable state machine.
///
/// `#[durable]` on `async fn process_order(ctx: Ctx, order: Order) -> Receipt` defines
/// the type `process_order::Workflow` implementing this trait, and a function item
/// `process_order` (a [`WorkflowFn`]) that stands for it: pass `process_order` to
/// [`EngineBuilder::register`](crate::EngineBuilder::register) and
/// [`Engine::start`](crate::Engine::start), and name the type in
/// `Handle<process_order::Workflow>`. Implementing this trait by hand is not supported:
/// the hidden items are the macro's contract with the engine and change without notice.
pub trait Workflow: Send + Sync + 'static {
    /// The arguments after the context: the single argument's type, a tuple of them when
    /// there are several, `()` when there are none.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The return type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The registered name: the function's name unless `#[durable(name = "...")]` says
    /// otherwise. Stored with every execution, so renaming it strands executions.
    const NAME: &'static str;
    /// Fingerprint of the code: the function's tokens, its durable points and their live
    /// locals. Recorded with each execution and shown by `describe`, for information:
    /// whether an execution resumes on this code is decided by its *layout* (see the
    /// README's "Changing code under running executions").
    const FINGERPRINT: u64;
    /// The version of the macro's lowering (what a frame means), part of the layout.
    #[doc(hidden)]
    const LOWERING_FORMAT: u32;
    /// The codec for frames, inputs, outputs and outcomes.
    const CODEC: Codec;
    /// The durable points, indexed by point id.
    #[doc(hidden)]
    const POINTS: &'static [PointInfo];
    /// The workflows its body runs as children (`ctx.call(helper, ..)`, `ctx.map(.., helper)`,
    /// `Branch::call(helper, ..)`) or invokes, as the macro found them: registering this
    /// workflow registers those too.
    #[doc(hidden)]
    fn __calls() -> Vec<Called> {
        Vec::new()
    }

    /// Runs the state machine from `entry` until it returns, suspends or fails.
    #[doc(hidden)]
    fn __machine(ctx: Ctx, entry: Entry) -> Machine<Self::Output>;
}

/// What stands for a workflow in the engine's API: the function item that `#[durable]`
/// defines with the workflow's name (`engine.start(process_order, ..)`).
///
/// A function rather than a unit struct, so that a local or parameter in the workflow
/// may share its name.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `#[durable]` fn",
    label = "expected a workflow: an `async fn` with `#[durable]`",
    note = "`#[durable]` turns an `async fn(ctx: Ctx, ..)` into a workflow; the function item it defines stands for it"
)]
pub trait WorkflowFn: Copy + Send + Sync + 'static {
    /// The workflow it stands for.
    type Workflow: Workflow;
}

impl<F, W> WorkflowFn for F
where
    F: Fn(Select) -> W + Copy + Send + Sync + 'static,
    W: Workflow,
{
    type Workflow = W;
}

/// The parameter type of the function item `#[durable]` defines in place of the
/// `async fn`: it cannot be built outside this crate, so that function is never called;
/// it only stands for the workflow (see [`WorkflowFn`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct Select(());

/// What the macro knows about one durable point.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct PointInfo {
    /// The point id.
    pub id: u32,
    /// The awaited expression's text, e.g. `ctx.step("charge", ..)`.
    pub label: &'static str,
    /// Source line of the `.await`.
    pub line: u32,
    /// The live locals saved in the frame, in frame order.
    pub locals: &'static [&'static str],
}

/// A workflow that another one's body calls, type-erased for [`Workflow::__calls`]: how to
/// register it with an engine's registry, which the execution layer does not know (hence
/// `Any`; the engine builds and reads these).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Called {
    register: fn(&mut dyn std::any::Any),
}

impl Called {
    /// A called workflow that `register` adds to a registry.
    pub(crate) const fn new(register: fn(&mut dyn std::any::Any)) -> Self {
        Called { register }
    }

    /// Adds the called workflow to `registry`.
    pub(crate) fn register(&self, registry: &mut dyn std::any::Any) {
        (self.register)(registry)
    }
}

impl std::fmt::Debug for Called {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Called").finish_non_exhaustive()
    }
}
