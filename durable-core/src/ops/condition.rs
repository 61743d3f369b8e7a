//! Condition waits: [`Ctx::wait_for_condition`] polls a check, each poll a step whose
//! returned state is committed, suspended between polls like a sleep.
//!
//! A check runs once per activation, on the state as committed: after each check that
//! does not end the wait, the state and the time of the next check are committed, and
//! the engine resumes the execution at the wait (at once, or when the time comes), which
//! builds the check again. A check may fail (return `Err(Failure)`): that check counts,
//! the state stays what the last good check returned, and the next check follows the
//! wait's backoff like any other; the wait gives up when the backoff allows no more
//! checks or the failure is [terminal](crate::Failure::is_terminal).

use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::decode_value;
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::failure::Failure;
use crate::record::{Event, PointState};
use crate::retry::RetryPolicy;

impl Ctx {
    /// Polls `check` until the condition holds.
    ///
    /// Each poll is a step: `check` gets the last state and returns the next one (or, for a
    /// check that may fail, `Result<S, Failure>`), which is committed together with the
    /// time of the next poll; between polls the execution is suspended. `.await` gives the
    /// final state, [`ConditionError::Exhausted`] with the last state when the backoff
    /// allows no more checks, or [`ConditionError::Failed`] when the last check failed.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Failure, RetryPolicy};
    /// # use std::time::Duration;
    /// # async fn shipped(order: u64) -> Result<bool, std::io::Error> { Ok(order > 0) }
    /// #[durable]
    /// async fn wait_for_shipping(ctx: Ctx, order: u64) -> Result<u32, Failure> {
    ///     let polls = ctx
    ///         .wait_for_condition("shipped", 0u32, |polls| async move {
    ///             // An error here is a failed check: retried on the backoff.
    ///             if shipped(order).await? { Ok(polls + 100) } else { Ok(polls + 1) }
    ///         })
    ///         .until(|polls: &u32| *polls >= 100)
    ///         .backoff(RetryPolicy::fixed(Duration::from_secs(60)).max_attempts(10))
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
        F: FnOnce(S) -> Fut + Send,
        Fut: Future + Send,
        Fut::Output: CheckOutput<S>,
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

mod sealed {
    pub trait Sealed<S> {}
    impl<S> Sealed<S> for S {}
    impl<S> Sealed<S> for Result<S, crate::Failure> {}
}

/// What a condition check returns: the next state `S`, or `Result<S, Failure>` for a
/// check that may fail.
pub trait CheckOutput<S>: sealed::Sealed<S> {
    /// The check's result as a `Result`.
    fn into_result(self) -> Result<S, Failure>;
}

impl<S> CheckOutput<S> for S {
    fn into_result(self) -> Result<S, Failure> {
        Ok(self)
    }
}

impl<S> CheckOutput<S> for Result<S, Failure> {
    fn into_result(self) -> Result<S, Failure> {
        self
    }
}

/// Why a condition wait gave up; what `ctx.wait_for_condition(..).await` returns in its
/// `Err`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError<S> {
    /// The backoff allowed no more checks and the condition still did not hold.
    #[error("condition still false after {attempts} checks (last state {state:?})")]
    Exhausted {
        /// The last state `check` returned.
        state: S,
        /// How many checks ran.
        attempts: u32,
    },
    // New variants go last: recorded outcomes name variants by position.
    /// The last check failed, and the backoff allowed no more checks or the failure was
    /// terminal.
    #[error("condition check failed after {attempts} checks: {error}")]
    Failed {
        /// The last check's error.
        error: Failure,
        /// The state the last good check returned (the initial state if none did).
        state: S,
        /// How many checks ran.
        attempts: u32,
    },
}

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
    F: FnOnce(S) -> Fut + Send,
    Fut: Future + Send,
    Fut::Output: CheckOutput<S>,
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
        let save = |state: &S| {
            run.codec().encode_value(state).map_err(|e| {
                Interrupt::Failed(format!("cannot save the state of wait `{name}`: {e}"))
            })
        };
        // The state as committed before this check: the check consumes the state, and a
        // failed check leaves it as it was.
        let (attempt, state, before) = match run.resumed_state() {
            None => {
                let before = save(&initial)?;
                (1, initial, before)
            }
            Some(PointState::Polling { attempt, state }) => {
                if run.wake_at().is_some_and(|at| at > run.now()) {
                    return Err(Interrupt::Suspended);
                }
                let decoded = decode_value(state).map_err(|e| {
                    Interrupt::codec(&format!("cannot decode the state of wait `{name}`"), e)
                })?;
                (*attempt, decoded, state.clone())
            }
            Some(other) => {
                return Err(Interrupt::Failed(format!(
                    "wait `{name}` resumed in a state that is not a condition wait's: {other:?}"
                )))
            }
        };
        let checked = check(state).await.into_result();
        let next_check = policy.allows_another(attempt).then(|| {
            run.now()
                .saturating_add(policy.jittered_delay_after(attempt))
        });
        let (state, event, next_check) = match checked {
            Ok(state) => {
                let json = serde_json::to_string(&state)
                    .unwrap_or_else(|e| format!("<state not representable as JSON: {e}>"));
                let done = until(&state);
                let next_check = next_check.filter(|_| !done);
                let event = Event::ConditionChecked {
                    name: name.clone(),
                    attempt,
                    state: json,
                    next_check,
                };
                let Some(next_check) = next_check else {
                    let outcome = if done {
                        Ok(state)
                    } else {
                        Err(ConditionError::Exhausted {
                            state,
                            attempts: attempt,
                        })
                    };
                    return run.complete(&outcome, vec![event]).await;
                };
                (save(&state)?, event, next_check)
            }
            Err(error) => {
                let next_check = next_check.filter(|_| !error.is_terminal());
                let event = Event::ConditionCheckFailed {
                    name: name.clone(),
                    attempt,
                    error: error.to_string(),
                    next_check,
                };
                let Some(next_check) = next_check else {
                    let state = decode_value(&before).map_err(|e| {
                        Interrupt::codec(&format!("cannot decode the state of wait `{name}`"), e)
                    })?;
                    let outcome: Result<S, _> = Err(ConditionError::Failed {
                        error,
                        state,
                        attempts: attempt,
                    });
                    return run.complete(&outcome, vec![event]).await;
                };
                (before, event, next_check)
            }
        };
        // Read back before the commit, so a state that cannot be read back is never
        // committed (the next check decodes it).
        decode_value::<S>(&state).map_err(|e| {
            Interrupt::codec(
                &format!("the state of wait `{name}` encodes but does not decode"),
                e,
            )
        })?;
        let suspend = next_check > run.now();
        let polling = PointState::Polling {
            attempt: attempt + 1,
            state,
        };
        run.progress(polling, suspend.then_some(next_check), vec![event])
            .await?;
        // The check is spent: the next one is built again when the engine resumes the
        // execution here.
        Err(if suspend {
            Interrupt::Suspended
        } else {
            Interrupt::Yielded
        })
    }
}
