//! Condition waits: [`Ctx::wait_for_condition`] polls a check, each poll a step whose
//! returned state is committed, suspended between polls like a sleep.

use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::decode_value;
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::record::{Event, PointState};
use crate::retry::RetryPolicy;

impl Ctx {
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

/// Why a condition wait gave up; what `ctx.wait_for_condition(..).await` returns in its
/// `Err`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError<S> {
    /// The strategy allowed no more checks and the condition still did not hold.
    #[error("condition still false after {attempts} checks (last state {state:?})")]
    Exhausted {
        /// The last state `check` returned.
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
                return run.complete(&outcome, vec![event]).await;
            }
            let next_check = run
                .now()
                .saturating_add(policy.jittered_delay_after(attempt));
            let encoded = run.ctx().codec().encode_value(&state).map_err(|e| {
                Interrupt::Failed(format!("cannot save the state of wait `{name}`: {e}"))
            })?;
            // The next check gets the state as committed, as it would after a restart;
            // decoded before the commit, so a state that cannot be read back is never
            // committed.
            let committed = decode_value(&encoded).map_err(|e| {
                Interrupt::codec(
                    &format!("the state of wait `{name}` encodes but does not decode"),
                    e,
                )
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
            state = committed;
            attempt += 1;
        }
    }
}
