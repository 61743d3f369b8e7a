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
//! memory) until then. An attempt whose body panics is a failed attempt too, with the
//! panic's message; it is retried like an error unless a `retry_if` predicate is set
//! (which cannot judge a panic) and [`Step::retry_panics`] does not ask for it. A panic
//! in an infallible step fails the execution: it has no error to record.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StepError;
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::panic::panic_message;
use crate::record::{Event, PointState};
use crate::retry::RetryPolicy;
use crate::time::Timestamp;

impl Ctx {
    /// A step running `body`, a closure returning a future of `Result<T, E>`.
    ///
    /// Awaited directly in a `#[durable]` fn, it runs the body (retrying as its policy
    /// says), records the outcome, and returns `Ok(T)` or the [`StepError`] it gave up
    /// with. What it returns is the outcome as recorded (decoded from the store, as a
    /// resume would see it), and once recorded it is returned again on resume without
    /// running the body. The body communicates through its return value: changes it
    /// makes to variables it captures are not recorded.
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
            retry_panics: None,
        }
    }

    /// A step whose body cannot fail: its value is recorded and returned as is.
    ///
    /// Runs at least once: if the process dies while the body runs, it runs again on
    /// resume. A panic in the body fails the execution, as a panic in workflow code
    /// does: nothing can stand in for the value, and there is no retry policy. Use
    /// [`step`](Ctx::step) for a body that may fail or panic.
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
    /// Whether a panic may be retried; `None`: yes, as no `retry_if` predicate is set
    /// (setting one makes it `Some(false)` unless the user chose).
    retry_panics: Option<bool>,
}

impl<F, P> std::fmt::Debug for Step<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("at_most_once", &self.at_most_once)
            .field("retry_panics", &self.retry_panics)
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
    /// once. A panic, which the predicate cannot judge, then fails the step at once too,
    /// unless [`retry_panics`](Step::retry_panics) says otherwise.
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
            // The predicate cannot judge a panic: not retried unless asked for.
            retry_panics: self.retry_panics.or(Some(false)),
        }
    }

    /// Whether an attempt whose body panicked may be retried (if the policy allows
    /// another attempt). By default it may, unless a [`retry_if`](Step::retry_if)
    /// predicate is set: the predicate cannot judge a panic.
    pub fn retry_panics(mut self, retry: bool) -> Self {
        self.retry_panics = Some(retry);
        self
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
            retry_panics,
        } = self;
        let retry_panics = retry_panics.unwrap_or(true);
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
                    return run.complete(&outcome, vec![event]).await;
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
            let failure = match attempt_body(&body, attempt).await {
                Ok(Ok(value)) => {
                    let outcome = Ok(value);
                    let event = Event::StepSucceeded { name, attempt };
                    return run.complete(&outcome, vec![event]).await;
                }
                Ok(Err(error)) => Failure::Error(error),
                Err(message) => Failure::Panic(message),
            };
            let retry = policy.allows_another(attempt)
                && match &failure {
                    Failure::Error(error) => retry_if(error),
                    Failure::Panic(_) => retry_panics,
                };
            if !retry {
                let (outcome, event) = failure.give_up(name, attempt);
                return run.complete(&outcome, vec![event]).await;
            }
            let retry_at = run
                .now()
                .saturating_add(policy.jittered_delay_after(attempt));
            let event = failure.event(name.clone(), attempt, Some(retry_at));
            if wait_or_go_on(&run, attempt + 1, retry_at, event).await? {
                return Err(Interrupt::Suspended);
            }
            attempt += 1;
        }
    }
}

/// Runs one attempt of a step body; a panic, in the closure or in its future, is
/// `Err` with the panic's message.
///
/// The closure is called before the returned future starts, so the future does not
/// borrow it (and the closure need not be `Sync`).
fn attempt_body<F, Fut, T, E>(
    body: &F,
    attempt: u32,
) -> impl Future<Output = Result<Result<T, E>, String>>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // The closure runs outside the future's `catch_unwind`, so it needs its own.
    let future = std::panic::catch_unwind(AssertUnwindSafe(|| body(attempt)))
        .map_err(|panic| panic_message(&*panic));
    async move {
        AssertUnwindSafe(future?)
            .catch_unwind()
            .await
            .map_err(|panic| panic_message(&*panic))
    }
}

/// How an attempt failed.
enum Failure<E> {
    /// The body returned an error.
    Error(E),
    /// The body panicked, with this message.
    Panic(String),
}

impl<E: Serialize> Failure<E> {
    /// The history entry of the failed attempt.
    fn event(&self, name: String, attempt: u32, retry_at: Option<Timestamp>) -> Event {
        match self {
            Failure::Error(error) => Event::StepFailed {
                name,
                attempt,
                error: serde_json::to_string(error)
                    .unwrap_or_else(|e| format!("<error not representable as JSON: {e}>")),
                retry_at,
            },
            Failure::Panic(message) => Event::StepPanicked {
                name,
                attempt,
                message: message.clone(),
                retry_at,
            },
        }
    }

    /// The step's outcome when it gives up after this failure, and its history entry.
    fn give_up<T>(self, name: String, attempts: u32) -> (Result<T, StepError<E>>, Event) {
        let event = self.event(name, attempts, None);
        let error = match self {
            Failure::Error(error) => StepError::Failed { error, attempts },
            Failure::Panic(message) => StepError::Panicked { message, attempts },
        };
        (Err(error), event)
    }
}

/// Commits that attempt `next` runs at `retry_at`; returns whether the execution must
/// suspend until then (a zero delay goes on at once).
async fn wait_or_go_on(
    run: &PointRun,
    next: u32,
    retry_at: Timestamp,
    event: Event,
) -> Result<bool, Interrupt> {
    let suspend = retry_at > run.now();
    let wake_at = suspend.then_some(retry_at);
    run.progress(PointState::Retrying { attempt: next }, wake_at, vec![event])
        .await?;
    if !suspend && run.is_shutting_down() {
        return Err(Interrupt::Yielded);
    }
    Ok(suspend)
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
        // A panic in the closure itself, before it returns a future, is caught too.
        let value = match std::panic::catch_unwind(AssertUnwindSafe(body)) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        match value {
            Ok(value) => {
                let event = Event::StepSucceeded { name, attempt: 1 };
                run.complete(&value, vec![event]).await
            }
            // Nothing can stand for the value it did not return, and it has no retry
            // policy: the execution fails, as for a panic between points.
            Err(panic) => Err(Interrupt::Failed(format!(
                "infallible step `{name}` panicked: {} (a step that may fail is a \
                 `ctx.step` with a retry policy)",
                panic_message(&*panic)
            ))),
        }
    }
}
