//! [`Ctx::invoke`]: the durable point that starts (or attaches to) an execution by id and
//! awaits its output.

use std::fmt;
use std::marker::PhantomData;

use super::run::{run_child, Target};
use super::ChildError;
use crate::execution::{
    AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun, Workflow, WorkflowFn,
};

impl Ctx {
    /// Starts an execution of `workflow` with id `id` and `input`, or attaches to the one
    /// that has this id, and waits for its output: a durable point.
    ///
    /// Like [`Engine::start`](crate::Engine::start), the id is an idempotency key: an
    /// execution with this id, this workflow and an equal input (compared by value) is
    /// attached to, running or finished; another workflow or input is
    /// [`ChildError::IdConflict`]. An execution this point starts reports to it like a
    /// child of [`call`](Ctx::call) (it is listed under this one), and wakes it by its
    /// last commit. One started elsewhere (by `Engine::start`, or by another execution's
    /// `invoke`) is watched instead: this execution is suspended and checks its status
    /// on a timer, every second at first and less often the longer it waits (at most
    /// every minute).
    ///
    /// ```
    /// # use durable_core::{durable, ChildError, Ctx};
    /// #[durable]
    /// async fn monthly_report(ctx: Ctx, month: String) -> String {
    ///     format!("report for {month}")
    /// }
    ///
    /// #[durable]
    /// async fn close_books(ctx: Ctx, month: String) -> Result<String, ChildError> {
    ///     // One report per month, however many executions ask for it.
    ///     let id = format!("report-{month}");
    ///     ctx.invoke(monthly_report, id, month).await
    /// }
    /// ```
    pub fn invoke<F: WorkflowFn>(
        &self,
        workflow: F,
        id: impl Into<String>,
        input: <F::Workflow as Workflow>::Input,
    ) -> Invoke<F::Workflow> {
        let _ = workflow;
        Invoke {
            id: id.into(),
            input,
            workflow: PhantomData,
        }
    }
}

/// Starting or attaching to an execution by id, built by [`Ctx::invoke`].
#[must_use = "nothing is started or awaited until this is awaited in a `#[durable]` fn"]
pub struct Invoke<W: Workflow> {
    id: String,
    input: W::Input,
    workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> fmt::Debug for Invoke<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invoke")
            .field("workflow", &W::NAME)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<W: Workflow> std::future::IntoFuture for Invoke<W>
where
    // Only a durable point can await this: directly in the body of a `#[durable]` fn.
    Self: AwaitedInDurableFn,
{
    type Output = ();
    type IntoFuture = std::future::Pending<()>;
    fn into_future(self) -> Self::IntoFuture {
        std::future::pending()
    }
}

impl<W: Workflow> Operation for Invoke<W> {
    type Output = Result<W::Output, ChildError>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        run_child::<W>(run, Target::Id(self.id), self.input).await
    }
}
