//! What a batch runs per item: a step future or a child workflow ([`ItemBody`]), and the
//! branches of [`Ctx::parallel`](crate::Ctx::parallel) ([`Branch`]).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::error::CodecError;
use crate::execution::{Workflow, WorkflowFn};
use crate::failure::Failure;
use crate::ops::child::Call;

/// What a batch body gives for one item: a future (the item is a step: one attempt of
/// it, with the batch's retry policy), or [`Ctx::call`](crate::Ctx::call) of a
/// `#[durable]` fn (the item is a child execution).
///
/// ```
/// # use durable_core::{durable, Ctx, BatchResult};
/// #[durable]
/// async fn double(ctx: Ctx, n: u64) -> u64 {
///     ctx.step_infallible("double", || async move { n * 2 }).await
/// }
///
/// #[durable]
/// async fn both(ctx: Ctx, numbers: Vec<u64>) -> (BatchResult<u64>, BatchResult<u64>) {
///     // One step per item...
///     let steps = ctx.map("steps", numbers.clone(), |n: u64| async move { Ok(n * 2) }).await;
///     // ...or one child execution per item.
///     let children = ctx.map("children", numbers, double).await;
///     (steps, children)
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not what a batch body may return",
    label = "a batch body returns a future of `Result<T, Failure>` (a step) or `ctx.call(workflow, input)` (a child)",
    note = "a `#[durable]` fn or a plain async fn may also be passed by name as the body: `ctx.map(name, items, f)`"
)]
pub trait ItemBody: Send {
    /// The item's value.
    type Value: Serialize + DeserializeOwned + Send + 'static;

    /// The work, type-erased.
    #[doc(hidden)]
    fn into_work<'a>(self) -> ItemWork<'a, Self::Value>
    where
        Self: 'a;
}

/// An item's work: a step attempt's future, or the child to run. Not public API.
#[doc(hidden)]
pub enum ItemWork<'a, T> {
    /// One attempt of a step item.
    Step(Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'a>>),
    /// A child item.
    Child(ChildItem<T>),
}

impl<T> fmt::Debug for ItemWork<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemWork::Step(_) => f.write_str("Step"),
            ItemWork::Child(child) => f.debug_tuple("Child").field(child).finish(),
        }
    }
}

/// A child item: the workflow to run and its encoded input. Not public API.
#[doc(hidden)]
pub struct ChildItem<T> {
    pub(crate) workflow: &'static str,
    pub(crate) fingerprint: u64,
    pub(crate) input: Result<Vec<u8>, CodecError>,
    output: PhantomData<fn() -> T>,
}

impl<T> ChildItem<T> {
    fn of<W: Workflow<Output = T>>(input: &W::Input) -> Self {
        ChildItem {
            workflow: W::NAME,
            fingerprint: W::FINGERPRINT,
            input: W::CODEC.encode_value(input),
            output: PhantomData,
        }
    }
}

impl<T> Clone for ChildItem<T> {
    fn clone(&self) -> Self {
        ChildItem {
            workflow: self.workflow,
            fingerprint: self.fingerprint,
            input: self.input.clone(),
            output: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ChildItem<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildItem")
            .field("workflow", &self.workflow)
            .finish_non_exhaustive()
    }
}

impl<F, T> ItemBody for F
where
    F: Future<Output = Result<T, Failure>> + Send,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = T;

    fn into_work<'a>(self) -> ItemWork<'a, T>
    where
        Self: 'a,
    {
        ItemWork::Step(Box::pin(self))
    }
}

impl<W: Workflow> ItemBody for Call<W> {
    type Value = W::Output;

    fn into_work<'a>(self) -> ItemWork<'a, W::Output>
    where
        Self: 'a,
    {
        ItemWork::Child(ChildItem::of::<W>(&self.into_input()))
    }
}

/// One item of a batch whose body is a `#[durable]` fn. Not public API.
#[doc(hidden)]
pub struct ChildCall<W: Workflow>(W::Input, PhantomData<fn() -> W>);

impl<W: Workflow> ChildCall<W> {
    /// The child call of `input`.
    pub fn new(input: W::Input) -> Self {
        ChildCall(input, PhantomData)
    }
}

impl<W: Workflow> ItemBody for ChildCall<W> {
    type Value = W::Output;

    fn into_work<'a>(self) -> ItemWork<'a, W::Output>
    where
        Self: 'a,
    {
        ItemWork::Child(ChildItem::of::<W>(&self.0))
    }
}

/// One branch of [`Ctx::parallel`](crate::Ctx::parallel): a step or a child workflow,
/// giving a `T`.
///
/// ```
/// # use durable_core::{durable, Branch, BatchResult, Ctx};
/// #[durable]
/// async fn price(ctx: Ctx, sku: String) -> u64 {
///     ctx.step_infallible("look up", || async move { sku.len() as u64 }).await
/// }
///
/// #[durable]
/// async fn quote(ctx: Ctx, sku: String) -> BatchResult<u64> {
///     ctx.parallel(
///         "quote",
///         vec![
///             Branch::step(|| async { Ok(100) }),
///             Branch::call(price, sku),
///         ],
///     )
///     .await
/// }
/// ```
pub struct Branch<'a, T> {
    work: Arc<dyn Fn() -> ItemWork<'a, T> + Send + Sync + 'a>,
}

impl<'a, T: Send + 'static> Branch<'a, T> {
    /// A branch that is a step: `body` is called once per attempt.
    pub fn step<F, Fut>(body: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T, Failure>> + Send + 'a,
    {
        Branch {
            work: Arc::new(move || ItemWork::Step(Box::pin(body()))),
        }
    }

    /// A branch that runs `workflow` as a child execution with `input`.
    ///
    /// `#[durable]` registers the workflows named in `Branch::call(..)` in its body, as
    /// for [`Ctx::call`](crate::Ctx::call).
    pub fn call<F>(workflow: F, input: <F::Workflow as Workflow>::Input) -> Self
    where
        F: WorkflowFn,
        F::Workflow: Workflow<Output = T>,
    {
        let _ = workflow;
        let child = ChildItem::of::<F::Workflow>(&input);
        Branch {
            work: Arc::new(move || ItemWork::Child(child.clone())),
        }
    }
}

impl<T> Clone for Branch<'_, T> {
    fn clone(&self) -> Self {
        Branch {
            work: self.work.clone(),
        }
    }
}

impl<T> fmt::Debug for Branch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Branch").finish_non_exhaustive()
    }
}

impl<T> ItemBody for Branch<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Value = T;

    fn into_work<'b>(self) -> ItemWork<'b, T>
    where
        Self: 'b,
    {
        (self.work)()
    }
}

/// What a `Codec` is used for here: kept so that `Codec` stays imported where child
/// items are built. (Child inputs are encoded with the child workflow's own codec.)
#[allow(dead_code)]
const _: Option<Codec> = None;
