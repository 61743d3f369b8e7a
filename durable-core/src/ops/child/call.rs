//! [`Ctx::call`]: the durable point that runs a child workflow and awaits its output.

use std::fmt;
use std::marker::PhantomData;

use super::run::{run_child, Target};
use super::ChildError;
use crate::execution::{
    AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun, Workflow, WorkflowFn,
};

impl Ctx {
    /// Runs `workflow` as a child execution with `input` and waits for its output: a
    /// durable point.
    ///
    /// The child is an execution of its own, with its own frame and history, listed
    /// under this one (`ListFilter::parent`, `describe`, `history`). Its id is this
    /// execution's id, a slash and the call's operation key (`order-7/w05`): the same
    /// after any restart, so a resumed caller finds the child it started and never starts
    /// a second one. This execution is suspended (out of memory) while the child runs and
    /// is woken by the child's last commit. `.await` gives the child's output, or a
    /// [`ChildError`] if it gave none (it panicked, its workflow is not registered...).
    /// A child that returns `Result` and returned `Err` gives `Ok(Err(..))`.
    ///
    /// `#[durable]` registers the workflows its body calls by path (`ctx.call(charge, ..)`),
    /// so registering the caller is enough.
    ///
    /// ```
    /// # use durable_core::{durable, ChildError, Ctx, Failure};
    /// #[durable]
    /// async fn charge(ctx: Ctx, cents: u64) -> Result<String, Failure> {
    ///     let receipt = ctx.step("charge", || async move { Ok(format!("paid {cents}")) }).await?;
    ///     Ok(receipt)
    /// }
    ///
    /// #[durable]
    /// async fn order(ctx: Ctx, cents: u64) -> Result<String, ChildError> {
    ///     let receipt = ctx.call(charge, cents).await?;
    ///     Ok(receipt.unwrap_or_else(|failure| format!("not paid: {failure}")))
    /// }
    /// ```
    pub fn call<F: WorkflowFn>(
        &self,
        workflow: F,
        input: <F::Workflow as Workflow>::Input,
    ) -> Call<F::Workflow> {
        let _ = workflow;
        Call {
            input,
            workflow: PhantomData,
        }
    }
}

/// Running a child workflow, built by [`Ctx::call`].
#[must_use = "a child runs only when this is awaited in a `#[durable]` fn"]
pub struct Call<W: Workflow> {
    input: W::Input,
    workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> Call<W> {
    /// The child's input.
    pub(crate) fn into_input(self) -> W::Input {
        self.input
    }
}

impl<W: Workflow> fmt::Debug for Call<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("workflow", &W::NAME)
            .finish_non_exhaustive()
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<W: Workflow> std::future::IntoFuture for Call<W>
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

impl<W: Workflow> Operation for Call<W> {
    type Output = Result<W::Output, ChildError>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        run_child::<W>(run, Target::Child, self.input).await
    }
}
