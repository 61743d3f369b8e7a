//! Durable sleeps: [`Ctx::sleep`] and [`Ctx::sleep_until`].
//!
//! A sleep commits its wake-up time with the frame and suspends: the execution leaves
//! memory and costs nothing until the engine's timer service wakes it. The time comes from
//! the engine's clock, so a test clock runs a year-long wait in milliseconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::record::{Event, PointState};
use crate::time::Timestamp;

/// The longest wait accepted: 100 years.
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A wait that cannot be scheduled; what `ctx.sleep(..).await` returns in its `Err`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The wake-up time is further away than [`MAX_WAIT`] or past the clock's range.
    #[error("wait `{name}` of {requested_ms} ms is longer than the maximum of {} days", MAX_WAIT.as_secs() / 86_400)]
    TooFar {
        /// The wait's name.
        name: String,
        /// The requested wait in milliseconds (saturated).
        requested_ms: u64,
    },
}

enum Deadline {
    After(Duration),
    At(Timestamp),
}

impl Ctx {
    /// Waits durably for `duration`: commits the wake-up time and suspends.
    ///
    /// `.await` gives `Ok(())` once the time has come (also after restarts), or
    /// [`WaitError::TooFar`] at once if `duration` exceeds [`MAX_WAIT`]. The wait is
    /// named after the line it is written on (`sleep (line 42)`) in the history and in
    /// `describe`, unless [`SleepOp::name`] names it.
    #[track_caller]
    pub fn sleep(&self, duration: Duration) -> SleepOp {
        SleepOp {
            name: default_name(),
            deadline: Deadline::After(duration),
        }
    }

    /// Waits durably until `deadline` (engine clock); a deadline in the past completes at
    /// once. Named as [`sleep`](Ctx::sleep) names it.
    #[track_caller]
    pub fn sleep_until(&self, deadline: Timestamp) -> SleepOp {
        SleepOp {
            name: default_name(),
            deadline: Deadline::At(deadline),
        }
    }
}

/// `sleep (line N)`, N being the line of the caller's caller: the `ctx.sleep(..)` call.
#[track_caller]
fn default_name() -> String {
    format!("sleep (line {})", std::panic::Location::caller().line())
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
    /// Names the wait, for the history and for inspection (default `sleep (line N)`, with
    /// the line of the call).
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
                    return run.complete(&outcome, Vec::new()).await;
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
            .await
    }
}
