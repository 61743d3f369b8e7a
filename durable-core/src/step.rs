//! Steps: named units of work whose outcome is recorded, with retries.
//!
//! Semantics, per attempt:
//! - **at-least-once** (default): nothing is written before the body runs; if the process
//!   dies during an attempt, the same attempt runs again on resume.
//! - **at-most-once** ([`Step::at_most_once`]): a "started" marker is committed before the
//!   body runs; if the execution resumes and finds the marker, that attempt counts as
//!   failed and is never run again.
//!
//! A failed attempt is committed with its error and, if the policy allows another, the
//! wake-up time of the next one; with a non-zero delay the execution suspends (leaves
//! memory) until then.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ctx::{Ctx, PointRun};
use crate::error::StepError;
use crate::private::{AwaitedInDurableFn, Interrupt, Operation};
use crate::record::{Event, PointState};
use crate::retry::RetryPolicy;

impl Ctx {
    /// A step running `body`, a closure returning a future of `Result<T, E>`.
    ///
    /// Awaited directly in a `#[durable]` fn, it runs the body (retrying as its policy
    /// says), records the outcome, and returns `Ok(T)` or the [`StepError`] it gave up
    /// with. Once recorded, the outcome is returned again on resume without running the
    /// body. The body communicates through its return value: changes it makes to
    /// variables it captures are not recorded.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, StepError, RetryPolicy};
    /// #[durable]
    /// async fn greet(ctx: Ctx, name: String) -> Result<String, StepError<String>> {
    ///     let greeting = ctx
    ///         .step("compose", || async { Ok::<_, String>(format!("hello, {name}")) })
    ///         .retry(RetryPolicy::exponential().max_attempts(3))
    ///         .await?;
    ///     Ok(greeting)
    /// }
    /// ```
    pub fn step<F, Fut, T, E>(
        &self,
        name: impl Into<String>,
        body: F,
    ) -> Step<impl Fn(u32) -> Fut + Send, fn(&E) -> bool>
    where
        F: Fn() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        self.step_with_attempt(name, move |_| body())
    }

    /// Like [`step`](Ctx::step), with the attempt number (from 1) passed to the body.
    pub fn step_with_attempt<F, Fut, T, E>(
        &self,
        name: impl Into<String>,
        body: F,
    ) -> Step<F, fn(&E) -> bool>
    where
        F: Fn(u32) -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        Step {
            name: name.into(),
            body,
            policy: RetryPolicy::none(),
            retry_if: always,
            at_most_once: false,
        }
    }

    /// A step whose body cannot fail: its value is recorded and returned as is.
    ///
    /// Runs at least once: if the process dies while the body runs, it runs again on
    /// resume.
    pub fn step_infallible<F, Fut, T>(&self, name: impl Into<String>, body: F) -> InfallibleStep<F>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T> + Send,
    {
        InfallibleStep {
            name: name.into(),
            body,
        }
    }
}

fn always<E>(_: &E) -> bool {
    true
}

/// A fallible step, built by [`Ctx::step`]; configure it, then `.await` it in a
/// `#[durable]` fn.
#[must_use = "a step does nothing until it is awaited in a `#[durable]` fn"]
pub struct Step<F, P> {
    name: String,
    body: F,
    policy: RetryPolicy,
    retry_if: P,
    at_most_once: bool,
}

impl<F, P> std::fmt::Debug for Step<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("at_most_once", &self.at_most_once)
            .finish_non_exhaustive()
    }
}

impl<F, P> Step<F, P> {
    /// Retries failed attempts as `policy` says (default: a single attempt).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Retries only errors for which `predicate` returns `true`; others fail the step at
    /// once.
    pub fn retry_if<E, Q>(self, predicate: Q) -> Step<F, Q>
    where
        Q: Fn(&E) -> bool + Send,
    {
        Step {
            name: self.name,
            body: self.body,
            policy: self.policy,
            retry_if: predicate,
            at_most_once: self.at_most_once,
        }
    }

    /// Runs each attempt at most once: a durable "started" marker is committed before
    /// the body runs, and an attempt interrupted by a crash counts as failed.
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self
    }

    /// Runs each attempt at least once (the default): an attempt interrupted by a crash
    /// runs again.
    pub fn at_least_once(mut self) -> Self {
        self.at_most_once = false;
        self
    }
}

/// Awaiting a builder outside a `#[durable]` fn would run it without a checkpoint, so it
/// is not a future: this impl exists only to turn the attempt into an error that says so
/// (`AwaitedInDurableFn` has no implementations).
impl<F, P> std::future::IntoFuture for Step<F, P>
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

impl<F, P, Fut, T, E> Operation for Step<F, P>
where
    F: Fn(u32) -> Fut + Send,
    P: Fn(&E) -> bool + Send,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<T, StepError<E>>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let Step {
            name,
            body,
            policy,
            retry_if,
            at_most_once,
        } = self;
        let mut attempt = match run.resumed_state() {
            None => 1,
            Some(PointState::Retrying { attempt }) => {
                let attempt = *attempt;
                if run.wake_at().is_some_and(|at| at > run.now()) {
                    // Woken early (a timer raced a commit): the wait is already committed.
                    return Err(Interrupt::Suspended);
                }
                attempt
            }
            Some(PointState::Started { attempt }) => {
                let interrupted = *attempt;
                if !policy.allows_another(interrupted) {
                    let outcome = Err(StepError::Interrupted {
                        attempts: interrupted,
                    });
                    let event = Event::StepInterrupted {
                        name,
                        attempt: interrupted,
                        retry_at: None,
                    };
                    run.complete(&outcome, vec![event]).await?;
                    return Ok(outcome);
                }
                let retry_at = run
                    .now()
                    .saturating_add(policy.jittered_delay_after(interrupted));
                let event = Event::StepInterrupted {
                    name: name.clone(),
                    attempt: interrupted,
                    retry_at: Some(retry_at),
                };
                if wait_or_go_on(&run, interrupted + 1, retry_at, event).await? {
                    return Err(Interrupt::Suspended);
                }
                interrupted + 1
            }
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "step `{name}` resumed in a state that is not a step's: {other:?}"
                )))
            }
        };
        loop {
            if at_most_once {
                let started = Event::StepStarted {
                    name: name.clone(),
                    attempt,
                };
                run.progress(PointState::Started { attempt }, None, vec![started])
                    .await?;
            }
            let result = AssertUnwindSafe(body(attempt)).catch_unwind().await;
            let error = match result {
                Err(panic) => {
                    return Err(Interrupt::Failed(format!(
                        "step `{name}` panicked on attempt {attempt}: {}",
                        panic_message(&*panic)
                    )))
                }
                Ok(Ok(value)) => {
                    let outcome = Ok(value);
                    let event = Event::StepSucceeded { name, attempt };
                    run.complete(&outcome, vec![event]).await?;
                    return Ok(outcome);
                }
                Ok(Err(error)) => error,
            };
            let error_json = serde_json::to_string(&error)
                .unwrap_or_else(|e| format!("<error not representable as JSON: {e}>"));
            if !(policy.allows_another(attempt) && retry_if(&error)) {
                let event = Event::StepFailed {
                    name,
                    attempt,
                    error: error_json,
                    retry_at: None,
                };
                let outcome = Err(StepError::Failed {
                    error,
                    attempts: attempt,
                });
                run.complete(&outcome, vec![event]).await?;
                return Ok(outcome);
            }
            let retry_at = run
                .now()
                .saturating_add(policy.jittered_delay_after(attempt));
            let event = Event::StepFailed {
                name: name.clone(),
                attempt,
                error: error_json,
                retry_at: Some(retry_at),
            };
            if wait_or_go_on(&run, attempt + 1, retry_at, event).await? {
                return Err(Interrupt::Suspended);
            }
            attempt += 1;
        }
    }
}

/// Commits that attempt `next` runs at `retry_at`; returns whether the execution must
/// suspend until then (a zero delay goes on at once).
async fn wait_or_go_on(
    run: &PointRun,
    next: u32,
    retry_at: crate::time::Timestamp,
    event: Event,
) -> Result<bool, Interrupt> {
    let suspend = retry_at > run.now();
    let wake_at = suspend.then_some(retry_at);
    run.progress(PointState::Retrying { attempt: next }, wake_at, vec![event])
        .await?;
    if !suspend && run.ctx().shared().is_shutting_down() {
        return Err(Interrupt::Yielded);
    }
    Ok(suspend)
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
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

impl<F, Fut, T> Operation for InfallibleStep<F>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T> + Send,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = T;

    async fn run(self, run: PointRun) -> Result<T, Interrupt> {
        let InfallibleStep { name, body } = self;
        match AssertUnwindSafe(body()).catch_unwind().await {
            Ok(value) => {
                let event = Event::StepSucceeded { name, attempt: 1 };
                run.complete(&value, vec![event]).await?;
                Ok(value)
            }
            Err(panic) => Err(Interrupt::Failed(format!(
                "step `{name}` panicked: {}",
                panic_message(&*panic)
            ))),
        }
    }
}
