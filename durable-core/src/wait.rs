//! Durable waits: [`Ctx::sleep`], [`Ctx::sleep_until`] and [`Ctx::wait_for_condition`].
//!
//! A wait commits its wake-up time with the frame and suspends: the execution leaves
//! memory and costs nothing until the engine's timer service wakes it. The time comes from
//! the engine's clock, so a test clock runs a year-long wait in milliseconds.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::decode_value;
use crate::ctx::{Ctx, PointRun};
use crate::private::{AwaitedInDurableFn, Interrupt, Operation};
use crate::record::{Event, PointState};
use crate::retry::RetryPolicy;
use crate::time::Timestamp;

/// The longest wait accepted: 100 years.
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A wait that cannot be scheduled; what `ctx.sleep(..).await` returns in its `Err`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WaitError {
    /// The wake-up time is further away than [`MAX_WAIT`] or past the clock's range.
    TooFar {
        /// The wait's name.
        name: String,
        /// The requested wait in milliseconds (saturated).
        requested_ms: u64,
    },
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::TooFar { name, requested_ms } => write!(
                f,
                "wait `{name}` of {requested_ms} ms is longer than the maximum of {} days",
                MAX_WAIT.as_secs() / 86_400
            ),
        }
    }
}

impl std::error::Error for WaitError {}

enum Deadline {
    After(Duration),
    At(Timestamp),
}

impl Ctx {
    /// Waits durably for `duration`: commits the wake-up time and suspends.
    ///
    /// `.await` gives `Ok(())` once the time has come (also after restarts), or
    /// [`WaitError::TooFar`] at once if `duration` exceeds [`MAX_WAIT`].
    pub fn sleep(&self, duration: Duration) -> SleepOp {
        SleepOp {
            name: "sleep".into(),
            deadline: Deadline::After(duration),
        }
    }

    /// Waits durably until `deadline` (engine clock); a deadline in the past completes at
    /// once.
    pub fn sleep_until(&self, deadline: Timestamp) -> SleepOp {
        SleepOp {
            name: "sleep".into(),
            deadline: Deadline::At(deadline),
        }
    }

    /// Polls `check` until the strategy says the condition holds.
    ///
    /// Each poll is a step: `check` gets the last state and returns the next one, which is
    /// committed together with the time of the next poll; between polls the execution is
    /// suspended. `.await` gives the final state, or [`ConditionError::Exhausted`] with
    /// the last state when the strategy runs out of attempts.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, ConditionError, RetryPolicy};
    /// # use std::time::Duration;
    /// #[durable]
    /// async fn wait_for_shipping(ctx: Ctx, order: u64) -> Result<u32, ConditionError<u32>> {
    ///     let polls = ctx
    ///         .wait_for_condition("shipped", 0u32, |polls: u32| async move { polls + 1 })
    ///         .until(|polls: &u32| *polls >= 3)
    ///         .backoff(RetryPolicy::fixed(Duration::ZERO).max_attempts(10))
    ///         .await?;
    ///     Ok(polls)
    /// }
    /// ```
    pub fn wait_for_condition<S, F, Fut>(
        &self,
        name: impl Into<String>,
        initial: S,
        check: F,
    ) -> WaitForCondition<S, F, fn(&S) -> bool>
    where
        F: Fn(S) -> Fut + Send,
        Fut: Future<Output = S> + Send,
    {
        WaitForCondition {
            name: name.into(),
            initial,
            check,
            until: never_done,
            policy: RetryPolicy::exponential().max_attempts(u32::MAX),
        }
    }
}

fn never_done<S>(_: &S) -> bool {
    false
}

/// A durable sleep, built by [`Ctx::sleep`] or [`Ctx::sleep_until`].
#[must_use = "a wait does nothing until it is awaited in a `#[durable]` fn"]
pub struct SleepOp {
    name: String,
    deadline: Deadline,
}

impl fmt::Debug for SleepOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SleepOp").field("name", &self.name).finish()
    }
}

impl SleepOp {
    /// Names the wait, for the history and for inspection (default `"sleep"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step). The bound is higher-ranked so that
/// rustc does not reject the never-satisfied bound outright.
impl std::future::IntoFuture for SleepOp
where
    // Awaited only directly in a `#[durable]` fn (a durable point): move the `.await` there.
    for<'a> &'a Self: AwaitedInDurableFn,
{
    type Output = ();
    type IntoFuture = std::future::Pending<()>;
    fn into_future(self) -> Self::IntoFuture {
        std::future::pending()
    }
}

impl Operation for SleepOp {
    type Output = Result<(), WaitError>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let SleepOp { name, deadline } = self;
        let now = run.now();
        let until = match run.resumed_state() {
            Some(PointState::Waiting { until }) => *until,
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "wait `{name}` resumed in a state that is not a wait's: {other:?}"
                )))
            }
            None => {
                let until = match deadline {
                    Deadline::At(at) => Some(at),
                    Deadline::After(d) if d <= MAX_WAIT => now.checked_add(d),
                    Deadline::After(_) => None,
                };
                let Some(until) = until.filter(|at| at.saturating_duration_since(now) <= MAX_WAIT)
                else {
                    let requested_ms = match deadline {
                        Deadline::After(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                        Deadline::At(at) => at.as_millis().saturating_sub(now.as_millis()),
                    };
                    let outcome = Err(WaitError::TooFar { name, requested_ms });
                    run.complete(&outcome, Vec::new()).await?;
                    return Ok(outcome);
                };
                if until > now {
                    let started = Event::WaitStarted {
                        name: name.clone(),
                        until,
                    };
                    run.progress(PointState::Waiting { until }, Some(until), vec![started])
                        .await?;
                    return Err(Interrupt::Suspended);
                }
                until
            }
        };
        if until > now {
            // Woken early (a timer raced a commit): the wait is already committed.
            return Err(Interrupt::Suspended);
        }
        run.complete(&Ok::<(), WaitError>(()), vec![Event::WaitFinished { name }])
            .await?;
        Ok(Ok(()))
    }
}

/// Why a condition wait gave up; what `ctx.wait_for_condition(..).await` returns in its
/// `Err`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConditionError<S> {
    /// The strategy allowed no more checks and the condition still did not hold.
    Exhausted {
        /// The last state `check` returned.
        state: S,
        /// How many checks ran.
        attempts: u32,
    },
}

impl<S: fmt::Debug> fmt::Display for ConditionError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionError::Exhausted { state, attempts } => write!(
                f,
                "condition still false after {attempts} checks (last state {state:?})"
            ),
        }
    }
}

impl<S: fmt::Debug> std::error::Error for ConditionError<S> {}

/// A condition wait, built by [`Ctx::wait_for_condition`].
#[must_use = "a wait does nothing until it is awaited in a `#[durable]` fn"]
pub struct WaitForCondition<S, F, U> {
    name: String,
    initial: S,
    check: F,
    until: U,
    policy: RetryPolicy,
}

impl<S, F, U> fmt::Debug for WaitForCondition<S, F, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitForCondition")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, F, U> WaitForCondition<S, F, U> {
    /// The condition: the wait ends when `done` returns `true` for the state a check
    /// returned. Without it, the wait ends only by exhausting its attempts.
    pub fn until<V>(self, done: V) -> WaitForCondition<S, F, V>
    where
        V: Fn(&S) -> bool + Send,
    {
        WaitForCondition {
            name: self.name,
            initial: self.initial,
            check: self.check,
            until: done,
            policy: self.policy,
        }
    }

    /// How long to wait between checks and how many checks to make (default:
    /// exponential backoff from 1 s up to 60 s with jitter, unlimited checks).
    pub fn backoff(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<S, F, U> std::future::IntoFuture for WaitForCondition<S, F, U>
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

impl<S, F, Fut, U> Operation for WaitForCondition<S, F, U>
where
    S: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(S) -> Fut + Send,
    Fut: Future<Output = S> + Send,
    U: Fn(&S) -> bool + Send,
{
    type Output = Result<S, ConditionError<S>>;

    async fn run(self, run: PointRun) -> Result<Self::Output, Interrupt> {
        let WaitForCondition {
            name,
            initial,
            check,
            until,
            policy,
        } = self;
        let (mut attempt, mut state) = match run.resumed_state() {
            None => (1, initial),
            Some(PointState::Polling { attempt, state }) => {
                if run.wake_at().is_some_and(|at| at > run.now()) {
                    return Err(Interrupt::Suspended);
                }
                let state = decode_value(state).map_err(|e| {
                    Interrupt::codec(&format!("cannot decode the state of wait `{name}`"), e)
                })?;
                (*attempt, state)
            }
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "wait `{name}` resumed in a state that is not a condition wait's: {other:?}"
                )))
            }
        };
        loop {
            state = check(state).await;
            let json = serde_json::to_string(&state)
                .unwrap_or_else(|e| format!("<state not representable as JSON: {e}>"));
            if until(&state) || !policy.allows_another(attempt) {
                let event = Event::ConditionChecked {
                    name,
                    attempt,
                    state: json,
                    next_check: None,
                };
                let outcome = if until(&state) {
                    Ok(state)
                } else {
                    Err(ConditionError::Exhausted {
                        state,
                        attempts: attempt,
                    })
                };
                run.complete(&outcome, vec![event]).await?;
                return Ok(outcome);
            }
            let next_check = run
                .now()
                .saturating_add(policy.jittered_delay_after(attempt));
            let encoded = run.ctx().codec().encode_value(&state).map_err(|e| {
                Interrupt::Failed(format!("cannot save the state of wait `{name}`: {e}"))
            })?;
            let event = Event::ConditionChecked {
                name: name.clone(),
                attempt,
                state: json,
                next_check: Some(next_check),
            };
            let suspend = next_check > run.now();
            let polling = PointState::Polling {
                attempt: attempt + 1,
                state: encoded,
            };
            run.progress(polling, suspend.then_some(next_check), vec![event])
                .await?;
            if suspend {
                return Err(Interrupt::Suspended);
            }
            attempt += 1;
        }
    }
}
