//! Batches: [`Ctx::map`] runs a body once per item, [`Ctx::parallel`] runs a list of
//! branches; each item is a step (a future, run in this execution's process with the
//! batch's retry policy) or a child execution (a `#[durable]` fn, with durable points of
//! its own), at most [`Map::max_in_flight`] at a time, until the [`Completion`] policy
//! says the batch is complete.
//!
//! The batch is one durable point. Its state ([`BatchState`](crate::BatchState), the
//! point state) holds counters and the items in flight only; each item's outcome is an
//! operation record of its own, written when the item settles, so neither the frame nor
//! the record grows with the number of items. Outcomes of step items that settle while
//! a commit is in progress go into the next commit together (group commit). A child item
//! is an operation record written before its child is created, which the child's last
//! commit settles (and wakes the batch, suspended out of memory while only children are
//! in flight), as for [`Ctx::call`].
//!
//! Every settlement the batch sees is committed with its place in the completion order
//! and the new counters, and the policy decides on the committed counters only, so a
//! batch resumed after a crash completes exactly as it would have. Step items in flight
//! at a crash run again (steps run at least once); a child item's child is created once,
//! its id derived from the parent's and the item's key.
//!
//! When the policy completes the batch early, the items in flight are cancelled: their
//! operation records say so, child executions are cancelled ([`Status::Cancelled`](crate::Status)),
//! and the batch result marks them [`ItemStatus::Cancelled`] (and the items never started
//! [`ItemStatus::NotStarted`]).

mod item;
mod policy;
mod result;
mod run;

use std::fmt;
use std::time::Duration;

use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::retry::RetryPolicy;

pub use item::{Branch, ChildCall, ChildItem, ItemBody, ItemWork};
pub use policy::Completion;
pub use result::{BatchError, BatchItem, BatchResult, ItemError, ItemStatus};

/// How many items a batch runs at once unless told otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100;

/// The most items a batch runs at once: its point state lists the items in flight and is
/// written with every commit of the batch.
pub const MAX_IN_FLIGHT: usize = 10_000;

impl Ctx {
    /// Runs `body` once per item of `items`: a durable point that gives a
    /// [`BatchResult`] with every item's status and value or error, in input order.
    ///
    /// `body` is either a closure (or plain async fn) returning a future of
    /// `Result<T, Failure>` (each item is a step, retried as [`Map::retry`] says; its
    /// [`StepContext`](crate::StepContext) gives an idempotency key per item), a closure
    /// returning [`ctx.call(workflow, input)`](Ctx::call), or a `#[durable]` fn itself (each
    /// item is a child execution of it, listed under this one). At most
    /// [`max_in_flight`](Map::max_in_flight) items run at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]); the batch completes as its
    /// [`completion`](Map::completion) policy says (default: when every item has
    /// settled). The result holds every item and is recorded like any outcome, so it must
    /// fit [`EngineBuilder::max_value_bytes`](crate::EngineBuilder::max_value_bytes)
    /// (16 MiB by default). The items must be `Clone` (a step item is run again from its item), and
    /// `items` is evaluated again when the execution resumes, like every operation's
    /// arguments, so it must give the same items in the same order.
    ///
    /// ```
    /// # use durable_core::{durable, BatchError, Completion, Ctx, Failure};
    /// # async fn resize(url: &str) -> Result<String, Failure> { Ok(format!("{url}?w=200")) }
    /// #[durable]
    /// async fn thumbnails(ctx: Ctx, urls: Vec<String>) -> Result<Vec<String>, BatchError> {
    ///     let batch = ctx
    ///         .map("resize", urls, |url: String| async move { resize(&url).await })
    ///         .max_in_flight(8)
    ///         .completion(Completion::all_succeed())
    ///         .await;
    ///     batch.values()
    /// }
    /// ```
    ///
    /// A function passed by name as `body` is a child workflow if it is a `#[durable]` fn
    /// (`ctx.map("resize", images, resize_image)`, registered with this workflow by
    /// `#[durable]`, as for [`Ctx::call`]), and a step body otherwise (a plain
    /// `async fn(Item) -> Result<T, Failure>`).
    pub fn map<I, B, R>(&self, name: impl Into<String>, items: I, body: B) -> Map<I::IntoIter, B>
    where
        I: IntoIterator,
        I::IntoIter: ExactSizeIterator + Send,
        I::Item: Clone + Send,
        B: Fn(I::Item) -> R + Send + Sync,
        R: ItemBody,
    {
        Map {
            name: name.into(),
            items: items.into_iter(),
            body,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            completion: Completion::default(),
            retry: RetryPolicy::none(),
            timeout: None,
        }
    }

    /// Runs `branches`, each a step or a child workflow ([`Branch`]), as a batch: the
    /// same options and result as [`map`](Ctx::map), one item per branch.
    pub fn parallel<'a, T>(
        &self,
        name: impl Into<String>,
        branches: Vec<Branch<'a, T>>,
    ) -> Map<std::vec::IntoIter<Branch<'a, T>>, Itself>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        Map {
            name: name.into(),
            items: branches.into_iter(),
            body: Itself,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            completion: Completion::default(),
            retry: RetryPolicy::none(),
            timeout: None,
        }
    }
}

/// The body of [`Ctx::parallel`]: each branch is its own work.
#[derive(Clone, Copy, Debug)]
pub struct Itself;

/// What a batch calls per item: the closure given to [`Ctx::map`] (or [`Itself`], for
/// [`Ctx::parallel`]).
pub trait MapBody<I>: Send + Sync {
    /// What it gives per item.
    type Item: ItemBody;
    /// Gives the work of `item`.
    fn call(&self, item: I) -> Self::Item;
}

impl<I, F, R> MapBody<I> for F
where
    F: Fn(I) -> R + Send + Sync,
    R: ItemBody,
{
    type Item = R;
    fn call(&self, item: I) -> R {
        self(item)
    }
}

impl<'a, T> MapBody<Branch<'a, T>> for Itself
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    type Item = Branch<'a, T>;
    fn call(&self, item: Branch<'a, T>) -> Branch<'a, T> {
        item
    }
}

/// A batch, built by [`Ctx::map`] or [`Ctx::parallel`]; configure it, then `.await` it in
/// a `#[durable]` fn.
#[must_use = "a batch runs only when it is awaited in a `#[durable]` fn"]
pub struct Map<It, B> {
    name: String,
    items: It,
    body: B,
    max_in_flight: usize,
    completion: Completion,
    retry: RetryPolicy,
    timeout: Option<Duration>,
}

impl<It, B> Map<It, B> {
    /// Runs at most `n` items at once (from 1 to [`MAX_IN_FLIGHT`]; default
    /// [`DEFAULT_MAX_IN_FLIGHT`]). The batch's memory and its point state grow with this
    /// number, not with the number of items.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.clamp(1, MAX_IN_FLIGHT);
        self
    }

    /// Completes the batch as `policy` says (default [`Completion::all`]).
    pub fn completion(mut self, policy: Completion) -> Self {
        self.completion = policy;
        self
    }

    /// Retries a failed step item as `policy` says (default: a single attempt). Delays
    /// are waited on the engine clock; while every item in flight waits for a retry or a
    /// child, the execution is suspended out of memory. Child items retry as their own
    /// steps say.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Limits each attempt of a step item to `limit` (engine clock); an attempt still
    /// running then counts as failed ([`StepError::TimedOut`](crate::StepError)).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

impl<It, B> fmt::Debug for Map<It, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("name", &self.name)
            .field("max_in_flight", &self.max_in_flight)
            .field("completion", &self.completion)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<It, B> std::future::IntoFuture for Map<It, B>
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

impl<It, B> Operation for Map<It, B>
where
    It: ExactSizeIterator + Send,
    It::Item: Clone + Send,
    B: MapBody<It::Item>,
{
    type Output = BatchResult<<B::Item as ItemBody>::Value>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        run::run_batch(self, run).await
    }
}
