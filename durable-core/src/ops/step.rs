//! Steps: named units of work whose outcome is recorded, with retries.
//!
//! Semantics, per attempt:
//! - **at-least-once** (default): nothing is written before the body runs; if the process
//!   dies during an attempt, the same attempt runs again on resume.
//! - **at-most-once** ([`Step::at_most_once`]): a "started" marker is committed before the
//!   body runs; if the execution resumes and finds the marker, that attempt counts as
//!   failed and is never run again.
//!
//! A body is called once per attempt, and each attempt gets a body built afresh: after a
//! failed attempt, the step commits the failure and the time of the next attempt, and the
//! engine resumes the execution at the step from its frame (at once, or after the delay
//! with the execution suspended meanwhile), which evaluates the `ctx.step(..)` expression
//! again on the locals as saved. So a body may move what it captures, and every attempt
//! sees the same recorded values, exactly as after a restart.
//!
//! A failed attempt (an error, a panic, a timeout, an interrupted at-most-once attempt) is
//! judged by the retry strategy, or by the policy, predicate and panic setting that stand
//! for one; a [terminal](crate::Failure::is_terminal) failure is never retried, and no
//! attempt starts after the step's retry budget ([`Step::max_retry_duration`]) is spent.
//! A panic in an infallible step fails the execution: it has no error to record.

mod body;
mod run;

use std::time::Duration;

use crate::error::StepError;
use crate::execution::{AwaitedInDurableFn, Ctx};
use crate::failure::Failure;
use crate::retry::{RetryDecision, RetryPolicy};

pub(crate) use body::uuid_text;
pub use body::{StepBody, StepContext};

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StepContext>();
};

impl Ctx {
    /// A step running `body`, whose errors are [`Failure`]s.
    ///
    /// `body` is `|| async { .. }` or `|s: StepContext| async move { .. }` (see
    /// [`StepContext`]) and returns `Result<T, Failure>`; `?` inside it turns any
    /// `std::error::Error` into a [`Failure`]. Awaited directly in a `#[durable]` fn, the
    /// step runs the body (retrying as configured), records the outcome and returns `Ok(T)`
    /// or the [`StepError`] it gave up with, which `?` turns into a `Failure` again. What
    /// it returns is the outcome as recorded (decoded from the store, as a resume would see
    /// it), and once recorded it is returned again on resume without running the body.
    ///
    /// The body is called once per attempt, built again for each (see [`Step`]), so it may
    /// move what it captures: `|| async move { charge(order).await }`.
    /// It communicates through its return value: changes it makes to variables it captures
    /// are not recorded. Use [`typed_step`](Ctx::typed_step) for an error type of your own
    /// to `match` on.
    ///
    /// # Panics in the body
    ///
    /// A panic in the body (the closure or its future) does not unwind into the workflow:
    /// it is a failed attempt with the panic's message, retried as the policy says, and
    /// the step gives up with [`StepError::Panicked`]. Under [`Step::retry_if`] a panic is
    /// not retried unless [`Step::retry_panics`] says so. A panic in workflow code between
    /// durable points (or in an infallible step) fails the execution instead.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Failure, RetryPolicy};
    /// # async fn fetch_price(sku: &str) -> Result<u64, std::io::Error> { Ok(sku.len() as u64) }
    /// #[durable]
    /// async fn quote(ctx: Ctx, sku: String) -> Result<u64, Failure> {
    ///     let price = ctx
    ///         .step("fetch-price", || async move {
    ///             let cents = fetch_price(&sku).await?; // io::Error -> Failure
    ///             Ok(cents * 100)
    ///         })
    ///         .retry(RetryPolicy::exponential().max_attempts(3))
    ///         .await?; // StepError -> Failure
    ///     Ok(price)
    /// }
    /// ```
    pub fn step<B, A, T>(
        &self,
        name: impl Into<String>,
        body: B,
    ) -> Step<'static, impl FnOnce(StepContext) -> B::Future + Send, Failure>
    where
        B: StepBody<A, Output = Result<T, Failure>>,
    {
        Step::new(name.into(), move |cx| body.call(cx))
    }

    /// A step whose body returns an error type of its own, `E`, recorded as it is: `.await`
    /// gives `Result<T, StepError<E>>` to `match` on. `E` must be
    /// `Serialize + DeserializeOwned`; everything else is as for [`step`](Ctx::step).
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, RetryPolicy, StepError};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Debug, Serialize, Deserialize)]
    /// enum PayError {
    ///     Declined,
    ///     Unavailable,
    /// }
    /// # async fn charge(amount: u64) -> Result<String, PayError> { Ok(amount.to_string()) }
    ///
    /// #[durable]
    /// async fn pay(ctx: Ctx, amount: u64) -> Result<String, String> {
    ///     let paid = ctx
    ///         .typed_step("charge", || charge(amount))
    ///         .retry(RetryPolicy::exponential().max_attempts(5))
    ///         .retry_if(|e: &PayError| matches!(e, PayError::Unavailable))
    ///         .await;
    ///     match paid {
    ///         Ok(receipt) => Ok(receipt),
    ///         Err(StepError::Failed { error: PayError::Declined, .. }) => Err("declined".into()),
    ///         Err(other) => Err(format!("payment failed: {other:?}")),
    ///     }
    /// }
    /// ```
    pub fn typed_step<B, A, T, E>(
        &self,
        name: impl Into<String>,
        body: B,
    ) -> Step<'static, impl FnOnce(StepContext) -> B::Future + Send, E>
    where
        B: StepBody<A, Output = Result<T, E>>,
    {
        Step::new(name.into(), move |cx| body.call(cx))
    }

    /// Like [`typed_step`](Ctx::typed_step), with the attempt number (from 1) passed to the
    /// body. Kept for existing code: a body that takes a [`StepContext`] has the attempt
    /// and more.
    pub fn step_with_attempt<F, Fut, T, E>(
        &self,
        name: impl Into<String>,
        body: F,
    ) -> Step<'static, impl FnOnce(StepContext) -> Fut + Send, E>
    where
        F: FnOnce(u32) -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, E>> + Send,
    {
        Step::new(name.into(), move |cx: StepContext| body(cx.attempt()))
    }

    /// A step whose body cannot fail: its value is recorded and returned as is.
    ///
    /// Runs at least once: if the process dies while the body runs, it runs again on
    /// resume. A panic in the body fails the execution, as a panic in workflow code
    /// does: nothing can stand in for the value, and there is no retry policy. Use
    /// [`step`](Ctx::step) for a body that may fail or panic.
    ///
    /// It is also the way to make a value that must not change once made: a random
    /// number, an id, the time. Made between durable points, such a value is made again
    /// whenever that stretch of code runs again (after a crash before the next commit);
    /// made in an infallible step, it is recorded and never made again.
    /// [`Ctx::uuid`] and [`Ctx::random`] are short forms for the common cases.
    pub fn step_infallible<F, Fut, T>(&self, name: impl Into<String>, body: F) -> InfallibleStep<F>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = T> + Send,
    {
        InfallibleStep {
            name: name.into(),
            body,
        }
    }
}

/// A retry predicate, boxed so that setting one keeps the step's type.
type Predicate<'a, E> = Box<dyn Fn(&E) -> bool + Send + 'a>;
/// A retry strategy, boxed for the same reason.
type Strategy<'a, E> = Box<dyn Fn(&StepError<E>, u32) -> RetryDecision + Send + 'a>;

/// A fallible step, built by [`Ctx::step`] or [`Ctx::typed_step`]; configure it, then
/// `.await` it in a `#[durable]` fn.
///
/// Its body is called once per attempt. After a failed attempt the step commits the
/// failure and when the next attempt runs, and the engine resumes the execution at the
/// step from its stored frame (at once, or when the delay is over, the execution being
/// suspended meanwhile); that evaluates the `ctx.step(..)` expression again on the locals
/// as saved, so the next attempt runs a body built afresh, exactly as after a restart.
///
/// `'a` is how long the retry predicate and strategy may borrow for; `F` is the body;
/// `E` its error type.
#[must_use = "a step does nothing until it is awaited in a `#[durable]` fn"]
pub struct Step<'a, F, E = Failure> {
    body: F,
    rules: Rules<'a, E>,
}

/// Everything about a step but its body: what a failed attempt is judged by.
struct Rules<'a, E> {
    name: String,
    policy: RetryPolicy,
    retry_if: Option<Predicate<'a, E>>,
    strategy: Option<Strategy<'a, E>>,
    /// Whether a panic may be retried; `None`: yes, unless a `retry_if` predicate is set.
    retry_panics: Option<bool>,
    at_most_once: bool,
    timeout: Option<Duration>,
    max_retry_duration: Option<Duration>,
}

impl<F, E> std::fmt::Debug for Step<'_, F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules = &self.rules;
        f.debug_struct("Step")
            .field("name", &rules.name)
            .field("policy", &rules.policy)
            .field("retry_if", &rules.retry_if.is_some())
            .field("strategy", &rules.strategy.is_some())
            .field("retry_panics", &rules.retry_panics)
            .field("at_most_once", &rules.at_most_once)
            .field("timeout", &rules.timeout)
            .field("max_retry_duration", &rules.max_retry_duration)
            .finish_non_exhaustive()
    }
}

impl<F, E> Step<'static, F, E> {
    fn new(name: String, body: F) -> Self {
        Step {
            body,
            rules: Rules {
                name,
                policy: RetryPolicy::none(),
                retry_if: None,
                strategy: None,
                retry_panics: None,
                at_most_once: false,
                timeout: None,
                max_retry_duration: None,
            },
        }
    }
}

impl<'a, F, E> Step<'a, F, E> {
    /// Retries failed attempts as `policy` says (default: a single attempt).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.rules.policy = policy;
        self
    }

    /// Retries only errors for which `predicate` returns `true`; others fail the step at
    /// once. A panic, which the predicate cannot judge, then fails the step at once too,
    /// unless [`retry_panics`](Step::retry_panics) says otherwise; a timed-out or
    /// interrupted attempt is retried as the policy allows.
    pub fn retry_if(mut self, predicate: impl Fn(&E) -> bool + Send + 'a) -> Self {
        self.rules.retry_if = Some(Box::new(predicate));
        self
    }

    /// Whether an attempt whose body panicked may be retried (if the policy allows
    /// another attempt). By default it may, unless a [`retry_if`](Step::retry_if)
    /// predicate is set: the predicate cannot judge a panic.
    pub fn retry_panics(mut self, retry: bool) -> Self {
        self.rules.retry_panics = Some(retry);
        self
    }

    /// Decides every retry with `strategy`, called after each failed attempt with how it
    /// failed (the [`StepError`] the step would give up with now) and the attempt's number
    /// (from 1): [`RetryDecision::RetryAfter`] a delay, or [`RetryDecision::Stop`]. It
    /// replaces the [`retry`](Step::retry) policy, the [`retry_if`](Step::retry_if)
    /// predicate and the [`retry_panics`](Step::retry_panics) setting. A
    /// [terminal](Failure::is_terminal) failure stops the step without asking, and
    /// [`max_retry_duration`](Step::max_retry_duration) still applies.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Failure, RetryDecision, StepError};
    /// # use std::time::Duration;
    /// # async fn call() -> Result<u32, Failure> { Ok(1) }
    /// #[durable]
    /// async fn poll(ctx: Ctx, _: ()) -> Result<u32, Failure> {
    ///     let n = ctx
    ///         .step("call", || call())
    ///         .retry_strategy(|error: &StepError, attempt| match error {
    ///             StepError::TimedOut { .. } if attempt < 10 => RetryDecision::RetryAfter(Duration::ZERO),
    ///             _ if attempt < 3 => RetryDecision::RetryAfter(Duration::from_secs(attempt.into())),
    ///             _ => RetryDecision::Stop,
    ///         })
    ///         .await?;
    ///     Ok(n)
    /// }
    /// ```
    pub fn retry_strategy(
        mut self,
        strategy: impl Fn(&StepError<E>, u32) -> RetryDecision + Send + 'a,
    ) -> Self {
        self.rules.strategy = Some(Box::new(strategy));
        self
    }

    /// Gives up once `budget` has passed since the first attempt began: a retry that would
    /// start later is not made, and the step returns the last attempt's error. Measured on
    /// the engine clock, across suspensions and restarts.
    pub fn max_retry_duration(mut self, budget: Duration) -> Self {
        self.rules.max_retry_duration = Some(budget);
        self
    }

    /// Limits each attempt to `limit` (engine clock): an attempt still running then is
    /// dropped, counts as failed ([`StepError::TimedOut`] if the step gives up), and
    /// follows the retry policy like an error. The body sees the deadline in
    /// [`StepContext::deadline`]. Dropping a future cancels it at its next `.await`:
    /// whatever it had already done outside stays done, so a retried call should be
    /// idempotent ([`StepContext::idempotency_key`]). On a
    /// [`TestClock`](crate::TestClock), move the clock past the deadline to time an attempt
    /// out: auto-advance moves time only while no execution runs, and a running attempt is
    /// one.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.rules.timeout = Some(limit);
        self
    }

    /// Runs each attempt at most once: a durable "started" marker is committed before
    /// the body runs, and an attempt interrupted by a crash counts as failed.
    pub fn at_most_once(mut self) -> Self {
        self.rules.at_most_once = true;
        self
    }

    /// Runs each attempt at least once (the default): an attempt interrupted by a crash
    /// runs again.
    pub fn at_least_once(mut self) -> Self {
        self.rules.at_most_once = false;
        self
    }
}

/// Awaiting a builder outside a `#[durable]` fn would run it without a checkpoint, so it
/// is not a future: this impl exists only to turn the attempt into an error that says so
/// (`AwaitedInDurableFn` has no implementations).
impl<F, E> std::future::IntoFuture for Step<'_, F, E>
where
    // Awaited only directly in a `#[durable]` fn (a durable point): move the `.await` there.
    Self: AwaitedInDurableFn,
{
    type Output = ();
    type IntoFuture = std::future::Pending<()>;
    fn into_future(self) -> Self::IntoFuture {
        std::future::pending()
    }
}

/// A step whose body cannot fail, built by [`Ctx::step_infallible`].
#[must_use = "a step does nothing until it is awaited in a `#[durable]` fn"]
pub struct InfallibleStep<F> {
    name: String,
    body: F,
}

impl<F> std::fmt::Debug for InfallibleStep<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfallibleStep")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// See the `IntoFuture` impl of [`Step`].
impl<F> std::future::IntoFuture for InfallibleStep<F>
where
    // Awaited only directly in a `#[durable]` fn (a durable point): move the `.await` there.
    Self: AwaitedInDurableFn,
{
    type Output = ();
    type IntoFuture = std::future::Pending<()>;
    fn into_future(self) -> Self::IntoFuture {
        std::future::pending()
    }
}
