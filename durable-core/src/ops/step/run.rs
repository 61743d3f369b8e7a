//! Running a step at its durable point: one attempt per activation, the retry decision,
//! and the commits in between.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;

use futures_util::future::{select, Either};
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::body::StepContext;
use super::{InfallibleStep, Rules, Step};
use crate::error::StepError;
use crate::execution::{Interrupt, Operation, PointRun};
use crate::failure::Failure;
use crate::panic::panic_message;
use crate::record::{Event, PointState};
use crate::retry::RetryDecision;
use crate::time::Timestamp;

/// Where a step stands between attempts: what its committed state holds.
#[derive(Clone, Copy)]
struct Progress {
    /// The attempt to run next.
    attempt: u32,
    /// The sequence number its idempotency key is made from.
    key_seq: u64,
    /// When the first attempt began.
    since: Timestamp,
}

impl Progress {
    fn retrying(self) -> PointState {
        PointState::StepRetrying {
            attempt: self.attempt,
            key_seq: self.key_seq,
            since: self.since,
        }
    }

    fn started(self) -> PointState {
        PointState::StepStarted {
            attempt: self.attempt,
            key_seq: self.key_seq,
            since: self.since,
        }
    }
}

impl<F, Fut, T, E> Operation for Step<'_, F, E>
where
    F: FnOnce(StepContext) -> Fut + Send,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<T, StepError<E>>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let now = run.now();
        // Steps stored by earlier versions have no key sequence or start time: the record's
        // sequence number now is as stable until the next commit, which stores it.
        let legacy = |attempt| Progress {
            attempt,
            key_seq: run.seq(),
            since: now,
        };
        let (progress, interrupted) = match run.resumed_state() {
            None => (legacy(1), false),
            Some(PointState::StepRetrying {
                attempt,
                key_seq,
                since,
            }) => {
                let progress = Progress {
                    attempt: *attempt,
                    key_seq: *key_seq,
                    since: *since,
                };
                (progress, false)
            }
            Some(PointState::Retrying { attempt }) => (legacy(*attempt), false),
            Some(PointState::StepStarted {
                attempt,
                key_seq,
                since,
            }) => {
                let progress = Progress {
                    attempt: *attempt,
                    key_seq: *key_seq,
                    since: *since,
                };
                (progress, true)
            }
            Some(PointState::Started { attempt }) => (legacy(*attempt), true),
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "step `{}` resumed in a state that is not a step's: {other:?}",
                    self.rules.name
                )))
            }
        };
        let retrying = matches!(
            run.resumed_state(),
            Some(PointState::StepRetrying { .. } | PointState::Retrying { .. })
        );
        if retrying && run.wake_at().is_some_and(|at| at > now) {
            // Woken early (a timer raced a commit): the wait is already committed.
            return Err(Interrupt::Suspended);
        }
        let progress = if interrupted {
            // The at-most-once attempt that was running when the process died counts as
            // failed; its body was never called in this activation, so when the next
            // attempt may start at once it runs here.
            let error = StepError::Interrupted {
                attempts: progress.attempt,
            };
            match self.rules.decide(&error, progress, now) {
                Decision::GiveUp(event) => return run.give_up(&Err(error), vec![event]).await,
                Decision::Retry { next, at, event } => {
                    schedule(&run, next, at, event).await?;
                    next
                }
            }
        } else {
            progress
        };
        self.attempt(run, progress).await
    }
}

/// What follows a failed attempt.
enum Decision {
    /// The step gives up, with this history entry.
    GiveUp(Event),
    /// Attempt `next` runs at `at`.
    Retry {
        next: Progress,
        at: Timestamp,
        event: Event,
    },
}

/// Commits that attempt `next` runs at `at`; suspends if that is later, and otherwise
/// returns, for the caller to run it at once (or yield, if the engine is shutting down).
async fn schedule(
    run: &PointRun,
    next: Progress,
    at: Timestamp,
    event: Event,
) -> Result<(), Interrupt> {
    let suspend = at > run.now();
    run.progress(next.retrying(), suspend.then_some(at), vec![event])
        .await?;
    if suspend {
        return Err(Interrupt::Suspended);
    }
    if run.is_shutting_down() {
        return Err(Interrupt::Yielded);
    }
    Ok(())
}

impl<F, Fut, T, E> Step<'_, F, E>
where
    F: FnOnce(StepContext) -> Fut + Send,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
{
    /// Runs attempt `progress.attempt` and records what came of it.
    async fn attempt(
        self,
        run: PointRun,
        progress: Progress,
    ) -> Result<Result<T, StepError<E>>, Interrupt> {
        let Step { body, rules } = self;
        let attempt = progress.attempt;
        if rules.at_most_once {
            let started = Event::StepStarted {
                name: rules.name.clone(),
                attempt,
            };
            run.progress(progress.started(), None, vec![started])
                .await?;
        }
        let deadline = rules.timeout.map(|t| run.now().saturating_add(t));
        let cx = StepContext::new(
            run.execution_id(),
            &rules.name,
            run.point(),
            progress.key_seq,
            attempt,
            deadline,
        );
        let timer = deadline.map(|at| run.sleep_until(at));
        let error = match attempt_body(body, cx, timer).await {
            Attempt::Done(Ok(value)) => {
                let event = Event::StepSucceeded {
                    name: rules.name,
                    attempt,
                };
                let outcome: Result<T, StepError<E>> = Ok(value);
                return run.complete(&outcome, vec![event]).await;
            }
            Attempt::Done(Err(error)) => StepError::Failed {
                error,
                attempts: attempt,
            },
            Attempt::Panicked(message) => StepError::Panicked {
                message,
                attempts: attempt,
            },
            Attempt::TimedOut => StepError::TimedOut {
                attempts: attempt,
                timeout_ms: millis(rules.timeout.unwrap_or_default()),
            },
        };
        match rules.decide(&error, progress, run.now()) {
            Decision::GiveUp(event) => run.give_up(&Err(error), vec![event]).await,
            Decision::Retry { next, at, event } => {
                schedule(&run, next, at, event).await?;
                // The body is spent: the next attempt runs on a body built again from
                // the frame, when the engine resumes the execution.
                Err(Interrupt::Yielded)
            }
        }
    }
}

impl<E> Rules<'_, E>
where
    E: Serialize + Send + 'static,
{
    /// After attempt `progress.attempt` failed with `error`: whether another attempt
    /// follows and when, and the history entry of the failed one.
    fn decide(&self, error: &StepError<E>, progress: Progress, now: Timestamp) -> Decision {
        let retry_at = self.retry_at(error, progress, now);
        let event = self.event(error, progress.attempt, retry_at);
        match (retry_at, progress.attempt.checked_add(1)) {
            (Some(at), Some(attempt)) => Decision::Retry {
                next: Progress {
                    attempt,
                    ..progress
                },
                at,
                event,
            },
            _ => Decision::GiveUp(event),
        }
    }

    /// When the attempt after the one that failed with `error` runs, `None` if none does.
    fn retry_at(
        &self,
        error: &StepError<E>,
        progress: Progress,
        now: Timestamp,
    ) -> Option<Timestamp> {
        if let StepError::Failed { error, .. } = error {
            // Terminal means terminal, whatever a strategy would say.
            if (error as &dyn Any)
                .downcast_ref::<Failure>()
                .is_some_and(Failure::is_terminal)
            {
                return None;
            }
        }
        let attempt = progress.attempt;
        let delay = match &self.strategy {
            Some(strategy) => match strategy(error, attempt) {
                RetryDecision::RetryAfter(delay) => delay,
                RetryDecision::Stop => return None,
            },
            None => {
                let retryable = match error {
                    StepError::Failed { error, .. } => {
                        self.retry_if.as_ref().is_none_or(|p| p(error))
                    }
                    StepError::Panicked { .. } => {
                        self.retry_panics.unwrap_or(self.retry_if.is_none())
                    }
                    StepError::Interrupted { .. } | StepError::TimedOut { .. } => true,
                };
                if !retryable || !self.policy.allows_another(attempt) {
                    return None;
                }
                self.policy.jittered_delay_after(attempt)
            }
        };
        let at = now.saturating_add(delay);
        let within_budget = self
            .max_retry_duration
            .is_none_or(|budget| at <= progress.since.saturating_add(budget));
        within_budget.then_some(at)
    }

    /// The history entry of a failed attempt.
    fn event(&self, error: &StepError<E>, attempt: u32, retry_at: Option<Timestamp>) -> Event {
        let name = self.name.clone();
        match error {
            StepError::Failed { error, .. } => Event::StepFailed {
                name,
                attempt,
                error: serde_json::to_string(error)
                    .unwrap_or_else(|e| format!("<error not representable as JSON: {e}>")),
                retry_at,
            },
            StepError::Panicked { message, .. } => Event::StepPanicked {
                name,
                attempt,
                message: message.clone(),
                retry_at,
            },
            StepError::TimedOut { timeout_ms, .. } => Event::StepTimedOut {
                name,
                attempt,
                timeout_ms: *timeout_ms,
                retry_at,
            },
            StepError::Interrupted { .. } => Event::StepInterrupted {
                name,
                attempt,
                retry_at,
            },
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// How one attempt of a body ended.
enum Attempt<R> {
    /// It returned.
    Done(R),
    /// It panicked, with this message.
    Panicked(String),
    /// Its deadline came first.
    TimedOut,
}

/// Runs one attempt of a step body until it returns, panics (in the closure or in its
/// future) or, if there is a `timer`, until the timer fires.
async fn attempt_body<F, Fut, R>(
    body: F,
    cx: StepContext,
    timer: Option<crate::time::SleepFuture>,
) -> Attempt<R>
where
    F: FnOnce(StepContext) -> Fut,
    Fut: Future<Output = R>,
{
    // The closure runs outside the future's `catch_unwind`, so it needs its own.
    let current = cx.clone();
    let called = std::panic::catch_unwind(AssertUnwindSafe(|| cx.clone().enter(|| body(cx))));
    let future = match called {
        Ok(future) => future,
        Err(panic) => return Attempt::Panicked(panic_message(&*panic)),
    };
    let caught = AssertUnwindSafe(current.scope(future)).catch_unwind();
    let result = match timer {
        None => caught.await,
        Some(timer) => match select(pin!(caught), timer).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => return Attempt::TimedOut,
        },
    };
    match result {
        Ok(value) => Attempt::Done(value),
        Err(panic) => Attempt::Panicked(panic_message(&*panic)),
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
